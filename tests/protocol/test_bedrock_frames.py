"""Anthropic SSE re-framed as Bedrock's event stream, and Anthropic errors as AWS's: read back
with vdm's decoder and with botocore's own parser (what the Bedrock SDKs use)."""

from __future__ import annotations

import base64
import json

import pytest

from vdm.protocol.aws_eventstream import EventStreamDecoder
from vdm.protocol.bedrock_frames import BedrockFramer, aws_error

START = {"type": "message_start", "message": {"id": "msg_1", "content": []}}
DELTA = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "é"}}


def sse(event: dict[str, object]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def test_each_event_is_one_chunk_whatever_the_reads() -> None:
    stream = sse(START) + b": a comment\n\n" + sse(DELTA) + sse({"type": "message_stop"})
    framer = BedrockFramer()
    out = b"".join(framer.feed(stream[i : i + 7]) for i in range(0, len(stream), 7))
    out += framer.finish()
    frames = EventStreamDecoder().feed(out)
    events = [json.loads(base64.b64decode(json.loads(f.payload)["bytes"])) for f in frames]
    assert events == [START, DELTA, {"type": "message_stop"}]
    assert {f.text_header(":event-type") for f in frames} == {"chunk"}


def test_a_last_event_without_its_blank_line_is_framed_at_the_end() -> None:
    framer = BedrockFramer()
    assert framer.feed(sse(START)[:-1]) == b""
    assert len(EventStreamDecoder().feed(framer.finish())) == 1


@pytest.mark.parametrize(
    ("error_type", "exception"),
    [
        ("rate_limit_error", "throttlingException"),
        ("overloaded_error", "serviceUnavailableException"),
        ("invalid_request_error", "validationException"),
        ("api_error", "internalServerException"),
    ],
)
def test_an_error_event_is_an_exception_frame(error_type: str, exception: str) -> None:
    error = {"type": "error", "error": {"type": error_type, "message": "it broke"}}
    out = BedrockFramer().feed(f"event: error\ndata: {json.dumps(error)}\n\n".encode())
    (frame,) = EventStreamDecoder().feed(out)
    assert frame.text_header(":message-type") == "exception"
    assert frame.text_header(":exception-type") == exception
    assert json.loads(frame.payload) == {"message": "it broke"}


def test_botocore_reads_the_frames() -> None:
    eventstream = pytest.importorskip("botocore.eventstream")
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    out = BedrockFramer().feed(sse(START) + f"event: error\ndata: {json.dumps(error)}\n\n".encode())
    buffer = eventstream.EventStreamBuffer()
    buffer.add_data(out)
    first, second = [m.to_response_dict() for m in buffer]
    assert first["status_code"] == 200
    assert json.loads(base64.b64decode(json.loads(first["body"])["bytes"])) == START
    assert second["status_code"] == 400
    assert second["headers"][":exception-type"] == "serviceUnavailableException"


@pytest.mark.parametrize(
    ("status", "error_type", "kind"),
    [
        (400, "invalid_request_error", "ValidationException"),
        (401, "authentication_error", "AccessDeniedException"),
        (404, "not_found_error", "ResourceNotFoundException"),
        (429, "rate_limit_error", "ThrottlingException"),
        (529, "overloaded_error", "ServiceUnavailableException"),
        (500, "api_error", "InternalServerException"),
    ],
)
def test_aws_error_of_an_anthropic_error(status: int, error_type: str, kind: str) -> None:
    body = json.dumps({"type": "error", "error": {"type": error_type, "message": "no"}})
    assert aws_error(status, body.encode()) == (b'{"message": "no"}', kind)


def test_aws_error_of_a_body_that_is_no_envelope() -> None:
    assert aws_error(502, b"<html>Bad gateway</html>") == (
        b'{"message": "<html>Bad gateway</html>"}',
        "InternalServerException",
    )
    assert aws_error(429, b'{"message": "slow"}') == (b'{"message": "slow"}', "ThrottlingException")
