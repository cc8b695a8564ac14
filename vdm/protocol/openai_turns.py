"""The Anthropic turns both OpenAI request decoders build, and how tool calls pair with their
results (dialects.md C1, B1). Each structural rule exists because Anthropic refuses what both
OpenAI dialects allow:

- Tool results: OpenAI sends one tool message (Chat) or call output item (Responses) per call;
  Anthropic wants all results of a turn in the next user message, results first, so results
  and the user message right after them merge. A call never answered gets an `is_error`
  result (`INTERRUPTED`) instead of a provider 400; a result whose call is not awaiting one
  stays as text, as Anthropic refuses a dangling `tool_result`.
- System text: leading system/developer text becomes `system` blocks; later text stays in
  place as a `role: "system"` message, but never between a call and its results (forbidden):
  it waits until the results' turn is closed.
- An assistant turn of nothing but thinking is no turn; thinking goes first in the others.

The decoders walk their own messages or items and tell `Turns` what came, in order.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from vdm.protocol.openai_request_in import THINKING, bad, get
from vdm.protocol.signatures import echoed_tool_id

log = logging.getLogger(__name__)

#: The result of a tool call the client never answered (Anthropic 400s on a call without one).
INTERRUPTED = "tool call was interrupted"
#: What an unpaired result reads as when it has no content of its own.
_EMPTY_RESULT = {"type": "text", "text": "(empty tool result)"}


class Turns:
    """(system blocks, Anthropic messages), built in one pass over a conversation.

    Tool results (and the user message after them) gather in `_open` until something else
    comes; system text arriving while a call awaits its results waits in `_deferred`."""

    def __init__(self) -> None:
        self.system: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self._open: list[dict[str, Any]] = []
        self._deferred: list[dict[str, Any]] = []
        #: Ids of the last assistant turn's tool calls not answered yet, in call order.
        self._awaiting: list[str] = []
        #: The tool each id of `_awaiting` calls (Chat's `function` message names only that).
        self._names: dict[str, str] = {}

    def system_text(self, texts: list[str]) -> None:
        """System or developer text (empty strings already left out)."""
        if not self.messages and not self._open:
            self.system.extend({"type": "text", "text": t} for t in texts)
        elif texts:
            entry = {"role": "system", "content": "\n\n".join(texts)}
            held = self._open or self._awaiting
            (self._deferred if held else self.messages).append(entry)

    def user(self, blocks: list[dict[str, Any]]) -> None:
        """A user message: it closes the turn of the results before it."""
        self._answer_missing()
        self._open.extend(blocks)
        self._close()

    def assistant(self, blocks: list[dict[str, Any]], where: str) -> None:
        """An assistant turn (thinking first, then text and tool_use blocks, in order); its
        calls await results from here on."""
        self._close()
        if all(b["type"] in THINKING for b in blocks):
            log.debug("%s is an assistant turn with nothing but thinking: dropped", where)
            return
        self.messages.append({"role": "assistant", "content": blocks})
        uses = [b for b in blocks if b["type"] == "tool_use"]
        self._awaiting = [b["id"] for b in uses]
        self._names = {b["id"]: b["name"] for b in uses}

    def result(self, call_id: str, content: str | list[dict[str, Any]], where: str) -> None:
        """The result of call `call_id` (as the client echoes it), or text when no call
        awaits it."""
        call_id = echoed_tool_id(call_id)
        if call_id not in self._awaiting:
            log.debug("%s answers no pending tool call %r: kept as text", where, call_id)
            if isinstance(content, str):
                content = [{"type": "text", "text": content}] if content else []
            self._open.extend(content or [dict(_EMPTY_RESULT)])
            return
        self._awaiting.remove(call_id)
        self._open.append({"type": "tool_result", "tool_use_id": call_id, "content": content})

    def call_of(self, name: str) -> str:
        """The first call awaiting a result from tool `name`; `name` itself when none does
        (the result then stays as text)."""
        return next((c for c in self._awaiting if self._names.get(c) == name), name)

    def done(self, param: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(system blocks, messages) once the conversation (the client's `param`) has ended."""
        self._close()
        if not any(m["role"] != "system" for m in self.messages):
            raise bad(param, "at least one user or assistant message is required")
        return self.system, self.messages

    def _answer_missing(self) -> None:
        for call_id in self._awaiting:
            result = {"type": "tool_result", "tool_use_id": call_id, "content": INTERRUPTED}
            self._open.append(result | {"is_error": True})
        self._awaiting = []

    def _close(self) -> None:
        """End the open user turn (answering unanswered calls), then release held system text."""
        self._answer_missing()
        if self._open:
            self.messages.append({"role": "user", "content": self._open})
            self._open = []
        self.messages.extend(self._deferred)
        self._deferred = []


def tool_use_block(call: Any, where: str) -> dict[str, Any]:
    """A tool call as a tool_use block. Arguments that are not a JSON object stay visible as
    `{"_raw_arguments": s}`: the client's schema check then fails loudly, where `{}` would run
    the tool silently without them."""
    function, call_id = get(call, "function") or get(call, "custom"), get(call, "id")
    name = get(function, "name")
    if not (isinstance(call_id, str) and call_id and isinstance(name, str) and name):
        raise bad(where, "a tool call needs an id and a function name")
    raw = function.get("arguments", function.get("input"))
    try:
        arguments = json.loads(raw) if isinstance(raw, str) and raw.strip() else raw or {}
    except ValueError:
        arguments = raw
    if not isinstance(arguments, dict):
        arguments = {"_raw_arguments": raw}
    return {"type": "tool_use", "id": echoed_tool_id(call_id), "name": name, "input": arguments}
