"""Server-sent events: an incremental decoder and the encoder for outgoing events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vdm.protocol import jsonio
from vdm.protocol.errors import VdmError


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One decoded event: its `event:` name (or "message") and its joined `data:` lines."""

    event: str
    data: str


#: The longest SSE line (or event's data) accepted from an upstream: 16 MiB. Far above any
#: real event (a whole tool input or image arrives in many deltas), yet it bounds what one
#: broken or hostile upstream can make vdm hold in memory for a line that never ends.
MAX_LINE_BYTES = 16 * 1024 * 1024


class SseDecoder:
    """Turns a byte stream into events; feed it reads of any size.

    Follows the WHATWG grammar: lines end in CRLF, LF or CR; blank line dispatches; `:` starts
    a comment; several `data:` lines join with LF; a single space after the colon is dropped.

    Work is linear in the bytes fed: an unfinished line is kept as a list of pieces and only
    each new read is scanned for line ends, so a 30 MB line in 1 KB reads costs no more than
    the same bytes in one read. A line, or an event's joined data, longer than
    `max_line_bytes` is a 502 (`VdmError`) rather than memory held without limit.
    """

    __slots__ = ("_pieces", "_pending", "_event", "_data", "_data_bytes", "_after_cr", "_max")

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._pieces: list[bytes] = []  # the unfinished line, never containing a line end
        self._pending = 0  # their total length
        self._event = ""
        self._data: list[str] = []
        self._data_bytes = 0  # the pending event's data lines, in bytes as received
        self._after_cr = False  # the last read ended in CR: a LF starting the next is its pair
        self._max = max_line_bytes

    def feed(self, chunk: bytes) -> list[SseEvent]:
        events: list[SseEvent] = []
        chunk = self._normalised(chunk)
        if not chunk:
            return events
        if self._pieces or self._data or self._event:
            self._lines(chunk, events)
            return events
        # Between events (the usual case: a read holds whole events): split on blank lines,
        # and an event that is one `data: ` line is taken whole, without a look at its lines.
        blocks = chunk.split(b"\n\n")
        rest = blocks.pop()  # after the last blank line: b"" when the read ends on one
        for block in blocks:
            if block[:6] == b"data: " and b"\n" not in block and len(block) <= self._max:
                events.append(SseEvent("message", block[6:].decode("utf-8", "replace")))
            else:
                self._block(block, events)
        if rest:
            self._lines(rest, events)
        return events

    def feed_data(self, chunk: bytes) -> list[bytes]:
        """What `feed` finds, as each event's `data` alone, in UTF-8 bytes: for a decoder
        that reads only the data (OpenAI Chat streams name no events), which parses the
        bytes of the read as they are (`json_event`), never making a `str` or an event of
        them. An invalid UTF-8 sequence is left as it came (`json_event` replaces it)."""
        if (
            # A read of one whole one-line event: what HTTP/1.1 chunked streams often bring.
            chunk[:6] == b"data: "
            and chunk.find(b"\n") == len(chunk) - 2
            and chunk[-1:] == b"\n"
            and not (self._after_cr or self._pieces or self._data or self._event)
            and b"\r" not in chunk
            and len(chunk) <= self._max
        ):
            return [chunk[6:-2]]
        chunk = self._normalised(chunk)
        if not chunk:
            return []
        if self._pieces or self._data or self._event:
            events: list[SseEvent] = []
            self._lines(chunk, events)
            return [event.data.encode() for event in events]
        datas: list[bytes] = []
        blocks = chunk.split(b"\n\n")
        rest = blocks.pop()
        for block in blocks:
            if block[:6] == b"data: " and b"\n" not in block and len(block) <= self._max:
                datas.append(block[6:])
            else:
                events = []
                self._block(block, events)
                datas.extend(event.data.encode() for event in events)
        if rest:
            events = []
            self._lines(rest, events)
            datas.extend(event.data.encode() for event in events)
        return datas

    def _normalised(self, chunk: bytes) -> bytes:
        """The read with its line ends made LF (a CRLF split across reads counted once)."""
        if self._after_cr:
            self._after_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if not chunk:
            return chunk
        if chunk[-1:] == b"\r":
            self._after_cr = True
        # Only this read is normalised: the pieces held hold no line end, and a CRLF split
        # across reads is settled by `_after_cr` above.
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        return chunk

    def _block(self, block: bytes, events: list[SseEvent]) -> None:
        """One whole event's lines (its blank line split off), read line by line."""
        for line in block.split(b"\n"):
            self._take(line, events)
        self._take(b"", events)

    def _lines(self, chunk: bytes, events: list[SseEvent]) -> None:
        """The lines of a normalised read, the unfinished last one held."""
        end = chunk.find(b"\n")
        if end < 0:
            self._hold(chunk)
            return
        if self._pieces:
            self._pieces.append(chunk[:end])
            line = b"".join(self._pieces)
            self._pieces = []
            self._pending = 0
        else:
            line = chunk[:end]
        while True:
            self._take(line, events)
            start = end + 1
            end = chunk.find(b"\n", start)
            if end < 0:
                break
            line = chunk[start:end]
        if start < len(chunk):
            self._hold(chunk[start:])

    def flush(self) -> list[SseEvent]:
        """Dispatch what is pending at end of stream (a last event without a blank line)."""
        events: list[SseEvent] = []
        rest = b"".join(self._pieces)
        self._pieces = []
        self._pending = 0
        self._after_cr = False
        if rest.strip():
            self._take(rest, events)
        if self._data:
            events.append(SseEvent(self._event or "message", "\n".join(self._data)))
        self._event = ""
        self._data = []
        self._data_bytes = 0
        return events

    def _hold(self, piece: bytes) -> None:
        self._pending += len(piece)
        if self._pending > self._max:
            self._pieces = []
            raise self._too_long("line")
        self._pieces.append(piece)

    def _too_long(self, what: str) -> VdmError:
        return VdmError(
            502, f"upstream sent an SSE {what} longer than {self._max} bytes; the stream is cut"
        )

    def _take(self, line: bytes, events: list[SseEvent]) -> None:
        """One complete line: a blank one dispatches the pending event."""
        if not line:
            if self._data:
                events.append(SseEvent(self._event or "message", "\n".join(self._data)))
            self._event = ""
            self._data = []
            self._data_bytes = 0
            return
        if len(line) > self._max:
            raise self._too_long("line")
        if line[:1] == b":":
            return  # a comment: not even decoded
        text = line.decode("utf-8", "replace")
        name, sep, value = text.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data_bytes += len(line)
            if self._data_bytes > self._max:
                self._data = []
                raise self._too_long("event")
            self._data.append(value)
        elif name == "event":
            self._event = value


def encode_event(event: str, data: dict[str, Any]) -> bytes:
    """`event: NAME\\ndata: JSON\\n\\n` as UTF-8 bytes."""
    return b"event: " + event.encode() + b"\ndata: " + jsonio.dumps(data) + b"\n\n"


def dumps(obj: Any) -> str:
    """Compact JSON, as written on the wire."""
    return jsonio.dumps(obj).decode()


#: What ends a token in quoted text: a key, a token or a header value holds none of these.
_DELIMITERS = frozenset(" \t\r\n\"'`,;()[]{}<>|\\")


def quote_start(text: str, limit: int) -> str:
    """The first `limit` characters of `text`, for an error message quoting what an upstream
    sent, never ending inside a token: a key cut short could no longer be recognised and
    masked (`vdm.config.secrets.redact`) where the error is shown, so the partial token is
    left out ("…" marks the cut)."""
    if len(text) <= limit:
        return text
    end = limit
    if text[end] not in _DELIMITERS:
        while end > 0 and text[end - 1] not in _DELIMITERS:
            end -= 1
    return text[:end] + "…"


def json_event(data: str | bytes, exact_ints: bool = True) -> dict[str, Any]:
    """An upstream event's `data:` as a JSON object; anything else is a 502 quoting its start
    (never cut inside a token, so that a credential it quotes is masked whole downstream).
    Bytes are read as UTF-8, an invalid sequence replaced (as `SseDecoder.feed` does).
    `exact_ints`: see `jsonio.loads`."""
    if isinstance(data, bytes):
        try:
            event = jsonio.loads(data, exact_ints=exact_ints)
        except ValueError:  # perhaps only invalid UTF-8 in a string: read as `feed` would
            return json_event(data.decode("utf-8", "replace"), exact_ints)
        if not isinstance(event, dict):
            return json_event(data.decode("utf-8", "replace"), exact_ints)  # the 502
        return event
    try:
        event = jsonio.loads(data, exact_ints=exact_ints)
    except ValueError:
        start = quote_start(data, 200)
        raise VdmError(502, f"upstream sent an event that is not JSON: {start!r}") from None
    if not isinstance(event, dict):
        start = quote_start(data, 200)
        raise VdmError(502, f"upstream sent an event that is not an object: {start!r}")
    return event
