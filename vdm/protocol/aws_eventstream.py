"""AWS event-stream framing (`application/vnd.amazon.eventstream`), pure.

Bedrock's `InvokeModelWithResponseStream` answers in this binary framing, and Claude Code in
Bedrock mode expects it back from vdm. Each message is

    total_len u32 | headers_len u32 | crc32(first 8 bytes) | headers | payload | crc32(all before)

with big-endian integers; a header is `name_len u8, name, type u8, value` (the ten value types
of `_FIXED` and `_VARIABLE` below). The layout, the type codes and the limits (128 KiB of
headers, 24 MiB of payload) follow botocore's reference parser, `botocore/eventstream.py`;
the tests replay its own vectors (`tests/protocol/aws_vectors.py`).

vdm ships its own decoder rather than botocore's so that bearer-token Bedrock needs no
dependency (botocore is 31 MB), and because a stream of a few hundred events is decoded on the
hot path. Every frame is checked: a checksum that does not match raises `EventStreamError`,
never a silent skip, since a corrupt length would misframe everything after it. The prelude is
checked before any of the body is waited for, so a bad length costs at most 12 bytes of
buffering, never 4 GiB.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from vdm.protocol.errors import anthropic_error_dict, anthropic_error_type

PRELUDE_LENGTH = 12
#: botocore's `_MAX_HEADERS_LENGTH` and `_MAX_PAYLOAD_LENGTH`.
MAX_HEADERS_LENGTH = 128 * 1024
MAX_PAYLOAD_LENGTH = 24 * 1024 * 1024
#: Prelude plus the trailing message checksum: a message with no headers and no payload.
_MIN_LENGTH = PRELUDE_LENGTH + 4


class EventStreamError(ValueError):
    """The upstream's event stream is not well formed: a checksum mismatch, a length over the
    limits, a header that cannot be read, or a stream that ended inside a message."""


# Integer header types. They are ints (`Byte(-1) == -1`), so a decoded header compares equal to
# a plain number, but they remember their wire type so that encoding what was decoded gives
# the same bytes back. A plain int is encoded as `Integer` when it fits, else `Long`.
class Byte(int):
    """Header type 2: a signed 8-bit integer."""


class Short(int):
    """Header type 3: a signed 16-bit integer."""


class Integer(int):
    """Header type 4: a signed 32-bit integer."""


class Long(int):
    """Header type 5: a signed 64-bit integer."""


class Timestamp(int):
    """Header type 8: milliseconds since the Unix epoch, a signed 64-bit integer."""


#: A decoded header value: bool (types 0, 1), the int kinds above, bytes (6: byte array),
#: str (7: string), uuid.UUID (9).
HeaderValue = bool | int | bytes | str | uuid.UUID

#: type code -> (struct format, class) for the fixed-size integer types.
_FIXED: dict[int, tuple[struct.Struct, type[int]]] = {
    2: (struct.Struct(">b"), Byte),
    3: (struct.Struct(">h"), Short),
    4: (struct.Struct(">i"), Integer),
    5: (struct.Struct(">q"), Long),
    8: (struct.Struct(">q"), Timestamp),
}
_CODE_OF: dict[type[int], int] = {cls: code for code, (_, cls) in _FIXED.items()}
#: Byte array (6) and string (7): a u16 length, then the bytes.
_VARIABLE = (6, 7)
_UUID = 9
_U16 = struct.Struct(">H")
_PRELUDE = struct.Struct(">II")
_CRC = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class Message:
    """One event-stream message: its headers (in wire order) and its payload bytes."""

    headers: dict[str, HeaderValue]
    payload: bytes

    def text_header(self, name: str) -> str | None:
        """A string header's value, or None when it is absent or not a string."""
        value = self.headers.get(name)
        return value if isinstance(value, str) else None


class EventStreamDecoder:
    """Incremental decoder: `feed` takes reads split anywhere (one byte at a time, or several
    messages at once) and returns the messages they complete. After an error the stream is
    beyond repair (the next frame's start is unknown), so every later `feed` raises too."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._broken: str | None = None

    @property
    def pending(self) -> int:
        """Bytes held of a message not yet complete."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Message]:
        if self._broken is not None:
            raise EventStreamError(self._broken)
        buffer = self._buffer
        buffer += data
        messages: list[Message] = []
        start = 0
        try:
            while len(buffer) - start >= PRELUDE_LENGTH:
                total = _check_prelude(buffer, start)
                if len(buffer) - start < total:
                    break
                messages.append(_decode(bytes(buffer[start : start + total])))
                start += total
        except EventStreamError as error:
            self._broken = str(error)
            buffer.clear()
            raise
        if start:
            del buffer[:start]
        return messages

    def close(self) -> None:
        """Call at the end of the body: raises when it ended inside a message (the upstream
        connection was cut mid-frame), which would otherwise pass for a clean end."""
        if self._buffer:
            held = len(self._buffer)
            self._buffer.clear()
            raise EventStreamError(f"event stream ended inside a message ({held} bytes held)")


def _check_prelude(buffer: bytearray, start: int) -> int:
    """The total length of the message at `start`, once its prelude checks out."""
    total, headers_length = _PRELUDE.unpack_from(buffer, start)
    (crc,) = _CRC.unpack_from(buffer, start + 8)
    computed = zlib.crc32(buffer[start : start + 8])
    if crc != computed:
        raise EventStreamError(
            f"event stream prelude checksum mismatch: expected 0x{crc:08x}, "
            f"computed 0x{computed:08x}"
        )
    if headers_length > MAX_HEADERS_LENGTH:
        raise EventStreamError(
            f"event stream headers length {headers_length} exceeds {MAX_HEADERS_LENGTH}"
        )
    payload_length = total - headers_length - _MIN_LENGTH
    if payload_length < 0:
        raise EventStreamError(
            f"event stream message length {total} is too short for {headers_length} "
            "bytes of headers"
        )
    if payload_length > MAX_PAYLOAD_LENGTH:
        raise EventStreamError(
            f"event stream payload length {payload_length} exceeds {MAX_PAYLOAD_LENGTH}"
        )
    return int(total)


def _decode(frame: bytes) -> Message:
    """One whole message whose prelude has been checked."""
    (crc,) = _CRC.unpack_from(frame, len(frame) - 4)
    # The message CRC runs over everything before it, prelude included: botocore seeds it with
    # the prelude's CRC and continues from byte 8, which is the same value.
    computed = zlib.crc32(memoryview(frame)[:-4])
    if crc != computed:
        raise EventStreamError(
            f"event stream message checksum mismatch: expected 0x{crc:08x}, "
            f"computed 0x{computed:08x}"
        )
    (headers_length,) = _CRC.unpack_from(frame, 4)
    headers_end = PRELUDE_LENGTH + headers_length
    headers = _decode_headers(frame, PRELUDE_LENGTH, headers_end)
    return Message(headers, frame[headers_end:-4])


def _decode_headers(frame: bytes, pos: int, end: int) -> dict[str, HeaderValue]:
    headers: dict[str, HeaderValue] = {}
    while pos < end:
        name_end = pos + 1 + frame[pos]
        if name_end >= end:  # the name, then at least the type byte
            raise EventStreamError("event stream header truncated")
        name = _text(frame[pos + 1 : name_end])
        if name in headers:
            raise EventStreamError(f"event stream header {name!r} appears twice")
        kind = frame[name_end]
        pos = name_end + 1
        value: HeaderValue
        if kind in (0, 1):
            value = kind == 0
        elif kind in _FIXED:
            fmt, cls = _FIXED[kind]
            _need(pos + fmt.size, end)
            value = cls(fmt.unpack_from(frame, pos)[0])
            pos += fmt.size
        elif kind in _VARIABLE:
            _need(pos + 2, end)
            value_end = pos + 2 + _U16.unpack_from(frame, pos)[0]
            _need(value_end, end)
            raw = frame[pos + 2 : value_end]
            value = _text(raw) if kind == 7 else raw
            pos = value_end
        elif kind == _UUID:
            _need(pos + 16, end)
            value = uuid.UUID(bytes=frame[pos : pos + 16])
            pos += 16
        else:
            raise EventStreamError(f"event stream header {name!r} has unknown type {kind}")
        headers[name] = value
    return headers


def _need(pos: int, end: int) -> None:
    if pos > end:
        raise EventStreamError("event stream header truncated")


def _text(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError as error:
        raise EventStreamError(f"event stream header is not UTF-8: {error}") from None


# --- encoding ------------------------------------------------------------------------------------


def encode_headers(headers: Mapping[str, HeaderValue]) -> bytes:
    """The header block of a message, for callers that pre-encode fixed headers once."""
    return b"".join(_encode_header(name, value) for name, value in headers.items())


def encode_message(headers: Mapping[str, HeaderValue], payload: bytes = b"") -> bytes:
    """One whole message. Raises ValueError for what the format cannot carry (a header name
    over 255 bytes, a value of the wrong range, lengths over the limits)."""
    return _frame(encode_headers(headers), payload)


def _frame(head: bytes, payload: bytes) -> bytes:
    if len(head) > MAX_HEADERS_LENGTH:
        raise ValueError(f"headers of {len(head)} bytes exceed {MAX_HEADERS_LENGTH}")
    if len(payload) > MAX_PAYLOAD_LENGTH:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_LENGTH}")
    prelude = _PRELUDE.pack(_MIN_LENGTH + len(head) + len(payload), len(head))
    body = b"".join((prelude, _CRC.pack(zlib.crc32(prelude)), head, payload))
    return body + _CRC.pack(zlib.crc32(body))


def _encode_header(name: str, value: HeaderValue) -> bytes:
    raw_name = name.encode()
    if not 0 < len(raw_name) < 256:
        raise ValueError(f"header name {name!r} must be 1 to 255 bytes")
    start = bytes((len(raw_name),)) + raw_name
    if isinstance(value, bool):  # before int: bool is an int
        return start + (b"\x00" if value else b"\x01")
    if isinstance(value, int):
        cls = type(value)
        if cls not in _CODE_OF:
            cls = Integer if -(2**31) <= value < 2**31 else Long
        code = _CODE_OF[cls]
        try:
            return start + bytes((code,)) + _FIXED[code][0].pack(value)
        except struct.error:
            raise ValueError(f"header {name!r}: {value} does not fit {cls.__name__}") from None
    if isinstance(value, uuid.UUID):
        return start + bytes((_UUID,)) + value.bytes
    code, raw = (7, value.encode()) if isinstance(value, str) else (6, bytes(value))
    if len(raw) > 0xFFFF:
        raise ValueError(f"header {name!r}: a value of {len(raw)} bytes exceeds 65535")
    return start + bytes((code,)) + _U16.pack(len(raw)) + raw


# --- Bedrock's InvokeModelWithResponseStream -----------------------------------------------------

#: The header block of every `chunk` event, encoded once (the hot path writes one per event).
_CHUNK_HEAD = encode_headers(
    {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
)

#: Bedrock stream exception -> Anthropic error type (providers.md 2c); the exceptions are the
#: `ResponseStream` members of botocore's `bedrock-runtime/2023-09-30/service-2.json`.
ANTHROPIC_ERROR_OF_EXCEPTION: dict[str, str] = {
    "throttlingException": "rate_limit_error",
    "serviceUnavailableException": "overloaded_error",
    "validationException": "invalid_request_error",
    "modelTimeoutException": "api_error",
    "internalServerException": "api_error",
    "modelStreamErrorException": "api_error",
}
#: The other way, for vdm answering Claude Code in Bedrock mode: the exception a client's
#: Bedrock SDK expects for an Anthropic error type; anything else is an internal error.
EXCEPTION_OF_ANTHROPIC_ERROR: dict[str, str] = {
    "rate_limit_error": "throttlingException",
    "overloaded_error": "serviceUnavailableException",
    "invalid_request_error": "validationException",
    "timeout_error": "modelTimeoutException",
}


def chunk_event(event_json: bytes) -> bytes:
    """A Bedrock stream `chunk` carrying one Anthropic stream event (its JSON, as bytes)."""
    payload = b'{"bytes":"' + base64.b64encode(event_json) + b'"}'
    return _frame(_CHUNK_HEAD, payload)


def exception_event(kind: str, message: str, **fields: object) -> bytes:
    """A Bedrock stream exception (`kind` is e.g. `throttlingException`); `fields` adds members
    such as `originalStatusCode` of a `modelStreamErrorException`."""
    headers = {
        ":exception-type": kind,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_message(headers, json.dumps({"message": message, **fields}).encode())


def exception_kind(anthropic_error: str) -> str:
    """The Bedrock exception for an Anthropic error type."""
    return EXCEPTION_OF_ANTHROPIC_ERROR.get(anthropic_error, "internalServerException")


def anthropic_event_of(message: Message) -> bytes | None:
    """What a Bedrock stream message carries for an Anthropic client, as JSON bytes: a `chunk`'s
    event verbatim, an exception or error as an Anthropic `error` event; None for anything
    else (an event type vdm has no use for)."""
    kind = message.text_header(":message-type")
    if kind == "event":
        if message.text_header(":event-type") != "chunk":
            return None
        part = _json_object(message.payload)
        encoded = part.get("bytes")
        if not isinstance(encoded, str):
            raise EventStreamError("Bedrock chunk without a `bytes` string")
        try:
            return base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise EventStreamError("Bedrock chunk `bytes` is not base64") from None
    if kind == "exception":
        exception = message.text_header(":exception-type") or "internalServerException"
        body = _json_object(message.payload, lenient=True)
        text = body.get("message")
        error_type = ANTHROPIC_ERROR_OF_EXCEPTION.get(exception, "api_error")
        original = body.get("originalStatusCode")
        if isinstance(original, int) and not isinstance(original, bool):
            # A modelStreamErrorException wraps the model's own failure (a 429, a 529):
            # its status says more than the wrapper's name.
            error_type = anthropic_error_type(original)
        if not isinstance(text, str):
            text = message.payload.decode(errors="replace") or exception
        return json.dumps(anthropic_error_dict(error_type, f"{exception}: {text}")).encode()
    if kind == "error":
        code = message.text_header(":error-code") or "error"
        text = message.text_header(":error-message") or ""
        return json.dumps(anthropic_error_dict("api_error", f"{code}: {text}")).encode()
    return None


def _json_object(payload: bytes, *, lenient: bool = False) -> dict[str, object]:
    try:
        data = json.loads(payload)
    except ValueError:
        data = None
    if isinstance(data, dict):
        return data
    if lenient:
        return {}
    raise EventStreamError("Bedrock event payload is not a JSON object")
