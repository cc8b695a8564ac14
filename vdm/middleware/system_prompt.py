"""`system-prompt`: literal replacements in the system prompt, and text appended to it.

    [middleware.system-prompt]
    replacements = [{ find = "You are Claude Code", replace = "You are a coding assistant" }]
    append = "Answer in English."

Replacements apply in order to the text of the `system` prompt (a string, or each of its text
blocks: a block's `cache_control` stays); `append` becomes one more text block at the end,
so the prompt's cached prefix stays the same. Messages are never touched. A request whose
system prompt nothing applies to goes on unchanged (on the Anthropic pass-through: its bytes
as they came).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vdm.middleware.api import BaseMiddleware, Context
from vdm.protocol.anthropic import MessagesRequest, TextBlock

_OPTIONS = frozenset({"replacements", "append"})

#: The system prompt as the request model holds it.
System = Any


class SystemPrompt(BaseMiddleware):
    """Edits the system prompt: `replacements` (literal, in order) then `append`."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        unknown = sorted(set(self.options) - _OPTIONS)
        if unknown:
            raise ValueError(f"unknown option {', '.join(unknown)} (use replacements, append)")
        self.replacements = _replacements(self.options.get("replacements", []))
        append = self.options.get("append")
        if append is not None and not isinstance(append, str):
            raise ValueError("append must be a string")
        self.append: str | None = append or None
        if not self.replacements and self.append is None:
            raise ValueError("set `replacements` or `append`")

    async def on_request(self, ctx: Context, request: MessagesRequest) -> MessagesRequest | None:
        system = request.system
        edited = _replaced(system, self.replacements)
        if self.append is not None:
            edited = _appended(edited, self.append)
        if edited is system:
            return None
        return request.model_copy(update={"system": edited})


def _replacements(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list):
        raise ValueError("replacements must be a list of {find, replace} tables")
    found: list[tuple[str, str]] = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or set(item) != {"find", "replace"}:
            raise ValueError(f"replacements[{i}] must be a table with `find` and `replace`")
        find, replace = item["find"], item["replace"]
        if not isinstance(find, str) or not find or not isinstance(replace, str):
            raise ValueError(f"replacements[{i}]: `find` (not empty) and `replace` are strings")
        found.append((find, replace))
    return tuple(found)


def _text(text: str, replacements: tuple[tuple[str, str], ...]) -> str:
    for find, replace in replacements:
        text = text.replace(find, replace)
    return text


def _replaced(system: System, replacements: tuple[tuple[str, str], ...]) -> System:
    """`system` with the replacements applied; the very same object when none matched."""
    if not replacements or not system:
        return system
    if isinstance(system, str):
        text = _text(system, replacements)
        return system if text == system else text
    blocks: list[Any] = []
    changed = False
    for block in system:
        if isinstance(block, TextBlock):
            text = _text(block.text, replacements)
            if text != block.text:
                block = block.model_copy(update={"text": text})
                changed = True
        blocks.append(block)
    return blocks if changed else system


def _appended(system: System, text: str) -> list[Any]:
    """`system` as blocks, `text` the last one."""
    block = TextBlock.model_validate({"type": "text", "text": text})
    if not system:
        return [block]
    if isinstance(system, str):
        return [TextBlock.model_validate({"type": "text", "text": system}), block]
    return [*system, block]
