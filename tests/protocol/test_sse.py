"""The incremental SSE decoder (`vdm.protocol.sse.SseDecoder`) and the event encoder."""

from __future__ import annotations

import json

import pytest

from vdm.protocol.sse import SseDecoder, SseEvent, encode_event

STREAM = (
    ": OPENROUTER PROCESSING\n"
    "\n"
    "event: message_start\n"
    'data: {"type":"message_start"}\n'
    "\n"
    'data: {"choices":[{"delta":{"content":"héllo wörld 😀 世界"}}]}\n'
    "\n"
    "data: first line\n"
    ": a comment between data lines\n"
    "data: second line\n"
    "data:no-space\n"
    "data:  two spaces\n"
    "\n"
    "event: ping\n"
    "data: {}\n"
    "\n"
    "data: [DONE]\n"
    "\n"
)
EXPECTED = [
    SseEvent("message_start", '{"type":"message_start"}'),
    SseEvent("message", '{"choices":[{"delta":{"content":"héllo wörld 😀 世界"}}]}'),
    SseEvent("message", "first line\nsecond line\nno-space\n two spaces"),
    SseEvent("ping", "{}"),
    SseEvent("message", "[DONE]"),
]


def decode(*reads: bytes) -> list[SseEvent]:
    decoder = SseDecoder()
    events: list[SseEvent] = []
    for read in reads:
        events.extend(decoder.feed(read))
    events.extend(decoder.flush())
    return events


def test_whole_stream() -> None:
    assert decode(STREAM.encode()) == EXPECTED


def test_one_byte_at_a_time() -> None:
    data = STREAM.encode()
    assert decode(*(data[i : i + 1] for i in range(len(data)))) == EXPECTED


def test_every_split_point() -> None:
    data = STREAM.encode()
    for cut in range(len(data) + 1):
        assert decode(data[:cut], data[cut:]) == EXPECTED, f"split at byte {cut}"


@pytest.mark.parametrize("newline", ["\r\n", "\r"], ids=["crlf", "cr"])
def test_crlf_and_cr_line_ends(newline: str) -> None:
    data = STREAM.replace("\n", newline).encode()
    assert decode(data) == EXPECTED
    assert decode(*(data[i : i + 1] for i in range(len(data)))) == EXPECTED
    for cut in range(len(data) + 1):
        assert decode(data[:cut], data[cut:]) == EXPECTED, f"split at byte {cut}"


def test_crlf_split_across_two_reads_is_one_line_end() -> None:
    # If the CR ended the line and the LF were then read as a blank line, "a" and "b" would
    # be dispatched as two events.
    assert decode(b"data: a\r", b"\ndata: b\r\n\r\n") == [SseEvent("message", "a\nb")]


def test_event_is_dispatched_as_soon_as_its_blank_line_arrives() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b"data: x\n") == []
    assert decoder.feed(b"\n") == [SseEvent("message", "x")]
    assert decoder.flush() == []


@pytest.mark.parametrize("raw", [b"data: x\r\r", b"data: x\r\n\r"], ids=["cr", "crlf-split"])
def test_event_ending_in_cr_is_dispatched_without_waiting(raw: bytes) -> None:
    decoder = SseDecoder()
    assert decoder.feed(raw) == [SseEvent("message", "x")]
    assert decoder.feed(b"\n") == []  # the LF completing a CRLF is not another blank line
    assert decoder.flush() == []


def test_comments_only_give_no_events() -> None:
    assert decode(b": keep-alive\n\n:another\n\n") == []


def test_event_name_resets_after_each_event() -> None:
    events = decode(b"event: error\ndata: {}\n\ndata: plain\n\n")
    assert events == [SseEvent("error", "{}"), SseEvent("message", "plain")]


def test_blank_lines_without_data_dispatch_nothing() -> None:
    assert decode(b"\n\n\nevent: lonely\n\n") == []


@pytest.mark.parametrize(
    "tail", [b"data: last", b"data: last\n", b"data: last\r", b"data: last\r\n"]
)
def test_flush_dispatches_a_final_event_without_blank_line(tail: bytes) -> None:
    decoder = SseDecoder()
    events = decoder.feed(b"data: one\n\nevent: end\n" + tail)
    assert events == [SseEvent("message", "one")]
    assert decoder.flush() == [SseEvent("end", "last")]


def test_flush_on_empty_decoder() -> None:
    assert SseDecoder().flush() == []


@pytest.mark.parametrize("text", ["é", "€", "😀", "世界"])
def test_utf8_split_inside_a_character(text: str) -> None:
    data = f"data: <{text}>\n\n".encode()
    for cut in range(len(data) + 1):
        assert decode(data[:cut], data[cut:]) == [SseEvent("message", f"<{text}>")], cut


def test_encode_event_round_trips() -> None:
    payload = {"type": "content_block_delta", "delta": {"text": "a\nb ü 😀"}}
    raw = encode_event("content_block_delta", payload)
    assert raw.endswith(b"\n\n")
    (event,) = decode(raw)
    assert event.event == "content_block_delta"
    assert json.loads(event.data) == payload


def _line_by_line(data: bytes) -> list[SseEvent]:
    """The reference: one byte per read never takes the whole-event fast path."""
    return decode(*(data[i : i + 1] for i in range(len(data))))


@pytest.mark.parametrize(
    "raw",
    [
        b'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n',
        b"data: a\n\n\n\ndata: b\n\n\n",  # extra blank lines between events
        b"data: a\n\nevent: x\ndata: b\n\ndata: c\ndata: d\n\n: hi\n\ndata:e\n\n",
        b"data: caf\xc3\xa9 \xff\n\ndata: \n\ndata:\n\n",  # invalid UTF-8 is replaced
        b"data: a\n\ndata: b",  # the read ends inside an event
        b"\n\ndata: a\n\n",
    ],
    ids=["simple", "blank-lines", "mixed", "utf8", "unfinished", "leading-blank"],
)
def test_whole_event_fast_path_agrees_with_the_line_parser(raw: bytes) -> None:
    assert decode(raw) == _line_by_line(raw)
    for cut in range(len(raw) + 1):
        assert decode(raw[:cut], raw[cut:]) == _line_by_line(raw), f"split at byte {cut}"


@pytest.mark.parametrize(
    "raw",
    [
        STREAM.encode(),
        b"data: caf\xc3\xa9 \xff\n\ndata: a\ndata: b\n\nevent: x\ndata: c\n\n",
        b"data: a\r\n\r\ndata: b\r\rdata: c",
    ],
    ids=["stream", "utf8-and-multiline", "cr"],
)
def test_feed_data_gives_the_data_of_what_feed_gives(raw: bytes) -> None:
    expected = [event.data for event in decode(raw)]
    for cut in range(len(raw) + 1):
        decoder = SseDecoder()
        datas = [*decoder.feed_data(raw[:cut]), *decoder.feed_data(raw[cut:])]
        datas.extend(event.data.encode() for event in decoder.flush())
        assert [d.decode("utf-8", "replace") for d in datas] == expected, f"split at {cut}"


def test_feed_data_of_one_event_per_read_agrees_with_feed() -> None:
    """HTTP/1.1 chunked streams often bring one event per read (the one-event fast path)."""
    reads = [b'data: {"a":1}\n\n', b"data: x\r\n\r\n", b"data: a\n", b"\n", b"data: \n\n"]
    reads += [b"data: y\n\n", b"event: e\ndata: z\n\n", b"data: w\r", b"\ndata: v\n\n"]
    by_data, by_event = SseDecoder(), SseDecoder()
    got = [d for read in reads for d in by_data.feed_data(read)]
    expected = [e.data.encode() for read in reads for e in by_event.feed(read)]
    assert got == expected == [b'{"a":1}', b"x", b"a", b"", b"y", b"z", b"w\nv"]
