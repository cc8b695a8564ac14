"""Through vdm (real Hypercorn on loopback) to the fake Anthropic upstream (a real HTTP server),
for the `openai` SDK's two dialects:

- a streamed `redacted_thinking` block reaches a Chat client in `thinking_blocks` and a
  Responses client as a reasoning item, and what the client sends back in the next turn of
  its tool loop reaches Anthropic as the same block, unchanged and in its place (Anthropic
  refuses a tool loop with thinking on whose assistant turn lost its thinking);
- keepalives during upstream silences keep a Responses stream's `sequence_number` gap-free
  and `response.created` first, on vdm's own transport and on httpx's (where nothing is
  flushed to the client before the first upstream read returns).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.anthropic_upstream import (
    AnthropicSseReply,
    FakeAnthropic,
    anthropic_event,
    anthropic_stream_events,
)
from tests.fakes.openai_upstream import Recorded
from tests.harness import RunningVdm, running_vdm
from vdm.upstream import client as upstream_client

MODEL = "anthropic:claude-sonnet-4-5"
UPSTREAM_KEY = "sk-ant-upstream-7781"
REDACTED = "EmwKAhgBEgy3va3pzixAAAredacted+/=="
QUESTION = "What is in a.py?"
TOOL_INPUT = {"path": "a.py"}


def _turn_one() -> list[bytes]:
    """A redacted thinking block, then a tool call, as Anthropic streams them: the turn's
    only thinking, so the next request is refused unless it comes back first (the fake's
    rule, as the real API's)."""

    def block(index: int, start: dict[str, Any], *deltas: dict[str, Any]) -> list[bytes]:
        events = [{"type": "content_block_start", "index": index, "content_block": start}]
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
        return [anthropic_event(e) for e in events]

    message = {
        "id": "msg_01RedactedAAAAAAAAAAAAA",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 30, "output_tokens": 1},
    }
    return [
        anthropic_event({"type": "message_start", "message": message}),
        *block(0, {"type": "redacted_thinking", "data": REDACTED}),
        *block(
            1,
            {"type": "tool_use", "id": "toolu_01Read", "name": "read_file", "input": {}},
            {"type": "input_json_delta", "partial_json": json.dumps(TOOL_INPUT)},
        ),
        anthropic_event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": 40},
            }
        ),
        anthropic_event({"type": "message_stop"}),
    ]


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


def _env(fake: FakeAnthropic) -> dict[str, str]:
    return {
        "ANTHROPIC_API_KEY": UPSTREAM_KEY,
        "ANTHROPIC_BASE_URL": fake.base_url,
        "MAX_RETRIES": "0",
    }


@pytest.fixture
def vdm(fake: FakeAnthropic) -> Iterator[RunningVdm]:
    with running_vdm(_env(fake)) as server:
        yield server


@pytest.fixture
def client(vdm: RunningVdm) -> Iterator[openai.OpenAI]:
    http = httpx.Client(trust_env=False, timeout=30)
    with openai.OpenAI(base_url=f"{vdm.url}/v1", api_key="sk-client", http_client=http) as c:
        yield c


def _script(fake: FakeAnthropic) -> None:
    fake.enqueue(AnthropicSseReply(_turn_one()))
    fake.enqueue(AnthropicSseReply(anthropic_stream_events("It prints 1.")))


def _replayed(request: Recorded) -> list[dict[str, Any]]:
    """The assistant turn of the second request, as Anthropic receives it."""
    messages = request.json["messages"]
    assistant = [m for m in messages if m["role"] == "assistant"]
    assert len(assistant) == 1, messages
    content: list[dict[str, Any]] = assistant[0]["content"]
    return content


def _check_replayed(fake: FakeAnthropic) -> None:
    calls = [r for r in fake.requests if r.method == "POST"]
    assert len(calls) == 2
    assert calls[1].json.get("thinking", {}).get("type") == "enabled", calls[1].json
    content = _replayed(calls[1])
    assert [b["type"] for b in content] == ["redacted_thinking", "tool_use"]
    assert content[0] == {"type": "redacted_thinking", "data": REDACTED}
    assert content[1]["id"] == "toolu_01Read" and content[1]["input"] == TOOL_INPUT


CHAT_TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
        },
    }
]


def test_chat_stream_hands_redacted_thinking_over_and_back(
    client: openai.OpenAI, fake: FakeAnthropic
) -> None:
    _script(fake)
    messages: list[Any] = [{"role": "user", "content": QUESTION}]
    params: dict[str, Any] = {"model": MODEL, "tools": CHAT_TOOLS, "reasoning_effort": "high"}
    with client.chat.completions.stream(messages=messages, **params) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    blocks = (message.model_extra or {}).get("thinking_blocks")
    assert blocks == [{"index": 0, "type": "redacted_thinking", "data": REDACTED}]
    assert message.tool_calls and message.tool_calls[0].id == "toolu_01Read"

    # The tool loop as an SDK application runs it: the message back whole, then the result.
    messages.append(message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": "toolu_01Read", "content": "print(1)"})
    with client.chat.completions.stream(messages=messages, **params) as stream:
        assert stream.get_final_completion().choices[0].message.content == "It prints 1."
    _check_replayed(fake)


RESPONSES_TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "read_file",
        "strict": False,
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
    }
]


def test_responses_stream_hands_redacted_thinking_over_and_back(
    client: openai.OpenAI, fake: FakeAnthropic
) -> None:
    _script(fake)
    items: list[Any] = [{"role": "user", "content": [{"type": "input_text", "text": QUESTION}]}]
    params: dict[str, Any] = {
        "model": MODEL,
        "tools": RESPONSES_TOOLS,
        "reasoning": {"effort": "high"},
        "store": False,
    }
    with client.responses.stream(input=items, **params) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert [item.type for item in final.output] == ["reasoning", "function_call"]
    redacted = final.output[0]
    assert redacted.type == "reasoning" and redacted.summary == []
    assert redacted.encrypted_content and redacted.encrypted_content.startswith("vdm-th1:")
    # Announced and finished like any item (Codex builds its history from `done`).
    of_item = [e.type for e in events if getattr(e, "output_index", None) == 0]
    assert of_item == ["response.output_item.added", "response.output_item.done"]

    # Codex's next turn: every output item back, then the tool's output.
    items += [item.model_dump(exclude_none=True) for item in final.output]
    items.append({"type": "function_call_output", "call_id": "toolu_01Read", "output": "1"})
    with client.responses.stream(input=items, **params) as stream:
        assert stream.get_final_response().output_text == "It prints 1."
    _check_replayed(fake)


# --- keepalives and sequence numbers -------------------------------------------------------


@pytest.fixture(params=["vdm-transport", "httpx-transport"])
def paced_vdm(
    request: pytest.FixtureRequest, fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RunningVdm]:
    """vdm with keepalives every 0.1 s, on its own transport (which says when a read would
    wait) or on httpx's, which does not (what `UpstreamClient` falls back to for any other
    transport: nothing is sent to the client before the first upstream read returns)."""
    if request.param == "httpx-transport":

        def httpx_transport(ssl_context: ssl.SSLContext | None = None) -> httpx.AsyncHTTPTransport:
            return httpx.AsyncHTTPTransport(verify=ssl_context or True)

        monkeypatch.setattr(upstream_client, "PooledTransport", httpx_transport)
    with running_vdm(_env(fake), ping_interval=0.1) as server:
        yield server


def _frames(body: bytes) -> list[dict[str, Any]]:
    frames = []
    for frame in body.decode().split("\n\n")[:-1]:
        event_line, data_line = frame.split("\n")
        data = json.loads(data_line.removeprefix("data: "))
        assert event_line == f"event: {data['type']}"
        frames.append(data)
    return frames


def test_keepalives_keep_the_responses_sequence_gap_free(
    paced_vdm: RunningVdm, fake: FakeAnthropic
) -> None:
    events = anthropic_stream_events("A slow answer, in pieces.", pieces=3)
    # Silent after the headers (before any event), and again in the middle of the text.
    fake.enqueue(AnthropicSseReply(events, pauses={0: 0.5, 4: 0.5}))
    body = {"model": MODEL, "input": "hi", "stream": True, "store": False}
    with httpx.Client(trust_env=False, timeout=30) as http:
        response = http.post(f"{paced_vdm.url}/v1/responses", json=body)
    assert response.status_code == 200
    frames = _frames(response.content)
    types = [f["type"] for f in frames]
    assert [f["sequence_number"] for f in frames] == list(range(len(frames))), types
    assert types[0] == "response.created" and types.count("response.created") == 1
    assert types[-1] == "response.completed"
    first_item = types.index("response.output_item.added")
    beats = [i for i, t in enumerate(types) if t == "response.in_progress"]
    assert any(i < first_item for i in beats[1:]), "no keepalive in the first silence"
    assert any(i > first_item for i in beats), "no keepalive in the second silence"
    text = "".join(f["delta"] for f in frames if f["type"] == "response.output_text.delta")
    assert text == "A slow answer, in pieces."
