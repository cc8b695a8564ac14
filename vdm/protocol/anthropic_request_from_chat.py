"""OpenAI Chat Completions request -> Anthropic Messages request (the Chat frontend's decoder;
dialects.md C1, D). This module walks Chat's messages; the rules both OpenAI dialects share
live beside it: turns and tool results in `openai_turns` (results merge into the next user
message, an unanswered call gets an `is_error` result, late system text never splits a call
from its results), tools and `tool_choice` in `openai_tools_in`, request fields, structured
output and thinking in `openai_request_in`.

- Deprecated function calling (`functions`, `function_call`, `role: "function"`), which
  older SDK users still send, is read as tools: an id-less call gets an id from its place in
  the conversation (the same every turn), and its `function` answer pairs with it by name.
- Thinking sent back as LiteLLM-style `thinking_blocks` (what vdm's Chat encoder emits)
  returns to Anthropic when signed.

What Anthropic lacks is dropped with a DEBUG line (logprobs, seed, penalties, unknown fields);
what cannot be honoured without a different answer (`n > 1`, audio, `file_id`, `custom` tools)
is a 400 naming the field.
"""

from __future__ import annotations

import logging
from typing import Any

from vdm.protocol.openai_request_in import (
    bad,
    check_limit,
    document_block,
    dropped_fields,
    finish_request,
    get,
    media_source,
    model_of,
    output_format,
    sampling,
)
from vdm.protocol.openai_tools_in import CHAT, anthropic_tool, attach_tools, tool_choice
from vdm.protocol.openai_turns import Turns, tool_use_block

log = logging.getLogger(__name__)

#: Anthropic requires `max_tokens`; Chat does not. Used when the client gave none.
DEFAULT_MAX_TOKENS = 4096

#: Chat fields translated here; anything else is logged and dropped.
_HANDLED = frozenset(
    "model messages max_completion_tokens max_tokens stop temperature top_p tools tool_choice"
    " parallel_tool_calls response_format reasoning_effort stream stream_options user"
    " safety_identifier n functions function_call modalities audio".split()
)
#: Chat fields with no Anthropic counterpart that leave the answer's content as it is.
_IGNORED = frozenset(
    "logprobs top_logprobs seed frequency_penalty presence_penalty logit_bias".split()
)


def wants_usage_chunk(body: dict[str, Any]) -> bool:
    """Whether the client asked for the final usage-only chunk (`stream_options.include_usage`);
    without it a Chat stream carries no usage at all."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def check_choices(body: dict[str, Any]) -> None:
    """VdmError(400) for `n` other than 1: vdm answers one choice, whichever the provider
    (a forwarded request too, so that failing over to another dialect changes nothing)."""
    n = body.get("n")
    if n is not None and n != 1:
        raise bad("n", f"only n=1 is supported (got {n!r})")


def check_modalities(body: dict[str, Any]) -> None:
    """VdmError(400) for an answer in audio (`modalities: ["audio"]`, `audio`): a translated
    answer is text, and a text answer to a client that asked for speech is not one."""
    raw = body.get("modalities")
    modalities = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    if any(m == "audio" for m in modalities):
        raise bad("modalities", 'audio output is not supported; ask for ["text"]')
    if body.get("audio") is not None:
        raise bad("audio", "audio output is not supported")


def messages_request_from_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The Anthropic Messages body for a Chat Completions request body."""
    check_choices(body)
    check_modalities(body)
    model = model_of(body)
    system, messages = _conversation(body.get("messages"))
    out: dict[str, Any] = {"model": model, "messages": messages}

    asked = body.get("max_completion_tokens")
    asked = body.get("max_tokens") if asked is None else asked
    check_limit(asked, "max_tokens")
    out["max_tokens"] = DEFAULT_MAX_TOKENS if asked is None else asked

    stops = body.get("stop")
    stops = [stops] if isinstance(stops, str) else stops if isinstance(stops, list) else []
    # Anthropic refuses whitespace-only stop sequences; they could never end a useful answer.
    if kept := [s for s in stops if isinstance(s, str) and s.strip()]:
        out["stop_sequences"] = kept
    sampling(body, out)

    _tools(body, out)
    raw = body.get("response_format")
    schema = get(get(raw, "json_schema"), "schema")
    where, schema_at = "response_format", "response_format.json_schema.schema"
    output_format(raw, schema, system, out, where=where, schema_at=schema_at)
    finish_request(body, out, system, body.get("reasoning_effort"), asked)
    for key, why in dropped_fields(body, _HANDLED, _IGNORED):
        log.debug("chat request field %r %s: dropped", key, why)
    return out


def gave_no_limit(body: dict[str, Any]) -> bool:
    """Whether the client left the output limit to the provider (no `max_completion_tokens`
    nor `max_tokens`): the canonical `max_tokens` is then only a stand-in
    (`Target.max_tokens_default`)."""
    return body.get("max_completion_tokens") is None and body.get("max_tokens") is None


def _conversation(raw: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Chat messages -> (system blocks, Anthropic messages), in one pass."""
    if not isinstance(raw, list) or not raw:
        raise bad("messages", "a non-empty list is required")
    turns = Turns()
    for i, message in enumerate(raw):
        role = get(message, "role")
        if not isinstance(message, dict):
            raise bad(f"messages[{i}]", "not an object")
        where = f"messages[{i}].content"
        if role in ("system", "developer"):
            turns.system_text([t for t in _texts(message.get("content"), where) if t])
        elif role == "user":
            turns.user(_blocks(message.get("content"), where))
        elif role == "tool":
            _result(turns, message, i)
        elif role == "function":
            # Deprecated: the result of the first call awaiting an answer from the function
            # it names (it carries no call id).
            name = message.get("name")
            if not isinstance(name, str) or not name:
                raise bad(f"messages[{i}].name", "required in a function message")
            call = {"tool_call_id": turns.call_of(name), "content": message.get("content")}
            _result(turns, call, i)
        elif role == "assistant":
            turns.assistant(_assistant(message, i), f"messages[{i}]")
        else:
            log.debug("messages[%d] with role %r is unknown: dropped", i, role)
    return turns.done("messages")


def _result(turns: Turns, message: dict[str, Any], i: int) -> None:
    call_id, content = message.get("tool_call_id"), message.get("content")
    if not isinstance(call_id, str) or not call_id:
        raise bad(f"messages[{i}].tool_call_id", "required in a tool message")
    blocks = _blocks(content, f"messages[{i}].content")
    turns.result(call_id, content if isinstance(content, str) else blocks, f"messages[{i}]")


def _assistant(message: dict[str, Any], i: int) -> list[dict[str, Any]]:
    """An assistant message's blocks: signed thinking, text, then its tool calls."""
    blocks = _thinking_blocks(message.get("thinking_blocks"))
    texts = _texts(message.get("content"), f"messages[{i}].content")
    blocks.extend({"type": "text", "text": t} for t in texts if t)
    calls = message.get("tool_calls")
    if calls is not None and not isinstance(calls, list):
        raise bad(f"messages[{i}].tool_calls", "must be a list")
    for j, call in enumerate(calls or []):
        blocks.append(tool_use_block(call, f"messages[{i}].tool_calls[{j}]"))
    if (legacy := message.get("function_call")) is not None:
        # The deprecated form has no id: one made from the message's place is the same
        # every turn (the client resends the history), and pairs the `function` answer.
        call = {"id": f"call_{i}", "function": legacy}
        blocks.append(tool_use_block(call, f"messages[{i}].function_call"))
    return blocks


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    """A message's content (a string or parts) as Anthropic blocks, empty text left out."""
    if content is None or isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise bad(where, "must be a string or a list of parts")
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind, at = get(part, "type"), f"{where}[{j}]"
        if kind in ("text", "refusal") and isinstance(text := part.get(kind), str):
            blocks.extend([{"type": "text", "text": text}] if text else [])
        elif kind == "image_url":
            image = part.get("image_url")
            url = image if isinstance(image, str) else get(image, "url")
            blocks.append({"type": "image", "source": media_source(url, f"{at}.image_url.url")})
        elif kind == "file":
            blocks.append(document_block(part.get("file"), f"{at}.file"))
        elif kind == "input_audio":
            raise bad(f"{at}.input_audio", "audio input is not supported")
        else:
            log.debug("%s of type %r is unknown: dropped", at, kind)
    return blocks


def _texts(content: Any, where: str) -> list[str]:
    """The text of a message's content; other parts are dropped (system, assistant turns)."""
    return [b["text"] for b in _blocks(content, where) if b["type"] == "text"]


def _thinking_blocks(raw: Any) -> list[dict[str, Any]]:
    """LiteLLM-style `thinking_blocks` sent back by the client (what vdm's Chat encoder emits);
    unsigned ones are useless to Anthropic, which refuses them, and are dropped."""
    blocks: list[dict[str, Any]] = []
    for block in raw if isinstance(raw, list) else []:
        kind, signature, data = get(block, "type"), get(block, "signature"), get(block, "data")
        if kind == "thinking" and isinstance(signature, str):
            text = t if isinstance(t := get(block, "thinking"), str) else ""
            blocks.append({"type": "thinking", "thinking": text, "signature": signature})
        elif kind == "redacted_thinking" and isinstance(data, str):
            blocks.append({"type": "redacted_thinking", "data": data})
        else:
            log.debug("thinking block of type %r without signature: dropped", kind)
    return blocks


def _tools(body: dict[str, Any], out: dict[str, Any]) -> None:
    tools: list[dict[str, Any]] = []
    raw = body.get("tools")
    for j, tool in enumerate(raw if isinstance(raw, list) else []):
        kind, function = get(tool, "type"), get(tool, "function")
        if kind == "custom":
            raise bad(f"tools[{j}]", "custom (freeform) tools are not supported")
        if kind != "function" or not isinstance(function, dict):
            log.debug("tools[%d] of type %r is unknown: dropped", j, kind)
            continue
        tools.append(anthropic_tool(function, f"tools[{j}].function", omit_defaults=False))
    # The deprecated `functions` (older SDK users still send it): the same functions.
    legacy = body.get("functions")
    for j, function in enumerate(legacy if isinstance(legacy, list) else []):
        if not isinstance(function, dict):
            raise bad(f"functions[{j}]", "not an object")
        tools.append(anthropic_tool(function, f"functions[{j}]", omit_defaults=False))

    raw_choice = body.get("tool_choice")
    if raw_choice is None:
        # The deprecated `function_call` ("none", "auto" or `{"name"}`) as a `tool_choice`.
        old = body.get("function_call")
        raw_choice = {"type": "function", "function": old} if isinstance(old, dict) else old
    choice = tool_choice(raw_choice, tools, CHAT)
    # The deprecated form answers one `function_call` per turn, never parallel calls.
    serial = body.get("parallel_tool_calls") is False or (isinstance(legacy, list) and not raw)
    attach_tools(out, tools, choice, serial)
