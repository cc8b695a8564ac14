"""The one vdm exception, and the status table that renders it in each client dialect.

The exception family is deliberately flat: every failure the client should see is a
`VdmError` carrying an HTTP status and a message. Rendering happens in one place per dialect
(`anthropic_error_body`), driven by the declarative `ANTHROPIC_ERROR_TYPES` table.
"""

from __future__ import annotations

import json
from typing import Any

#: Anthropic error `type` for each HTTP status (the API's own table, plus 402 and 504).
ANTHROPIC_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


class VdmError(Exception):
    """A failure to report to the client: an HTTP status, a message, optional headers."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type or anthropic_error_type(status)
        self.headers = headers or {}

    def __repr__(self) -> str:
        return f"VdmError({self.status}, {self.message!r})"


def anthropic_error_type(status: int) -> str:
    """The Anthropic error type for an HTTP status; unknown 4xx/5xx fall back by class."""
    known = ANTHROPIC_ERROR_TYPES.get(status)
    if known is not None:
        return known
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def anthropic_error_dict(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def anthropic_error_body(error: VdmError) -> bytes:
    """`{"type":"error","error":{"type":T,"message":M}}` as JSON bytes."""
    return json.dumps(anthropic_error_dict(error.error_type, error.message)).encode()


def anthropic_error_event(error: VdmError) -> bytes:
    """The same error as one SSE `event: error`, for failures after a stream has started."""
    body = json.dumps(anthropic_error_dict(error.error_type, error.message))
    return f"event: error\ndata: {body}\n\n".encode()
