"""Tests of the fake Anthropic upstream, driven by the official anthropic SDK where possible.

The SDK's stream accumulator rejects events out of grammar (a delta before its block start, a
``signature_delta`` on a text block, ...), so a stream it folds into the expected message proves
the fake speaks Anthropic's framing.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import httpx
import pytest

from tests.fakes.anthropic_upstream import (
    AnthropicSseReply,
    FakeAnthropic,
    JsonReply,
    Recorded,
    anthropic_error,
    anthropic_event,
    anthropic_message,
    anthropic_stream_events,
)
from tests.fakes.openai_upstream import Reply, SseReply, split_sse_events

API_KEY = "sk-ant-test-0123"
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
# Requests name claude-haiku-4-5 or made-up models: the SDK warns (an error here, with
# filterwarnings=error) when asked for a model it lists as deprecated, such as claude-sonnet-4-5.
EVENT = re.compile(rb"event: ([a-z_]+)\ndata: (\{.*\})\n\n", re.DOTALL)


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as upstream:
        yield upstream


def _client_kwargs(fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    # The SDK merges ANTHROPIC_CUSTOM_HEADERS into every request; keep the test hermetic.
    monkeypatch.delenv("ANTHROPIC_CUSTOM_HEADERS", raising=False)
    # This SDK sends api_key as a Bearer token; x-api-key is what Claude Code and curl send.
    return {
        "api_key": API_KEY,
        "base_url": fake.base_url,
        "max_retries": 0,
        "timeout": 5,
        "default_headers": {"x-api-key": API_KEY},
    }


@pytest.fixture
def client(fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(**_client_kwargs(fake, monkeypatch)) as c:
        yield c


@pytest.fixture
async def async_client(
    fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(**_client_kwargs(fake, monkeypatch)) as c:
        yield c


def _post_raw(fake: FakeAnthropic, body: dict[str, Any]) -> httpx.Response:
    with httpx.Client(base_url=fake.base_url, timeout=5) as http:
        return http.post("/v1/messages", json=body)


def _event_names(body: bytes) -> list[str]:
    """Event names of an Anthropic SSE body, checking each ``event:`` matches its data type."""
    names = []
    for raw in split_sse_events(body):
        match = EVENT.fullmatch(raw)
        assert match is not None, raw
        name = match.group(1).decode()
        assert json.loads(match.group(2))["type"] == name
        names.append(name)
    return names


# --------------------------------------------------------------------------------------------
# anthropic SDK interoperability
# --------------------------------------------------------------------------------------------


def test_sdk_non_streaming_default_echoes_model(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    message = client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES)
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [
        ("text", "Hello from fake Anthropic")
    ]
    assert (message.type, message.role, message.model) == (
        "message",
        "assistant",
        "claude-haiku-4-5",
    )
    assert message.stop_reason == "end_turn"
    usage = message.usage
    assert (usage.input_tokens, usage.output_tokens) == (12, 6)
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (0, 0)
    assert (fake.last.method, fake.last.path, fake.last.query) == ("POST", "/v1/messages", "")


def test_sdk_stream_default(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="claude-opus-4-1", max_tokens=64, messages=MESSAGES) as s:
        texts = list(s.text_stream)
        final = s.get_final_message()
    assert len(texts) > 1  # really streamed in pieces
    assert "".join(texts) == "Hello from fake Anthropic"
    assert final.content[0].type == "text"
    assert final.content[0].text == "Hello from fake Anthropic"
    assert (final.model, final.stop_reason) == ("claude-opus-4-1", "end_turn")
    assert (final.usage.input_tokens, final.usage.output_tokens) == (12, 6)
    assert fake.last.json["stream"] is True


def test_default_stream_wire_grammar(fake: FakeAnthropic) -> None:
    resp = _post_raw(
        fake, {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": MESSAGES, "stream": True}
    )
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/event-stream"
    assert b"[DONE]" not in resp.content
    names = _event_names(resp.content)
    assert names[:4] == ["message_start", "ping", "content_block_start", "content_block_delta"]
    assert names[-4:] == [
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = json.loads(split_sse_events(resp.content)[0].split(b"data: ", 1)[1])
    assert start["message"]["usage"] == {
        "input_tokens": 12,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 1,
    }


def test_sdk_stream_with_thinking_and_tool_use(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    fake.enqueue(
        AnthropicSseReply(
            anthropic_stream_events(
                "Let me check.",
                thinking="The user wants the weather in Paris.",
                tool_use=("get_weather", '{"city":"Paris","unit":"celsius"}', "toolu_01fixed"),
                cache_read=100,
                pieces=4,
            )
        )
    )
    with client.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES) as s:
        final = s.get_final_message()
    thinking, text, tool = final.content
    assert thinking.type == "thinking"
    assert thinking.thinking == "The user wants the weather in Paris."
    assert thinking.signature.startswith("EqQB")
    assert text.type == "text"
    assert text.text == "Let me check."
    assert tool.type == "tool_use"
    assert (tool.id, tool.name, tool.input) == (
        "toolu_01fixed",
        "get_weather",
        {"city": "Paris", "unit": "celsius"},
    )
    assert final.stop_reason == "tool_use"
    assert final.usage.cache_read_input_tokens == 100


def test_stream_events_arrive_byte_for_byte(fake: FakeAnthropic) -> None:
    events = anthropic_stream_events(
        "Ça marche — 👍", thinking="hmm", tool_use=("f", '{"a":[1,2]}'), pieces=3
    )
    fake.enqueue(AnthropicSseReply(events))
    resp = _post_raw(fake, {"model": "m", "max_tokens": 64, "messages": MESSAGES, "stream": True})
    assert split_sse_events(resp.content) == events
    assert _event_names(resp.content).count("content_block_stop") == 3


def test_stream_and_message_builders_agree(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    args: dict[str, Any] = {
        "model": "claude-haiku-4-5",
        "thinking": "Think first.",
        "tool_use": ("lookup", '{"q":"vdm"}'),
        "input_tokens": 30,
        "cache_read": 5,
    }
    fake.enqueue(
        AnthropicSseReply(anthropic_stream_events("Sure.", **args)),
        JsonReply(anthropic_message("Sure.", **args)),
    )
    with client.messages.stream(model="claude-haiku-4-5", max_tokens=9, messages=MESSAGES) as s:
        streamed = s.get_final_message()
    created = client.messages.create(model="claude-haiku-4-5", max_tokens=9, messages=MESSAGES)
    assert streamed.model_dump(exclude_none=True) == created.model_dump(exclude_none=True)


def test_recorded_headers_and_raw_body(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=7,
        messages=MESSAGES,
        extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"},
    )
    rec = fake.last
    assert isinstance(rec, Recorded)
    assert rec.headers["x-api-key"] == API_KEY
    assert rec.headers["authorization"] == f"Bearer {API_KEY}"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", rec.headers["anthropic-version"])
    assert rec.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert rec.json == {"model": "claude-haiku-4-5", "max_tokens": 7, "messages": MESSAGES}
    assert json.loads(rec.body) == rec.json


def test_count_tokens_is_scriptable_and_recorded(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    assert client.messages.count_tokens(model="m", messages=MESSAGES).input_tokens == 42
    fake.count_tokens_result = 7
    assert client.messages.count_tokens(model="m", messages=MESSAGES).input_tokens == 7
    assert [r.path for r in fake.requests] == ["/v1/messages/count_tokens"] * 2
    assert fake.last.json == {"model": "m", "messages": MESSAGES}
    assert fake.queued == 0  # count_tokens does not consume scripted message replies


def test_models_list_and_retrieve(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    page = client.models.list()
    assert [m.id for m in page.data] == ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"]
    assert page.data[0].display_name == "Claude Sonnet 4.5"
    assert (page.has_more, page.first_id, page.last_id) == (
        False,
        "claude-sonnet-4-5",
        "claude-opus-4-1",
    )
    assert len(list(client.models.list())) == 3  # auto-pagination stops on has_more=false
    assert client.models.retrieve("claude-haiku-4-5").display_name == "Claude Haiku 4.5"
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("gpt-4o")


@pytest.mark.parametrize(
    ("status", "type_", "error_class"),
    [
        (401, "authentication_error", anthropic.AuthenticationError),
        (429, "rate_limit_error", anthropic.RateLimitError),
        (529, "overloaded_error", anthropic.OverloadedError),
    ],
)
def test_scripted_errors_surface_as_sdk_errors(
    fake: FakeAnthropic,
    client: anthropic.Anthropic,
    status: int,
    type_: str,
    error_class: type[anthropic.APIStatusError],
) -> None:
    fake.enqueue(anthropic_error(status, message="scripted", headers={"retry-after": "3"}))
    with pytest.raises(error_class) as info:
        client.messages.create(model="m", max_tokens=5, messages=MESSAGES)
    assert info.value.status_code == status
    assert info.value.body == {"type": "error", "error": {"type": type_, "message": "scripted"}}
    assert info.value.response.headers["retry-after"] == "3"
    assert fake.request_count == 1  # max_retries=0: exactly one attempt


def test_error_event_mid_stream_surfaces_in_sdk(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    events = anthropic_stream_events("Hello there")
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    fake.enqueue(AnthropicSseReply([*events[:3], overloaded]))
    with pytest.raises(anthropic.APIStatusError) as info:
        with client.messages.stream(model="m", max_tokens=5, messages=MESSAGES) as s:
            s.get_final_message()
    assert info.value.body == overloaded


def test_broken_reply_callable_is_a_500_api_error(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    def broken(request: Recorded) -> Reply:
        raise ValueError("boom")

    fake.enqueue(broken)
    with pytest.raises(anthropic.InternalServerError, match="boom") as info:
        client.messages.create(model="m", max_tokens=5, messages=MESSAGES)
    body = info.value.body
    assert isinstance(body, dict)
    assert body["error"]["type"] == "api_error"


@pytest.mark.anyio
async def test_async_sdk_stream(
    fake: FakeAnthropic, async_client: anthropic.AsyncAnthropic
) -> None:
    fake.enqueue(AnthropicSseReply(anthropic_stream_events("async ok", pieces=2), delay=0.005))
    async with async_client.messages.stream(model="m", max_tokens=5, messages=MESSAGES) as s:
        final = await s.get_final_message()
    assert final.content[0].type == "text"
    assert final.content[0].text == "async ok"


# --------------------------------------------------------------------------------------------
# Routing, framing and server details
# --------------------------------------------------------------------------------------------


def test_unknown_routes_are_404_in_anthropic_shape(fake: FakeAnthropic) -> None:
    with httpx.Client(base_url=fake.base_url, timeout=5) as http:
        for method, path in [
            ("POST", "/v1/v1/messages"),  # a client that appends /v1 to a /v1 base URL
            ("POST", "/messages"),
            ("POST", "/v1/chat/completions"),
            ("GET", "/v1/nope"),
        ]:
            resp = http.request(method, path, json={"model": "m"})
            assert resp.status_code == 404, path
            assert resp.json() == {
                "type": "error",
                "error": {"type": "not_found_error", "message": f"Not found: {method} {path}"},
            }
    assert fake.request_count == 4  # recorded like every other request
    assert fake.last.path == "/v1/nope"


def test_base_url_has_no_version_path_and_thread_is_named(fake: FakeAnthropic) -> None:
    assert fake.base_url == f"http://127.0.0.1:{fake.port}" == fake.url
    assert "fake-anthropic" in [t.name for t in threading.enumerate()]
    assert repr(fake).startswith("<FakeAnthropic http://127.0.0.1:")


def test_anthropic_sse_reply_frames_dict_events_and_never_adds_done() -> None:
    reply = AnthropicSseReply([{"type": "ping"}, b"event: message_stop\ndata: {}\n\n"])
    wire = reply.wire()
    assert b'event: ping\ndata: {"type":"ping"}\n\n' in wire
    assert b"event: message_stop\ndata: {}\n\n" in wire
    assert b"[DONE]" not in wire
    assert anthropic_event({"type": "ping"}) == b'event: ping\ndata: {"type":"ping"}\n\n'
    # The OpenAI-style reply still defaults to data-only framing plus [DONE].
    assert b"data: [DONE]" in SseReply([{"type": "ping"}]).wire()


def test_cut_stream_drops_the_connection_before_message_stop(fake: FakeAnthropic) -> None:
    events = anthropic_stream_events("Hello there friend")
    fake.enqueue(AnthropicSseReply(events, cut_after=3))
    received = b""
    with httpx.Client(base_url=fake.base_url, timeout=5) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            body = {"model": "m", "max_tokens": 64, "messages": MESSAGES, "stream": True}
            with http.stream("POST", "/v1/messages", json=body) as resp:
                for chunk in resp.iter_bytes():
                    received += chunk
    assert received == b"".join(events[:3])


def test_anthropic_error_defaults_type_and_message_from_status() -> None:
    reply = anthropic_error(529)
    assert reply.status == 529
    assert json.loads(reply.wire().split(b"\r\n\r\n", 1)[1]) == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    assert anthropic_error(401).body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
    }
