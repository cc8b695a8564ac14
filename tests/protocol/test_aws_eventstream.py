"""The AWS event-stream codec: botocore's own vectors decode (and encode) to the same bytes,
reads split anywhere decode the same, and nothing corrupt or oversized gets through."""

from __future__ import annotations

import base64
import json
import struct
import uuid
import zlib

import pytest

from tests.protocol.aws_vectors import NEGATIVE, POSITIVE, invalid_payload_length
from vdm.protocol.aws_eventstream import (
    MAX_HEADERS_LENGTH,
    MAX_PAYLOAD_LENGTH,
    Byte,
    EventStreamDecoder,
    EventStreamError,
    HeaderValue,
    Integer,
    Long,
    Message,
    Short,
    Timestamp,
    anthropic_event_of,
    chunk_event,
    encode_message,
    exception_event,
    exception_kind,
)


def decode_all(data: bytes) -> list[Message]:
    decoder = EventStreamDecoder()
    messages = decoder.feed(data)
    decoder.close()
    return messages


def as_botocore(headers: dict[str, HeaderValue]) -> dict[str, object]:
    """Our headers as botocore reports them: a uuid as its 16 raw bytes."""
    return {k: v.bytes if isinstance(v, uuid.UUID) else v for k, v in headers.items()}


def frame(head: bytes, payload: bytes = b"", *, total: int | None = None) -> bytes:
    """A message with correct checksums around whatever header bytes, even broken ones."""
    length = 16 + len(head) + len(payload) if total is None else total
    prelude = struct.pack(">II", length, len(head))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + head + payload
    return body + struct.pack(">I", zlib.crc32(body))


# -- botocore's vectors ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", POSITIVE)
def test_botocore_vectors_decode_as_botocore_decodes_them(name: str) -> None:
    encoded, headers, payload = POSITIVE[name]
    [message] = decode_all(encoded)
    assert as_botocore(message.headers) == headers
    assert message.payload == payload


@pytest.mark.parametrize("name", POSITIVE)
def test_what_was_decoded_encodes_to_the_same_bytes(name: str) -> None:
    """The int kinds and uuid remember their wire type, so re-encoding is byte-exact."""
    encoded = POSITIVE[name][0]
    [message] = decode_all(encoded)
    assert encode_message(message.headers, message.payload) == encoded


def test_all_header_types_decode_to_typed_values() -> None:
    [message] = decode_all(POSITIVE["ALL_HEADERS_TYPES"][0])
    assert [type(v) for v in message.headers.values()] == [
        bool,
        bool,
        Byte,
        Short,
        Integer,
        Long,
        bytes,
        str,
        Timestamp,
        uuid.UUID,
    ]
    assert message.headers["9"] == uuid.UUID(bytes=b"0123456789abcdef")


def test_all_vectors_in_one_read_and_byte_by_byte() -> None:
    stream = b"".join(encoded for encoded, _, _ in POSITIVE.values())
    expected = [(headers, payload) for _, headers, payload in POSITIVE.values()]
    whole = decode_all(stream)
    assert [(as_botocore(m.headers), m.payload) for m in whole] == expected

    decoder = EventStreamDecoder()
    seen: list[Message] = []
    for i in range(len(stream)):
        seen.extend(decoder.feed(stream[i : i + 1]))
    decoder.close()
    assert seen == whole


@pytest.mark.parametrize("name", NEGATIVE)
def test_botocore_rejects_are_rejected(name: str) -> None:
    encoded, botocore_error = NEGATIVE[name]
    reason = {
        "ChecksumMismatch": "checksum mismatch",
        "DuplicateHeader": "appears twice",
        "InvalidHeadersLength": "headers length",
    }[botocore_error]
    with pytest.raises(EventStreamError, match=reason):
        decode_all(encoded)


def test_an_oversized_payload_is_refused_from_its_prelude_alone() -> None:
    """botocore's INVALID_PAYLOAD_LENGTH: the 12-byte prelude is enough to refuse it, so a bad
    length never makes vdm wait for (and buffer) 24 MiB. (Its prelude claims 16 bytes more
    than the vector holds; botocore refuses it from the prelude too.)"""
    vector = invalid_payload_length()
    decoder = EventStreamDecoder()
    with pytest.raises(EventStreamError, match="payload length 25165841 exceeds 25165824"):
        decoder.feed(vector[:12])
    assert decoder.pending == 0
    with pytest.raises(EventStreamError):
        decode_all(vector)


# -- corruption and limits ------------------------------------------------------------------------


def test_every_single_byte_corruption_is_caught() -> None:
    """Flip each byte of a real chunk frame in turn, prelude and body: every one raises,
    none decodes to a different message."""
    good = chunk_event(b'{"type":"ping"}')
    for i in range(len(good)):
        bad = bytearray(good)
        bad[i] ^= 0x20
        decoder = EventStreamDecoder()
        with pytest.raises(EventStreamError, match="checksum mismatch"):
            decoder.feed(bytes(bad))
            decoder.close()


def test_a_corrupt_frame_breaks_the_stream_for_good() -> None:
    decoder = EventStreamDecoder()
    good = chunk_event(b"{}")
    assert len(decoder.feed(good)) == 1
    with pytest.raises(EventStreamError, match="message checksum"):
        decoder.feed(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(EventStreamError, match="message checksum"):
        decoder.feed(good)


def test_a_stream_cut_inside_a_frame_is_reported() -> None:
    good = chunk_event(b'{"type":"message_stop"}')
    decoder = EventStreamDecoder()
    assert decoder.feed(good + good[:20]) != []
    assert decoder.pending == 20
    with pytest.raises(EventStreamError, match="ended inside a message"):
        decoder.close()
    clean = EventStreamDecoder()
    clean.feed(good)
    assert clean.pending == 0
    clean.close()


@pytest.mark.parametrize(
    ("total", "headers_length", "reason"),
    [
        (16 + MAX_HEADERS_LENGTH + 1, MAX_HEADERS_LENGTH + 1, "headers length 131073 exceeds"),
        (16 + MAX_PAYLOAD_LENGTH + 1, 0, "payload length 25165825 exceeds"),
        (15, 0, "too short"),
        (20, 5, "too short"),
        (0xFFFFFFFF, 0, "payload length"),
    ],
)
def test_lengths_over_the_limits_are_refused_before_buffering(
    total: int, headers_length: int, reason: str
) -> None:
    prelude = struct.pack(">II", total, headers_length)
    decoder = EventStreamDecoder()
    with pytest.raises(EventStreamError, match=reason):
        decoder.feed(prelude + struct.pack(">I", zlib.crc32(prelude)))


def test_the_largest_allowed_message_decodes() -> None:
    """Exactly 128 KiB of headers and 24 MiB of payload: the limits are inclusive."""
    sizes = (60000, 60000, MAX_HEADERS_LENGTH - 2 * 60008 - 8)
    head = b"".join(
        b"\x04" + f"h{i:03d}".encode() + b"\x06" + struct.pack(">H", n) + b"v" * n
        for i, n in enumerate(sizes)
    )
    assert len(head) == MAX_HEADERS_LENGTH
    [message] = decode_all(frame(head, b"x" * MAX_PAYLOAD_LENGTH))
    assert [len(v) for v in message.headers.values() if isinstance(v, bytes)] == list(sizes)
    assert len(message.payload) == MAX_PAYLOAD_LENGTH


@pytest.mark.parametrize(
    ("head", "reason"),
    [
        (b"\x01a\x0a", "unknown type 10"),
        (b"\x01a", "truncated"),
        (b"\x05ab", "truncated"),
        (b"\x01a\x04\x00\x00", "truncated"),
        (b"\x01a\x07\x00\x05abc", "truncated"),
        (b"\x01a\x09" + b"\x00" * 15, "truncated"),
        (b"\x02\xff\xfe\x00", "not UTF-8"),
        (b"\x01a\x07\x00\x02\xc3\x28", "not UTF-8"),
    ],
)
def test_unreadable_headers_inside_a_valid_frame_are_refused(head: bytes, reason: str) -> None:
    with pytest.raises(EventStreamError, match=reason):
        decode_all(frame(head))


# -- encoding -------------------------------------------------------------------------------------

EDGE_HEADERS: dict[str, HeaderValue] = {
    "true": True,
    "false": False,
    "byte-min": Byte(-128),
    "byte-max": Byte(127),
    "short-min": Short(-(2**15)),
    "short-max": Short(2**15 - 1),
    "int-min": Integer(-(2**31)),
    "int-max": Integer(2**31 - 1),
    "long-min": Long(-(2**63)),
    "long-max": Long(2**63 - 1),
    "plain-int": 7,
    "big-int": 2**40,
    "bytes-empty": b"",
    "bytes-max": bytes(range(256)) * 255 + b"\x00" * 255,
    "string-empty": "",
    "string": "héllo ✓ 🙂",
    "timestamp": Timestamp(1_767_225_600_123),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "n" * 255: "longest name",
}


def test_every_header_type_round_trips_at_its_edges() -> None:
    encoded = encode_message(EDGE_HEADERS, b"payload \x00\xff")
    decoder = EventStreamDecoder()
    messages: list[Message] = []
    for i in range(0, len(encoded), 4097):  # reads split at odd places
        messages.extend(decoder.feed(encoded[i : i + 4097]))
    decoder.close()
    [message] = messages
    assert message.headers == EDGE_HEADERS
    assert list(message.headers) == list(EDGE_HEADERS)
    assert type(message.headers["plain-int"]) is Integer
    assert type(message.headers["big-int"]) is Long
    assert message.payload == b"payload \x00\xff"
    assert encode_message(message.headers, message.payload) == encoded


@pytest.mark.parametrize(
    ("headers", "payload", "reason"),
    [
        ({"b": Byte(128)}, b"", "does not fit Byte"),
        ({"s": Short(-(2**15) - 1)}, b"", "does not fit Short"),
        ({"l": 2**63}, b"", "does not fit Long"),
        ({"x" * 256: 1}, b"", "1 to 255 bytes"),
        ({"": 1}, b"", "1 to 255 bytes"),
        ({"v": "x" * 65536}, b"", "exceeds 65535"),
        ({}, b"x" * (MAX_PAYLOAD_LENGTH + 1), "exceeds"),
        ({f"h{i}": b"x" * 60000 for i in range(3)}, b"", "headers of"),
    ],
)
def test_the_encoder_refuses_what_the_format_cannot_carry(
    headers: dict[str, HeaderValue], payload: bytes, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        encode_message(headers, payload)


# -- Bedrock's chunks and exceptions --------------------------------------------------------------

EVENTS = [
    b'{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant"}}',
    b'{"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"caf\xc3\xa9 \\u2713"}}',
    b'{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":3}}',
]


def test_chunk_events_carry_anthropic_events_verbatim() -> None:
    stream = b"".join(chunk_event(event) for event in EVENTS)
    messages = decode_all(stream)
    assert [m.headers for m in messages] == [
        {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
    ] * 3
    assert json.loads(messages[0].payload) == {"bytes": base64.b64encode(EVENTS[0]).decode()}
    assert [anthropic_event_of(m) for m in messages] == EVENTS


def test_a_chunk_with_bedrock_padding_is_read() -> None:
    """Bedrock pads some chunks with a random `p` field next to `bytes`."""
    payload = json.dumps({"bytes": base64.b64encode(EVENTS[1]).decode(), "p": "abcdefghij"})
    message = Message({":event-type": "chunk", ":message-type": "event"}, payload.encode())
    assert anthropic_event_of(message) == EVENTS[1]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"bytes":"not base64!"}', "not base64"),
        (b'{"p":"x"}', "without a `bytes`"),
        (b"[1]", "not a JSON object"),
        (b"{", "not a JSON object"),
    ],
)
def test_a_broken_chunk_is_an_error_not_a_skip(payload: bytes, reason: str) -> None:
    message = Message({":event-type": "chunk", ":message-type": "event"}, payload)
    with pytest.raises(EventStreamError, match=reason):
        anthropic_event_of(message)


@pytest.mark.parametrize(
    ("kind", "fields", "error_type"),
    [
        ("throttlingException", {}, "rate_limit_error"),
        ("serviceUnavailableException", {}, "overloaded_error"),
        ("validationException", {}, "invalid_request_error"),
        ("internalServerException", {}, "api_error"),
        ("modelTimeoutException", {}, "api_error"),
        ("modelStreamErrorException", {}, "api_error"),
        ("modelStreamErrorException", {"originalStatusCode": 529}, "overloaded_error"),
        ("modelStreamErrorException", {"originalStatusCode": 429}, "rate_limit_error"),
        ("somethingNewException", {}, "api_error"),
    ],
)
def test_exceptions_become_anthropic_error_events(
    kind: str, fields: dict[str, object], error_type: str
) -> None:
    [message] = decode_all(exception_event(kind, "Too many tokens, slow down", **fields))
    assert message.headers == {
        ":exception-type": kind,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    assert json.loads(message.payload) == {"message": "Too many tokens, slow down", **fields}
    event = anthropic_event_of(message)
    assert event is not None
    assert json.loads(event) == {
        "type": "error",
        "error": {"type": error_type, "message": f"{kind}: Too many tokens, slow down"},
    }


def test_an_exception_without_a_json_message_keeps_its_text() -> None:
    message = Message(
        {":message-type": "exception", ":exception-type": "throttlingException"}, b"busy"
    )
    event = anthropic_event_of(message)
    assert event is not None
    assert json.loads(event)["error"] == {
        "type": "rate_limit_error",
        "message": "throttlingException: busy",
    }


def test_an_error_message_becomes_an_api_error() -> None:
    [message] = decode_all(POSITIVE["ERROR_EVENT_MESSAGE"][0])
    event = anthropic_event_of(message)
    assert event is not None
    assert json.loads(event) == {
        "type": "error",
        "error": {"type": "api_error", "message": "code: message"},
    }


def test_other_messages_carry_nothing() -> None:
    assert (
        anthropic_event_of(Message({":message-type": "event", ":event-type": "x"}, b"{}")) is None
    )
    assert anthropic_event_of(Message({}, b"")) is None


@pytest.mark.parametrize(
    ("error_type", "kind"),
    [
        ("rate_limit_error", "throttlingException"),
        ("overloaded_error", "serviceUnavailableException"),
        ("invalid_request_error", "validationException"),
        ("timeout_error", "modelTimeoutException"),
        ("api_error", "internalServerException"),
        ("authentication_error", "internalServerException"),
    ],
)
def test_anthropic_errors_pick_the_bedrock_exception(error_type: str, kind: str) -> None:
    assert exception_kind(error_type) == kind
