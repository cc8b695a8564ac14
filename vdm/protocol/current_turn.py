"""Where the current turn starts, and what stands in for a thought signature there.

Gemini 3 validates thought signatures only on the function calls of the current turn (the
messages after the last user message that is not only tool results), and wants the first call
of each of its steps signed. Its native API (`gemini_contents`) and its OpenAI-compatible
endpoint (`chat_messages`) share the rule; a call the model did not make (another model's, or
one whose signature was lost) gets the documented stand-in.
"""

from __future__ import annotations

from typing import Any

from vdm.protocol.anthropic import Message, ToolResultBlock

#: Gemini 3 accepts this in place of a thought signature it never issued (a call made by
#: another model, or one whose signature was lost): ai.google.dev thought-signatures FAQ.
SKIP_SIGNATURE = "skip_thought_signature_validator"


def turn_start(messages: list[Message]) -> int:
    """The index of the first message of the current turn: after the last user message that
    carries no tool result (0 when there is none)."""
    start = 0
    for index, message in enumerate(messages):
        if message.role == "user" and not _has_tool_result(message.content):
            start = index + 1
    return start


def _has_tool_result(content: str | list[Any]) -> bool:
    return not isinstance(content, str) and any(isinstance(b, ToolResultBlock) for b in content)
