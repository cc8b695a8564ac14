"""A Bedrock provider end to end: the official `anthropic` SDK (a Claude Code shaped request)
and the `openai` SDK as clients of vdm (real Hypercorn on loopback), vdm calling the strict
fake Bedrock runtime (tests/fakes/bedrock_upstream.py), which checks every signature or API
key and refuses what Bedrock refuses.

Turn 2 of the tool loop is built as Claude Code builds it: the assistant content exactly as
the client received it (the thinking block with its signature, the tool_use id), then the
result; the fake checks the signature it gave (tests/fakes/anthropic_rules.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.compat.claude_code import BETAS, SYSTEM, TOOLS, USER_ID, opening, params
from tests.fakes.anthropic_upstream import anthropic_message, anthropic_stream_events
from tests.fakes.bedrock_upstream import (
    ACCESS_KEY,
    API_KEY,
    FIELDS,
    SECRET_KEY,
    FakeBedrock,
    FakeMantle,
    bedrock_error,
    event_stream,
    exception_frame,
)
from tests.fakes.openai_upstream import JsonReply
from tests.harness import RunningVdm, running_vdm

SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
ARN = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5"
TOOL = ("Bash", '{"command":"ls","description":"List files"}', "toolu_01BedrockCall000001")


def env(fake: FakeBedrock | FakeMantle, auth: str, **extra: str) -> dict[str, str]:
    found = {"BEDROCK_BASE_URL": fake.base_url, "AWS_REGION": "us-east-1", "MAX_RETRIES": "0"}
    if auth == "sigv4":
        found |= {
            "BEDROCK_AUTH": "sigv4",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }
    else:
        found["AWS_BEARER_TOKEN_BEDROCK"] = API_KEY
    return {**found, **extra}


@pytest.fixture(params=["sigv4", "bearer"])
def auth(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def bedrock(auth: str) -> Iterator[FakeBedrock]:
    with FakeBedrock(auth=auth) as fake:
        yield fake


@pytest.fixture
def server(bedrock: FakeBedrock, auth: str) -> Iterator[RunningVdm]:
    with running_vdm(env(bedrock, auth)) as running:
        yield running


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
    """Claude Code's request (tests/compat/claude_code.py), its betas also in the body as
    Claude Code in Bedrock mode puts them (`anthropic_beta`). Not streamed, with less
    `max_tokens`: the SDK refuses 32000 without a stream."""
    kwargs = params(f"bedrock:{SONNET}", messages)
    if not stream:
        kwargs["max_tokens"] = 16000
    kwargs["extra_body"] = {**kwargs["extra_body"], "anthropic_beta": BETAS.split(",")}
    return kwargs


def tool_turn(stream: bool) -> Any:
    events = anthropic_stream_events(
        "", thinking="I will list the files.", tool_use=TOOL, model="claude-sonnet-4-5-20250929"
    )
    if stream:
        return event_stream(events)
    return JsonReply(
        anthropic_message(
            "", thinking="I will list the files.", tool_use=TOOL, model="claude-sonnet-4-5"
        )
    )


# -- the anthropic SDK ----------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_a_claude_code_tool_loop(
    bedrock: FakeBedrock, client: anthropic.Anthropic, auth: str, stream: bool
) -> None:
    bedrock.enqueue(tool_turn(stream))
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
    assert second.content[0].text == "Hello from fake Bedrock"
    assert bedrock.rejected == []

    one, two = bedrock.requests
    operation = "invoke-with-response-stream" if stream else "invoke"
    assert two.path == f"/model/{SONNET}/{operation}"
    if auth == "sigv4":
        assert two.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=")
    else:
        assert two.headers["authorization"] == f"Bearer {API_KEY}"
    sent = two.json
    assert sent["anthropic_version"] == "bedrock-2023-05-31"
    assert sent["anthropic_beta"] == [
        "claude-code-20250219",
        "interleaved-thinking-2025-05-14",
        "context-management-2025-06-27",
    ]
    assert sent["system"] == SYSTEM[1:] and sent["metadata"] == {"user_id": USER_ID}
    assert "context_management" not in sent and "model" not in sent and "stream" not in sent
    # Sonnet 4.5 takes budgets, not adaptive thinking: fitted as for Anthropic itself.
    assert sent["thinking"]["type"] == "enabled"
    # The thinking block came back with the signature the fake gave it.
    assert sent["messages"][-2]["content"][0]["signature"] == assistant[0]["signature"]
    assert [t["name"] for t in sent["tools"]] == [t["name"] for t in TOOLS]


def test_betas_of_the_header_reach_bedrock_in_the_body(
    bedrock: FakeBedrock, client: anthropic.Anthropic
) -> None:
    """An Anthropic client in first-party mode sends its betas as a header only: those
    Bedrock takes go in `anthropic_beta`, the others (unknown to Bedrock: a 400) do not."""
    bedrock.enqueue(JsonReply(anthropic_message("ok", model="claude-sonnet-4-5")))
    kwargs = claude_code(opening("hi"), stream=False)
    kwargs["extra_body"] = {k: v for k, v in kwargs["extra_body"].items() if k != "anthropic_beta"}
    kwargs["extra_headers"] = {
        **kwargs["extra_headers"],
        "anthropic-beta": "interleaved-thinking-2025-05-14,some-future-beta-2027-01-01",
    }
    assert ask(client, kwargs, False).content[0].text == "ok"
    assert bedrock.rejected == []
    assert bedrock.requests[-1].json["anthropic_beta"] == ["interleaved-thinking-2025-05-14"]


def test_an_inference_profile_arn_is_one_quoted_segment(
    bedrock: FakeBedrock, client: anthropic.Anthropic
) -> None:
    kwargs = {
        "model": f"bedrock:{ARN}",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    message = ask(client, kwargs, stream=True)
    assert message.content[0].text == "Hello from fake Bedrock"
    assert bedrock.last.path == (
        "/model/arn:aws:bedrock:us-east-1:123456789012:application-inference-profile%2F"
        "a1b2c3d4e5/invoke-with-response-stream"
    )


def test_a_throttling_exception_mid_stream_ends_with_a_rate_limit_error(
    bedrock: FakeBedrock, server: RunningVdm
) -> None:
    start = anthropic_stream_events("Hello there, I am", pieces=3)[:6]
    throttled = exception_frame(
        "throttlingException", "Too many requests, please wait before trying again."
    )
    bedrock.enqueue(event_stream(start, then=[throttled]))
    body = {
        "model": f"bedrock:{SONNET}",
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    with httpx.stream("POST", f"{server.url}/v1/messages", json=body, timeout=10) as response:
        assert response.status_code == 200
        raw = b"".join(response.iter_bytes())
    assert b"Hello " in raw and b" I am" in raw  # what came before it reached the client
    tail = raw.split(b"event: error\ndata: ")[-1]
    error = json.loads(tail.split(b"\n")[0])
    assert error["error"]["type"] == "rate_limit_error"
    assert "throttlingException: Too many requests" in error["error"]["message"]
    assert b"message_stop" not in raw


def test_an_error_before_the_stream_is_the_clients_own_error(
    bedrock: FakeBedrock, client: anthropic.Anthropic
) -> None:
    denied = (
        "User: arn:aws:iam::123456789012:user/dev is not authorized to perform: "
        "bedrock:InvokeModelWithResponseStream on resource: arn:aws:bedrock:us-east-1::"
        "foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0"
    )
    bedrock.enqueue(bedrock_error(403, "AccessDeniedException", denied))
    with pytest.raises(anthropic.PermissionDeniedError) as caught:
        ask(
            client,
            {
                "model": f"bedrock:{SONNET}",
                "max_tokens": 64,
                "messages": [{"role": "user", "content": "Hi"}],
            },
            stream=True,
        )
    assert f"AccessDeniedException: {denied}" in caught.value.message


def test_refused_betas_and_fields_are_left_out_and_the_request_sent_again(
    bedrock: FakeBedrock, client: anthropic.Anthropic
) -> None:
    """A model that takes fewer betas (Opus 4.7 takes only interleaved thinking) and no
    `metadata`: each refusal names what to leave out, and the client sees only the answer."""
    bedrock.betas = frozenset({"interleaved-thinking-2025-05-14"})
    bedrock.fields = FIELDS - {"metadata"}
    message = ask(client, claude_code(opening("hello"), stream=False), stream=False)
    assert message.content[0].text == "Hello from fake Bedrock"
    refused = [m for _, m in bedrock.rejected]
    assert refused == [
        "The model returned the following errors: invalid beta flag",
        "The model returned the following errors: metadata: Extra inputs are not permitted",
    ]
    last = bedrock.last.json
    assert "anthropic_beta" not in last and "metadata" not in last
    # Remembered for this model: the next request goes without them at once.
    calls = len(bedrock.requests)
    again = ask(client, claude_code(opening("hello again"), stream=False), stream=False)
    assert again.content[0].text == "Hello from fake Bedrock"
    assert len(bedrock.requests) == calls + 1 and len(bedrock.rejected) == 2


def test_count_tokens_asks_bedrock_for_a_model_id_and_counts_offline_for_an_arn(
    bedrock: FakeBedrock, client: anthropic.Anthropic
) -> None:
    messages: Any = [{"role": "user", "content": "How many tokens is this sentence?"}]
    counted = client.messages.count_tokens(model=f"bedrock:{SONNET}", messages=messages)
    assert counted.input_tokens == 42
    assert bedrock.last.path == "/model/anthropic.claude-sonnet-4-5-20250929-v1:0/count-tokens"
    before = bedrock.request_count
    offline = client.messages.count_tokens(model=f"bedrock:{ARN}", messages=messages)
    assert 0 < offline.input_tokens != 42 and bedrock.request_count == before


def test_the_models_list_still_answers(server: RunningVdm, bedrock: FakeBedrock) -> None:
    listed = httpx.get(f"{server.url}/v1/models", timeout=10)
    assert listed.status_code == 200
    ids = [m["id"] for m in listed.json()["data"]]
    assert any("global.anthropic.claude-sonnet-4-6" in i for i in ids)


# -- the openai SDK -------------------------------------------------------------------------------

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_an_openai_client_runs_a_tool_loop_on_bedrock(
    bedrock: FakeBedrock, server: RunningVdm, stream: bool
) -> None:
    call = ("get_weather", '{"city":"Paris"}', "toolu_01WeatherCall0000000001")
    events = anthropic_stream_events("", tool_use=call, model="claude-sonnet-4-5-20250929")
    if stream:
        bedrock.enqueue(event_stream(events))
    else:
        bedrock.enqueue(JsonReply(anthropic_message("", tool_use=call)))
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-client", max_retries=0)
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    model = f"bedrock:{SONNET}"
    if stream:
        chunks = list(
            client.chat.completions.create(
                model=model, messages=messages, tools=[WEATHER], stream=True
            )
        )
        calls = [c for ch in chunks for c in (ch.choices[0].delta.tool_calls or []) if ch.choices]
        call_id = next(c.id for c in calls if c.id)
        args = "".join(c.function.arguments or "" for c in calls if c.function)
        finish = next(
            ch.choices[0].finish_reason
            for ch in chunks
            if ch.choices and ch.choices[0].finish_reason
        )
    else:
        done = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER])
        (tool_call,) = done.choices[0].message.tool_calls or []
        call_id, args = tool_call.id, tool_call.function.arguments
        finish = done.choices[0].finish_reason
    assert (call_id, json.loads(args), finish) == (call[2], {"city": "Paris"}, "tool_calls")

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
    assert again.choices[0].message.content == "Hello from fake Bedrock"
    sent = bedrock.last.json
    (result,) = sent["messages"][-1]["content"]
    assert (result["type"], result["tool_use_id"]) == ("tool_result", call[2])
    assert "Sunny, 21 °C" in json.dumps(result["content"], ensure_ascii=False)
    assert sent["messages"][-2]["content"][-1]["id"] == call[2]
    assert bedrock.rejected == []


def test_an_openai_stream_cut_by_throttling_ends_with_an_error(
    bedrock: FakeBedrock, server: RunningVdm
) -> None:
    start = anthropic_stream_events("Partial answer", pieces=2)[:4]
    bedrock.enqueue(event_stream(start, then=[exception_frame("throttlingException", "Slow down")]))
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-client", max_retries=0)
    with pytest.raises(openai.APIError) as caught:
        for _ in client.chat.completions.create(
            model=f"bedrock:{SONNET}",
            messages=[{"role": "user", "content": "Hi"}],
            stream=True,
        ):
            pass
    assert "throttlingException: Slow down" in str(caught.value)


# -- mantle ---------------------------------------------------------------------------------------


def test_mantle_is_the_anthropic_format_signed_as_bedrock_mantle() -> None:
    with FakeMantle() as mantle:
        config = env(
            mantle,
            "sigv4",
            BEDROCK_API_FORMAT="anthropic",
            BEDROCK_SIGV4_SERVICE="bedrock-mantle",
        )
        with running_vdm(config) as running:
            with anthropic.Anthropic(base_url=running.url, api_key="sk-cc", max_retries=0) as c:
                message = ask(
                    c,
                    {
                        "model": "bedrock:anthropic.claude-sonnet-4-5",
                        "max_tokens": 64,
                        "messages": [{"role": "user", "content": "Hi"}],
                    },
                    stream=True,
                )
        assert message.content[0].text == "Hello from fake Anthropic"
        sent = mantle.last
        assert sent.path == "/anthropic/v1/messages"
        assert "/bedrock-mantle/aws4_request" in sent.headers["authorization"]
        assert sent.json["model"] == "anthropic.claude-sonnet-4-5"
