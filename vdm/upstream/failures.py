"""Upstream failures as VdmErrors: an error answer (its status mapped, its message, code and
param kept, any key in it masked) and a transport failure (timeout, refused connection, a
body cut short or undecodable).

AWS (Bedrock) names its error in a header, `x-amzn-ErrorType: ThrottlingException:http://…`,
and its body holds only `{"message"}` (or `{"Message"}`): botocore/parsers.py reads both. The
type becomes the error's `code` and leads its message, so a 403 reads
"UnrecognizedClientException: The security token included in the request is invalid.".

Google (Vertex AI's quota, auth and IAM errors) answers `[{"error": {"code": 429, "message",
"status": "RESOURCE_EXHAUSTED"}}]`: an array around its usual shape (cline/cline#651); its
`status` is the code, the HTTP status gives the type (429 rate limit, 403 permission, 404 not
found). A Claude model not enabled in Model Garden is a 400 FAILED_PRECONDITION ("… not
allowed to use Publisher Model …", yym68686/uni-api#41): a 403 naming the fix."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from vdm.config.secrets import redact, redact_bytes, safe_url
from vdm.config.settings import ProviderConfig
from vdm.protocol.errors import UpstreamReply, VdmError, context_overflow, relayed_headers
from vdm.upstream.timing import CallTimer

#: Upstream HTTP status -> the status the client sees (missing: 4xx -> 400, 5xx -> 502).
STATUS_MAP: dict[int, int] = {
    400: 400,
    401: 401,
    402: 402,
    403: 403,
    404: 404,
    408: 504,
    409: 409,
    413: 413,
    422: 400,
    # Bedrock's ModelErrorException: the model failed, not the request (botocore's
    # bedrock-runtime service-2.json).
    424: 502,
    429: 429,
    500: 500,
    502: 502,
    503: 529,
    504: 504,
    529: 529,
}
#: Response headers passed on to the client with a translated error (a client of the
#: provider's own dialect gets all of `relayed_headers` with the upstream's answer).
_PASS_HEADERS = ("retry-after", "x-should-retry")
#: Bedrock's own "the prompt does not fit" (a ValidationException; Claude's own wording,
#: "prompt is too long: …", also comes through Bedrock and is known already).
_AWS_OVERFLOW = "input is too long for requested model"
#: Vertex's "the project may not use this model": `code` and a text the message holds.
_NOT_ENABLED = ("FAILED_PRECONDITION", "publisher model")
_ENABLE_HINT = " (enable the model for the project in Vertex AI's Model Garden)"


def error_from_response(
    provider: str,
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    secrets: Iterable[str] = (),
    *,
    dialect: str = "",
    own_account: bool = False,
) -> VdmError:
    """The VdmError for an upstream error response, keeping the upstream's own message (with
    any key in it masked), code and param; the error type follows from the mapped status.

    The upstream's whole answer travels with it (`VdmError.upstream`, its body masked too),
    for a client that speaks the provider's `dialect`; `own_account` says the client's own
    key made the call (its rate-limit headers may then be relayed)."""
    mapped = STATUS_MAP.get(status, 400 if status < 500 else 502)
    found, code, param = _error_fields(body)
    message = redact(found or f"HTTP {status}", secrets)
    aws_type = _aws_error_type(headers)
    if aws_type is not None:
        code = code or aws_type
        if not message.startswith(aws_type):
            message = f"{aws_type}: {message}"
        if _AWS_OVERFLOW in message.lower():
            code = "context_length_exceeded"
    if code == _NOT_ENABLED[0] and _NOT_ENABLED[1] in message.lower():
        mapped, message = 403, message + _ENABLE_HINT
    passed = {k: headers[k] for k in _PASS_HEADERS if k in headers}
    text = f"{provider} returned HTTP {status}: {message}"
    relayed = relayed_headers(headers.items(), own_account=own_account)
    upstream = UpstreamReply(dialect, status, redact_bytes(body, secrets), relayed)
    if 400 <= status < 500 and status != 429:
        # In Anthropic's words, so that Claude Code compacts the conversation.
        overflow = context_overflow(message, code)
        if overflow is not None:
            text = f"{overflow} [{provider} returned HTTP {status}]"
            return VdmError(
                400, text, headers=passed, code=code, param=param, upstream=upstream, overflow=True
            )

    return VdmError(mapped, text, headers=passed, code=code, param=param, upstream=upstream)


def _error_fields(body: bytes) -> tuple[str, str | None, str | None]:
    """(message, code, param) of an error body, parsed once: OpenAI's `{"error": {message,
    code, param}}`, Google's `{"error": {code: 400, message, status}}` (its `status` string
    is the code then), a list of either, or plain text."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:500], None, None
    if isinstance(data, list) and data:
        data = data[0]
    if not isinstance(data, dict):
        return json.dumps(data)[:500], None, None
    error = data.get("error", data)
    if isinstance(error, str):
        return error, None, None
    if not isinstance(error, dict):
        return json.dumps(data)[:500], None, None
    keys = ("message", "Message", "detail", "msg")
    message = next((str(error[k]) for k in keys if error.get(k)), "")
    code = error.get("code")
    if not isinstance(code, str):
        code = error.get("status")
    param = error.get("param")
    return (
        message or json.dumps(data)[:500],
        code if isinstance(code, str) else None,
        param if isinstance(param, str) else None,
    )


def _aws_error_type(headers: Mapping[str, str]) -> str | None:
    """`ThrottlingException` of `x-amzn-ErrorType: ThrottlingException:http://…`."""
    raw = headers.get("x-amzn-errortype") or headers.get("x-amzn-ErrorType")
    found = raw.split(":", 1)[0].strip() if raw else ""
    return found or None


def error_from_transport(
    provider: ProviderConfig, exc: Exception, timer: CallTimer | None = None
) -> VdmError:
    """The VdmError for an httpx transport failure (timeout, refused connection, a body cut
    short or undecodable, ...). A timeout is a 504 naming which one fired and the setting to
    raise; `timer` is the call's clock, which tells them apart (vdm/upstream/timing.py).
    Every one is `unavailable`: another provider may answer."""
    if isinstance(exc, httpx.TimeoutException):
        return (timer or CallTimer(provider)).timeout_error(exc)
    name = provider.name
    if isinstance(exc, httpx.ConnectError):
        text = f"cannot reach {name} at {safe_url(provider.base_url)}: {exc}"
    elif isinstance(exc, httpx.RemoteProtocolError):
        text = f"{name} closed the connection unexpectedly: {exc}"
    elif isinstance(exc, httpx.DecodingError):
        text = f"{name} sent a body that cannot be decoded (its content-encoding): {exc}"
    else:
        text = f"{name} request failed: {type(exc).__name__}: {exc}"
    return VdmError(502, text, unavailable=True)
