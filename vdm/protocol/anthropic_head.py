"""What routing needs of an Anthropic Messages request, and nothing more.

A request to an Anthropic-format provider is forwarded as the client wrote it, so vdm must
not reject a field, value or block type it does not know yet: a new Claude Code release
sends them before any gateway has heard of them (Claude Code's gateway contract, C5). This
reads the body once, as plain JSON, and checks only what vdm itself needs to route it: a JSON
object with a non-empty string `model`. The full request models
(vdm/protocol/anthropic.py) validate it only when it is about to be translated (`validated`),
from the object already parsed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from vdm.protocol import jsonio
from vdm.protocol.errors import VdmError

M = TypeVar("M", bound=BaseModel)

#: A `\uD800`–`\uDFFF` escape: only such a body can hold an unpaired surrogate, which
#: Python's JSON parser accepts and no UTF-8 encoder (nor any upstream) does.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


@dataclass(frozen=True, slots=True)
class Head:
    """A request's body, parsed once: the requested model, whether it streams, and the parsed
    object itself (reused when the body must be changed or translated)."""

    model: str
    stream: bool
    data: dict[str, Any]


def parse_head(body: bytes) -> Head:
    """The head of a `/v1/messages` (or `count_tokens`) body; VdmError(400) in Anthropic's
    words when it is not a JSON object with a non-empty string `model`."""
    if not body.strip():
        raise VdmError(400, "request body is empty: expected a JSON object")
    try:
        data, strict = jsonio.loads_strict(body, parse_constant=_not_json)
    except UnicodeDecodeError:
        raise VdmError(400, "invalid JSON body: the body is not UTF-8 text") from None
    except ValueError as exc:
        raise VdmError(400, f"invalid JSON body: {exc}") from None
    if not isinstance(data, dict):
        raise VdmError(400, f"request body must be a JSON object, not {_kind(data)}")
    # Strict JSON holds no unpaired surrogate: only a body the standard library read may.
    if not strict and _SURROGATE_ESCAPE.search(body) is not None:
        _check_text(data)
    model = data.get("model")
    if model is None:
        raise VdmError(400, "model: Field required")
    if not isinstance(model, str):
        raise VdmError(400, f"model: Input should be a valid string, not {_kind(model)}")
    if not model.strip():
        raise VdmError(400, "model: must not be empty")
    return Head(model, data.get("stream") is True, data)


def _not_json(constant: str) -> Any:
    """`NaN`, `Infinity` and `-Infinity`: Python's parser takes them, JSON has no such values,
    and an upstream would refuse them (or worse, take them)."""
    raise ValueError(f"{constant} is not a JSON value")


def _check_text(data: dict[str, Any]) -> None:
    """VdmError(400) when a string holds an unpaired UTF-16 surrogate (`"\\ud800"`), which
    cannot be written as UTF-8 to any upstream. A pair (an emoji escaped by an ASCII-only
    encoder) is fine."""
    try:
        json.dumps(data, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise VdmError(
            400, "invalid JSON body: a string holds an unpaired UTF-16 surrogate escape"
        ) from None


def validated(model: type[M], head: Head) -> M:
    """The head's body validated as `model` (a request about to be translated); VdmError(400)
    naming the field otherwise."""
    try:
        return model.model_validate(head.data)
    except ValidationError as exc:
        raise VdmError(400, validation_message(exc)) from None


def validation_message(error: ValidationError) -> str:
    """`field.path: problem` for the first few errors, as Anthropic words its 400s."""
    parts: list[str] = []
    for item in error.errors(include_url=False)[:3]:
        loc = ".".join(str(p) for p in item["loc"] if not str(p).startswith("function-"))
        parts.append(f"{loc or 'body'}: {item['msg']}")
    more = error.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _kind(value: Any) -> str:
    """A JSON value's kind, as a message names it."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str):
        return "a string"
    return "null"
