"""The OpenAI Responses backend end to end: the anthropic SDK drives vdm (real Hypercorn on
loopback), vdm calls the strict fake Responses API (a real HTTP server that rejects what
OpenAI rejects). The tool loops send turn 2 exactly as Claude Code does: the assistant content
it received, thinking block and signature included, then the tool result."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from tests.fakes.openai_upstream import JsonReply, SseReply, completion
from tests.fakes.responses_upstream import (
    FakeResponses,
    ResponsesSseReply,
    encrypted_content,
    message_item,
    response_events,
    responses_error,
    responses_reply,
    responses_usage,
)
from tests.harness import RunningVdm, running_vdm
from vdm.config.settings import ProviderConfig
from vdm.protocol.signatures import pack_reasoning, unpack_reasoning
from vdm.upstream.backends import select

KEY = "sk-upstream-secret-5678"
MODEL = "gpt-5.6-terra"
BASH = {
    "name": "Bash",
    "description": "Run a shell command",
    "input_schema": {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"command": {"type": "string"}},
        "required": ["command"],
        "additionalProperties": False,
    },
}
#: What Claude Code 2.1.330 sends besides messages (../shared/protocol/claude-code/05_*.json).
CLAUDE_CODE = {
    "system": [
        {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.330.abc;"},
        {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
    ],
    "tools": [BASH],
    "metadata": {
        "user_id": json.dumps(
            {"device_id": "d" * 64, "account_uuid": "acct-9", "session_id": "sess-42"}
        )
    },
    "max_tokens": 32000,
}


@pytest.fixture
def fake() -> Iterator[FakeResponses]:
    with FakeResponses() as upstream:
        yield upstream


@pytest.fixture
def vdm(fake: FakeResponses) -> Iterator[RunningVdm]:
    env = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": fake.base_url, "MAX_RETRIES": "0"}
    with running_vdm(env) as server:
        yield server


@pytest.fixture
def client(vdm: RunningVdm) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=vdm.url, api_key="sk-client", max_retries=0) as c:
        yield c


def claude_code(messages: list[dict[str, Any]], display: str = "summarized") -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": messages,
        "tools": CLAUDE_CODE["tools"],
        "system": CLAUDE_CODE["system"],
        "metadata": CLAUDE_CODE["metadata"],
        "max_tokens": CLAUDE_CODE["max_tokens"],
        "extra_body": {
            "thinking": {"type": "adaptive", "display": display},
            "output_config": {"effort": "high"},
            "context_management": {"edits": [{"type": "clear_thinking_20251015"}]},
        },
    }


def echo(content: list[Any]) -> list[dict[str, Any]]:
    """The assistant turn as Claude Code sends it back: each block verbatim."""
    out: list[dict[str, Any]] = []
    for block in content:
        if block.type == "thinking":
            out.append(
                {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
            )
        elif block.type == "text":
            out.append({"type": "text", "text": block.text})
        elif block.type == "tool_use":
            out.append(
                {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
            )
    return out


def turn(client: anthropic.Anthropic, stream: bool, **request: Any) -> anthropic.types.Message:
    if stream:
        with client.messages.stream(**request) as events:
            return events.get_final_message()
    # (a timeout of its own: the SDK refuses a long non-streamed request without one)
    return client.messages.create(timeout=30, **request)


def responses_calls(fake: FakeResponses) -> list[dict[str, Any]]:
    return [r.json for r in fake.responses_requests]


# --- the tool loop --------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "not-streamed"])
@pytest.mark.parametrize("display", ["summarized", "omitted"])
def test_two_turn_tool_loop_carries_the_reasoning_back(
    client: anthropic.Anthropic, fake: FakeResponses, stream: bool, display: str
) -> None:
    fake.enqueue(
        responses_reply(
            "I'll run it.",
            reasoning=["The user wants a command run.", "Bash will do."],
            tool_calls=[("Bash", '{"command":"echo hello"}')],
            pieces=3,
        ),
        responses_reply("It printed hello.", reasoning=["Done."]),
    )
    messages: list[dict[str, Any]] = [{"role": "user", "content": "run echo hello"}]
    first = turn(client, stream, **claude_code(messages, display))

    assert [b.type for b in first.content] == ["thinking", "text", "tool_use"]
    thinking, _, tool = first.content
    assert thinking.type == "thinking" and tool.type == "tool_use"
    assert thinking.signature.startswith("vdm-rs1:")
    if display == "omitted":  # no summary asked for: a signature-only block, as Anthropic does
        assert thinking.thinking == ""
    else:
        assert thinking.thinking == "The user wants a command run.\n\nBash will do."
    assert (tool.name, tool.input) == ("Bash", {"command": "echo hello"})
    assert first.stop_reason == "tool_use"

    messages += [
        {"role": "assistant", "content": echo(first.content)},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": tool.id, "content": "hello"},
                {"type": "text", "text": "thanks", "cache_control": {"type": "ephemeral"}},
            ],
        },
    ]
    second = turn(client, stream, **claude_code(messages, display))
    assert [b.type for b in second.content] == ["thinking", "text"]
    assert second.content[1].text == "It printed hello."  # type: ignore[union-attr]
    assert fake.rejected == []

    one, two = responses_calls(fake)
    assert fake.last.path == "/v1/responses"
    assert fake.last.headers["authorization"] == f"Bearer {KEY}"
    assert one["instructions"] == "You are Claude Code."
    assert one["reasoning"] == (
        {"effort": "high"} if display == "omitted" else {"effort": "high", "summary": "auto"}
    )
    assert one["include"] == ["reasoning.encrypted_content"] and one["store"] is False
    assert one["prompt_cache_key"] == "sess-42"
    assert one["tools"][0]["strict"] is False and "$schema" not in one["tools"][0]["parameters"]
    assert ("stream" in one) is stream

    reasoning, text, call, output, after = two["input"][1:]
    assert reasoning["type"] == "reasoning"
    assert reasoning["id"].startswith("rs_")
    assert reasoning["encrypted_content"] == encrypted_content(reasoning["id"])
    assert text["content"] == [{"type": "output_text", "text": "I'll run it."}]
    assert call == {
        "type": "function_call",
        "call_id": tool.id,
        "name": "Bash",
        "arguments": '{"command":"echo hello"}',
    }
    assert output == {"type": "function_call_output", "call_id": tool.id, "output": "hello"}
    assert after["content"] == [{"type": "input_text", "text": "thanks"}]


def test_parallel_calls_and_an_error_result(
    client: anthropic.Anthropic, fake: FakeResponses
) -> None:
    fake.enqueue(
        responses_reply(
            reasoning=["Two at once."],
            tool_calls=[("Bash", '{"command": "ls"}'), ("Bash", '{"command": "rm -rf /"}')],
        ),
        responses_reply("OK."),
    )
    messages: list[dict[str, Any]] = [{"role": "user", "content": "go"}]
    first = turn(client, True, **claude_code(messages))
    ids = [b.id for b in first.content if b.type == "tool_use"]
    assert len(ids) == 2 and len(set(ids)) == 2
    messages += [
        {"role": "assistant", "content": echo(first.content)},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": ids[0], "content": "a.txt"},
                {
                    "type": "tool_result",
                    "tool_use_id": ids[1],
                    "content": "denied",
                    "is_error": True,
                },
            ],
        },
    ]
    turn(client, True, **claude_code(messages))
    assert fake.rejected == []
    outputs = [i for i in fake.last.json["input"] if i["type"] == "function_call_output"]
    assert [o["output"] for o in outputs] == ["a.txt", "[tool error] denied"]


# --- routing --------------------------------------------------------------------------------


def test_zero_config_routing_by_model(client: anthropic.Anthropic, fake: FakeResponses) -> None:
    hello = {"max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    message = client.messages.create(model="openai:gpt-5.6-terra", **hello)
    assert message.content[0].text == "Hello from fake Responses"  # type: ignore[union-attr]
    assert message.model == "openai:gpt-5.6-terra"
    assert fake.last.path == "/v1/responses"
    assert fake.last.json["model"] == "gpt-5.6-terra"

    fake.enqueue_chat(JsonReply(completion("chat here")))
    message = client.messages.create(model="gpt-4o", **hello)
    assert message.content[0].text == "chat here"  # type: ignore[union-attr]
    assert fake.last.path == "/v1/chat/completions"


def test_api_format_responses_for_any_provider(fake: FakeResponses) -> None:
    env = {
        "MYCORP_API_KEY": KEY,
        "MYCORP_BASE_URL": fake.base_url,
        "MYCORP_API_FORMAT": "responses",
        "MAX_RETRIES": "0",
    }
    with running_vdm(env) as server, anthropic.Anthropic(base_url=server.url, api_key="k") as c:
        request = dict(claude_code([{"role": "user", "content": "hi"}]), model="mycorp:house-model")
        message = c.messages.create(timeout=30, **request)
    assert message.content[0].text == "Hello from fake Responses"  # type: ignore[union-attr]
    sent = fake.last
    assert sent.path == "/v1/responses"
    assert sent.json["model"] == "house-model"
    # Not OpenAI: its cache key and safety identifier are not sent, a `user` is.
    assert "prompt_cache_key" not in sent.json and "user" in sent.json


# --- usage, images, errors ------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "not-streamed"])
def test_usage_excludes_cached_tokens(
    client: anthropic.Anthropic, fake: FakeResponses, stream: bool
) -> None:
    usage = responses_usage(1200, 40, cached_tokens=1000, reasoning_tokens=25)
    fake.enqueue(responses_reply("Hi", usage=usage))
    message = turn(
        client, stream, model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.usage.input_tokens == 200
    assert message.usage.cache_read_input_tokens == 1000
    assert message.usage.output_tokens == 40


def test_images_reach_the_model_as_input_images(
    client: anthropic.Anthropic, fake: FakeResponses
) -> None:
    data = base64.b64encode(b"\x89PNG fake").decode()
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}},
        {"type": "text", "text": "What is this?"},
    ]
    client.messages.create(
        model=MODEL, max_tokens=50, messages=[{"role": "user", "content": content}]
    )
    assert fake.rejected == []
    assert fake.last.json["input"][0]["content"] == [
        {"type": "input_image", "image_url": f"data:image/png;base64,{data}", "detail": "auto"},
        {"type": "input_text", "text": "What is this?"},
    ]


def test_an_upstream_400_keeps_its_message(
    client: anthropic.Anthropic, fake: FakeResponses
) -> None:
    message = "Invalid 'input[2].content[0].image_url'. Expected a valid URL."
    fake.enqueue(responses_error(400, message, param="input[2].content[0].image_url"))
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(
            model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert message in caught.value.body["error"]["message"]  # type: ignore[index]
    assert KEY not in str(caught.value.body)


def test_a_failed_response_mid_stream_is_an_error_event(
    vdm: RunningVdm, fake: FakeResponses
) -> None:
    error = {"code": "server_error", "message": "The server had an error processing your request."}
    fake.enqueue(
        ResponsesSseReply(response_events([message_item("Part")], status="failed", error=error))
    )
    body = {
        "model": MODEL,
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    with httpx.stream("POST", f"{vdm.url}/v1/messages", json=body, timeout=10) as response:
        raw = response.read().decode()
    assert response.status_code == 200
    assert raw.startswith("event: message_start")
    assert "event: error" in raw and "message_stop" not in raw
    error_event = json.loads(raw.split("event: error\ndata: ")[1].split("\n")[0])
    assert error_event["error"] == {
        "type": "api_error",
        "message": "upstream error: The server had an error processing your request.",
    }


def test_an_upstream_cut_mid_stream_is_an_error_event(
    client: anthropic.Anthropic, fake: FakeResponses
) -> None:
    events = response_events([message_item("This never finishes")], pieces=5)
    fake.enqueue(ResponsesSseReply(events, cut_after=5))
    with pytest.raises(anthropic.APIStatusError) as caught:  # noqa: PT012
        with client.messages.stream(
            model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            for _ in stream:
                pass
    # vdm saw the body end early (or the connection break): an error, never a normal end.
    assert "closed the connection" in str(caught.value) or "ended before" in str(caught.value)


def test_a_chat_shaped_stream_from_a_wrong_endpoint_is_not_a_silent_success(
    client: anthropic.Anthropic, fake: FakeResponses
) -> None:
    # A provider configured as `responses` that answers in Chat's framing: the stream never
    # reaches a Responses terminal event, so the client gets an error, not an empty answer.
    fake.enqueue(SseReply([{"id": "x", "object": "chat.completion.chunk", "choices": []}]))
    with pytest.raises(anthropic.APIStatusError):  # noqa: PT012
        with client.messages.stream(
            model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            for _ in stream:
                pass


# --- addressing -----------------------------------------------------------------------------


def test_paths_for_openai_azure_v1_and_azure_deployments() -> None:
    openai = ProviderConfig("openai", ("k",), "https://api.openai.com/v1")
    v1 = ProviderConfig("azure", ("k",), "https://res.openai.azure.com/openai/v1", api_version="x")
    deployments = ProviderConfig(
        "azure", ("k",), "https://res.openai.azure.com", "responses", api_version="2025-04-01"
    )
    for provider, path, models in (
        (openai, "/responses", "/models"),
        (v1, "/responses", "/models"),
        (
            deployments,
            "/openai/responses?api-version=2025-04-01",
            "/openai/models?api-version=2025-04-01",
        ),
    ):
        backend, target = select(provider, MODEL, MODEL)
        assert backend.name == "responses"
        assert backend.path(provider, target.model, True) == path
        assert backend.models_path(provider) == models
    # Azure deployments on the default format keep Chat Completions.
    chat = ProviderConfig("azure", ("k",), "https://res.openai.azure.com", api_version="2024-10-21")
    assert select(chat, MODEL, MODEL)[0].name == "openai"


# --- recovering from rejections that would break every later turn -----------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "not-streamed"])
def test_an_unverified_organization_still_gets_answers(
    client: anthropic.Anthropic,
    fake: FakeResponses,
    stream: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """OpenAI refuses `reasoning.summary` to an organization that is not verified: vdm asks
    again without it, and remembers, so the next request goes without it straight away."""
    caplog.set_level(logging.INFO, logger="vdm.requests")
    fake.verified_org = False
    fake.enqueue(
        responses_reply("I'll run it.", reasoning=["Plan."], tool_calls=[("Bash", '{"a":1}')]),
        responses_reply("Done.", reasoning=["Checked."]),
    )
    user = {"role": "user", "content": "run it"}
    first = turn(client, stream, **claude_code([user]))
    assert [b.type for b in first.content] == ["thinking", "text", "tool_use"]
    assert first.content[0].thinking == ""  # hidden, but carried: the signature
    assert first.stop_reason == "tool_use"
    ((refused, rejection),) = fake.rejected
    assert rejection.param == "reasoning.summary" and rejection.code == "unsupported_value"
    assert refused.json["reasoning"]["summary"] == "auto"
    calls = responses_calls(fake)
    assert len(calls) == 2 and "summary" not in calls[1]["reasoning"]
    assert calls[1]["reasoning"]["effort"] == "high"

    result = {"type": "tool_result", "tool_use_id": first.content[2].id, "content": "ok"}
    history = [user, {"role": "assistant", "content": echo(first.content)}]
    second = turn(client, stream, **claude_code([*history, {"role": "user", "content": [result]}]))
    assert second.content[-1].text == "Done."
    calls = responses_calls(fake)
    assert len(calls) == 3, "the second request goes without the summary at once"
    assert len(fake.rejected) == 1
    assert "summary" not in calls[2]["reasoning"]
    assert calls[2]["input"][1]["type"] == "reasoning"  # the reasoning still travels back
    lines = [r.getMessage() for r in caplog.records if r.name == "vdm.requests"]
    assert any("retrying with no-summary" in line for line in lines)
    assert any(line.endswith("degraded=no-summary") for line in lines)


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "not-streamed"])
def test_reasoning_from_another_organization_does_not_break_the_session(
    client: anthropic.Anthropic, fake: FakeResponses, stream: bool
) -> None:
    """History whose reasoning item was encrypted for another organization (a key pool that
    spans organizations, a session moved between providers): OpenAI answers
    `invalid_encrypted_content`; vdm sends the turn again without replaying reasoning."""
    foreign = pack_reasoning("rs_0123456789abcdef", "gAAAAABforeign-organization-blob==")
    messages = [
        {"role": "user", "content": "run it"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Plan.", "signature": foreign},
                {"type": "tool_use", "id": "call_abc", "name": "Bash", "input": {"a": 1}},
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "call_abc", "content": "ok"}],
        },
    ]
    for _ in range(2):  # every later turn of the session too
        fake.enqueue(responses_reply("Done.", reasoning=["Checked."]))
        answer = turn(client, stream, **claude_code(messages))
        assert answer.content[-1].text == "Done."
    assert [r.code for _, r in fake.rejected] == ["invalid_encrypted_content"] * 2
    assert "could not be verified" in fake.rejected[0][1].message
    calls = responses_calls(fake)
    assert len(calls) == 4
    assert [i["type"] for i in calls[1]["input"]] == [
        "message",
        "function_call",
        "function_call_output",
    ]
    assert calls[1]["reasoning"]["summary"] == "auto"  # nothing else left out

    # Replay is off for that request only: reasoning this organization issued goes back.
    fake.enqueue(responses_reply("Again.", reasoning=["More."]))
    own = [messages[0], {"role": "assistant", "content": echo(answer.content)}]
    turn(client, stream, **claude_code([*own, {"role": "user", "content": "and again"}]))
    assert len(fake.rejected) == 2
    assert responses_calls(fake)[-1]["input"][1]["type"] == "reasoning"


@pytest.mark.parametrize("shape", ["whole", "completed-only"])
def test_a_stream_of_whole_items_is_not_an_empty_answer(
    client: anthropic.Anthropic, fake: FakeResponses, shape: str
) -> None:
    """Responses-compatible servers that send items whole (`output_item.done` only) or only
    the terminal event: text, reasoning and tool calls all come out, stop_reason is right."""
    fake.enqueue(
        responses_reply(
            "I'll run it.",
            reasoning=["Plan."],
            tool_calls=[("Bash", '{"command": "ls"}')],
            shape=shape,
        )
    )
    answer = turn(client, True, **claude_code([{"role": "user", "content": "run it"}]))
    assert [b.type for b in answer.content] == ["thinking", "text", "tool_use"]
    assert answer.content[0].thinking == "Plan."
    assert unpack_reasoning(answer.content[0].signature) is not None
    assert answer.content[1].text == "I'll run it."
    assert answer.content[2].name == "Bash" and answer.content[2].input == {"command": "ls"}
    assert answer.stop_reason == "tool_use"
