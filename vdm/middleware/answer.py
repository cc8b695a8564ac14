"""A middleware's own `Answer` as the client gets it: a whole Anthropic message, or the
canonical events of one for a stream (pure). The frontend then writes either in the client's
dialect, as it writes a provider's."""

from __future__ import annotations

import json
from typing import Any

from vdm.middleware.api import Answer
from vdm.protocol.anthropic_stream import anthropic_message, new_tool_id
from vdm.protocol.events import (
    BlockStop,
    Event,
    InputJsonDelta,
    MessageEnd,
    RedactedThinkingStart,
    SignatureDelta,
    TextDelta,
    TextStart,
    ThinkingDelta,
    ThinkingStart,
    ToolUseStart,
)


def usage_of(answer: Answer) -> dict[str, int]:
    """The answer's usage: zero tokens unless the middleware says."""
    return {"input_tokens": 0, "output_tokens": 0, **answer.usage}


def message_of(answer: Answer, requested: str) -> dict[str, Any]:
    """The whole Anthropic message, under the client's model name; a `tool_use` block
    without an id gets one."""
    content = [_with_id(dict(block)) for block in answer.content]
    return anthropic_message(
        requested, content, answer.stop_reason, answer.stop_sequence, usage_of(answer)
    )


def events_of(message: dict[str, Any]) -> list[Event]:
    """The canonical events of a whole message (`message_of`): one block after another,
    gap-free indexes, then its end. Empty text blocks and blocks of kinds the events cannot
    carry are left out."""
    out: list[Event] = []
    index = 0
    for block in message["content"]:
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            out += [TextStart(index), TextDelta(index, block["text"])]
        elif kind == "tool_use":
            arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
            out += [
                ToolUseStart(index, block["id"], str(block.get("name", ""))),
                InputJsonDelta(index, arguments),
            ]
        elif kind == "thinking" and block.get("thinking"):
            out += [ThinkingStart(index), ThinkingDelta(index, block["thinking"])]
            if block.get("signature"):
                out.append(SignatureDelta(index, block["signature"]))
        elif kind == "redacted_thinking" and block.get("data"):
            out.append(RedactedThinkingStart(index, block["data"]))
        else:
            continue
        out.append(BlockStop(index))
        index += 1
    out.append(MessageEnd(message["stop_reason"], message["stop_sequence"], message["usage"]))
    return out


def _with_id(block: dict[str, Any]) -> dict[str, Any]:
    if block.get("type") == "tool_use" and not block.get("id"):
        block["id"] = new_tool_id()
    return block
