"""The one vdm exception, and the status tables that render it in each client dialect.

The exception family is deliberately flat: every failure the client should see is a
`VdmError` carrying an HTTP status and a message. Rendering happens in one place per dialect
(`anthropic_error_body`), driven by declarative tables: `ANTHROPIC_ERROR_TYPES` for the error
`type`, `SHOULD_RETRY` for the `x-should-retry` header that tells a client whether retrying
can help.

An error that came from an upstream keeps that upstream's own answer (`UpstreamReply`: status,
body bytes with any key masked, the headers a client acts on): when the client and the
provider speak the same dialect the answer is relayed as it is, so the client's recovery,
which matches the provider's wording and `error.type`, keeps working.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sized
from dataclasses import dataclass
from typing import Any

#: Anthropic error `type` for each HTTP status (the API's own table, plus 402, 501 as Claude
#: Code's gateway contract names it, and 504).
ANTHROPIC_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    501: "not_supported",
    504: "timeout_error",
    529: "overloaded_error",
}

#: `x-should-retry` for an error vdm answers, by status: "false" where the same request can
#: never succeed (a wrong key, a bad request, an endpoint not served), so that a client gives
#: up at once instead of retrying for minutes; "true" where waiting may help. Statuses not
#: listed get no header: the client's own rules apply. An upstream's own `x-should-retry`
#: always wins.
SHOULD_RETRY: dict[int, str] = {
    400: "false",
    401: "false",
    402: "false",
    403: "false",
    404: "false",
    405: "false",
    413: "false",
    422: "false",
    501: "false",
    429: "true",
    500: "true",
    502: "true",
    503: "true",
    504: "true",
    529: "true",
}

#: Upstream response headers a client acts on, relayed with an answer from a provider that
#: speaks the client's dialect: Anthropic's `request-id` (quoted in bug reports) and what its
#: SDKs read to decide on a retry.
RELAYED_HEADERS = frozenset(
    {"content-type", "request-id", "retry-after", "retry-after-ms", "x-should-retry"}
)
#: Headers that describe the account whose key made the call: relayed only when that key is
#: the client's own (`!PASSTHRU`), never when it is vdm's (Claude Code's gateway contract,
#: C16: strip `anthropic-ratelimit-*` when the gateway uses its own organisation key).
ACCOUNT_HEADER_PREFIXES = ("anthropic-ratelimit-", "anthropic-organization-id")


def relayed_headers(
    headers: Iterable[tuple[str, str]], *, own_account: bool
) -> list[tuple[bytes, bytes]]:
    """The headers of an upstream answer worth relaying to the client, as ASGI pairs:
    `RELAYED_HEADERS`, plus the account's rate limits when `own_account` (the client's own
    key made the call)."""
    kept: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        name = name.lower()
        if name in RELAYED_HEADERS or (own_account and name.startswith(ACCOUNT_HEADER_PREFIXES)):
            kept.append((name.encode("latin-1"), value.encode("latin-1", "replace")))
    return kept


@dataclass(frozen=True, slots=True)
class UpstreamReply:
    """An upstream's error answer as it came: relayed unchanged to a client of its dialect."""

    #: The provider's `{P}_API_FORMAT` (`anthropic`, `openai`, ...): the dialect of `body`.
    dialect: str
    status: int
    #: The body bytes, any key vdm knows masked.
    body: bytes
    #: `relayed_headers` of the answer.
    headers: list[tuple[bytes, bytes]]


class VdmError(Exception):
    """A failure to report to the client: an HTTP status, a message, optional headers.

    An error that came from the upstream also keeps the provider's own `code` and `param`
    (OpenAI's `error.code` / `error.param`, Google's `error.status`), so a backend can tell
    a rejection it knows how to recover from (`Backend.recover`) without parsing text, and
    the upstream's whole answer (`upstream`), relayed as is to a client of its dialect."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str | None = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
        param: str | None = None,
        upstream: UpstreamReply | None = None,
        overflow: bool = False,
        unavailable: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type or anthropic_error_type(status)
        self.headers = headers or {}
        self.code = code
        self.param = param
        #: The upstream's own answer, when the error is one (see `UpstreamReply`).
        self.upstream = upstream
        #: The upstream said the prompt does not fit its context window (the message is then
        #: in Anthropic's words, `context_overflow`): a flag, so nobody matches text twice.
        self.overflow = overflow
        #: The provider gave no usable answer: unreachable, timed out, every key cooling, or
        #: an answer that is not what it claims. Another provider may well answer.
        self.unavailable = unavailable

    def __repr__(self) -> str:
        return f"VdmError({self.status}, {self.message!r})"


#: Upstream statuses after which another provider may answer the same request: a timeout, a
#: conflict, a rate limit and every server error (529: Anthropic's "overloaded").
FAILOVER_STATUSES = frozenset({408, 409, 429, 529})


def failover_worthy(error: VdmError) -> bool:
    """Whether another provider (a failover target) could answer where this error came from.

    True for an unreachable or timed-out provider, a provider whose keys are all cooling, an
    answer that is not what it claims (`VdmError.unavailable`), and an upstream's 408, 409,
    429 or 5xx. False for vdm's own rejections (a bad request is bad everywhere), for any
    other upstream 4xx (a wrong key or a bad request: moving on would hide it) and for a
    context overflow (`is_context_overflow`: its own, explicit long-context target).

    An upstream's `x-should-retry: false` is its verdict on sending the same request to
    itself again; it says nothing of another provider (OpenAI sends it with the 429 of an
    exhausted quota, exactly when another provider helps), so it does not stop a failover.
    """
    if error.overflow:
        return False
    if error.unavailable:
        return True
    upstream = error.upstream
    if upstream is None:
        return False
    return upstream.status in FAILOVER_STATUSES or upstream.status >= 500


def is_context_overflow(error: VdmError) -> bool:
    """Whether the upstream said the prompt does not fit its context window (a field set
    where the error is made, never a match on the message)."""
    return error.overflow


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


def anthropic_error_response(error: VdmError) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """(status, body, headers) of the HTTP answer to an Anthropic client for `error`.

    An Anthropic-format upstream's own error is relayed as it came (status, body bytes,
    `relayed_headers`) when it is in Anthropic's envelope; any other (an HTML page from a proxy
    on the way, another dialect's body) is rendered in the envelope with its headers. Either
    way `x-should-retry` follows `SHOULD_RETRY` unless the answer already says."""
    upstream = error.upstream
    if upstream is not None and upstream.dialect == "anthropic" and _enveloped(upstream.body):
        status, body, headers = upstream.status, upstream.body, list(upstream.headers)
        if not any(name == b"content-type" for name, _ in headers):
            headers.insert(0, (b"content-type", b"application/json"))
    else:
        status, body = error.status, anthropic_error_body(error)
        headers = [(b"content-type", b"application/json")]
        headers.extend(
            (k.lower().encode(), v.encode("latin-1", "replace")) for k, v in error.headers.items()
        )
    if not any(name == b"x-should-retry" for name, _ in headers):
        should = SHOULD_RETRY.get(status)
        if should is not None:
            headers.append((b"x-should-retry", should.encode()))
    return status, body, headers


def _enveloped(body: bytes) -> bool:
    """Whether `body` is an error in Anthropic's envelope (`{"type":"error","error":{…}}`)."""
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return (
        isinstance(data, dict)
        and data.get("type") == "error"
        and isinstance(data.get("error"), dict)
    )


def anthropic_error_event(error: VdmError) -> bytes:
    """The same error as one SSE `event: error`, for failures after a stream has started."""
    body = json.dumps(anthropic_error_dict(error.error_type, error.message))
    return f"event: error\ndata: {body}\n\n".encode()


# --- context overflow ---------------------------------------------------------------------------

#: How providers say the prompt does not fit the context window: OpenAI, Azure, DeepSeek,
#: vLLM and Groq ("maximum context length"), Gemini ("input token count … exceeds the maximum
#: number of tokens allowed"), Mistral ("too large for model with … maximum context length"),
#: and the phrases Claude Code 2.1.330 itself recognises from gateways and local servers.
OVERFLOW_PHRASES: tuple[str, ...] = (
    "maximum context length",
    "context_length_exceeded",
    "context length",
    "context window",
    "contextwindowexceedederror",
    "longer than the maximum model length",
    "longer than the model's context length",
    "exceeds the available context size",
    "exceeds the maximum number of tokens allowed",
    "exceeded model token limit",
    "input token length too long",
    "input tokens exceed the configured limit",
    "maximum context limit",
    "maximum prompt length",
    "prompt exceeds max length",
    "tokens in request more than max tokens allowed",
    "range of input length should be",
    "but model only supports up to",
    "reduce the length of the messages",
    "`inputs` tokens + `max_new_tokens` must be",
    "context exceeds your deployment",
    "too many input tokens",
    "prompt is too long",
)
_OVERFLOW = re.compile("|".join(re.escape(p) for p in OVERFLOW_PHRASES), re.IGNORECASE)
#: "… maximum context length is 128000 tokens … resulted in 130412 tokens …" (any order).
_LIMIT = re.compile(
    r"(?:maximum|limit)[^\d]{0,40}?(\d[\d,]*)\s*tokens|tokens allowed \(?(\d[\d,]*)",
    re.IGNORECASE,
)
_ASKED = re.compile(
    r"(?:resulted in|requested|contains|input token count \(?|you sent)[^\d]{0,20}(\d[\d,]*)",
    re.IGNORECASE,
)
#: "(22000 in the messages, 128000 in the completion)" (OpenAI, DeepSeek) or "230462 tokens
#: from the input messages and 32000 tokens for the completion" (vLLM).
_SHARES = re.compile(
    r"(\d[\d,]*) (?:tokens )?in the messages, (\d[\d,]*) (?:tokens )?in the completion"
    r"|(\d[\d,]*) tokens from the input messages and (\d[\d,]*) tokens for the completion",
    re.IGNORECASE,
)
#: Claude Code compacts the conversation when an error message starts with this (Anthropic's
#: own wording: "prompt is too long: 210118 tokens > 200000 maximum").
PROMPT_TOO_LONG = "prompt is too long"
#: Anthropic's wording when the prompt fits but the prompt plus `max_tokens` does not; Claude
#: Code then retries at once with a `max_tokens` that fits, instead of compacting.
MAX_TOKENS_TOO_LONG = "input length and `max_tokens` exceed context limit"


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def context_overflow(message: str, code: object = None) -> str | None:
    """Anthropic's wording for a provider's "the prompt does not fit" error, which makes
    Claude Code compact the conversation; None for any other error."""
    if code != "context_length_exceeded" and not _OVERFLOW.search(message):
        return None
    if message.lower().startswith(PROMPT_TOO_LONG):
        return message
    limit, asked = _LIMIT.search(message), _ASKED.search(message)
    shares = _SHARES.search(message)
    if limit and shares:
        maximum = _number(limit.group(1) or limit.group(2))
        prompt = _number(shares.group(1) or shares.group(3))
        completion = _number(shares.group(2) or shares.group(4))
        if prompt < maximum:
            # The prompt fits: only max_tokens is too large. Compacting would not help.
            return f"{MAX_TOKENS_TOO_LONG}: {prompt} + {completion} > {maximum} ({message})"
    if limit and asked:
        tokens, most = _number(asked.group(1)), _number(limit.group(1) or limit.group(2))
        return f"{PROMPT_TOO_LONG}: {tokens} tokens > {most} maximum ({message})"
    return f"{PROMPT_TOO_LONG}: {message}"


def held(error: VdmError, out: Sized) -> VdmError:
    """An in-band upstream error a stream decoder met in one read: raised at once when
    nothing came before it in that read, else returned for the decoder to keep and raise
    from `finish`, so that the events before it (text the client should see) go out first.
    A fast upstream's whole burst, error included, arrives in one read."""
    if not out:
        raise error
    return error
