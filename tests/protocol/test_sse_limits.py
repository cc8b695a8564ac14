"""The SSE decoder's cost and memory bounds: linear in the bytes fed, a line's length capped.

A quadratic decoder (re-joining and re-scanning the whole pending line on every read) spent
7–42 CPU-seconds on one 30 MB line arriving in 1 KB reads, blocking the event loop; a line
that never ended was held without limit.
"""

from __future__ import annotations

import random
import time

import pytest

from vdm.protocol.anthropic_observe import AnthropicStreamObserver
from vdm.protocol.errors import VdmError
from vdm.protocol.sse import MAX_LINE_BYTES, SseDecoder, SseEvent


def _cpu_seconds_to_decode(size: int, read: int = 1024) -> float:
    """CPU time to decode one `data:` line of `size` bytes arriving in `read`-byte reads."""
    data = b"data: " + b"x" * size + b"\n\n"
    reads = [data[i : i + read] for i in range(0, len(data), read)]
    decoder = SseDecoder(max_line_bytes=size + 100)
    events: list[SseEvent] = []
    started = time.process_time()
    for chunk in reads:
        events.extend(decoder.feed(chunk))
    spent = time.process_time() - started
    assert len(events) == 1 and len(events[0].data) == size
    return spent


def test_a_30_mb_line_in_1_kb_reads_costs_well_under_a_second() -> None:
    # The quadratic decoder took 7-42 s here; the linear one a few tens of milliseconds.
    assert _cpu_seconds_to_decode(30_000_000) < 2.0


def _cpu_seconds_to_hold(size: int, read: int = 1024) -> float:
    """CPU time to take in `size` bytes of a line not yet ended, in `read`-byte reads: the part
    a quadratic decoder repeats on every read (completing the line is one linear copy)."""
    data = b"data: " + b"x" * size
    reads = [data[i : i + read] for i in range(0, len(data), read)]
    decoder = SseDecoder(max_line_bytes=size + 100)
    started = time.process_time()
    for chunk in reads:
        decoder.feed(chunk)
    return time.process_time() - started


def test_cost_grows_linearly_with_the_line() -> None:
    # Ten times the bytes: about ten times the time (the quadratic decoder: two hundred times).
    # Best of three on each side keeps scheduler noise out of the ratio.
    small = min(_cpu_seconds_to_hold(3_000_000) for _ in range(3))
    large = min(_cpu_seconds_to_hold(30_000_000) for _ in range(3))
    assert large < max(small, 0.001) * 25, (small, large)


def test_default_cap_is_16_mib() -> None:
    assert MAX_LINE_BYTES == 16 * 1024 * 1024


def test_a_line_at_the_cap_is_accepted() -> None:
    line = b"data: " + b"y" * 994  # 1000 bytes
    decoder = SseDecoder(max_line_bytes=1000)
    events = [e for i in range(0, len(line), 7) for e in decoder.feed(line[i : i + 7])]
    events += decoder.feed(b"\n\n")
    assert events == [SseEvent("message", "y" * 994)]


@pytest.mark.parametrize("read", [1, 7, 1000, 5000], ids=lambda n: f"reads-of-{n}")
def test_a_line_over_the_cap_is_a_502(read: int) -> None:
    data = b"data: " + b"z" * 995 + b"\n\n"  # a 1001-byte line
    decoder = SseDecoder(max_line_bytes=1000)
    with pytest.raises(VdmError) as caught:
        for i in range(0, len(data), read):
            decoder.feed(data[i : i + read])
    assert caught.value.status == 502
    assert "SSE line longer than 1000 bytes" in caught.value.message


def test_a_line_that_never_ends_is_cut_once_past_the_cap() -> None:
    # The decoder holds at most the cap: it fails on the read that crosses it, not at the end.
    decoder = SseDecoder(max_line_bytes=10_000)
    fed = 0
    with pytest.raises(VdmError, match="longer than 10000 bytes"):
        for _ in range(1000):
            decoder.feed(b"q" * 1024)
            fed += 1024
    assert 10_000 - 1024 <= fed <= 10_000


def test_an_over_long_comment_line_is_cut_too() -> None:
    decoder = SseDecoder(max_line_bytes=100)
    with pytest.raises(VdmError, match="longer than 100 bytes"):
        decoder.feed(b":" + b" " * 200 + b"\n")


def test_an_event_of_many_short_data_lines_is_capped_as_a_whole() -> None:
    # Lines each under the cap, but an event that never gets its blank line grows without end.
    decoder = SseDecoder(max_line_bytes=1000)
    with pytest.raises(VdmError, match="SSE event longer than 1000 bytes"):
        for _ in range(100):
            decoder.feed(b"data: " + b"a" * 50 + b"\n")


def test_many_events_each_under_the_cap_pass() -> None:
    decoder = SseDecoder(max_line_bytes=100)
    events: list[SseEvent] = []
    for _ in range(1000):
        events.extend(decoder.feed(b"data: " + b"b" * 90 + b"\n\n"))
    assert len(events) == 1000


def _long_stream(newline: str) -> bytes:
    text = (
        f": comment{newline}{newline}"
        f"event: big{newline}data: {'L' * 5000}{newline}data: tail{newline}{newline}"
        f"data: é€😀{newline}{newline}"
        f"data: {'M' * 3000}{newline}{newline}"
        f"data: last"
    )
    return text.encode()


EXPECTED = [
    SseEvent("big", "L" * 5000 + "\ntail"),
    SseEvent("message", "é€😀"),
    SseEvent("message", "M" * 3000),
    SseEvent("message", "last"),
]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_long_lines_split_at_random_points_decode_as_one_read(newline: str) -> None:
    data = _long_stream(newline)
    rng = random.Random(11)
    for _ in range(200):
        decoder = SseDecoder(max_line_bytes=6000)
        events: list[SseEvent] = []
        at = 0
        while at < len(data):
            size = rng.choice((1, 2, 3, rng.randint(1, 64), rng.randint(1, 4096)))
            events.extend(decoder.feed(data[at : at + size]))
            at += size
        events.extend(decoder.flush())
        assert events == EXPECTED


def test_a_crlf_split_right_after_a_long_line_is_one_line_end() -> None:
    decoder = SseDecoder(max_line_bytes=10_000)
    assert decoder.feed(b"data: " + b"c" * 4000 + b"\r") == []
    assert decoder.feed(b"\n") == []  # the LF pairs with the CR: not a blank line
    assert decoder.feed(b"data: d\r\n\r\n") == [SseEvent("message", "c" * 4000 + "\nd")]


def test_observer_caps_the_relayed_stream_too() -> None:
    observer = AnthropicStreamObserver(max_line_bytes=1000)
    observer.feed(b'event: message_start\ndata: {"type":"message_start","message":{}}\n\n')
    observer.feed(b"event: content_block_delta\ndata: ")
    with pytest.raises(VdmError, match="SSE line longer than 1000 bytes"):
        for _ in range(10):
            observer.feed(b"x" * 500)
