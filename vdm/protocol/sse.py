"""Server-sent events: an incremental decoder and the encoder for outgoing events."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from vdm.protocol.errors import VdmError


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One decoded event: its `event:` name (or "message") and its joined `data:` lines."""

    event: str
    data: str


class SseDecoder:
    """Turns a byte stream into events; feed it reads of any size.

    Follows the WHATWG grammar: lines end in CRLF, LF or CR; blank line dispatches; `:` starts
    a comment; several `data:` lines join with LF; a single space after the colon is dropped.
    """

    __slots__ = ("_buffer", "_event", "_data", "_after_cr")

    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []
        self._after_cr = False  # the last read ended in CR: a LF starting the next is its pair

    def feed(self, chunk: bytes) -> list[SseEvent]:
        if self._after_cr:
            self._after_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if chunk[-1:] == b"\r":
            self._after_cr = True
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        events: list[SseEvent] = []
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            line = buffer[start:end]
            start = end + 1
            if not line:
                if self._data:
                    events.append(SseEvent(self._event or "message", "\n".join(self._data)))
                self._event = ""
                self._data = []
                continue
            self._line(line.decode("utf-8", "replace"))
        self._buffer = buffer[start:]
        return events

    def flush(self) -> list[SseEvent]:
        """Dispatch what is pending at end of stream (a last event without a blank line)."""
        events: list[SseEvent] = []
        if self._buffer.strip():
            self._line(self._buffer.decode("utf-8", "replace"))
        self._buffer = b""
        self._after_cr = False
        if self._data:
            events.append(SseEvent(self._event or "message", "\n".join(self._data)))
        self._event = ""
        self._data = []
        return events

    def _line(self, line: str) -> None:
        if line.startswith(":"):
            return
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def encode_event(event: str, data: dict[str, Any]) -> bytes:
    """`event: NAME\\ndata: JSON\\n\\n` as UTF-8 bytes."""
    return f"event: {event}\ndata: {_dumps(data)}\n\n".encode()


def dumps(obj: Any) -> str:
    """Compact JSON, as written on the wire."""
    return _dumps(obj)


def json_event(data: str) -> dict[str, Any]:
    """An upstream event's `data:` as a JSON object; anything else is a 502 naming it."""
    try:
        event = json.loads(data)
    except ValueError:
        raise VdmError(502, f"upstream sent an event that is not JSON: {data[:200]!r}") from None
    if not isinstance(event, dict):
        raise VdmError(502, f"upstream sent an event that is not an object: {data[:200]!r}")
    return event
