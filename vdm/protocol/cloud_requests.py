"""Bedrock's and Vertex's request bodies for Claude as Anthropic Messages bodies (pure).

Claude Code in Bedrock or Vertex mode (gateway contract C12, C13) sends the Messages API's
body with the cloud's differences: no `model` (it is in the URL), an `anthropic_version` of
the cloud's (`bedrock-2023-05-31`, `vertex-2023-10-16`), on Bedrock no `stream` (the
operation says it) and the betas in the body (`anthropic_beta`) rather than in the
`anthropic-beta` header. vdm serves those requests on its Anthropic path: `messages_body`
undoes the differences, so that from there on they are Anthropic requests like any other
(routed, forwarded or translated, accounted).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from vdm.protocol.errors import VdmError

#: A Vertex model id's date: `claude-sonnet-4-5@20250929` is `claude-sonnet-4-5-20250929`
#: (providers.md 3a; Vertex answers with the dashed name).


def messages_body(raw: bytes, model: str | None, stream: bool | None) -> tuple[bytes, list[str]]:
    """The Anthropic Messages body of a Bedrock or Vertex body `raw`, with `model` (when
    given: the model named by the URL) and `stream` (when given: the operation's), without
    `anthropic_version`; and the betas it carried in `anthropic_beta`, for the
    `anthropic-beta` header. Everything else goes as it came. A body that is not a JSON
    object is a 400."""
    data = _object(raw)
    data.pop("anthropic_version", None)
    betas = _betas(data.pop("anthropic_beta", None))
    if model is not None:
        data = {"model": model, **{k: v for k, v in data.items() if k != "model"}}
    if stream is True:
        data["stream"] = True
    elif stream is False:
        data.pop("stream", None)
    try:
        body = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:
        raise VdmError(
            400, "invalid JSON body: a string holds an unpaired UTF-16 surrogate escape"
        ) from None
    except ValueError as exc:  # NaN or Infinity: not JSON
        raise VdmError(400, f"invalid JSON body: {exc}") from None
    return body, betas


def bedrock_count_body(raw: bytes) -> bytes:
    """The InvokeModel body inside a Bedrock CountTokens request
    (`{"input":{"invokeModel":{"body": base64}}}`, providers.md 2e); a 400 naming what is
    missing otherwise (the `converse` input is for non-Anthropic models)."""
    data = _object(raw)
    wrapped = data.get("input")
    invoke = wrapped.get("invokeModel") if isinstance(wrapped, dict) else None
    encoded = invoke.get("body") if isinstance(invoke, dict) else None
    if not isinstance(encoded, str):
        raise VdmError(400, "input.invokeModel.body: a base64 InvokeModel body is required")
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise VdmError(400, "input.invokeModel.body is not base64") from None


def _object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise VdmError(400, "request body is empty: expected a JSON object")
    try:
        data = json.loads(raw)
    except UnicodeDecodeError:
        raise VdmError(400, "invalid JSON body: the body is not UTF-8 text") from None
    except ValueError as exc:
        raise VdmError(400, f"invalid JSON body: {exc}") from None
    if not isinstance(data, dict):
        raise VdmError(400, f"request body must be a JSON object, not {type(data).__name__}")
    return data


def _betas(value: Any) -> list[str]:
    """`anthropic_beta`: a list of names (or a comma-separated string), in order."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        return []
    return [b.strip() for b in items if isinstance(b, str) and b.strip()]
