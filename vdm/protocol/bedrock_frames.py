"""An Anthropic answer as Bedrock's runtime API gives it, for clients in Bedrock mode (pure).

Claude Code with `CLAUDE_CODE_USE_BEDROCK=1` reads InvokeModel's answers: the message JSON
itself, but a stream as AWS event-stream frames (`application/vnd.amazon.eventstream`), one
`chunk` per Anthropic stream event (`{"bytes": base64(event JSON)}`), and errors in AWS's
shape: the HTTP status, an `x-amzn-ErrorType` header and `{"message": ...}` before the
stream, an exception frame once it started (providers.md 2c, the AWS InvokeModel and
InvokeModelWithResponseStream references). vdm serves those clients on its Anthropic path and
re-frames the answer at the edge: `BedrockFramer` turns the Anthropic SSE it wrote (or relayed
from an Anthropic-format provider) into frames, `aws_error` an Anthropic error response into
AWS's.
"""

from __future__ import annotations

import json
from typing import Any

from vdm.protocol.aws_eventstream import chunk_event, exception_event, exception_kind
from vdm.protocol.errors import anthropic_error_type
from vdm.protocol.sse import SseDecoder, SseEvent

#: Where Bedrock-mode clients read a stream's content type.
EVENTSTREAM = b"application/vnd.amazon.eventstream"

#: Anthropic error type -> the AWS error a Bedrock runtime call answers before a stream
#: (`x-amzn-ErrorType`; the errors of the InvokeModel API reference). Others: internal.
AWS_ERROR_OF_ANTHROPIC: dict[str, str] = {
    "invalid_request_error": "ValidationException",
    "request_too_large": "ValidationException",
    "authentication_error": "AccessDeniedException",
    "permission_error": "AccessDeniedException",
    "not_found_error": "ResourceNotFoundException",
    "rate_limit_error": "ThrottlingException",
    "overloaded_error": "ServiceUnavailableException",
    "timeout_error": "ModelTimeoutException",
}


class BedrockFramer:
    """Anthropic SSE bytes in, event-stream frames out: each event's data as a `chunk`, an
    `error` event as the exception frame Bedrock would send (`exception_kind`). Fed reads of
    any size; an event cut between reads waits for its end."""

    __slots__ = ("_decoder",)

    def __init__(self) -> None:
        self._decoder = SseDecoder()

    def feed(self, sse: bytes) -> bytes:
        return b"".join(_frame(e) for e in self._decoder.feed(sse))

    def finish(self) -> bytes:
        """The frames of a last event that had no blank line after it."""
        return b"".join(_frame(e) for e in self._decoder.flush())


def _frame(event: SseEvent) -> bytes:
    if event.event == "error":
        error_type, message = _error_of(event.data.encode(), "api_error")
        return exception_event(exception_kind(error_type), message)
    return chunk_event(event.data.encode())


def aws_error(status: int, body: bytes) -> tuple[bytes, str]:
    """An Anthropic error response's body (`{"type":"error","error":{type, message}}`, or any
    text an upstream answered) as AWS's `{"message": ...}`, and its `x-amzn-ErrorType`."""
    error_type, message = _error_of(body, anthropic_error_type(status))
    kind = AWS_ERROR_OF_ANTHROPIC.get(error_type, "InternalServerException")
    return json.dumps({"message": message}, ensure_ascii=False).encode(), kind


def _error_of(body: bytes, default_type: str) -> tuple[str, str]:
    """The Anthropic error type and message of an error body; the body's text when it is not
    Anthropic's envelope."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        return default_type, body.decode("utf-8", "replace").strip() or default_type
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        kind = error.get("type")
        message = error.get("message")
        return (
            kind if isinstance(kind, str) else default_type,
            message if isinstance(message, str) else json.dumps(error),
        )
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return default_type, data["message"]
    return default_type, body.decode("utf-8", "replace")
