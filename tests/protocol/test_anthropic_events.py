"""Anthropic Messages stream -> canonical events (`AnthropicEventDecoder`), for clients of
other dialects reaching an Anthropic-format provider.

Streams are built with the Anthropic fake's builders (the events Anthropic sends, `ping`
included), decoded, encoded back as the server's Anthropic encoder does (`Translation`), and
checked against the exact SSE grammar (gap-free indexes, one block at a time) before anything
else is asserted.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from tests.fakes.anthropic_upstream import (
    anthropic_event,
    anthropic_message,
    anthropic_stream_events,
)
from tests.protocol.grammar import Result, Translation, check_grammar
from vdm.protocol.anthropic_events import AnthropicEventDecoder
from vdm.protocol.errors import VdmError
from vdm.protocol.events import (
    BlockStop,
    Event,
    InputJsonDelta,
    MessageEnd,
    RedactedThinkingStart,
    SignatureDelta,
    TextDelta,
    TextStart,
    ThinkingDelta,
    ThinkingStart,
    ToolUseStart,
)

MODEL = "claude-sonnet-4-5"


def run(reads: list[bytes], *, bytewise: bool = False) -> Result:
    """Decode `reads` (or their bytes one at a time) and check the re-encoded stream."""
    stream = Translation(AnthropicEventDecoder(), MODEL)
    out = [stream.start()]
    if bytewise:
        raw = b"".join(reads)
        reads = [raw[i : i + 1] for i in range(len(raw))]
    for read in reads:
        out.extend(stream.feed(read))
    out.extend(stream.finish())
    return check_grammar(b"".join(out))


def events_of(reads: list[bytes]) -> list[Event]:
    decoder = AnthropicEventDecoder()
    events = [e for read in reads for e in decoder.feed(read)]
    return events + decoder.finish()


def start(index: int, block: dict[str, Any]) -> bytes:
    return anthropic_event({"type": "content_block_start", "index": index, "content_block": block})


def delta(index: int, **body: Any) -> bytes:
    return anthropic_event({"type": "content_block_delta", "index": index, "delta": body})


def stop(index: int) -> bytes:
    return anthropic_event({"type": "content_block_stop", "index": index})


def head(input_tokens: int = 20, **usage: Any) -> bytes:
    message = anthropic_message("", model=MODEL)
    message.update(content=[], stop_reason=None)
    message["usage"] = {"input_tokens": input_tokens, "output_tokens": 1, **usage}
    return anthropic_event({"type": "message_start", "message": message})


def tail(stop_reason: str = "end_turn", output_tokens: int = 9, **extra: Any) -> list[bytes]:
    return [
        anthropic_event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens, **extra},
            }
        ),
        anthropic_event({"type": "message_stop"}),
    ]


def text_block(index: int, text: str) -> list[bytes]:
    return [
        start(index, {"type": "text", "text": ""}),
        delta(index, type="text_delta", text=text),
        stop(index),
    ]


# --- text, thinking, tools ------------------------------------------------------------------


def test_text_stream_keeps_text_stop_reason_and_usage() -> None:
    result = run(anthropic_stream_events("Hello there, world", pieces=3, output_tokens=5))

    assert [b.type for b in result.blocks] == ["text"]
    assert result.text == "Hello there, world"
    assert len(result.blocks[0].deltas) == 3
    assert result.stop_reason == "end_turn"
    assert result.usage["input_tokens"] == 12
    assert result.usage["output_tokens"] == 5


def test_thinking_keeps_its_signature_before_the_block_stops() -> None:
    reads = anthropic_stream_events("The answer is 4.", thinking="2 + 2 is 4", pieces=2)
    signature = anthropic_message("x", thinking="2 + 2 is 4")["content"][0]["signature"]

    result = run(reads)

    assert [b.type for b in result.blocks] == ["thinking", "text"]
    thinking = result.blocks[0]
    assert thinking.thinking == "2 + 2 is 4"
    assert thinking.deltas[-1] == {"type": "signature_delta", "signature": signature}
    assert result.text == "The answer is 4."
    events = events_of(reads)
    assert events[:2] == [ThinkingStart(0), ThinkingDelta(0, "2 + 2")]
    assert SignatureDelta(0, signature) in events


def test_thinking_with_a_signature_alone_is_kept() -> None:
    # `display: "omitted"`: no thinking text, only the signature a replay needs.
    reads = [
        head(),
        start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        delta(0, type="signature_delta", signature="EqQBsig"),
        stop(0),
        *text_block(1, "Done."),
        *tail(),
    ]
    result = run(reads)

    assert [b.type for b in result.blocks] == ["thinking", "text"]
    assert result.blocks[0].deltas == [{"type": "signature_delta", "signature": "EqQBsig"}]
    assert events_of(reads)[:3] == [ThinkingStart(0), SignatureDelta(0, "EqQBsig"), BlockStop(0)]


def test_parallel_tool_calls_with_split_input() -> None:
    first = '{"path": "a.py", "limit": 10}'
    second = '{"command": "ls -la"}'
    reads = [
        head(),
        *text_block(0, "Reading both."),
        start(1, {"type": "tool_use", "id": "toolu_01Read", "name": "Read", "input": {}}),
        delta(1, type="input_json_delta", partial_json=""),
        delta(1, type="input_json_delta", partial_json=first[:9]),
        delta(1, type="input_json_delta", partial_json=first[9:]),
        stop(1),
        start(2, {"type": "tool_use", "id": "toolu_01Bash", "name": "Bash", "input": {}}),
        delta(2, type="input_json_delta", partial_json=second[:5]),
        delta(2, type="input_json_delta", partial_json=second[5:]),
        stop(2),
        *tail("tool_use"),
    ]
    result = run(reads)

    tools = result.of_type("tool_use")
    assert [(t.start["id"], t.start["name"], t.input) for t in tools] == [
        ("toolu_01Read", "Read", {"path": "a.py", "limit": 10}),
        ("toolu_01Bash", "Bash", {"command": "ls -la"}),
    ]
    assert result.stop_reason == "tool_use"
    events = events_of(reads)
    assert ToolUseStart(1, "toolu_01Read", "Read") in events
    # Anthropic's empty first fragment carries nothing: not passed on.
    assert InputJsonDelta(1, "") not in events
    assert [e for e in events if isinstance(e, InputJsonDelta) and e.index == 2] == [
        InputJsonDelta(2, second[:5]),
        InputJsonDelta(2, second[5:]),
    ]


def test_tool_input_given_whole_at_start_is_kept() -> None:
    reads = [
        head(),
        start(0, {"type": "tool_use", "id": "toolu_1", "name": "Glob", "input": {"p": "*.py"}}),
        stop(0),
        *tail("tool_use"),
    ]
    assert run(reads).blocks[0].input == {"p": "*.py"}


# --- what canonical events cannot carry ------------------------------------------------------


def test_server_tool_blocks_are_dropped_and_indexes_renumbered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reads = [
        head(),
        *text_block(0, "Let me search."),
        start(
            1, {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}
        ),
        delta(1, type="input_json_delta", partial_json='{"query": "vdm"}'),
        stop(1),
        start(
            2,
            {
                "type": "web_search_tool_result",
                "tool_use_id": "srvtoolu_1",
                "content": [{"type": "web_search_result", "url": "https://x", "title": "X"}],
            },
        ),
        stop(2),
        *text_block(3, "Found it."),
        start(4, {"type": "tool_use", "id": "toolu_9", "name": "Read", "input": {}}),
        delta(4, type="input_json_delta", partial_json='{"path": "x"}'),
        stop(4),
        *tail("tool_use", server_tool_use={"web_search_requests": 1}),
    ]
    with caplog.at_level(logging.DEBUG, "vdm.protocol.anthropic_events"):
        result = run(reads)

    assert [b.type for b in result.blocks] == ["text", "text", "tool_use"]
    assert [b.index for b in result.blocks] == [0, 1, 2]
    assert [b.text for b in result.blocks[:2]] == ["Let me search.", "Found it."]
    assert result.blocks[2].input == {"path": "x"}
    assert "server_tool_use" in caplog.text and "web_search_tool_result" in caplog.text


def test_unknown_block_and_delta_types_are_dropped_not_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reads = [
        head(),
        start(0, {"type": "hologram", "frames": 3}),
        delta(0, type="hologram_delta", frame="..."),
        stop(0),
        start(1, {"type": "text", "text": "", "citations": []}),
        delta(1, type="citations_delta", citation={"type": "char_location", "cited_text": "c"}),
        delta(1, type="text_delta", text="Cited."),
        stop(1),
        anthropic_event({"type": "brand_new_event", "x": 1}),
        *tail(),
    ]
    with caplog.at_level(logging.DEBUG, "vdm.protocol.anthropic_events"):
        result = run(reads)

    assert [(b.index, b.type, b.text) for b in result.blocks] == [(0, "text", "Cited.")]
    assert "hologram" in caplog.text and "citations_delta" in caplog.text
    assert "brand_new_event" in caplog.text


def test_redacted_thinking_is_kept_whole_for_the_client_to_send_back() -> None:
    # Anthropic wants it back unchanged in a tool loop with thinking on: never dropped.
    reads = [
        head(),
        start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        delta(0, type="thinking_delta", thinking="Let me see."),
        delta(0, type="signature_delta", signature="sig-1"),
        stop(0),
        start(1, {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"}),
        stop(1),
        *text_block(2, "Hi."),
        *tail(),
    ]
    events = events_of(reads)

    assert events[4:6] == [RedactedThinkingStart(1, "EmwKAhgBEgy3va3pzix"), BlockStop(1)]
    assert not any(isinstance(e, ThinkingStart | SignatureDelta) and e.index == 1 for e in events)
    assert events[6:9] == [TextStart(2), TextDelta(2, "Hi."), BlockStop(2)]
    result = run(reads)
    assert [(b.index, b.type) for b in result.blocks] == [
        (0, "thinking"),
        (1, "redacted_thinking"),
        (2, "text"),
    ]
    assert result.blocks[1].start == {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"}
    assert result.blocks[1].deltas == []
    assert run(reads, bytewise=True).blocks == result.blocks


def test_redacted_thinking_without_data_or_with_deltas_stays_well_formed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Nothing to send back without data: dropped without a gap; a delta in a redacted block
    # (none exists) is dropped, never taken for thinking text.
    reads = [
        head(),
        start(0, {"type": "redacted_thinking", "data": ""}),
        stop(0),
        start(1, {"type": "redacted_thinking", "data": "opaque"}),
        delta(1, type="thinking_delta", thinking="leak?"),
        stop(1),
        *text_block(2, "Hi."),
        *tail(),
    ]
    with caplog.at_level(logging.DEBUG, logger="vdm.protocol.anthropic_events"):
        events = events_of(reads)
    assert events[:5] == [
        RedactedThinkingStart(0, "opaque"),
        BlockStop(0),
        TextStart(1),
        TextDelta(1, "Hi."),
        BlockStop(1),
    ]
    assert "without data" in caplog.text and "thinking_delta" in caplog.text
    assert [b.type for b in run(reads).blocks] == ["redacted_thinking", "text"]


def test_empty_text_block_is_dropped_without_a_gap() -> None:
    reads = [
        head(),
        start(0, {"type": "text", "text": ""}),
        stop(0),
        start(1, {"type": "tool_use", "id": "toolu_1", "name": "Ls", "input": {}}),
        delta(1, type="input_json_delta", partial_json="{}"),
        stop(1),
        *tail("tool_use"),
    ]
    result = run(reads)
    assert [(b.index, b.type) for b in result.blocks] == [(0, "tool_use")]


# --- end of the message, usage ----------------------------------------------------------------


def test_usage_with_cache_fields_merges_cumulative_message_delta() -> None:
    reads = [
        head(
            input_tokens=7,
            cache_read_input_tokens=5000,
            cache_creation_input_tokens=300,
            cache_creation={"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200},
        ),
        *text_block(0, "ok"),
        # Cumulative: a server tool's search raised the input count, output is the total.
        *tail(output_tokens=42, input_tokens=9, cache_read_input_tokens=5000),
    ]
    decoder = AnthropicEventDecoder()
    events = [e for read in reads for e in decoder.feed(read)]

    end = events[-1]
    assert isinstance(end, MessageEnd)
    expected = {
        "input_tokens": 9,
        "output_tokens": 42,
        "cache_read_input_tokens": 5000,
        "cache_creation_input_tokens": 300,
        "ephemeral_5m_input_tokens": 100,
        "ephemeral_1h_input_tokens": 200,
    }
    assert dict(end.usage) == expected
    assert decoder.usage == expected
    assert decoder.reasoning_tokens == 0


def test_stop_sequence_and_stop_reason_reach_message_end() -> None:
    reads = [
        head(),
        *text_block(0, "1, 2, 3"),
        anthropic_event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "stop_sequence", "stop_sequence": "4"},
                "usage": {"output_tokens": 6},
            }
        ),
        anthropic_event({"type": "message_stop"}),
    ]
    assert events_of(reads)[-1] == MessageEnd(
        "stop_sequence", "4", {"input_tokens": 20, "output_tokens": 6}
    )


def test_done_at_message_stop_and_the_rest_is_ignored() -> None:
    decoder = AnthropicEventDecoder()
    reads = anthropic_stream_events("Hi", ping=False)
    events = [e for read in reads for e in decoder.feed(read)]

    assert decoder.done
    assert isinstance(events[-1], MessageEnd)
    assert decoder.feed(b"event: error\ndata: {not json\n\n") == []
    assert decoder.finish() == []


def test_reads_split_anywhere_give_the_same_events() -> None:
    reads = anthropic_stream_events(
        "Ünïcode text ✓ split", thinking="thoughts…", tool_use=("Edit", '{"a": "é"}'), pieces=4
    )
    raw = b"".join(reads)
    whole = events_of([raw])

    assert events_of([raw[i : i + 1] for i in range(len(raw))]) == whole
    assert events_of([raw[:7], raw[7:300], raw[300:]]) == whole
    assert events_of(reads) == whole
    result = run(reads, bytewise=True)
    assert result.text == "Ünïcode text ✓ split"
    assert result.of_type("tool_use")[0].input == {"a": "é"}


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error_type", "status"),
    [
        ("overloaded_error", 529),
        ("rate_limit_error", 429),
        ("api_error", 500),
        ("invalid_request_error", 400),
        ("timeout_error", 504),
        ("a_type_from_the_future", 500),
    ],
)
def test_error_event_raises_with_the_status_of_its_type(error_type: str, status: int) -> None:
    decoder = AnthropicEventDecoder()
    decoder.feed(head())
    decoder.feed(b"".join(text_block(0, "partial")))
    error = {"type": "error", "error": {"type": error_type, "message": "Overloaded right now"}}

    with pytest.raises(VdmError) as caught:
        decoder.feed(anthropic_event(error))

    assert caught.value.status == status
    assert caught.value.message == "Overloaded right now"
    assert caught.value.error_type == error_type


def test_prompt_too_long_error_event_is_flagged_as_overflow() -> None:
    error = {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "prompt is too long: 1 > 0"},
    }
    with pytest.raises(VdmError) as caught:
        AnthropicEventDecoder().feed(anthropic_event(error))
    assert caught.value.overflow


def test_stream_cut_before_message_stop_is_a_502() -> None:
    reads = anthropic_stream_events("Hello there", pieces=2)
    decoder = AnthropicEventDecoder()
    for read in reads[:-1]:  # message_delta came, message_stop did not
        decoder.feed(read)

    with pytest.raises(VdmError) as caught:
        decoder.finish()
    assert caught.value.status == 502
    assert "ended before the response was complete" in caught.value.message


def test_stream_cut_inside_an_event_is_a_502() -> None:
    raw = b"".join(anthropic_stream_events("Hello there"))
    decoder = AnthropicEventDecoder()
    decoder.feed(raw[: raw.index(b"message_stop") + 5])

    with pytest.raises(VdmError) as caught:
        decoder.finish()
    assert caught.value.status == 502


def test_last_event_without_a_blank_line_still_ends_the_message() -> None:
    raw = b"".join(anthropic_stream_events("Hi")).rstrip(b"\n")
    decoder = AnthropicEventDecoder()
    events = decoder.feed(raw)

    assert not decoder.done
    events += decoder.finish()
    assert decoder.done
    assert isinstance(events[-1], MessageEnd)


def test_data_that_is_not_json_is_a_502() -> None:
    with pytest.raises(VdmError) as caught:
        AnthropicEventDecoder().feed(b"event: message_start\ndata: <html>\n\n")
    assert caught.value.status == 502


def test_a_line_over_the_cap_is_a_502() -> None:
    decoder = AnthropicEventDecoder(max_line_bytes=1024)
    with pytest.raises(VdmError) as caught:
        decoder.feed(b"data: " + json.dumps({"x": "y" * 2000}).encode())
    assert caught.value.status == 502


def test_an_error_read_with_text_before_it_lets_the_text_out_first() -> None:
    """Text events and an `error` event in one read: the text first, then the error."""

    def sse(kind: str, data: dict[str, Any]) -> bytes:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()

    read = b"".join(
        [
            sse(
                "message_start",
                {
                    "message": {
                        "id": "msg_1",
                        "type": "message",
                        "role": "assistant",
                        "content": [],
                        "model": "m",
                        "usage": {"input_tokens": 1, "output_tokens": 0},
                    }
                },
            ),
            sse("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
            sse(
                "content_block_delta",
                {"index": 0, "delta": {"type": "text_delta", "text": "partial"}},
            ),
            sse("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ]
    )
    decoder = AnthropicEventDecoder()
    events = decoder.feed(read)
    assert "partial" in [getattr(e, "text", None) for e in events]
    with pytest.raises(VdmError) as caught:
        decoder.finish()
    assert caught.value.status == 529
