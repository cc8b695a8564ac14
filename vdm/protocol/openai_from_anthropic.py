"""Anthropic Messages request -> OpenAI Chat Completions request (pure).

Fidelity rules (see docs/protocol.md): the system prompt survives (string or blocks, minus
Claude Code's per-version billing header), `role: "system"` entries stay in place, text that
shares a user turn with tool results becomes a user message right after the tool messages,
`is_error` survives as a marker in the tool message, images and PDFs become content parts,
and nothing Anthropic-only is forwarded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import Any

from vdm.protocol.anthropic import (
    Base64Source,
    ContentSource,
    DocumentBlock,
    FileSource,
    ImageBlock,
    MessagesRequest,
    PlainTextSource,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    UrlSource,
)
from vdm.protocol.capabilities import ModelCaps
from vdm.protocol.codec import Target
from vdm.protocol.errors import VdmError

log = logging.getLogger(__name__)

#: Claude Code's first system block; it changes with every CLI version and would defeat
#: upstream prefix caching, and it is meaningless to other providers.
BILLING_HEADER_PREFIX = "x-anthropic-billing-header"

#: Marker that keeps `is_error: true` visible in an OpenAI tool message.
TOOL_ERROR_PREFIX = "[tool error] "

_TOOL_CHOICE = {"auto": "auto", "any": "required", "none": "none"}
_EFFORTS = {"low": "low", "medium": "medium", "high": "high"}
_SESSION_RE = re.compile(r"_session_([0-9A-Za-z-]+)")


def chat_request_from_messages(req: MessagesRequest, target: Target) -> dict[str, Any]:
    """The OpenAI Chat Completions body for `req`, sent to `target.model`."""
    caps = target.caps
    body: dict[str, Any] = {"model": target.model, "messages": _messages(req, caps)}

    max_tokens = req.max_tokens
    if target.max_tokens_limit is not None:
        max_tokens = min(max_tokens, target.max_tokens_limit)
    body[caps.max_tokens_field] = max_tokens

    if caps.sampling:
        if req.temperature is not None:
            body["temperature"] = req.temperature
        if req.top_p is not None:
            body["top_p"] = req.top_p
    if req.stop_sequences:
        body["stop"] = list(req.stop_sequences)

    tools = [t for t in req.tools or () if t.is_client_tool]
    if len(tools) != len(req.tools or ()):
        log.debug("dropped %d server tools", len(req.tools or ()) - len(tools))
    if tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description or "",
                    "parameters": t.input_schema or {"type": "object", "properties": {}},
                },
            }
            for t in tools
        ]
        choice = req.tool_choice
        if choice is not None:
            if choice.type == "tool":
                if not choice.name:
                    raise VdmError(400, "tool_choice.name: required when tool_choice.type is tool")
                body["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
            else:
                body["tool_choice"] = _TOOL_CHOICE[choice.type]
            if choice.disable_parallel_tool_use:
                body["parallel_tool_calls"] = False

    if caps.reasoning:
        effort = reasoning_effort(req, caps)
        if effort is not None:
            body["reasoning_effort"] = effort

    if req.metadata is not None and req.metadata.user_id:
        user, session = _identity(req.metadata.user_id)
        body["user"] = user
        if session and caps.prompt_cache_key:
            body["prompt_cache_key"] = session

    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def reasoning_effort(req: MessagesRequest, caps: ModelCaps) -> str | None:
    """The OpenAI `reasoning_effort` for the client's thinking settings, or None to leave the
    model's default. `output_config.effort` wins over a thinking budget."""
    thinking = req.thinking
    if thinking is not None and thinking.type == "disabled":
        return None
    effort = (req.output_config or {}).get("effort")
    if isinstance(effort, str):
        if effort in ("max", "xhigh"):
            return caps.max_effort
        return _EFFORTS.get(effort)
    if thinking is not None and thinking.type == "enabled" and thinking.budget_tokens:
        budget = thinking.budget_tokens
        return "low" if budget < 4096 else "medium" if budget < 16384 else "high"
    return None


def _identity(user_id: str) -> tuple[str, str | None]:
    """A stable `user` (<= 64 chars) and the session id for `prompt_cache_key`.

    Claude Code sends a JSON string with device_id/account_uuid/session_id; the user is the
    hash of the stable parts so it does not change from one session to the next.
    """
    session: str | None = None
    stable = user_id
    if user_id.startswith("{"):
        try:
            parsed = json.loads(user_id)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            session = parsed.get("session_id") or None
            stable = str(parsed.get("account_uuid") or parsed.get("device_id") or user_id)
    elif match := _SESSION_RE.search(user_id):
        session = match.group(1)
        stable = user_id[: match.start()]
    if len(stable) > 64 or stable != user_id:
        stable = hashlib.sha256(stable.encode()).hexdigest()
    return stable, session


# --- messages -------------------------------------------------------------------------------


def _messages(req: MessagesRequest, caps: ModelCaps) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    system = system_text(req.system)
    if system:
        out.append({"role": "system", "content": system})
    for message in req.messages:
        content = message.content
        if message.role == "system":
            text = content if isinstance(content, str) else _join_text(content)
            out.append({"role": "system", "content": text})
        elif message.role == "user":
            if isinstance(content, str):
                out.append({"role": "user", "content": content})
            else:
                out.extend(_user_messages(content))
        else:
            out.append(_assistant_message(content))
    return out


def system_text(system: str | list[TextBlock] | None) -> str:
    """The system prompt as one string, without Claude Code's billing header block."""
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    return "\n\n".join(
        b.text for b in system if b.text and not b.text.startswith(BILLING_HEADER_PREFIX)
    )


def _join_text(blocks: list[Any]) -> str:
    return "\n\n".join(b.text for b in blocks if isinstance(b, TextBlock))


def _user_messages(blocks: list[Any]) -> list[dict[str, Any]]:
    """Tool results first (OpenAI wants them right after the assistant's tool calls), then
    everything else of the same turn as one user message, so no text is lost."""
    tool_messages: list[dict[str, Any]] = []
    moved: list[dict[str, Any]] = []  # images that sat inside tool results
    parts: list[dict[str, Any]] = []
    for block in blocks:
        if isinstance(block, ToolResultBlock):
            tool_messages.append(_tool_message(block, moved))
        elif isinstance(block, TextBlock):
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, ImageBlock):
            parts.append(_image_part(block))
        elif isinstance(block, DocumentBlock):
            parts.extend(_document_parts(block))
        elif isinstance(block, ThinkingBlock | RedactedThinkingBlock):
            continue
        else:
            log.debug("dropped a %s block from a user turn", getattr(block, "type", "?"))
    parts = moved + parts
    messages = tool_messages
    if parts:
        if len(parts) == 1 and parts[0]["type"] == "text":
            messages.append({"role": "user", "content": parts[0]["text"]})
        else:
            messages.append({"role": "user", "content": parts})
    elif not tool_messages:
        messages.append({"role": "user", "content": ""})
    return messages


def _tool_message(block: ToolResultBlock, moved: list[dict[str, Any]]) -> dict[str, Any]:
    content = block.content
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        texts: list[str] = []
        for item in content:
            if isinstance(item, TextBlock):
                texts.append(item.text)
            elif isinstance(item, ImageBlock):
                # OpenAI tool messages carry text only: the image follows in the user message.
                moved.append(
                    {"type": "text", "text": f"[image from tool result {block.tool_use_id}]"}
                )
                moved.append(_image_part(item))
                texts.append("[image attached below]")
            elif isinstance(item, DocumentBlock):
                texts.extend(p["text"] for p in _document_parts(item) if p["type"] == "text")
        text = "\n".join(texts)
    if block.is_error:
        text = TOOL_ERROR_PREFIX + text
    return {"role": "tool", "tool_call_id": block.tool_use_id, "content": text}


def _image_part(block: ImageBlock) -> dict[str, Any]:
    source = block.source
    if isinstance(source, Base64Source):
        url = f"data:{source.media_type};base64,{source.data}"
    elif isinstance(source, UrlSource):
        url = source.url
    else:
        raise VdmError(
            400, "image.source: file sources are not supported by OpenAI-format providers"
        )
    return {"type": "image_url", "image_url": {"url": url}}


def _document_parts(block: DocumentBlock) -> list[dict[str, Any]]:
    source = block.source
    label = f"{block.title}\n\n" if block.title else ""
    if isinstance(source, PlainTextSource):
        return [{"type": "text", "text": label + source.data}]
    if isinstance(source, ContentSource):
        if isinstance(source.content, str):
            return [{"type": "text", "text": label + source.content}]
        parts: list[dict[str, Any]] = []
        for item in source.content:
            if isinstance(item, TextBlock):
                parts.append({"type": "text", "text": item.text})
            else:
                parts.append(_image_part(item))
        return parts
    if isinstance(source, Base64Source):
        filename = block.title or "document.pdf"
        data = f"data:{source.media_type};base64,{source.data}"
        return [{"type": "file", "file": {"filename": filename, "file_data": data}}]
    kind = "url" if isinstance(source, UrlSource) else "file"
    assert isinstance(source, UrlSource | FileSource)
    raise VdmError(
        400, f"document.source: {kind} sources are not supported by OpenAI-format providers"
    )


def _assistant_message(content: str | list[Any]) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in content:
        if isinstance(block, TextBlock):
            if block.text:
                texts.append(block.text)
        elif isinstance(block, ToolUseBlock):
            tool_calls.append(
                {
                    "id": block.id,
                    "type": "function",
                    "function": {
                        "name": block.name,
                        "arguments": json.dumps(block.input, ensure_ascii=False),
                    },
                }
            )
        # Thinking blocks are the model's private reasoning: OpenAI-format providers neither
        # take them back nor could verify them, so they are not forwarded.
    message: dict[str, Any] = {"role": "assistant", "content": "\n\n".join(texts) or None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    elif message["content"] is None:
        message["content"] = ""
    return message
