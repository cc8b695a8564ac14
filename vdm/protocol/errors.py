"""The one vdm exception, and the status table that renders it in each client dialect.

The exception family is deliberately flat: every failure the client should see is a
`VdmError` carrying an HTTP status and a message. Rendering happens in one place per dialect
(`anthropic_error_body`), driven by the declarative `ANTHROPIC_ERROR_TYPES` table.
"""

from __future__ import annotations

import json
import re
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


# --- context overflow ---------------------------------------------------------------------------

#: How providers say the prompt does not fit the context window (OpenAI, Azure, DeepSeek, vLLM,
#: Groq: "maximum context length"; Gemini: "input token count … exceeds"; Mistral: "too large
#: for model with … maximum context length"; others: "context window", "too many tokens").
_OVERFLOW = re.compile(
    r"context[ _-]length|context window|maximum context|input token count.*exceeds"
    r"|too many (input )?tokens|prompt is too long|reduce the length of the (messages|prompt)",
    re.IGNORECASE | re.DOTALL,
)
#: "… maximum context length is 128000 tokens … resulted in 130412 tokens …" (any order).
_LIMIT = re.compile(
    r"(?:maximum|limit)[^\d]{0,40}?(\d[\d,]*)\s*tokens|tokens allowed \(?(\d[\d,]*)",
    re.IGNORECASE,
)
_ASKED = re.compile(
    r"(?:resulted in|requested|contains|input token count \(?|you sent)[^\d]{0,20}(\d[\d,]*)",
    re.IGNORECASE,
)
#: Claude Code compacts the conversation when an error message starts with this (Anthropic's
#: own wording: "prompt is too long: 210118 tokens > 200000 maximum").
PROMPT_TOO_LONG = "prompt is too long"


def context_overflow(message: str, code: object = None) -> str | None:
    """Anthropic's wording for a provider's "the prompt does not fit" error, which makes
    Claude Code compact the conversation; None for any other error."""
    if code != "context_length_exceeded" and not _OVERFLOW.search(message):
        return None
    if message.lower().startswith(PROMPT_TOO_LONG):
        return message
    limit, asked = _LIMIT.search(message), _ASKED.search(message)
    if limit and asked:
        maximum = (limit.group(1) or limit.group(2)).replace(",", "")
        tokens = asked.group(1).replace(",", "")
        return f"{PROMPT_TOO_LONG}: {tokens} tokens > {maximum} maximum ({message})"
    return f"{PROMPT_TOO_LONG}: {message}"
