"""The history of an Anthropic request as OpenAI Responses `input` items (pure).

Messages become `message` items, tool calls `function_call` items and tool results
`function_call_output` items; thinking blocks that carry vdm's `vdm-rs1:` signature become the
`reasoning` items they came from (replayed only when the request reasons).

The Responses API is strict about history: a reasoning item must be followed by its output
item, every `function_call` needs its `function_call_output` and every output its call, and
`call_id`s and tool names have length and character limits. The encoder repairs what a client
may send that breaks those rules rather than let the provider answer 400.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

from vdm.protocol import jsonio
from vdm.protocol.anthropic import (
    ImageBlock,
    MessagesRequest,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from vdm.protocol.codec import Target
from vdm.protocol.signatures import unpack_reasoning
from vdm.protocol.system_prompt import joined_text
from vdm.protocol.tools_out import tool_name
from vdm.protocol.user_parts import (
    RESPONSES_PARTS,
    TOOL_ERROR_PREFIX,
    block_parts,
    document_parts,
    orphan_text,
    result_items,
)

log = logging.getLogger(__name__)

#: `call_id` is at most 64 characters ("string_above_max_length" otherwise).
_MAX_CALL_ID = 64
#: What a function call whose result the client never sent gets as its output.
INTERRUPTED = TOOL_ERROR_PREFIX + "tool call was interrupted"


def responses_input(req: MessagesRequest, target: Target, *, replay: bool) -> list[dict[str, Any]]:
    """The `input` items for `req`; `replay`: vdm's reasoning items go back (only when this
    request reasons)."""
    return _Input(target, replay=replay).build(req)


def call_id(tool_id: str, target: Target) -> str:
    """A `call_id` of at most 64 characters (ids from other providers may be longer, e.g.
    ones that carry a Gemini thought signature), recorded in `target.tool_ids`."""
    if len(tool_id) <= _MAX_CALL_ID:
        return tool_id
    short = "call_" + hashlib.sha256(tool_id.encode()).hexdigest()[: _MAX_CALL_ID - 5]
    target.tool_ids[short] = tool_id
    return short


@dataclass(slots=True)
class _Input:
    """Builds the `input` list, keeping the pairing rules of the Responses API."""

    target: Target
    #: Replay vdm's reasoning items (only when this request reasons).
    replay: bool
    items: list[dict[str, Any]] = field(default_factory=list)
    #: call_ids of function calls still waiting for their output.
    open_calls: list[str] = field(default_factory=list)
    #: Developer items held back so they never sit between a call and its output.
    held: list[dict[str, Any]] = field(default_factory=list)

    def build(self, req: MessagesRequest) -> list[dict[str, Any]]:
        for message in req.messages:
            content = message.content
            if message.role == "system":
                text = content if isinstance(content, str) else joined_text(content)
                item = _message("developer", [RESPONSES_PARTS.text(text)])
                (self.held if self.open_calls else self.items).append(item)
            elif message.role == "user":
                self._user(content)
            else:
                self._close_calls()
                self._assistant(content)
        self._close_calls()
        return self.items

    def _close_calls(self) -> None:
        """Outputs for the calls the client answered nothing to, then held developer items."""
        for pending in self.open_calls:
            log.debug("function call %s had no tool_result: marked interrupted", pending)
            self.items.append(_call_output(pending, INTERRUPTED))
        self.open_calls.clear()
        self.items.extend(self.held)
        self.held.clear()

    # -- user turns ----------------------------------------------------------------------------

    def _user(self, content: str | list[Any]) -> None:
        if isinstance(content, str):
            self._close_calls()
            if content:
                self.items.append(_message("user", [RESPONSES_PARTS.text(content)]))
            return
        parts: list[dict[str, Any]] = []
        for block in content:
            if not isinstance(block, ToolResultBlock):
                parts.extend(block_parts(block, RESPONSES_PARTS))
                continue
            upstream = call_id(block.tool_use_id, self.target)
            if upstream in self.open_calls:
                self.open_calls.remove(upstream)
                self.items.append(_call_output(upstream, _tool_output(block, self.target)))
            else:
                # An output without its call is a 400: keep what it says as user text.
                log.debug("tool_result for unknown call %s sent as text", block.tool_use_id)
                parts.append(RESPONSES_PARTS.text(_orphan_result_text(block, self.target)))
        self._close_calls()
        if parts:
            self.items.append(_message("user", parts))

    # -- assistant turns -----------------------------------------------------------------------

    def _assistant(self, content: str | list[Any]) -> None:
        if isinstance(content, str):
            if content:
                self.items.append(_message("assistant", [_output_text(content)]))
            return
        turn: list[dict[str, Any]] = []
        texts: list[dict[str, Any]] = []
        for block in content:
            if isinstance(block, TextBlock):
                if block.text:
                    texts.append(_output_text(block.text))
                continue
            if texts:
                turn.append(_message("assistant", texts))
                texts = []
            if isinstance(block, ToolUseBlock):
                upstream = call_id(block.id, self.target)
                turn.append(
                    {
                        "type": "function_call",
                        "call_id": upstream,
                        "name": tool_name(block.name, self.target),
                        "arguments": jsonio.tool_arguments(block.input),
                    }
                )
                self.open_calls.append(upstream)
            elif isinstance(block, ThinkingBlock):
                item = self._reasoning(block)
                if item is not None:
                    turn.append(item)
            else:
                # redacted_thinking and server tool blocks mean nothing to OpenAI.
                log.debug("dropped a %s block from an assistant turn", block.type)
        if texts:
            turn.append(_message("assistant", texts))
        # A reasoning item must be followed by an output item of its turn.
        for i, item in enumerate(turn):
            if item["type"] != "reasoning":
                self.items.append(item)
            elif i + 1 < len(turn) and turn[i + 1]["type"] != "reasoning":
                self.items.append(item)
            else:
                log.debug("dropped reasoning item %s: no output item follows it", item["id"])

    def _reasoning(self, block: ThinkingBlock) -> dict[str, Any] | None:
        """The reasoning item a vdm-rs1 signature carries; anything else (Anthropic's own
        signatures, other vdm carriers) is not OpenAI's to verify and is dropped."""
        unpacked = unpack_reasoning(block.signature)
        if unpacked is None or not self.replay:
            return None
        item_id, encrypted = unpacked
        if not encrypted:
            # With store:false an item the provider cannot decrypt is a 404.
            return None
        summary = [{"type": "summary_text", "text": block.thinking}] if block.thinking else []
        return {
            "type": "reasoning",
            "id": item_id,
            "summary": summary,
            "encrypted_content": encrypted,
        }


def _message(role: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": content}


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text}


def _call_output(upstream_id: str, output: str | list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": upstream_id, "output": output}


def _tool_output(block: ToolResultBlock, target: Target) -> str | list[dict[str, Any]]:
    """A string when the result is text only; input parts when it carries images or files."""
    parts: list[dict[str, Any]] = []
    for item in result_items(block, lambda name: tool_name(name, target)):
        if isinstance(item, TextBlock):
            parts.append(RESPONSES_PARTS.text(item.text))
        elif isinstance(item, ImageBlock):
            parts.append(RESPONSES_PARTS.image(item))
        else:
            parts.extend(document_parts(item, RESPONSES_PARTS))
    prefix = TOOL_ERROR_PREFIX if block.is_error else ""
    if all(p["type"] == "input_text" for p in parts):
        return prefix + "\n".join(p["text"] for p in parts)
    if prefix:
        parts.insert(0, RESPONSES_PARTS.text(prefix.rstrip()))
    return parts


def _orphan_result_text(block: ToolResultBlock, target: Target) -> str:
    output = _tool_output(block, target)
    text = output if isinstance(output, str) else "\n".join(p.get("text", "") for p in output)
    return orphan_text(block.tool_use_id, text)
