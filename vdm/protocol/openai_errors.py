"""OpenAI-shaped errors (`{"error": {message, type, param, code}}`), for Chat and Responses
clients alike: the status a client gets, the `code` it branches on, and when an upstream's own
OpenAI-enveloped answer is relayed as it came (dialects.md C2, C3).

Pure: no I/O; the server sends what these functions build (vdm/server/chat_frontend.py).
"""

from __future__ import annotations

import json
from typing import Any

from vdm.protocol.errors import SHOULD_RETRY, VdmError
from vdm.protocol.sse import dumps

#: HTTP status for a Chat client, where it differs: 529 (Anthropic's "overloaded") is not a
#: status OpenAI clients know; 503 makes the SDK retry it as a server error.
OPENAI_STATUSES: dict[int, int] = {529: 503}

#: OpenAI `error.code` values an upstream may already have given; kept as they came so a
#: client's own recovery (matching the code) works through vdm.
_OPENAI_CODES = frozenset(
    {
        "context_length_exceeded",
        "rate_limit_exceeded",
        "model_not_found",
        "insufficient_quota",
        "invalid_api_key",
        "string_above_max_length",
        "invalid_prompt",
    }
)


def openai_status(status: int) -> int:
    """The HTTP status a Chat client gets for a vdm error of `status`."""
    return OPENAI_STATUSES.get(status, status)


def openai_error_code(exc: VdmError) -> str | None:
    """OpenAI's `error.code` where one is known: clients branch on it (the SDK's users retry
    `rate_limit_exceeded`, compact on `context_length_exceeded`)."""
    if exc.overflow:
        return "context_length_exceeded"
    if exc.code in _OPENAI_CODES:
        return exc.code
    if exc.status == 429:
        return "rate_limit_exceeded"
    # Anthropic answers an unknown model with 404 "model: <name>".
    if exc.status == 404 and exc.message.startswith("model"):
        return "model_not_found"
    return None


def openai_error_dict(exc: VdmError) -> dict[str, Any]:
    """`{"error": {message, type, param, code}}`; `type` stays the Anthropic error type, the
    most precise word vdm has for what went wrong."""
    return {
        "error": {
            "message": exc.message,
            "type": exc.error_type,
            "param": exc.param,
            "code": openai_error_code(exc),
        }
    }


def openai_error_body(exc: VdmError) -> bytes:
    """The error body as compact JSON bytes."""
    return dumps(openai_error_dict(exc)).encode()


def openai_error_response(
    exc: VdmError, dialects: frozenset[str] = frozenset({"openai", "responses"})
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """(status, body, headers) of the HTTP answer to an OpenAI client for `exc`: an upstream
    of one of `dialects` (the client's own) answered in OpenAI's envelope is relayed as it
    came, so the client's recovery, which matches the provider's code and wording, works;
    anything else is rendered in the envelope, with vdm's headers (`retry-after`, ...) and
    `x-should-retry`."""
    upstream = exc.upstream
    if upstream is not None and upstream.dialect in dialects and _openai_enveloped(upstream.body):
        status, body, headers = upstream.status, upstream.body, list(upstream.headers)
        headers = [h for h in headers if h[0] != b"content-type"]
    else:
        status, body = openai_status(exc.status), openai_error_body(exc)
        headers = [
            (k.lower().encode(), v.encode("latin-1", "replace")) for k, v in exc.headers.items()
        ]
    headers.insert(0, (b"content-type", b"application/json"))
    if not any(name == b"x-should-retry" for name, _ in headers):
        should = SHOULD_RETRY.get(status)
        if should is not None:
            headers.append((b"x-should-retry", should.encode()))
    return status, body, headers


def _openai_enveloped(body: bytes) -> bool:
    """Whether `body` is an error in OpenAI's envelope (`{"error": {"message": …}}`)."""
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and isinstance(data.get("error"), dict)
