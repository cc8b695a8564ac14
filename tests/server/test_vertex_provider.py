"""A Vertex provider end to end: the official `anthropic` SDK (a Claude Code shaped request)
and the `openai` SDK as clients of vdm (real Hypercorn on loopback), vdm calling the strict
fake Vertex AI (tests/fakes/vertex_upstream.py), which checks the bearer token, the path, the
body and the betas. Each test runs with a static access token and with google-auth's
service-account credentials refreshed against a loopback OAuth token endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.compat.claude_code import SYSTEM, TOOLS, USER_ID, opening, params
from tests.fakes.anthropic_upstream import (
    AnthropicSseReply,
    anthropic_message,
    anthropic_stream_events,
)
from tests.fakes.openai_upstream import JsonReply
from tests.fakes.vertex_upstream import (
    LOCATION,
    PROJECT,
    TOKEN,
    FakeTokenServer,
    FakeVertex,
    google_error,
)
from tests.harness import RunningVdm, running_vdm

SONNET = "claude-sonnet-4-5-20250929"
PREFIX = f"/v1/projects/{PROJECT}/locations/{LOCATION}/publishers/anthropic/models"
TOOL = ("Bash", '{"command":"ls","description":"List files"}', "toolu_01VertexCall0000000001")


@pytest.fixture(params=["token", "google"])
def auth(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def vertex() -> Iterator[FakeVertex]:
    with FakeVertex() as fake:
        yield fake


@pytest.fixture
def server(vertex: FakeVertex, auth: str, tmp_path: Path) -> Iterator[RunningVdm]:
    config = {
        "VERTEX_BASE_URL": vertex.base_url,
        "CLOUD_ML_REGION": LOCATION,
        "MAX_RETRIES": "0",
    }
    if auth == "token":
        with running_vdm({**config, "VERTEX_API_KEY": TOKEN, "VERTEX_PROJECT": PROJECT}) as run:
            yield run
        return
    vertex.tokens.clear()  # only what the token server issues
    with FakeTokenServer(vertex) as tokens:
        # The project comes from the service-account key, as google.auth.default gives it.
        key = tokens.key_file(tmp_path)
        config |= {"VERTEX_AUTH": "google", "GOOGLE_APPLICATION_CREDENTIALS": str(key)}
        with running_vdm(config) as run:
            yield run
        assert tokens.issued == 1  # one token for the whole test, refreshed off the loop


@pytest.fixture
def client(server: RunningVdm) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=server.url, api_key="sk-cc", max_retries=0) as made:
        yield made


def ask(client: anthropic.Anthropic, kwargs: dict[str, Any], stream: bool) -> Any:
    if stream:
        with client.messages.stream(**kwargs) as events:
            return events.get_final_message()
    return client.messages.create(**kwargs)


def claude_code(messages: list[dict[str, Any]], stream: bool = True) -> dict[str, Any]:
    kwargs = params(f"vertex:{SONNET}", messages)
    if not stream:
        kwargs["max_tokens"] = 16000
    return kwargs


def tool_turn(stream: bool) -> Any:
    if stream:
        events = anthropic_stream_events(
            "", thinking="I will list the files.", tool_use=TOOL, model=SONNET
        )
        return AnthropicSseReply(events)
    return JsonReply(
        anthropic_message("", thinking="I will list the files.", tool_use=TOOL, model=SONNET)
    )


# -- the anthropic SDK ----------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_a_claude_code_tool_loop(
    vertex: FakeVertex, client: anthropic.Anthropic, auth: str, stream: bool
) -> None:
    vertex.enqueue(tool_turn(stream))
    first = ask(client, claude_code(opening("list the files"), stream), stream)
    assert first.stop_reason == "tool_use"
    assert [b.type for b in first.content] == ["thinking", "tool_use"]
    call = first.content[1]
    assert (call.id, call.name, call.input["command"]) == (TOOL[2], "Bash", "ls")

    assistant = [b.model_dump(mode="json", exclude_none=True) for b in first.content]
    answer = {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "a.txt b.txt"}],
    }
    messages = [*opening("list the files"), {"role": "assistant", "content": assistant}, answer]
    second = ask(client, claude_code(messages, stream), stream)
    assert second.content[0].text == "Hello from fake Anthropic"
    assert vertex.rejected == []

    one, two = vertex.requests
    method = "streamRawPredict" if stream else "rawPredict"
    assert two.path == f"{PREFIX}/claude-sonnet-4-5@20250929:{method}"
    if auth == "token":
        assert two.headers["authorization"] == f"Bearer {TOKEN}"
    else:
        assert two.headers["authorization"] == "Bearer ya29.issued-1"
    # Claude Code's own beta is not Vertex's: left out; the others pass in the header.
    assert two.headers["anthropic-beta"] == (
        "interleaved-thinking-2025-05-14,context-management-2025-06-27"
    )
    sent = two.json
    assert sent["anthropic_version"] == "vertex-2023-10-16"
    assert "model" not in sent and "output_config" not in sent
    assert sent.get("stream", False) is stream
    assert sent["system"] == SYSTEM[1:] and sent["metadata"] == {"user_id": USER_ID}
    assert sent["thinking"]["type"] == "enabled"  # Sonnet 4.5 takes budgets
    assert sent["messages"][-2]["content"][0]["signature"] == assistant[0]["signature"]
    assert [t["name"] for t in sent["tools"]] == [t["name"] for t in TOOLS]


def test_betas_vertex_refuses_are_left_out_and_the_request_sent_again(
    vertex: FakeVertex, client: anthropic.Anthropic
) -> None:
    """A model that lags behind (no context-management yet): Vertex names the beta, vdm
    sends the request again without it, and the client sees only the answer."""
    vertex.betas = frozenset({"interleaved-thinking-2025-05-14"})
    message = ask(client, claude_code(opening("hello"), stream=False), stream=False)
    assert message.content[0].text == "Hello from fake Anthropic"
    assert vertex.rejected == [
        "Unexpected value(s) `context-management-2025-06-27` for the `anthropic-beta` header. "
        "Please consult our documentation at docs.anthropic.com or try again without the header."
    ]
    assert vertex.last.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"


@pytest.mark.parametrize(
    ("status", "kind", "error"),
    [
        (429, "RESOURCE_EXHAUSTED", anthropic.RateLimitError),
        (403, "PERMISSION_DENIED", anthropic.PermissionDeniedError),
        (404, "NOT_FOUND", anthropic.NotFoundError),
    ],
)
def test_google_shaped_errors_reach_the_client_in_its_dialect(
    vertex: FakeVertex, client: anthropic.Anthropic, status: int, kind: str, error: type
) -> None:
    text = "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model"
    vertex.enqueue(google_error(status, kind, text))
    kwargs = {
        "model": f"vertex:{SONNET}",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    with pytest.raises(error) as caught:
        ask(client, kwargs, stream=True)
    assert text in caught.value.message
    assert TOKEN not in caught.value.message


def test_count_tokens_asks_vertex(vertex: FakeVertex, client: anthropic.Anthropic) -> None:
    messages: Any = [{"role": "user", "content": "How many tokens is this sentence?"}]
    counted = client.messages.count_tokens(
        model=f"vertex:{SONNET}",
        messages=messages,
        extra_headers={"anthropic-beta": "web-search-2025-03-05"},
    )
    assert counted.input_tokens == 42
    assert vertex.rejected == []
    sent = vertex.last
    assert sent.path == f"{PREFIX}/count-tokens:rawPredict"
    assert sent.json["model"] == "claude-sonnet-4-5@20250929"
    assert "anthropic-beta" not in sent.headers


def test_count_tokens_falls_back_to_offline_when_vertex_refuses(
    vertex: FakeVertex, client: anthropic.Anthropic
) -> None:
    vertex.project = "another-project"  # every call is a 403 PERMISSION_DENIED now
    messages: Any = [{"role": "user", "content": "How many tokens is this sentence?"}]
    counted = client.messages.count_tokens(model=f"vertex:{SONNET}", messages=messages)
    assert 0 < counted.input_tokens != 42
    assert vertex.rejected == ["permission"]  # asked, refused, counted offline


# -- the openai SDK -------------------------------------------------------------------------------

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_an_openai_client_runs_a_tool_loop_on_vertex(
    vertex: FakeVertex, server: RunningVdm, stream: bool
) -> None:
    call = ("get_weather", '{"city":"Paris"}', "toolu_01WeatherCall0000000001")
    if stream:
        vertex.enqueue(AnthropicSseReply(anthropic_stream_events("", tool_use=call, model=SONNET)))
    else:
        vertex.enqueue(JsonReply(anthropic_message("", tool_use=call, model=SONNET)))
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-client", max_retries=0)
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    model = f"vertex:{SONNET}"
    if stream:
        chunks = list(
            client.chat.completions.create(
                model=model, messages=messages, tools=[WEATHER], stream=True
            )
        )
        calls = [c for ch in chunks for c in (ch.choices[0].delta.tool_calls or []) if ch.choices]
        call_id = next(c.id for c in calls if c.id)
        args = "".join(c.function.arguments or "" for c in calls if c.function)
    else:
        done = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER])
        (tool_call,) = done.choices[0].message.tool_calls or []
        call_id, args = tool_call.id, tool_call.function.arguments
    assert (call_id, json.loads(args)) == (call[2], {"city": "Paris"})

    messages += [
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": args},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "Sunny, 21 °C"},
    ]
    again = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER])
    assert again.choices[0].message.content == "Hello from fake Anthropic"
    sent = vertex.last.json
    (result,) = sent["messages"][-1]["content"]
    assert (result["type"], result["tool_use_id"]) == ("tool_result", call[2])
    assert "model" not in sent and sent["anthropic_version"] == "vertex-2023-10-16"
    assert "anthropic-beta" not in vertex.last.headers  # an OpenAI client asks for none
    assert vertex.rejected == []


def test_the_models_list_still_answers(server: RunningVdm, vertex: FakeVertex) -> None:
    listed = httpx.get(f"{server.url}/v1/models", timeout=10)
    assert listed.status_code == 200


def test_a_token_vertex_refuses_is_replaced_for_the_next_request(
    vertex: FakeVertex, tmp_path: Path
) -> None:
    """A 401 (the token revoked, or this machine's clock off) is the client's error, and the
    next request goes with a new token, though google-auth still took the old one for FRESH."""
    vertex.tokens.clear()
    hello: Any = {
        "model": f"vertex:{SONNET}",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
    }
    with FakeTokenServer(vertex) as tokens:
        key = tokens.key_file(tmp_path)
        config = {
            "VERTEX_BASE_URL": vertex.base_url,
            "CLOUD_ML_REGION": LOCATION,
            "MAX_RETRIES": "0",
            "VERTEX_AUTH": "google",
            "GOOGLE_APPLICATION_CREDENTIALS": str(key),
        }
        with (
            running_vdm(config) as run,
            anthropic.Anthropic(base_url=run.url, api_key="sk-cc", max_retries=0) as client,
        ):
            vertex.enqueue(JsonReply(anthropic_message("one", model=SONNET)))
            assert client.messages.create(**hello).content[0].text == "one"  # type: ignore[union-attr]
            vertex.tokens.clear()  # revoked
            with pytest.raises(anthropic.AuthenticationError):
                client.messages.create(**hello)
            vertex.enqueue(JsonReply(anthropic_message("two", model=SONNET)))
            assert client.messages.create(**hello).content[0].text == "two"  # type: ignore[union-attr]
        assert tokens.issued == 2
