"""The Anthropic backend as a translated backend: a canonical request from a client of another
dialect encoded for an Anthropic-format provider, and its answers decoded.

The canonical form is Anthropic's, so the encoder must lose nothing the request holds
(unknown fields, `cache_control`, server tools) and change only what the pass-through changes
in a raw body: the model's name and the thinking blocks Anthropic would refuse.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.fakes.anthropic_upstream import (
    AnthropicSseReply,
    FakeAnthropic,
    JsonReply,
    anthropic_message,
    anthropic_stream_events,
)
from tests.protocol.targets import target
from vdm.protocol.anthropic import ANTHROPIC_VERSION, MessagesRequest
from vdm.protocol.anthropic_events import AnthropicEventDecoder
from vdm.protocol.codec import Target
from vdm.protocol.errors import VdmError
from vdm.protocol.events import Event, MessageEnd, TextDelta, ToolUseStart
from vdm.protocol.signatures import CHAT_REASONING, pack_reasoning
from vdm.upstream.backends import backend
from vdm.upstream.backends.anthropic import BACKEND, MESSAGES_PATH

UPSTREAM = "claude-sonnet-4-5-20250929"
REQUESTED = "sonnet"


def tgt(max_tokens_limit: int | None = None) -> Target:
    return target(UPSTREAM, "anthropic", requested=REQUESTED, max_tokens_limit=max_tokens_limit)


def request(**fields: Any) -> MessagesRequest:
    body: dict[str, Any] = {
        "model": REQUESTED,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Hi"}],
        **fields,
    }
    return MessagesRequest.model_validate(body)


def encoded(req: MessagesRequest, target_: Target | None = None) -> dict[str, Any]:
    body = BACKEND.encode(req, target_ or tgt())
    data = json.loads(body)
    assert isinstance(data, dict)
    return data


def test_the_registry_serves_this_backend_and_it_stays_a_passthrough_one() -> None:
    assert backend("anthropic") is BACKEND
    # `translated` means an Anthropic client's body is forwarded as is: that does not change.
    assert BACKEND.native_anthropic is True
    assert BACKEND.recover(VdmError(400, "bad"), tgt()) is None


# --- encode -----------------------------------------------------------------------------------


def test_encode_renames_the_model_and_keeps_what_was_set_only() -> None:
    data = encoded(request())
    assert data == {
        "model": UPSTREAM,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Hi"}],
    }


def test_encode_keeps_unknown_fields_cache_control_and_server_tools() -> None:
    system = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    tools = [
        {
            "name": "Read",
            "description": "Read a file",
            "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
            "cache_control": {"type": "ephemeral", "ttl": "1h"},
        },
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
    ]
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}},
                {"type": "future_block", "payload": {"a": 1}},
            ],
        }
    ]
    data = encoded(
        request(
            system=system,
            tools=tools,
            messages=messages,
            tool_choice={"type": "auto", "disable_parallel_tool_use": True},
            metadata={"user_id": "u1"},
            context_management={"edits": [{"type": "clear_tool_uses_20250919"}]},
            service_tier="auto",
            temperature=0.2,
        )
    )

    assert data["system"] == system
    assert data["tools"] == tools
    assert data["messages"] == messages
    assert data["context_management"] == {"edits": [{"type": "clear_tool_uses_20250919"}]}
    assert data["service_tier"] == "auto"
    assert data["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert data["metadata"] == {"user_id": "u1"}
    assert data["temperature"] == 0.2


def test_encode_asks_for_a_stream_when_the_request_streams() -> None:
    assert encoded(request(stream=True))["stream"] is True
    assert "stream" not in encoded(request())


def test_encode_drops_thinking_blocks_anthropic_cannot_verify() -> None:
    anthropic_signed = {"type": "thinking", "thinking": "mine", "signature": "EqQBCkYIBxgC"}
    redacted = {"type": "redacted_thinking", "data": "EmwKAhgB"}
    tool = {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "a"}}
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "text"}
    messages = [
        {"role": "user", "content": "Read a"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "chat", "signature": CHAT_REASONING},
                {"type": "thinking", "thinking": "rs", "signature": pack_reasoning("rs_1", "e")},
                {"type": "thinking", "thinking": "unsigned", "signature": ""},
                {"type": "thinking", "thinking": "no signature at all"},
                anthropic_signed,
                redacted,
                tool,
            ],
        },
        {"role": "user", "content": [result]},
        # A turn cut while another provider was thinking: nothing of it can be kept.
        {
            "role": "assistant",
            "content": [{"type": "thinking", "thinking": "x", "signature": CHAT_REASONING}],
        },
        {"role": "user", "content": "go on"},
    ]
    data = encoded(request(messages=messages))

    assert data["messages"] == [
        {"role": "user", "content": "Read a"},
        {"role": "assistant", "content": [anthropic_signed, redacted, tool]},
        {"role": "user", "content": [result]},
        {"role": "user", "content": "go on"},
    ]


def test_encode_clamps_max_tokens_to_the_limit() -> None:
    assert encoded(request(max_tokens=64000), tgt(max_tokens_limit=8192))["max_tokens"] == 8192
    assert encoded(request(max_tokens=4096), tgt(max_tokens_limit=8192))["max_tokens"] == 4096
    assert encoded(request(max_tokens=64000))["max_tokens"] == 64000


def test_clamping_lowers_a_thinking_budget_it_would_make_invalid() -> None:
    thinking = {"type": "enabled", "budget_tokens": 32000}
    data = encoded(request(max_tokens=64000, thinking=thinking), tgt(max_tokens_limit=8192))
    # The answer keeps real room (MIN_ANSWER_TOKENS), not one token.
    assert data["thinking"] == {"type": "enabled", "budget_tokens": 8192 - 1024}

    kept = encoded(
        request(max_tokens=64000, thinking={"type": "enabled", "budget_tokens": 2048}),
        tgt(max_tokens_limit=8192),
    )
    assert kept["thinking"] == {"type": "enabled", "budget_tokens": 2048}

    tiny = encoded(request(max_tokens=64000, thinking=thinking), tgt(max_tokens_limit=1000))
    assert "thinking" not in tiny and tiny["max_tokens"] == 1000


# --- decode -----------------------------------------------------------------------------------


def test_decode_echoes_the_requested_model_and_keeps_the_content() -> None:
    answer = anthropic_message(
        "Reading.",
        model=UPSTREAM,
        thinking="plan",
        tool_use=("Read", '{"path": "a"}'),
        cache_read=100,
    )
    answer["content"].append({"type": "web_search_tool_result", "tool_use_id": "s", "content": []})
    answer["usage"]["cache_creation"] = {"ephemeral_1h_input_tokens": 3}
    answer["usage"]["server_tool_use"] = {"web_search_requests": 1}

    message = BACKEND.decode(answer, request(), tgt())

    assert message["model"] == REQUESTED
    assert message["content"] == answer["content"]
    assert message["stop_reason"] == "tool_use"
    # Flat integer usage, as every backend's decoder gives it.
    assert message["usage"] == {
        "input_tokens": 12,
        "output_tokens": answer["usage"]["output_tokens"],
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 0,
        "ephemeral_1h_input_tokens": 3,
    }


@pytest.mark.parametrize(
    "answer",
    [
        {"type": "error", "error": {"type": "api_error", "message": "x"}},
        {"id": "chatcmpl-1", "object": "chat.completion", "choices": []},
        {"type": "message", "content": "not a list"},
        ["not", "an", "object"],
    ],
)
def test_decode_refuses_what_is_not_a_message(answer: Any) -> None:
    with pytest.raises(VdmError) as caught:
        BACKEND.decode(answer, request(), tgt())
    assert caught.value.status == 502


def test_stream_decoder_is_a_fresh_anthropic_event_decoder() -> None:
    first = BACKEND.stream_decoder(request(stream=True), tgt())
    assert isinstance(first, AnthropicEventDecoder)
    assert first is not BACKEND.stream_decoder(request(stream=True), tgt())


# --- over a real connection ---------------------------------------------------------------------


def test_encoded_request_and_decoded_answers_over_loopback() -> None:
    events = anthropic_stream_events(
        "Let me read it.", model=UPSTREAM, tool_use=("Read", '{"path": "a.py"}', "toolu_01A")
    )
    req = request(stream=True, cache_hint={"keep": True})
    with FakeAnthropic() as fake:
        fake.enqueue(AnthropicSseReply(events))
        fake.enqueue(JsonReply(anthropic_message("Plain.", model=UPSTREAM)))
        headers = {
            "anthropic-version": ANTHROPIC_VERSION,
            "content-type": "application/json",
            "x-api-key": "k",
        }
        url = fake.base_url + MESSAGES_PATH
        decoder = BACKEND.stream_decoder(req, tgt())
        got: list[Event] = []
        with httpx.stream("POST", url, content=BACKEND.encode(req, tgt()), headers=headers) as r:
            assert r.status_code == 200
            for read in r.iter_raw():
                got.extend(decoder.feed(read))
        got.extend(decoder.finish())
        sent = fake.last.json

        plain = httpx.post(url, content=BACKEND.encode(request(), tgt()), headers=headers)
        message = BACKEND.decode(plain.json(), request(), tgt())

    assert sent["model"] == UPSTREAM and sent["stream"] is True
    assert sent["cache_hint"] == {"keep": True}
    assert "".join(e.text for e in got if isinstance(e, TextDelta)) == "Let me read it."
    assert ToolUseStart(1, "toolu_01A", "Read") in got
    assert isinstance(got[-1], MessageEnd) and got[-1].stop_reason == "tool_use"
    assert message["model"] == REQUESTED
    assert message["content"] == [{"type": "text", "text": "Plain."}]
