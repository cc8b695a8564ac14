"""OpenAI Chat Completions response/stream -> canonical (Anthropic) message/events (pure).

`message_from_chat` converts a whole response; `ChatStreamDecoder` is the stream state
machine: `feed(bytes)` takes upstream reads (SSE `data:` chunks, `[DONE]`) and returns
canonical events, `finish()` closes the message. A text block is only opened for non-empty
text.

Reasoning (`reasoning_content`, or `reasoning`, or Mistral's `thinking` content chunks)
becomes a thinking block signed `vdm-rc1` (vdm/protocol/signatures.py): never mistaken for an
Anthropic signature, and recognised when the client sends the block back, so the text can
travel back to providers that need it. Tool call ids Anthropic would refuse (Kimi's
`functions.Bash:0`) reach the client as `vdmid_…` (`safe_tool_id`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from vdm.protocol.anthropic_stream import anthropic_message, new_tool_id
from vdm.protocol.codec import Target
from vdm.protocol.errors import VdmError
from vdm.protocol.events import Blocks, Event, InputJsonDelta, MessageEnd, ToolUseStart
from vdm.protocol.reasoning import from_chat_usage
from vdm.protocol.signatures import CHAT_REASONING, id_with_thought, safe_tool_id
from vdm.protocol.sse import SseDecoder, json_event

log = logging.getLogger(__name__)

#: OpenAI finish_reason -> Anthropic stop_reason.
STOP_REASONS: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
    # Mistral: the context window, not max_tokens, cut the answer; either way it is cut.
    "model_length": "max_tokens",
}

#: finish_reasons that say the answer failed: an error, never a quiet `end_turn` the client
#: would take for a complete answer. DeepSeek `insufficient_system_resource`: "the request is
#: interrupted due to insufficient resource of the inference system" (api-docs, create chat
#: completion); Mistral and OpenRouter `error`.
ERROR_FINISH: dict[str, tuple[int, str]] = {
    "insufficient_system_resource": (
        529,
        "upstream ran out of inference capacity and cut the answer off "
        "(finish_reason insufficient_system_resource); retry later",
    ),
    "error": (502, "upstream failed while generating the answer (finish_reason error)"),
}


def usage_from_chat(usage: dict[str, Any] | None) -> dict[str, int]:
    """Anthropic usage from an OpenAI usage object; `input_tokens` excludes cache reads.

    Cached tokens come from `prompt_tokens_details.cached_tokens` (OpenAI, most providers) or
    `prompt_cache_hit_tokens` (DeepSeek).
    """
    if not usage:
        return {"input_tokens": 0, "output_tokens": 0}
    prompt = int(usage.get("prompt_tokens") or 0)
    details = usage.get("prompt_tokens_details") or {}
    cached = int(details.get("cached_tokens") or usage.get("prompt_cache_hit_tokens") or 0)
    return {
        "input_tokens": max(prompt - cached, 0),
        "output_tokens": int(usage.get("completion_tokens") or 0),
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    }


def _chunk_usage(chunk: dict[str, Any]) -> dict[str, Any] | None:
    usage = chunk.get("usage")
    if usage:
        return usage  # type: ignore[no-any-return]
    groq = chunk.get("x_groq")  # Groq reports stream usage here
    return groq.get("usage") if isinstance(groq, dict) else None


def stop_reason(
    finish_reason: str | None,
    choice: dict[str, Any],
    stop_sequences: list[str] | None,
    had_tool_calls: bool,
) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence). A stop sequence is reported only when the provider says
    which one matched (vLLM `stop_reason`, SGLang `matched_stop`). Raises VdmError for a
    finish_reason that says the generation failed (ERROR_FINISH)."""
    failed = ERROR_FINISH.get(finish_reason or "")
    if failed is not None:
        raise VdmError(*failed)
    if had_tool_calls and finish_reason in (None, "stop", "tool_calls", "function_call"):
        return "tool_use", None
    if finish_reason == "stop" and stop_sequences:
        matched = choice.get("stop_reason") or choice.get("matched_stop")
        if isinstance(matched, str) and matched in stop_sequences:
            return "stop_sequence", matched
    return STOP_REASONS.get(finish_reason or "stop", "end_turn"), None


def error_from_chunk(error: Any) -> VdmError:
    """A provider's in-band error object (`{"error": {...}}`) as a VdmError."""
    message = str(error.get("message") or error) if isinstance(error, dict) else str(error)
    code = error.get("code") if isinstance(error, dict) else None
    status = code if isinstance(code, int) and 400 <= code < 600 else 500
    return VdmError(status, f"upstream error: {message}")


def tool_input(arguments: str | None) -> dict[str, Any]:
    """A tool call's `input` from its JSON arguments; arguments that are not a JSON object
    are kept visibly (`_raw_arguments`) so the client's schema check fails loudly."""
    if not arguments:
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        log.warning("tool call arguments are not valid JSON; passing them as _raw_arguments")
        return {"_raw_arguments": arguments}
    return value if isinstance(value, dict) else {"value": value}


def _thought_signature(call: dict[str, Any]) -> str | None:
    """Gemini's `extra_content.google.thought_signature` on a tool call, if any."""
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    return signature if isinstance(signature, str) and signature else None


def _reasoning(message: dict[str, Any]) -> str | None:
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    return reasoning if isinstance(reasoning, str) and reasoning else None


def content_parts(content: Any) -> list[tuple[str, str]]:
    """(`"text"` or `"thinking"`, text) of a message's (or delta's) `content`.

    Mistral's reasoning models (Magistral, and others with `reasoning_effort`) send a list
    of chunks, `[{"type": "thinking", "thinking": [{"type": "text", "text": …}]},
    {"type": "text", "text": …}]` (docs.mistral.ai reasoning), streamed and not.
    """
    if isinstance(content, str):
        return [("text", content)] if content else []
    if not isinstance(content, list):
        return []
    parts: list[tuple[str, str]] = []
    for chunk in content:
        if not isinstance(chunk, dict):
            continue
        kind = chunk.get("type")
        if kind == "text":
            text = chunk.get("text")
            if isinstance(text, str) and text:
                parts.append(("text", text))
        elif kind == "thinking":
            inner = chunk.get("thinking")
            if isinstance(inner, str):
                inner = [{"type": "text", "text": inner}]
            for item in inner if isinstance(inner, list) else ():
                text = item.get("text") if isinstance(item, dict) else None
                if isinstance(text, str) and text:
                    parts.append(("thinking", text))
        else:
            log.debug("dropped a %r content chunk from the answer", kind)
    return parts


def _client_call_id(target: Target, upstream_id: str | None, signature: str | None) -> str:
    """The tool_use id the client sees for a provider's call: the client's own where the
    encoder renamed it, else the provider's, encoded if Anthropic would refuse it."""
    if not upstream_id:
        base = new_tool_id()
    elif upstream_id in target.tool_ids:
        base = target.tool_ids[upstream_id]
    else:
        base = safe_tool_id(upstream_id)
    return id_with_thought(base, signature)


def message_from_chat(
    response: dict[str, Any], target: Target, stop_sequences: list[str] | None = None
) -> dict[str, Any]:
    """The Anthropic Message for a non-streaming chat completion."""
    if response.get("error"):
        raise error_from_chunk(response["error"])
    choices = response.get("choices") or []
    if not choices:
        raise VdmError(502, "upstream returned a completion without choices")
    choice = choices[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    reasoning = _reasoning(message)
    if reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": CHAT_REASONING})
    for kind, text in content_parts(message.get("content")):
        last = content[-1] if content else None
        if last is not None and last["type"] == kind and kind in last:
            last[kind] += text  # adjacent chunks of one kind are one block
        elif kind == "thinking":
            content.append({"type": "thinking", "thinking": text, "signature": CHAT_REASONING})
        else:
            content.append({"type": "text", "text": text})
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        content.append({"type": "text", "text": refusal})
    tool_calls = message.get("tool_calls") or []
    for call in tool_calls:
        function = call.get("function") or {}
        block: dict[str, Any] = {
            "type": "tool_use",
            "id": _client_call_id(target, call.get("id"), _thought_signature(call)),
            "name": target.client_tool_name(function.get("name") or ""),
            "input": tool_input(function.get("arguments")),
        }
        content.append(block)
        if reasoning and target.reasoning_cache is not None and target.caps.reasoning_echo:
            target.reasoning_cache.put(block["id"], block["name"], block["input"], reasoning)
    reason, sequence = stop_reason(
        choice.get("finish_reason"), choice, stop_sequences, bool(tool_calls)
    )
    return anthropic_message(
        target.requested, content, reason, sequence, usage_from_chat(response.get("usage"))
    )


# --- streaming ------------------------------------------------------------------------------


@dataclass(slots=True)
class _ToolCall:
    id: str | None = None
    name: str | None = None
    index: int | None = None  # Anthropic block index once started
    pending: str = ""  # argument fragments that arrived before the name
    signature: str | None = None  # Gemini's thought signature
    client_id: str = ""  # the tool_use id the client sees
    arguments: list[str] | None = None  # kept only for the reasoning cache


class ChatStreamDecoder:
    """State machine: OpenAI chat stream bytes in, canonical events out."""

    def __init__(self, target: Target, stop_sequences: list[str] | None = None) -> None:
        self.target = target
        self.stop_sequences = stop_sequences
        self.done = False
        self.finished = False
        self.finish_reason: str | None = None
        self.usage: dict[str, int] = {"input_tokens": 0, "output_tokens": 0}
        self.reasoning_tokens = 0
        self._sse = SseDecoder()
        self._blocks = Blocks()
        self._tools: dict[int, _ToolCall] = {}
        #: The provider's `index` -> the position of the call it now continues (they differ
        #: when a provider reuses an index for a new call: Gemini's compat endpoint).
        self._positions: dict[int, int] = {}
        self._last_choice: dict[str, Any] = {}
        self._had_tool_calls = False
        #: The reasoning text, kept only where it must travel back (for the cache).
        self._reasoning: list[str] | None = (
            [] if target.caps.reasoning_echo and target.reasoning_cache is not None else None
        )

    def feed(self, data: bytes) -> list[Event]:
        """Events for one upstream read. Raises VdmError for an in-band upstream error."""
        out: list[Event] = []
        if self.done:
            return out
        for event in self._sse.feed(data):
            if event.data == "[DONE]":
                self.done = True
                break
            self.feed_chunk(json_event(event.data), out)
            if self.done:
                break
        return out

    def finish(self) -> list[Event]:
        """Close the open block and the message; raises VdmError if the stream was cut."""
        out: list[Event] = []
        if self.finished:
            return out
        if not self.done:
            for event in self._sse.flush():
                if event.data != "[DONE]":
                    self.feed_chunk(json_event(event.data), out)
        if not self.done and self.finish_reason is None:
            raise VdmError(502, "upstream stream ended before the response was complete")
        self.finished = True
        reason, sequence = stop_reason(
            self.finish_reason, self._last_choice, self.stop_sequences, self._had_tool_calls
        )
        blocks = self._blocks
        for call in self._tools.values():
            if call.index is None:  # a call whose name never arrived: emit what we have
                call.name = call.name or "unknown_tool"
                self._start_tool(out, call)
        blocks.close(out)
        if self._reasoning:
            cache = self.target.reasoning_cache
            assert cache is not None
            text = "".join(self._reasoning)
            for call in self._tools.values():
                name = self.target.client_tool_name(call.name or "")
                arguments = tool_input("".join(call.arguments or ()))
                cache.put(call.client_id, name, arguments, text)
        out.append(MessageEnd(reason, sequence, self.usage))
        return out

    def feed_chunk(self, chunk: dict[str, Any], out: list[Event]) -> None:
        """Events for one parsed `chat.completion.chunk`."""
        if chunk.get("error"):
            raise error_from_chunk(chunk["error"])
        usage = _chunk_usage(chunk)
        if usage:
            self.usage = usage_from_chat(usage)
            self.reasoning_tokens = from_chat_usage(usage)
        choices = chunk.get("choices")
        if not choices:
            if usage and self.finish_reason is not None:
                # The usage chunk after the finish (`stream_options.include_usage`) is the
                # last: the answer is complete without waiting for `[DONE]`, which a provider
                # may send late or never.
                self.done = True
            return
        choice = choices[0]
        delta = choice.get("delta") or {}
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning and isinstance(reasoning, str):
            self._blocks.thinking(out, reasoning, signature=CHAT_REASONING)
            if self._reasoning is not None:
                self._reasoning.append(reasoning)
        content = delta.get("content")
        if content:
            if isinstance(content, str):
                self._blocks.text(out, content)
            else:  # Mistral's typed chunks
                for kind, text in content_parts(content):
                    if kind == "text":
                        self._blocks.text(out, text)
                    else:
                        self._blocks.thinking(out, text, signature=CHAT_REASONING)
                        if self._reasoning is not None:
                            self._reasoning.append(text)
        tool_calls = delta.get("tool_calls")
        if tool_calls:
            for call in tool_calls:
                self._tool_fragment(out, call)
        finish = choice.get("finish_reason")
        if finish:
            self.finish_reason = finish
            self._last_choice = choice

    # -- tool calls ------------------------------------------------------------------------------

    def _tool_fragment(self, out: list[Event], fragment: dict[str, Any]) -> None:
        position = fragment.get("index")
        call_id = fragment.get("id")
        if isinstance(position, int):
            index = position
            position = self._positions.get(index, index)
            current = self._tools.get(position)
            named = bool((fragment.get("function") or {}).get("name"))
            if named and call_id and current is not None and current.id and current.id != call_id:
                # A new id with a name at a used index is a new call: Gemini's compat endpoint
                # sends every parallel call as index 0 (NousResearch/hermes-agent#62940). It
                # takes the next free position, and later fragments of that index continue it.
                # A new id without a name continues the call: some servers change the id
                # between fragments of one call (poolsideai/pool#9).
                position = max(self._tools) + 1
                self._positions[index] = position
        else:
            # Some providers omit the index: a new id means a new call.
            known = next((k for k, c in self._tools.items() if call_id and c.id == call_id), None)
            if known is not None:
                position = known
            elif call_id or not self._tools:
                position = len(self._tools)
            else:
                position = max(self._tools)
        call = self._tools.get(position)
        if call is None:
            call = self._tools[position] = _ToolCall()
        self._had_tool_calls = True
        if call_id and not call.id:
            call.id = call_id
        signature = _thought_signature(fragment)
        if signature and not call.signature:
            call.signature = signature
        function = fragment.get("function") or {}
        name = function.get("name")
        if name and not call.name:
            call.name = name
        arguments = function.get("arguments") or ""
        if self._reasoning is not None:
            if call.arguments is None:
                call.arguments = []
            call.arguments.append(arguments)
        if call.index is None:
            call.pending += arguments
            if call.name:
                self._start_tool(out, call)
        elif arguments:
            if self._blocks.is_open(("tool", id(call))):
                out.append(InputJsonDelta(call.index, arguments))
            else:
                # A fragment for a call whose block is already closed (a provider interleaving
                # parallel calls). Anthropic's grammar cannot reopen a block, and dropping the
                # bytes would hand the client broken arguments: fail the stream instead, so the
                # client retries without streaming (Claude Code does) and gets whole calls.
                raise VdmError(
                    502,
                    "upstream interleaved the arguments of parallel tool calls, which cannot be "
                    "streamed faithfully; retry without streaming",
                )

    def _start_tool(self, out: list[Event], call: _ToolCall) -> None:
        index = self._blocks.open(out, ("tool", id(call)))
        name = self.target.client_tool_name(call.name or "")
        call.client_id = _client_call_id(self.target, call.id, call.signature)
        out.append(ToolUseStart(index, call.client_id, name))
        call.index = index
        if call.pending:
            out.append(InputJsonDelta(index, call.pending))
            call.pending = ""
