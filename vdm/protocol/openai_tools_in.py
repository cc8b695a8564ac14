"""Tool definitions and `tool_choice` as both OpenAI dialects send them, as Anthropic takes
them (dialects.md C1, B2).

The dialects spell a choice alike but for where a tool's name sits: Chat nests it
(`{"type": "function", "function": {"name"}}`, `{"type": "allowed_tools", "allowed_tools":
{"mode", "tools"}}`), Responses does not (`{"type": "function", "name"}`, `{"type":
"allowed_tools", "mode", "tools"}`) and adds custom tools and namespace members, whose
Anthropic name is flattened (`flat_tool_name`). `Spelling` says which; the rules are one:

- A choice naming a tool the request does not define is a 400, as OpenAI answers it.
- `allowed_tools` narrows the tools sent (an unknown name is a 400 too) and its mode becomes
  the choice; an entry for a tool vdm does not serve is left out.
- Without tools a choice means nothing, and Anthropic refuses one: neither is sent.
- `parallel_tool_calls: false` is Anthropic's `disable_parallel_tool_use`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Any

from vdm.protocol.openai_request_in import bad, get

log = logging.getLogger(__name__)

#: The longest tool name every dialect takes (OpenAI's `^[a-zA-Z0-9_-]{1,64}$`): a
#: flattened name within it reaches any provider unaliased.
MAX_TOOL_NAME = 64
_TOOL_CHOICE = {"auto": "auto", "required": "any", "none": "none"}
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_NOT_NAME_CHAR = re.compile(r"[^a-zA-Z0-9_-]")


@dataclass(frozen=True, slots=True)
class Spelling:
    """How one dialect names tools in a `tool_choice`."""

    #: The name sits in a `function` object (Chat), not beside `type` (Responses).
    nested: bool
    #: The `type`s of a choice (or an `allowed_tools` entry) that names one tool (a tuple:
    #: a client's `type` may be unhashable).
    named: tuple[str, ...]
    #: What errors call a tool: the dialect's own word.
    noun: str


CHAT = Spelling(nested=True, named=("function",), noun="function")
RESPONSES = Spelling(nested=False, named=("function", "custom"), noun="tool")


def flat_tool_name(namespace: str, name: str) -> str:
    """The Anthropic name of namespace member `name`: `{namespace}__{name}`, or, when that is
    too long or has other characters, its sanitised start + `_` + 8 hex of its sha1 (the same
    every turn, as Codex resends its tools and history each time)."""
    flat = f"{namespace}__{name}"
    if _TOOL_NAME.fullmatch(flat):
        return flat
    digest = hashlib.sha1(flat.encode()).hexdigest()[:8]
    return _NOT_NAME_CHAR.sub("_", flat)[: MAX_TOOL_NAME - 9] + "_" + digest


def anthropic_tool(
    function: dict[str, Any],
    where: str,
    *,
    omit_defaults: bool,
    schema: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One function (or, given its `schema`, a custom tool) as an Anthropic tool.
    `omit_defaults` leaves out an empty description and `strict: false` (Responses: false is
    Anthropic's default and older APIs lack the field); Chat's are kept as sent."""
    if not isinstance(name := function.get("name"), str) or not name:
        raise bad(f"{where}.name", "required")
    if schema is None:
        # Anthropic requires a schema; a fresh one, as later stages may rewrite it in place.
        params = function.get("parameters")
        schema = params if isinstance(params, dict) else {"type": "object", "properties": {}}
    entry: dict[str, Any] = {"name": name, "input_schema": schema}
    description, strict = function.get("description"), function.get("strict")
    if isinstance(description, str) and (description or not omit_defaults):
        entry["description"] = description
    if strict is True or (strict is False and not omit_defaults):
        entry["strict"] = strict
    return entry


def tool_choice(raw: Any, tools: list[dict[str, Any]], spelling: Spelling) -> dict[str, Any] | None:
    """Anthropic's `tool_choice`; `allowed_tools` narrows `tools` in place."""
    if raw is None:
        return None
    if isinstance(raw, str) and raw in _TOOL_CHOICE:
        return {"type": _TOOL_CHOICE[raw]}
    kind = get(raw, "type")
    if kind in spelling.named:
        name = _name(raw, "tool_choice", spelling)
        if tools and name not in {t["name"] for t in tools}:
            where = _name_at("tool_choice", spelling)
            raise bad(where, f"no {spelling.noun} named {name!r} in tools")
        return {"type": "tool", "name": name}
    if kind == "allowed_tools":
        return {"type": _allowed(raw, tools, spelling)}
    log.debug("tool_choice %r is unknown: the model decides", raw)
    return None


def _allowed(raw: dict[str, Any], tools: list[dict[str, Any]], spelling: Spelling) -> str:
    """Narrow `tools` (in place) to those an `allowed_tools` choice allows; its mode as
    Anthropic's `tool_choice.type`."""
    allowed, where = raw, "tool_choice"
    if spelling.nested:
        allowed, where = get(raw, "allowed_tools"), "tool_choice.allowed_tools"
        if not isinstance(allowed, dict):
            raise bad(where, "an object with `mode` and `tools` required")
    entries = allowed.get("tools")
    if not isinstance(entries, list):
        raise bad(f"{where}.tools", "a list of tools is required")
    names: set[str] = set()
    for k, entry in enumerate(entries):
        at = f"{where}.tools[{k}]"
        if not isinstance(entry, dict):
            raise bad(at, "not an object")
        if entry.get("type") in spelling.named:
            names.add(_name(entry, at, spelling))
        else:
            log.debug("%s of type %r is not a tool vdm serves: left out", at, entry.get("type"))
    if unknown := names - {t["name"] for t in tools}:
        raise bad(f"{where}.tools", f"no {spelling.noun} named {sorted(unknown)[0]!r} in tools")
    tools[:] = [t for t in tools if t["name"] in names]
    return _allowed_mode(allowed.get("mode"))


def _name_at(where: str, spelling: Spelling) -> str:
    return f"{where}.function.name" if spelling.nested else f"{where}.name"


def _name(entry: dict[str, Any], where: str, spelling: Spelling) -> str:
    """The Anthropic name of the tool a choice or `allowed_tools` entry names (a namespace
    member's flattened)."""
    name = get(entry.get("function"), "name") if spelling.nested else entry.get("name")
    if not isinstance(name, str) or not name:
        raise bad(_name_at(where, spelling), "required")
    namespace = None if spelling.nested else entry.get("namespace")
    if isinstance(namespace, str) and namespace:
        return flat_tool_name(namespace, name)
    return name


def _allowed_mode(mode: Any) -> str:
    """Anthropic's `tool_choice.type` for an `allowed_tools` mode (`auto` when unknown)."""
    if mode not in (None, "auto", "required"):
        log.debug("allowed_tools mode %r is unknown: read as auto", mode)
    return "any" if mode == "required" else "auto"


def attach_tools(
    out: dict[str, Any], tools: list[dict[str, Any]], choice: dict[str, Any] | None, serial: bool
) -> None:
    """`tools` and `choice` into `out`, parallel calls off when `serial`; neither without
    tools (Anthropic refuses a tool_choice without tools; without tools it means nothing)."""
    if not tools:
        return
    if serial and get(choice, "type") != "none":
        choice = (choice or {"type": "auto"}) | {"disable_parallel_tool_use": True}
    out["tools"] = tools
    if choice is not None:
        out["tool_choice"] = choice
