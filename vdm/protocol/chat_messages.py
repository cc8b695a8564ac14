"""The history of an Anthropic request as OpenAI Chat Completions `messages` (pure).

The system prompt and `role: "system"` entries stay system messages in place; tool results
come first in a user turn (OpenAI wants them right after the assistant's tool calls), the
rest of the turn follows as one user message; `is_error` survives as a marker; images inside
tool results follow in that user message (tool messages carry text only).

Per-provider rules come from the target's capabilities (docs/backends/chat.md): reasoning
that must travel back (`reasoning_content`), Gemini thought signatures on tool calls,
Mistral's tool id format, and models that take text only (`text_only`).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Any

from vdm.protocol import jsonio
from vdm.protocol.anthropic import (
    DocumentBlock,
    ImageBlock,
    MessagesRequest,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from vdm.protocol.codec import Target
from vdm.protocol.current_turn import SKIP_SIGNATURE, turn_start
from vdm.protocol.signatures import CHAT_REASONING, restore_tool_id, split_thought_id
from vdm.protocol.system_prompt import joined_text, system_text
from vdm.protocol.tools_out import tool_name
from vdm.protocol.user_parts import (
    CHAT_PARTS,
    TOOL_ERROR_PREFIX,
    block_parts,
    document_parts,
    result_items,
)

log = logging.getLogger(__name__)

_ALNUM9 = re.compile(r"[A-Za-z0-9]{9}")
_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#: What a model that takes text only reads where an image or file was.
UNSEEN_PART = "[{kind} not shown: {model} accepts text only]"
_PART_KINDS = {"image_url": "image", "file": "file", "input_audio": "audio"}


def chat_messages(req: MessagesRequest, target: Target) -> list[dict[str, Any]]:
    """The `messages` for `req`, sent to `target`."""
    ctx = _Context.of(req, target)
    out: list[dict[str, Any]] = []
    system = system_text(req.system)
    if system:
        out.append({"role": "system", "content": system})
    for index, message in enumerate(req.messages):
        content = message.content
        if message.role == "system":
            text = content if isinstance(content, str) else joined_text(content)
            out.append({"role": "system", "content": text})
        elif message.role == "user":
            if isinstance(content, str):
                out.append({"role": "user", "content": content})
            else:
                out.extend(_user_messages(content, ctx))
        else:
            out.append(_assistant_message(content, ctx, index >= ctx.turn_start))
    return out


def text_only(body: dict[str, Any]) -> None:
    """Replace image, file and audio parts by a text note, for models that refuse them: the
    request goes through and the model knows something was there."""
    model = body.get("model")
    for message in body["messages"]:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        parts: list[dict[str, Any]] = []
        for part in content:
            kind = _PART_KINDS.get(str(part.get("type"))) if isinstance(part, dict) else None
            if kind is None:
                parts.append(part)
                continue
            note = UNSEEN_PART.format(kind=kind, model=model)
            log.debug("replaced a %s part with a note: %s takes text only", kind, model)
            if parts and parts[-1].get("type") == "text":
                parts[-1] = {"type": "text", "text": f"{parts[-1]['text']}\n{note}"}
            else:
                parts.append({"type": "text", "text": note})
        if all(p.get("type") == "text" for p in parts):
            message["content"] = "\n".join(p["text"] for p in parts)
        else:
            message["content"] = parts


def alnum9(tool_id: str) -> str:
    """A stable `[A-Za-z0-9]{9}` id for `tool_id` (62**9 values: collisions are negligible)."""
    number = int.from_bytes(hashlib.sha256(tool_id.encode()).digest()[:8], "big")
    chars = []
    for _ in range(9):
        number, digit = divmod(number, 62)
        chars.append(_ALNUM[digit])
    return "".join(chars)


@dataclass(slots=True)
class _Context:
    """What the message encoders need to know about the request and its destination."""

    target: Target
    #: Assistant turns carry `reasoning_content` (DeepSeek V4 / Kimi thinking).
    echo: bool
    #: Tool call ids must be `[A-Za-z0-9]{9}` (Mistral).
    alnum9: bool
    #: Tool calls carry Gemini thought signatures (`extra_content`).
    signatures: bool
    #: Index of the first message of the current turn: Gemini checks signatures only there.
    turn_start: int

    @classmethod
    def of(cls, req: MessagesRequest, target: Target) -> _Context:
        caps = target.caps
        # With thinking switched off (DeepSeek V4 `thinking: disabled`) nothing must travel
        # back; models whose thinking cannot be switched off always think.
        off = caps.thinking_switch and req.thinking is not None and req.thinking.type == "disabled"
        return cls(
            target=target,
            echo=caps.reasoning_echo and not off,
            alnum9=caps.tool_id == "alnum9",
            signatures=caps.thought_signatures,
            turn_start=turn_start(req.messages) if caps.thought_signatures else 0,
        )

    def wire_id(self, client_id: str) -> tuple[str, str | None]:
        """(the id the provider sees, the Gemini thought signature the client's id carried).

        A signature rides in the client's id (vdm/protocol/signatures.py); the provider gets
        the base id, and its own id where vdm had to encode it (`vdmid_…`). Mistral gets a
        deterministic 9-character hash of anything else, the same in the assistant's tool
        calls and in the tool messages. Renames are recorded so an id the model echoes maps
        back to the client's.
        """
        upstream, signature = split_thought_id(client_id)
        upstream = restore_tool_id(upstream)
        if self.alnum9 and not _ALNUM9.fullmatch(upstream):
            upstream = alnum9(upstream)
        if upstream != client_id:
            self.target.tool_ids[upstream] = client_id
        return upstream, signature


def _user_messages(blocks: list[Any], ctx: _Context) -> list[dict[str, Any]]:
    """Tool results first (OpenAI wants them right after the assistant's tool calls), then
    everything else of the same turn as one user message, so no text is lost."""
    tool_messages: list[dict[str, Any]] = []
    moved: list[dict[str, Any]] = []  # images that sat inside tool results
    parts: list[dict[str, Any]] = []
    for block in blocks:
        if isinstance(block, ToolResultBlock):
            tool_messages.append(_tool_message(block, moved, ctx))
        else:
            parts.extend(block_parts(block, CHAT_PARTS))
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


def _tool_message(
    block: ToolResultBlock, moved: list[dict[str, Any]], ctx: _Context
) -> dict[str, Any]:
    texts: list[str] = []
    for item in result_items(block, lambda name: tool_name(name, ctx.target)):
        if isinstance(item, TextBlock):
            texts.append(item.text)
        elif isinstance(item, ImageBlock):
            # OpenAI tool messages carry text only: the image follows in the user message.
            moved.append({"type": "text", "text": f"[image from tool result {block.tool_use_id}]"})
            moved.append(CHAT_PARTS.image(item))
            texts.append("[image attached below]")
        elif isinstance(item, DocumentBlock):
            texts.extend(p["text"] for p in document_parts(item, CHAT_PARTS) if p["type"] == "text")
    text = "\n".join(texts)
    if block.is_error:
        text = TOOL_ERROR_PREFIX + text
    return {"role": "tool", "tool_call_id": ctx.wire_id(block.tool_use_id)[0], "content": text}


def _assistant_message(content: str | list[Any], ctx: _Context, current: bool) -> dict[str, Any]:
    """One assistant turn. `current`: it belongs to the turn in progress (Gemini checks the
    thought signatures of those calls)."""
    if isinstance(content, str):
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if ctx.echo:
            message["reasoning_content"] = ""
        return message
    texts: list[str] = []
    reasoning: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    uses: list[ToolUseBlock] = []
    for block in content:
        if isinstance(block, TextBlock):
            if block.text:
                texts.append(block.text)
        elif isinstance(block, ToolUseBlock):
            tool_calls.append(_tool_call(block, ctx))
            uses.append(block)
        elif isinstance(block, ThinkingBlock) and ctx.echo:
            # Reasoning vdm received as `reasoning_content` (signed `vdm-rc1`, or unsigned
            # from an older vdm) goes back where the provider needs it. Other thinking (signed
            # by Anthropic, or carrying Responses/Gemini state) is not reasoning_content.
            if block.thinking and block.signature in (None, "", CHAT_REASONING):
                reasoning.append(block.thinking)
        # Otherwise thinking blocks are the model's private reasoning: OpenAI-format
        # providers neither take them back nor could verify them.
    message = {"role": "assistant", "content": "\n\n".join(texts) or None}
    if tool_calls:
        message["tool_calls"] = tool_calls
        if current and ctx.signatures and "extra_content" not in tool_calls[0]:
            # Gemini 3 wants a signature on the first call of each step of the current turn;
            # a call it did not make (another model's, or one whose signature was lost) gets
            # the documented stand-in. Later parallel calls are never stamped.
            tool_calls[0]["extra_content"] = {"google": {"thought_signature": SKIP_SIGNATURE}}
    elif message["content"] is None:
        message["content"] = ""
    if ctx.echo:
        message["reasoning_content"] = "".join(reasoning) or _cached_reasoning(uses, ctx)
    return message


def _tool_call(block: ToolUseBlock, ctx: _Context) -> dict[str, Any]:
    call_id, signature = ctx.wire_id(block.id)
    call: dict[str, Any] = {
        "id": call_id,
        "type": "function",
        "function": {
            "name": tool_name(block.name, ctx.target),
            "arguments": jsonio.tool_arguments(block.input),
        },
    }
    if signature and ctx.signatures and "skip-signatures" not in ctx.target.degraded:
        # (after Gemini refused a replayed one: none, the stand-in goes on the first call)
        call["extra_content"] = {"google": {"thought_signature": signature}}
    return call


def _cached_reasoning(uses: list[ToolUseBlock], ctx: _Context) -> str:
    """The reasoning of a tool-call turn whose thinking block the client dropped, from the
    gateway's cache; else the empty string.

    DeepSeek V4 and Kimi reject a tool-call turn without the `reasoning_content` field, and
    take an empty one: it is what they themselves return for a call made without reasoning,
    and what the clients that backfill the field send (docs/backends/chat.md).
    """
    cache = ctx.target.reasoning_cache
    if cache is not None:
        for block in uses:
            found = cache.get(block.id, block.name, block.input)
            if found:
                return found
    if uses:
        ids = [block.id for block in uses]
        log.debug("no reasoning to send back for tool calls %s: sending it empty", ids)
    return ""
