"""What the two OpenAI request decoders read alike (dialects.md C1, B1, D): the request-level
fields that mean the same in Chat Completions and Responses, and the media parts both send.

Each decoder walks its own messages or items (`anthropic_request_from_chat`,
`anthropic_request_from_responses`); the turns they build come from `openai_turns`, their tools
from `openai_tools_in`. What lives here is what Anthropic needs said differently:

- Sampling: OpenAI's temperature goes to 2, Anthropic's to 1, and recent Claude models refuse
  `temperature` and `top_p` together.
- Structured output: a JSON schema is enforced (`output_config.format`); `json_object` has no
  Anthropic switch, so it becomes an instruction appended to the system prompt.
- Thinking needs 1024 <= budget < `max_tokens`, no forced tool choice, no custom sampling, and
  the signed thinking of the last tool-calling turn. Where these conflict, thinking gives way:
  the client asked for an answer first and a reasoning style second.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from vdm.protocol.errors import VdmError
from vdm.protocol.thinking_budget import THINKING_BUDGETS, fit_budget

log = logging.getLogger(__name__)

#: Room left for the answer above the budget when the client set no maximum.
ANSWER_ROOM = 8192
#: What stands for `response_format: json_object`, which has no Anthropic switch.
JSON_OBJECT_INSTRUCTION = "Reply with a single JSON object."
#: Anthropic's thinking block types: an assistant turn's signed reasoning, which goes first.
THINKING = ("thinking", "redacted_thinking")
_DATA_URL = re.compile(r"data:(?P<type>[^;,]*)(?P<params>(?:;[^,]*)?),(?P<data>.*)", re.DOTALL)


def bad(param: str, why: str) -> VdmError:
    """The 400 for a malformed client field, naming it as the client spelled it."""
    return VdmError(400, f"{param}: {why}", param=param)


def get(obj: Any, key: str) -> Any:
    """`obj[key]` for a dict, None for anything else (a malformed part reads as absent)."""
    return obj.get(key) if isinstance(obj, dict) else None


def model_of(body: dict[str, Any]) -> str:
    """The requested model; VdmError(400) when there is none."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("model", "a model name is required")
    return model


def check_limit(asked: Any, param: str) -> None:
    """VdmError(400) naming `param` for an output limit that is not a positive integer."""
    if asked is not None and (isinstance(asked, bool) or not isinstance(asked, int) or asked < 1):
        raise bad(param, f"{asked!r} is not a positive integer")


def sampling(body: dict[str, Any], out: dict[str, Any]) -> None:
    """`temperature` (clamped to Anthropic's range) or, without it, `top_p`: never both."""
    if (temperature := _number(body.get("temperature"))) is not None:
        out["temperature"] = min(max(temperature, 0.0), 1.0)
    elif (top_p := _number(body.get("top_p"))) is not None:
        out["top_p"] = top_p


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def output_format(
    fmt: Any,
    schema: Any,
    system: list[dict[str, Any]],
    out: dict[str, Any],
    *,
    where: str,
    schema_at: str,
) -> None:
    """Structured output from the client's format object `fmt` and its `schema` (`where` and
    `schema_at`: how the client names them): a schema goes to `output_config.format`, JSON mode
    becomes an instruction appended to `system` (in place)."""
    kind = get(fmt, "type")
    if kind == "json_object":
        system.append({"type": "text", "text": JSON_OBJECT_INSTRUCTION})
    elif kind == "json_schema":
        if not isinstance(schema, dict):
            raise bad(schema_at, "required")
        out["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    elif kind not in (None, "text"):
        log.debug("%s of type %r is unknown: dropped", where, kind)


def finish_request(
    body: dict[str, Any],
    out: dict[str, Any],
    system: list[dict[str, Any]],
    effort: Any,
    asked: int | None,
) -> None:
    """The fields both dialects end a request with, in this order: `system`, thinking for
    `effort` (`asked`: the client's own output limit), `stream`, the user as metadata."""
    if system:
        out["system"] = system
    apply_thinking(effort, out, asked)
    if body.get("stream") is True:
        out["stream"] = True
    user = body.get("safety_identifier") or body.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}


def dropped_fields(
    body: dict[str, Any], handled: frozenset[str], ignored: frozenset[str]
) -> list[tuple[str, str]]:
    """(field, why) for each field of `body` the decoder does not translate, sorted: `ignored`
    ones have no Anthropic counterpart, the rest are unknown. The caller logs them, under its
    own dialect's name."""
    return [
        (key, "has no Anthropic counterpart" if key in ignored else "is unknown")
        for key in sorted(body.keys() - handled)
    ]


def apply_thinking(effort: Any, out: dict[str, Any], asked: int | None) -> None:
    """`reasoning_effort` as a thinking budget within Anthropic's bounds, giving way where it
    conflicts with the rest of the request (see the module docstring). The effort itself goes
    to `output_config.effort` too: a budget cannot say `minimal`, `xhigh` or `max`, and
    providers that take an effort (OpenAI, Gemini, Claude 4.5+) read it from there. `none`
    switches thinking off (`thinking: disabled`), which providers that think by default
    must hear."""
    if effort is None:
        return
    if effort == "none":
        out["thinking"] = {"type": "disabled"}
        return
    budget = THINKING_BUDGETS.get(effort) if isinstance(effort, str) else None
    if budget is None:
        log.debug("reasoning_effort %r is unknown: read as medium", effort)
        effort, budget = "medium", THINKING_BUDGETS["medium"]
    out["output_config"] = {**out.get("output_config", {}), "effort": effort}
    if asked is None:
        out["max_tokens"] = budget + ANSWER_ROOM
    fitted = fit_budget(budget, out["max_tokens"])
    if fitted is None:
        log.debug("max_tokens %s leaves no room for thinking: thinking off", asked)
        return
    budget = fitted
    if get(out.get("tool_choice"), "type") in ("any", "tool"):
        log.debug("a forced tool_choice excludes thinking: thinking off")
        return
    turns = [m["content"] for m in out["messages"] if m["role"] == "assistant"]
    last: list[dict[str, Any]] = turns[-1] if turns else []
    if any(b["type"] == "tool_use" for b in last) and last[0]["type"] not in THINKING:
        log.debug("the last tool call turn carries no signed thinking: thinking off")
        return
    for key in ("temperature", "top_p"):
        if out.pop(key, None) is not None:
            log.debug("%s is not allowed with thinking: dropped", key)
    out["thinking"] = {"type": "enabled", "budget_tokens": budget}


# --- media parts ------------------------------------------------------------------------------


def media_source(url: Any, where: str) -> dict[str, Any]:
    """The Anthropic source of an http(s) URL or a base64 data URL."""
    if not isinstance(url, str) or not url:
        raise bad(where, "required")
    if url.startswith(("http://", "https://")):
        return {"type": "url", "url": url}
    match = _DATA_URL.fullmatch(url)
    if match is None or ";base64" not in match["params"]:
        raise bad(where, "expected an http(s) URL or a base64 data URL")
    return {"type": "base64", "media_type": match["type"] or "image/png", "data": match["data"]}


def document_block(file: Any, where: str) -> dict[str, Any]:
    """A file sent inline (Chat's `file` part, Responses' `input_file`) as a document block;
    an uploaded file's id is a 400, as vdm has no files to read it from."""
    if get(file, "file_id"):
        raise bad(f"{where}.file_id", "uploaded files are not supported; send file_data")
    raw = get(file, "file_data")
    if isinstance(raw, str) and raw and not raw.startswith("data:"):
        raw = f"data:application/pdf;base64,{raw}"  # the SDK documents bare base64 too (a PDF)
    block = {"type": "document", "source": media_source(raw, f"{where}.file_data")}
    if isinstance(title := get(file, "filename"), str):
        block["title"] = title
    return block
