"""The requests the matrix sends, shaped like Claude Code 2.1.330's (../shared/protocol/
claude-code/04_* and 05_*): a billing-header system block first, cached system blocks, a
`role: "system"` environment entry after the first user message, its tools (bundled in
claude_code_tools.json so the matrix runs on a clean clone), `metadata.user_id` as a JSON
string, adaptive thinking with an effort, `context_management`, its beta header, and turn 2
carrying the assistant's content back verbatim (thinking blocks with their signatures) and
the tool results with `cache_control` on the last block.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.protocol.grammar import Result

_TOOLS_FILE = Path(__file__).with_name("claude_code_tools.json")
TOOLS: list[dict[str, Any]] = json.loads(_TOOLS_FILE.read_text(encoding="utf-8"))["tools"]
TOOL_NAMES = [tool["name"] for tool in TOOLS]

BILLING = "x-anthropic-billing-header: cc_version=2.1.330.930; cc_entrypoint=sdk-cli;"
IDENTITY = "You are Claude Code, Anthropic's official CLI for Claude."
SYSTEM: list[dict[str, Any]] = [
    {"type": "text", "text": BILLING},
    {"type": "text", "text": IDENTITY, "cache_control": {"type": "ephemeral"}},
    {
        "type": "text",
        "text": "\nYou are an interactive agent that helps users with software engineering "
        "tasks. Use the instructions below and the tools available to you to assist the user.",
        "cache_control": {"type": "ephemeral"},
    },
]
REMINDER = (
    "<system-reminder>\nAs you answer the user's questions, you can use the following "
    "context:\n# currentDate\nToday's date is 2026-11-21.\n</system-reminder>\n"
)
ENVIRONMENT: dict[str, Any] = {
    "role": "system",
    "content": [
        {
            "type": "text",
            "text": "# Environment\nYou have been invoked in the following environment: \n"
            " - Primary working directory: /home/user/project\n - Is a git repository: false\n"
            " - Platform: linux\n - Shell: bash",
            "cache_control": {"type": "ephemeral"},
        }
    ],
}
USER_ID = json.dumps(
    {
        "device_id": "c2f63c157a547fee9eb7e375882f03adf0ed89a82349a6b698a314e68142b429",
        "account_uuid": "",
        "session_id": "03335b60-8b52-417b-8d40-d201031319b3",
    },
    separators=(",", ":"),
)
BETAS = "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27"


def opening(prompt: str, *blocks: dict[str, Any]) -> list[dict[str, Any]]:
    """The first user message (a system reminder, any `blocks`, the prompt) and the
    environment entry Claude Code places right after it."""
    content = [{"type": "text", "text": REMINDER}, *blocks, {"type": "text", "text": prompt}]
    return [{"role": "user", "content": content}, ENVIRONMENT]


def params(model: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The keyword arguments of `client.messages.create` for one Claude Code request."""
    return {
        "model": model,
        "max_tokens": 32000,
        "system": SYSTEM,
        "messages": messages,
        "tools": TOOLS,
        "metadata": {"user_id": USER_ID},
        "extra_headers": {"anthropic-beta": BETAS, "x-app": "cli"},
        "extra_body": {
            "thinking": {"type": "adaptive", "display": "updates"},
            "output_config": {"effort": "high"},
            "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        },
    }


def content_of(result: Result) -> list[dict[str, Any]]:
    """The assistant content a client accumulates from a checked stream, block by block, in
    the form Claude Code sends it back (thinking with its signature, tool input parsed)."""
    out: list[dict[str, Any]] = []
    for block in result.blocks:
        if block.type == "thinking":
            signatures = [d["signature"] for d in block.deltas if d["type"] == "signature_delta"]
            signature = signatures[-1] if signatures else block.start.get("signature", "")
            out.append({"type": "thinking", "thinking": block.thinking, "signature": signature})
        elif block.type == "redacted_thinking":
            out.append({"type": "redacted_thinking", "data": block.start.get("data", "")})
        elif block.type == "text":
            out.append({"type": "text", "text": block.text})
        elif block.type == "tool_use":
            start = block.start
            out.append(
                {"type": "tool_use", "id": start["id"], "name": start["name"], "input": block.input}
            )
    return out


def results(*answers: tuple[str, str]) -> dict[str, Any]:
    """The user turn with one `tool_result` per `(tool_use_id, text)`, the last one marked
    for caching as Claude Code does."""
    content: list[dict[str, Any]] = [
        {"tool_use_id": tool_id, "type": "tool_result", "content": text, "is_error": False}
        for tool_id, text in answers
    ]
    content[-1]["cache_control"] = {"type": "ephemeral"}
    return {"role": "user", "content": content}


def follow_up(
    first: Sequence[dict[str, Any]], assistant: list[dict[str, Any]], answer: dict[str, Any]
) -> list[dict[str, Any]]:
    """Turn 2's messages: turn 1's, the assistant content verbatim, the tool results."""
    return [*first, {"role": "assistant", "content": assistant}, answer]
