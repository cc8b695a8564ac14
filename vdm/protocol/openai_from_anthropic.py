"""Anthropic Messages request -> OpenAI Chat Completions request (pure).

Fidelity rules (see docs/protocol.md): the system prompt survives (string or blocks, minus
Claude Code's per-version billing header), `role: "system"` entries stay in place, text that
shares a user turn with tool results becomes a user message right after the tool messages,
`is_error` survives as a marker in the tool message, images and PDFs become content parts,
tool search results (`tool_reference`) become text naming the loaded tools, structured outputs
(`output_config.format`) become `response_format`, and nothing Anthropic-only is forwarded
(vdm/protocol/translation.py: what is refused, dropped and degraded).

Per-provider rules come from the target's capabilities (docs/backends/chat.md): reasoning that
must travel back (`reasoning_content`), Gemini thought signatures on tool calls, Gemini's
schema subset, Mistral's tool id format, DeepSeek's thinking switch, and fields a provider
refuses.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
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
    SystemBlock,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    UrlSource,
)
from vdm.protocol.capabilities import EFFORT_ORDER, ModelCaps
from vdm.protocol.codec import Target
from vdm.protocol.errors import VdmError
from vdm.protocol.gemini_schema import gemini_schema
from vdm.protocol.rejected_fields import drop_rejected
from vdm.protocol.signatures import CHAT_REASONING, restore_tool_id, split_thought_id
from vdm.protocol.translation import (
    FORMAT_NAME,
    check,
    client_tools,
    output_schema,
    result_content,
    schema_instruction,
    strict_compatible,
)

log = logging.getLogger(__name__)

#: Claude Code's first system block; it changes with every CLI version and would defeat
#: upstream prefix caching, and it is meaningless to other providers.
BILLING_HEADER_PREFIX = "x-anthropic-billing-header"

#: Marker that keeps `is_error: true` visible in an OpenAI tool message.
TOOL_ERROR_PREFIX = "[tool error] "

_TOOL_CHOICE = {"auto": "auto", "any": "required", "none": "none"}
_SESSION_RE = re.compile(r"_session_([0-9A-Za-z-]+)")
#: Gemini 3 accepts this in place of a thought signature it never issued (a call made by
#: another model, or one whose signature was lost): ai.google.dev thought-signatures FAQ.
SKIP_SIGNATURE = "skip_thought_signature_validator"
_ALNUM9 = re.compile(r"[A-Za-z0-9]{9}")
_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#: OpenAI function names: `^[a-zA-Z0-9_-]{1,64}$` (Anthropic allows 128); Gemini's compat
#: endpoint and Groq refuse longer ones too.
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_NOT_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


def chat_request_from_messages(req: MessagesRequest, target: Target) -> dict[str, Any]:
    """The OpenAI Chat Completions body for `req`, sent to `target.model`."""
    check(req, target)
    caps = target.caps
    ctx = _Context.of(req, target)
    body: dict[str, Any] = {"model": target.model, "messages": _messages(req, ctx)}

    max_tokens = target.output_limit(req.max_tokens)
    if max_tokens is not None:
        body[caps.max_tokens_field] = max_tokens

    if caps.sampling:
        if req.temperature is not None:
            body["temperature"] = req.temperature
        if req.top_p is not None:
            body["top_p"] = req.top_p
    if req.stop_sequences:
        body["stop"] = list(req.stop_sequences)

    tools = client_tools(req)
    if tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool_name(t.name, target),
                    "description": t.description,
                    "parameters": _parameters(t.input_schema, caps),
                },
            }
            for t in tools
        ]
        choice = req.tool_choice
        if choice is not None:
            if choice.type == "tool":
                if not choice.name:
                    raise VdmError(400, "tool_choice.name: required when tool_choice.type is tool")
                name = tool_name(choice.name, target)
                body["tool_choice"] = {"type": "function", "function": {"name": name}}
            else:
                body["tool_choice"] = _TOOL_CHOICE[choice.type]
            if choice.disable_parallel_tool_use:
                body["parallel_tool_calls"] = False

    if caps.thinking_switch and req.thinking is not None:
        # DeepSeek V4: thinking is on by default; the client's switch is passed on.
        kind = "disabled" if req.thinking.type == "disabled" else "enabled"
        body["thinking"] = {"type": kind}
    if caps.reasoning:
        effort = reasoning_effort(req, caps)
        if effort is not None:
            body["reasoning_effort"] = effort

    schema = output_schema(req)
    if schema is not None:
        _response_format(body, schema, caps)

    if req.metadata is not None and req.metadata.user_id:
        user, session = identity(req.metadata.user_id)
        body["user"] = user
        if session and caps.prompt_cache_key:
            body["prompt_cache_key"] = session

    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if not caps.images:
        text_only(body)
    if caps.rejects:
        drop_rejected(body, caps.rejects)
    return body


def _response_format(body: dict[str, Any], schema: dict[str, Any], caps: ModelCaps) -> None:
    """Structured outputs: the schema as `response_format`, strict where OpenAI's strict mode
    takes the schema as it is; JSON mode and the schema in the system prompt where the
    provider has no schemas (DeepSeek)."""
    if caps.structured_output == "json_schema":
        json_schema = {
            "name": FORMAT_NAME,
            "schema": _parameters(schema, caps),
            "strict": not caps.gemini_schema and strict_compatible(schema),
        }
        body["response_format"] = {"type": "json_schema", "json_schema": json_schema}
        return
    body["response_format"] = {"type": "json_object"}
    instruction = schema_instruction(schema)
    messages = body["messages"]
    if messages and messages[0]["role"] == "system":
        messages[0]["content"] = f"{messages[0]['content']}\n\n{instruction}"
    else:
        messages.insert(0, {"role": "system", "content": instruction})
    log.debug("%s has JSON mode only: the output schema went into the system prompt", body["model"])


#: What a model that takes text only reads where an image or file was.
UNSEEN_PART = "[{kind} not shown: {model} accepts text only]"
_PART_KINDS = {"image_url": "image", "file": "file", "input_audio": "audio"}


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


def tool_name(name: str, target: Target) -> str:
    """The name OpenAI-style APIs accept for a client tool: itself, or a stable alias
    recorded in `target.tool_names` so the decoder maps calls back (Claude Code's MCP tools,
    `mcp__plugin_…`, run past 64 characters). Shared by the Chat and Responses encoders."""
    if _TOOL_NAME.match(name):
        return name
    digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:8]
    alias = _NOT_NAME_CHARS.sub("_", name)[:55] + "_" + digest
    target.tool_names[alias] = name
    return alias


def _parameters(schema: dict[str, Any] | None, caps: ModelCaps) -> dict[str, Any]:
    if not schema:
        return {"type": "object", "properties": {}}
    if not caps.gemini_schema:
        return schema
    dropped: set[str] = set()
    cleaned = gemini_schema(schema, dropped)
    if dropped:
        log.debug("tool schema keywords Gemini does not take, dropped: %s", sorted(dropped))
    return cleaned


def reasoning_effort(req: MessagesRequest, caps: ModelCaps) -> str | None:
    """The OpenAI `reasoning_effort` for the client's thinking settings, or None to leave the
    model's default. `output_config.effort` wins over a thinking budget."""
    thinking = req.thinking
    if thinking is not None and thinking.type == "disabled":
        # Switched off: `none` where the model takes it (gpt-5.1+), else its least effort
        # (gpt-5's `minimal`), not its default; a model with its own switch heard it there.
        return None if caps.thinking_switch else caps.effort("none")
    effort = (req.output_config or {}).get("effort")
    if isinstance(effort, str):
        # The nearest the model takes: `xhigh` stays `xhigh` where it exists, `max` becomes
        # the model's top effort, `minimal` its lowest.
        return caps.effort(effort) if effort in EFFORT_ORDER else None
    if thinking is not None and thinking.type == "enabled" and thinking.budget_tokens:
        budget = thinking.budget_tokens
        return caps.effort("low" if budget < 4096 else "medium" if budget < 16384 else "high")
    return None


def identity(user_id: str) -> tuple[str, str | None]:
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
    #: Index of the first message of the current turn (after the last user message that is
    #: not a tool result): Gemini checks signatures only there.
    turn_start: int

    @classmethod
    def of(cls, req: MessagesRequest, target: Target) -> _Context:
        caps = target.caps
        # With thinking switched off (DeepSeek V4 `thinking: disabled`) nothing must travel
        # back; models whose thinking cannot be switched off always think.
        off = caps.thinking_switch and req.thinking is not None and req.thinking.type == "disabled"
        turn_start = 0
        if caps.thought_signatures:
            for index, message in enumerate(req.messages):
                if message.role == "user" and not _has_tool_result(message.content):
                    turn_start = index + 1
        return cls(
            target=target,
            echo=caps.reasoning_echo and not off,
            alnum9=caps.tool_id == "alnum9",
            signatures=caps.thought_signatures,
            turn_start=turn_start,
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


def alnum9(tool_id: str) -> str:
    """A stable `[A-Za-z0-9]{9}` id for `tool_id` (62**9 values: collisions are negligible)."""
    number = int.from_bytes(hashlib.sha256(tool_id.encode()).digest()[:8], "big")
    chars = []
    for _ in range(9):
        number, digit = divmod(number, 62)
        chars.append(_ALNUM[digit])
    return "".join(chars)


def _has_tool_result(content: str | list[Any]) -> bool:
    return not isinstance(content, str) and any(isinstance(b, ToolResultBlock) for b in content)


def _messages(req: MessagesRequest, ctx: _Context) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    system = system_text(req.system)
    if system:
        out.append({"role": "system", "content": system})
    for index, message in enumerate(req.messages):
        content = message.content
        if message.role == "system":
            text = content if isinstance(content, str) else _join_text(content)
            out.append({"role": "system", "content": text})
        elif message.role == "user":
            if isinstance(content, str):
                out.append({"role": "user", "content": content})
            else:
                out.extend(_user_messages(content, ctx))
        else:
            out.append(_assistant_message(content, ctx, index >= ctx.turn_start))
    return out


def system_text(system: str | list[SystemBlock] | None) -> str:
    """The system prompt as one string, without Claude Code's billing header block. Blocks
    other than text have no place in another provider's system prompt: left out."""
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    texts: list[str] = []
    for block in system:
        if not isinstance(block, TextBlock):
            log.debug("dropped a %s block from the system prompt", block.type)
        elif block.text and not block.text.startswith(BILLING_HEADER_PREFIX):
            texts.append(block.text)
    return "\n\n".join(texts)


def _join_text(blocks: list[Any]) -> str:
    return "\n\n".join(b.text for b in blocks if isinstance(b, TextBlock))


def _user_messages(blocks: list[Any], ctx: _Context) -> list[dict[str, Any]]:
    """Tool results first (OpenAI wants them right after the assistant's tool calls), then
    everything else of the same turn as one user message, so no text is lost."""
    tool_messages: list[dict[str, Any]] = []
    moved: list[dict[str, Any]] = []  # images that sat inside tool results
    parts: list[dict[str, Any]] = []
    for block in blocks:
        if isinstance(block, ToolResultBlock):
            tool_messages.append(_tool_message(block, moved, ctx))
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


def _tool_message(
    block: ToolResultBlock, moved: list[dict[str, Any]], ctx: _Context
) -> dict[str, Any]:
    content = result_content(block, lambda name: tool_name(name, ctx.target))
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
            else:
                log.debug("dropped a %s block from a tool result", item.type)
        text = "\n".join(texts)
    if block.is_error:
        text = TOOL_ERROR_PREFIX + text
    return {"role": "tool", "tool_call_id": ctx.wire_id(block.tool_use_id)[0], "content": text}


def image_url(block: ImageBlock) -> str:
    """The URL OpenAI's dialects take for an image: a data URL, or the image's own URL."""
    source = block.source
    if isinstance(source, Base64Source):
        return f"data:{source.media_type};base64,{source.data}"
    if isinstance(source, UrlSource):
        return source.url
    raise VdmError(400, "image.source: file sources are not supported by OpenAI-format providers")


def _image_part(block: ImageBlock) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": image_url(block)}}


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
            "arguments": json.dumps(block.input, ensure_ascii=False),
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
