"""The answer to a web search the provider cannot run (pure).

Where a provider has no search of its own (`ModelCaps.web_search == "none"`, or Gemini with
function tools beside it), the client's `web_search` server tool goes to the model as a plain
`web_search(query)` function (vdm/protocol/web_search.py `search_stub`). A call of it never
reaches the client as a `tool_use` (the client did not declare that tool and would not know
it): vdm answers it the way Anthropic reports a failed search, a `server_tool_use` block, a
`web_search_tool_result` whose content is `{"type": "web_search_tool_result_error",
"error_code": "unavailable"}`, then a text the model reads on its next turn (Claude Code's
WebSearch tool hands it to the main conversation). The message then ends as `end_turn`
unless the model also called one of the client's own tools.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from vdm.protocol.codec import Target
from vdm.protocol.events import (
    BlockStop,
    Event,
    InputJsonDelta,
    MessageEnd,
    ServerToolResultStart,
    ServerToolUseStart,
    TextDelta,
    TextStart,
    ToolUseStart,
)
from vdm.protocol.web_search import new_server_tool_id

#: The stub function's name, as the decoders report it (the client's own spelling).
STUB = "web_search"
UNAVAILABLE = {"type": "web_search_tool_result_error", "error_code": "unavailable"}


def unavailable_note(model: str) -> str:
    return (
        f"Web search is not available for {model} through vdm: this provider has no web "
        "search, so nothing was searched. Answer from what you already know and say that the "
        "web was not searched, or ask the user to pick a model with web search."
    )


def _blocks(call: str, query_json: str, model: str) -> list[dict[str, Any]]:
    try:
        query = json.loads(query_json or "{}").get("query", "")
    except (ValueError, AttributeError):
        query = ""
    return [
        {"type": "server_tool_use", "id": call, "name": "web_search", "input": {"query": query}},
        {"type": "web_search_tool_result", "tool_use_id": call, "content": dict(UNAVAILABLE)},
        {"type": "text", "text": unavailable_note(model)},
    ]


def answer_stub_calls(message: dict[str, Any], target: Target) -> dict[str, Any]:
    """A whole message with the stub's calls answered (see the module docstring)."""
    if not target.web_search_stub:
        return message
    content: list[dict[str, Any]] = []
    answered = client_calls = False
    for block in message["content"]:
        if block.get("type") == "tool_use" and block.get("name") == STUB:
            query = json.dumps(block.get("input") or {})
            content.extend(_blocks(new_server_tool_id(), query, target.model))
            answered = True
        else:
            client_calls = client_calls or block.get("type") == "tool_use"
            content.append(block)
    if answered and not client_calls and message.get("stop_reason") == "tool_use":
        message = {**message, "stop_reason": "end_turn"}
    return {**message, "content": content}


class StubAnswers:
    """The stream form of `answer_stub_calls`: a filter over a decoder's canonical events.
    A stub call's block is held until it stops, then replaced by the three answer blocks;
    the blocks after it are renumbered."""

    __slots__ = ("target", "_offset", "_index", "_parts", "_answered", "_client_calls")

    def __init__(self, target: Target) -> None:
        # The target is read at each call: a backend may build its decoder before the
        # encoder decided on the stub.
        self.target = target
        self._offset = 0
        self._index: int | None = None
        self._parts: list[str] = []
        self._answered = False
        self._client_calls = False

    def __call__(self, events: list[Event]) -> list[Event]:
        if not self.target.web_search_stub:
            return events
        out: list[Event] = []
        for event in events:
            if isinstance(event, ToolUseStart) and event.name == STUB:
                self._index, self._parts = event.index, []
                continue
            index = getattr(event, "index", None)
            if self._index is not None and index == self._index:
                if isinstance(event, InputJsonDelta):
                    self._parts.append(event.partial_json)
                elif isinstance(event, BlockStop):
                    self._answer(event.index + self._offset, out)
                continue
            if isinstance(event, ToolUseStart):
                self._client_calls = True
            if isinstance(event, MessageEnd):
                if self._answered and not self._client_calls and event.stop_reason == "tool_use":
                    event = replace(event, stop_reason="end_turn")
            elif self._offset and index is not None:
                event = replace(event, index=index + self._offset)
            out.append(event)
        return out

    def _answer(self, at: int, out: list[Event]) -> None:
        call = new_server_tool_id()
        use, result, note = _blocks(call, "".join(self._parts), self.target.model)
        query = json.dumps(use["input"], ensure_ascii=False)
        out.append(ServerToolUseStart(at, use["id"], "web_search", query))
        out.append(BlockStop(at))
        out.append(ServerToolResultStart(at + 1, result))
        out.append(BlockStop(at + 1))
        out.append(TextStart(at + 2))
        out.append(TextDelta(at + 2, note["text"]))
        out.append(BlockStop(at + 2))
        self._offset += 2
        self._index = None
        self._answered = True
