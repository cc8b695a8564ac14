"""OpenAI Chat Completions response/stream -> Anthropic Messages response/stream (pure).

`message_from_chat` converts a whole response; `MessagesStreamFromChat` is the stream state
machine: `feed(chunk)` takes one parsed `chat.completion.chunk` and returns the SSE events it
yields as encoded bytes, `finish()` closes the message. Event grammar (DESIGN.md): one
`message_start`, then per block `content_block_start`, deltas, `content_block_stop`, then
`message_delta` (stop reason, usage) and `message_stop`; block indexes count from 0 without
gaps; a text block is only opened for non-empty text.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from vdm.protocol.errors import VdmError
from vdm.protocol.sse import dumps, encode_event

log = logging.getLogger(__name__)

#: OpenAI finish_reason -> Anthropic stop_reason.
STOP_REASONS: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

PING = b'event: ping\ndata: {"type":"ping"}\n\n'


def new_message_id() -> str:
    return "msg_" + uuid.uuid4().hex[:24]


def new_tool_id() -> str:
    return "toolu_" + uuid.uuid4().hex[:24]


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
    which one matched (vLLM `stop_reason`, SGLang `matched_stop`)."""
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


def _tool_input(arguments: str | None) -> dict[str, Any]:
    if not arguments:
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        log.warning("tool call arguments are not valid JSON; passing them as _raw_arguments")
        return {"_raw_arguments": arguments}
    return value if isinstance(value, dict) else {"value": value}


def message_from_chat(
    response: dict[str, Any], *, model: str, stop_sequences: list[str] | None = None
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
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = message.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        content.append({"type": "text", "text": refusal})
    tool_calls = message.get("tool_calls") or []
    for call in tool_calls:
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or new_tool_id(),
                "name": function.get("name") or "",
                "input": _tool_input(function.get("arguments")),
            }
        )
    reason, sequence = stop_reason(
        choice.get("finish_reason"), choice, stop_sequences, bool(tool_calls)
    )
    return {
        "id": new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage_from_chat(response.get("usage")),
    }


# --- streaming ------------------------------------------------------------------------------

_TEXT_DELTA = (
    'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
    '"delta":{"type":"text_delta","text":%s}}\n\n'
)
_THINKING_DELTA = (
    'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
    '"delta":{"type":"thinking_delta","thinking":%s}}\n\n'
)
_JSON_DELTA = (
    'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
    '"delta":{"type":"input_json_delta","partial_json":%s}}\n\n'
)
_STOP = 'event: content_block_stop\ndata: {"type":"content_block_stop","index":%d}\n\n'


@dataclass(slots=True)
class _ToolCall:
    id: str | None = None
    name: str | None = None
    index: int | None = None  # Anthropic block index once started
    pending: str = ""  # argument fragments that arrived before the name


class MessagesStreamFromChat:
    """State machine: OpenAI chat chunks in, Anthropic SSE event bytes out."""

    def __init__(
        self, *, model: str, message_id: str | None = None, stop_sequences: list[str] | None = None
    ) -> None:
        self.model = model
        self.message_id = message_id or new_message_id()
        self.stop_sequences = stop_sequences
        self.started = False
        self.finished = False
        self.finish_reason: str | None = None
        self.usage: dict[str, int] = {"input_tokens": 0, "output_tokens": 0}
        self._next_index = 0
        self._open: str | None = None  # "text", "thinking" or "tool"
        self._open_index = -1
        self._open_tool: _ToolCall | None = None
        self._tools: dict[int, _ToolCall] = {}
        self._last_choice: dict[str, Any] = {}
        self._had_tool_calls = False

    # -- public ------------------------------------------------------------------------------

    def start(self) -> bytes:
        """`message_start`; emitted once, as soon as the upstream answers."""
        if self.started:
            return b""
        self.started = True
        return encode_event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": self.message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                },
            },
        )

    def feed(self, chunk: dict[str, Any]) -> list[bytes]:
        """Events for one upstream chunk. Raises VdmError for an in-band upstream error."""
        out: list[bytes] = []
        if not self.started:
            out.append(self.start())
        if chunk.get("error"):
            raise error_from_chunk(chunk["error"])
        usage = _chunk_usage(chunk)
        if usage:
            self.usage = usage_from_chat(usage)
        choices = chunk.get("choices")
        if not choices:
            return out
        choice = choices[0]
        delta = choice.get("delta") or {}
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning and isinstance(reasoning, str):
            if self._open != "thinking":
                self._open_block(
                    out, "thinking", {"type": "thinking", "thinking": "", "signature": ""}
                )
            out.append((_THINKING_DELTA % (self._open_index, dumps(reasoning))).encode())
        content = delta.get("content")
        if content and isinstance(content, str):
            if self._open != "text":
                self._open_block(out, "text", {"type": "text", "text": ""})
            out.append((_TEXT_DELTA % (self._open_index, dumps(content))).encode())
        tool_calls = delta.get("tool_calls")
        if tool_calls:
            for call in tool_calls:
                self._tool_fragment(out, call)
        finish = choice.get("finish_reason")
        if finish:
            self.finish_reason = finish
            self._last_choice = choice
        return out

    def finish(self) -> list[bytes]:
        """Close the open block and the message (`message_delta`, `message_stop`)."""
        out: list[bytes] = []
        if self.finished:
            return out
        if not self.started:
            out.append(self.start())
        for call in self._tools.values():
            if call.index is None:  # a call whose name never arrived: emit what we have
                call.name = call.name or "unknown_tool"
                self._start_tool(out, call)
        self._close(out)
        self.finished = True
        reason, sequence = stop_reason(
            self.finish_reason, self._last_choice, self.stop_sequences, self._had_tool_calls
        )
        out.append(
            encode_event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": sequence},
                    "usage": self.usage,
                },
            )
        )
        out.append(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
        return out

    # -- blocks ------------------------------------------------------------------------------

    def _open_block(self, out: list[bytes], kind: str, block: dict[str, Any]) -> None:
        self._close(out)
        self._open = kind
        self._open_index = self._next_index
        self._next_index += 1
        out.append(
            encode_event(
                "content_block_start",
                {"type": "content_block_start", "index": self._open_index, "content_block": block},
            )
        )

    def _close(self, out: list[bytes]) -> None:
        if self._open is not None:
            out.append((_STOP % self._open_index).encode())
            self._open = None
            self._open_tool = None

    def _tool_fragment(self, out: list[bytes], fragment: dict[str, Any]) -> None:
        position = fragment.get("index")
        call_id = fragment.get("id")
        if not isinstance(position, int):
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
        function = fragment.get("function") or {}
        name = function.get("name")
        if name and not call.name:
            call.name = name
        arguments = function.get("arguments") or ""
        if call.index is None:
            call.pending += arguments
            if call.name:
                self._start_tool(out, call)
        elif arguments:
            if self._open_tool is call:
                out.append((_JSON_DELTA % (call.index, dumps(arguments))).encode())
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

    def _start_tool(self, out: list[bytes], call: _ToolCall) -> None:
        block: dict[str, Any] = {
            "type": "tool_use",
            "id": call.id or new_tool_id(),
            "name": call.name,
            "input": {},
        }
        self._open_block(out, "tool", block)
        call.index = self._open_index
        self._open_tool = call
        if call.pending:
            out.append((_JSON_DELTA % (call.index, dumps(call.pending))).encode())
            call.pending = ""
