"""Reading what Claude Code sent the fake OpenAI upstream, and answering in kind: shared by
the end-to-end tests (`vdm server start` and `vdm wrap`)."""

from __future__ import annotations

from typing import Any

from tests.fakes.openai_upstream import (
    JsonReply,
    Recorded,
    Reply,
    SseReply,
    ToolCallSpec,
    completion,
    stream_chunks,
)


def tool_names(body: Any) -> list[str]:
    """The names of the tools a Chat Completions request offers."""
    if not isinstance(body, dict):
        return []
    return [
        str(tool["function"].get("name"))
        for tool in body.get("tools") or []
        if isinstance(tool, dict) and isinstance(tool.get("function"), dict)
    ]


def text_of(content: Any) -> str:
    """The text of an OpenAI message content (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def messages_of(request: Recorded) -> list[dict[str, Any]]:
    body = request.json if isinstance(request.json, dict) else {}
    return [m for m in body.get("messages") or [] if isinstance(m, dict)]


def reply_to(body: Any, text: str = "", tool_calls: list[ToolCallSpec] | None = None) -> Reply:
    """A reply in the shape the request asked for (streamed or not)."""
    if isinstance(body, dict) and body.get("stream"):
        return SseReply(stream_chunks(text, tool_calls=tool_calls))
    return JsonReply(completion(text or None, tool_calls=tool_calls))
