"""Canonical events / Anthropic messages -> OpenAI Chat Completions answers (the Chat frontend's
encoder; dialects.md C2, C3).

A Chat client (the `openai` SDK, anything built on it) reads one `chat.completion` object, or a
stream of `chat.completion.chunk` SSE lines ending in `data: [DONE]`. Every chunk of a stream
shares one id, `created` and model name; the SDK merges deltas by key and tool calls by their
`index`, which therefore counts tool calls from 0, never Anthropic block indexes.

Thinking goes out twice, for two kinds of client: as the non-standard `reasoning_content` text
(DeepSeek's field, what most Chat UIs show), and as LiteLLM-style `thinking_blocks` carrying the
signature, which is what a client must send back for thinking to survive a tool loop (dialects.md
D, "Chat client drops signatures"). Both are extra fields the SDK keeps. A redacted thinking
block has no text: it goes out in `thinking_blocks` only, as `{"type": "redacted_thinking",
"data"}`, the same in a stream as in a whole answer.

A client that declared the deprecated `functions` (and no `tools`) is answered in that form
(`legacy`): one `function_call` `{name, arguments}` in place of `tool_calls`, finish_reason
`function_call`, as OpenAI answered it; the form has room for one call, so any further call
(which the converter asked the model not to make) is dropped with a DEBUG line.

Deltas, the hot path, are written from a pre-formatted chunk prefix: one `dumps` of the delta
per event, no pydantic.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from vdm.protocol.errors import VdmError
from vdm.protocol.events import (
    Event,
    InputJsonDelta,
    MessageEnd,
    RedactedThinkingStart,
    SignatureDelta,
    TextDelta,
    ThinkingDelta,
    ThinkingStart,
    ToolUseStart,
)

# The errors moved to their own module; these names stay importable from here.
from vdm.protocol.openai_errors import OPENAI_STATUSES as OPENAI_STATUSES
from vdm.protocol.openai_errors import openai_error_body as openai_error_body
from vdm.protocol.openai_errors import openai_error_code as openai_error_code
from vdm.protocol.openai_errors import openai_error_dict as openai_error_dict
from vdm.protocol.openai_errors import openai_error_response as openai_error_response
from vdm.protocol.openai_errors import openai_status as openai_status
from vdm.protocol.sse import dumps

log = logging.getLogger(__name__)

#: Anthropic stop_reason -> Chat finish_reason. `pause_turn` (a server tool paused the turn)
#: has no Chat counterpart; the answer so far is complete, so it reads as a normal stop.
FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

DONE = b"data: [DONE]\n\n"
#: SSE comment for a long upstream silence: keeps proxies from closing an idle stream, and
#: the SDK skips comments (dialects.md D, "Long upstream silence").
KEEPALIVE = b": keepalive\n\n"


def finish_reason(stop_reason: str | None, legacy: bool = False) -> str:
    """The Chat finish_reason for an Anthropic stop_reason; an unknown one reads as `stop`
    (never a rejection: a new Anthropic reason must not break Chat clients). A `legacy`
    client (deprecated `functions`) reads a tool call as `function_call`."""
    known = FINISH_REASONS.get(stop_reason or "end_turn")
    if known is None:
        log.debug("unknown stop_reason %r sent to a Chat client as 'stop'", stop_reason)
        return "stop"
    return "function_call" if legacy and known == "tool_calls" else known


def _tokens(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) else 0


def chat_usage(usage: Mapping[str, Any], reasoning_tokens: int = 0) -> dict[str, Any]:
    """OpenAI usage from Anthropic usage: OpenAI's prompt count includes the cached part, while
    Anthropic's `input_tokens` excludes cache reads and writes, so they are added back."""
    cached = _tokens(usage, "cache_read_input_tokens")
    written = _tokens(usage, "cache_creation_input_tokens")
    prompt = _tokens(usage, "input_tokens") + cached + written
    completion = _tokens(usage, "output_tokens")
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
    }


def new_completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def _arguments(tool_input: Any) -> str:
    """A tool_use `input` as Chat's JSON-string arguments. Arguments that were not JSON when
    they came (`_raw_arguments`, anthropic_from_openai.tool_input) go out as the original
    string (dialects.md D, "Non-JSON tool arguments")."""
    if isinstance(tool_input, dict) and set(tool_input) == {"_raw_arguments"}:
        raw = tool_input["_raw_arguments"]
        if isinstance(raw, str):
            return raw
    return dumps(tool_input if tool_input is not None else {})


class ChatStreamEncoder:
    """Writes one Chat Completions SSE stream for the client's `model` name.

    `include_usage` is the request's `stream_options.include_usage`: it adds the usage chunk
    (with `choices: []`) before `[DONE]`, and `"usage": null` to every earlier chunk, as
    OpenAI does. `legacy` answers a deprecated `functions` client with `function_call`
    deltas (the first with the name and arguments "", then argument fragments).
    """

    __slots__ = (
        "model",
        "include_usage",
        "legacy",
        "created",
        "id",
        "started",
        "finished",
        "_prefix",
        "_suffix",
        "_tool_of_block",
        "_thinking",
        "_thinking_count",
    )

    def __init__(
        self,
        model: str,
        include_usage: bool,
        created: int | None = None,
        id: str | None = None,
        *,
        legacy: bool = False,
    ) -> None:
        self.model = model
        self.include_usage = include_usage
        self.legacy = legacy
        self.created = created if created is not None else int(time.time())
        self.id = id or new_completion_id()
        self.started = False
        #: MessageEnd or an error has been written (with `[DONE]`): nothing more may follow.
        self.finished = False
        head = dumps(self._head())
        self._prefix = "data: " + head[:-1] + ',"choices":[{"index":0,"delta":'
        self._suffix = ',"logprobs":null}]' + (',"usage":null' if include_usage else "") + "}\n\n"
        #: Anthropic block index -> tool call index k (0, 1, ... in order of appearance).
        self._tool_of_block: dict[int, int] = {}
        #: The open thinking block's text, sent whole with its signature in `thinking_blocks`.
        self._thinking: list[str] = []
        self._thinking_count = 0

    def _head(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }

    def _chunk(self, delta: str, finish: str | None = None) -> bytes:
        reason = "null" if finish is None else f'"{finish}"'
        return f'{self._prefix}{delta},"finish_reason":{reason}{self._suffix}'.encode()

    def start(self) -> bytes:
        """The role chunk, sent as soon as the upstream answers (OpenAI's first chunk)."""
        self.started = True
        return self._chunk('{"role":"assistant","content":""}')

    def encode(self, events: Iterable[Event], out: list[bytes], reasoning_tokens: int = 0) -> None:
        """Append the bytes of `events` to `out`. `reasoning_tokens` is the decoder's count
        (`StreamDecoder.reasoning_tokens`), reported in the usage chunk at MessageEnd."""
        if not self.started:
            out.append(self.start())  # a stream without its role chunk confuses accumulators
        for event in events:
            if isinstance(event, TextDelta):
                out.append(self._chunk('{"content":' + dumps(event.text) + "}"))
            elif isinstance(event, InputJsonDelta):
                k = self._tool_of_block.get(event.index)
                if k is None:
                    log.debug("input_json_delta for block %d without a tool call", event.index)
                    continue
                fragment = dumps(event.partial_json)
                if self.legacy:
                    delta = f'{{"function_call":{{"arguments":{fragment}}}}}'
                else:
                    delta = (
                        f'{{"tool_calls":[{{"index":{k},"function":{{"arguments":{fragment}}}}}]}}'
                    )
                out.append(self._chunk(delta))
            elif isinstance(event, ThinkingDelta):
                self._thinking.append(event.thinking)
                out.append(self._chunk('{"reasoning_content":' + dumps(event.thinking) + "}"))
            elif isinstance(event, ToolUseStart):
                if self.legacy:
                    self._function_call(event, out)
                    continue
                k = len(self._tool_of_block)
                self._tool_of_block[event.index] = k
                call = {
                    "index": k,
                    "id": event.id,
                    "type": "function",
                    "function": {"name": event.name, "arguments": ""},
                }
                out.append(self._chunk(dumps({"tool_calls": [call]})))
            elif isinstance(event, ThinkingStart):
                self._thinking = []
            elif isinstance(event, SignatureDelta):
                out.append(self._chunk(dumps({"thinking_blocks": [self._thinking_block(event)]})))
            elif isinstance(event, RedactedThinkingStart):
                out.append(self._chunk(dumps({"thinking_blocks": [self._redacted_block(event)]})))
            elif isinstance(event, MessageEnd):
                self._end(event, out, reasoning_tokens)
            # TextStart and BlockStop have no Chat counterpart: content is one string.

    def _function_call(self, event: ToolUseStart, out: list[bytes]) -> None:
        """A legacy client's one `function_call`: its name, with arguments to follow. A later
        call is not registered, so its argument fragments are skipped too."""
        if self._tool_of_block:
            log.debug("tool call %r beyond a legacy function_call: dropped", event.name)
            return
        self._tool_of_block[event.index] = 0
        out.append(self._chunk(dumps({"function_call": {"name": event.name, "arguments": ""}})))

    def _thinking_block(self, event: SignatureDelta) -> dict[str, Any]:
        """A signed thinking block, whole, under its own `index` so the SDK's accumulator
        keeps several blocks apart instead of failing on an index-less list."""
        block = {
            "index": self._thinking_count,
            "type": "thinking",
            "thinking": "".join(self._thinking),
            "signature": event.signature,
        }
        self._thinking_count += 1
        self._thinking = []
        return block

    def _redacted_block(self, event: RedactedThinkingStart) -> dict[str, Any]:
        """A redacted thinking block, whole, in the same `index` sequence as signed ones (the
        order the client sends them back in is the order Anthropic gave them)."""
        block = {"index": self._thinking_count, "type": "redacted_thinking", "data": event.data}
        self._thinking_count += 1
        return block

    def _end(self, event: MessageEnd, out: list[bytes], reasoning_tokens: int) -> None:
        out.append(self._chunk("{}", finish_reason(event.stop_reason, self.legacy)))
        if self.include_usage:
            usage = chat_usage(event.usage, reasoning_tokens)
            last = {**self._head(), "choices": [], "usage": usage}
            out.append(b"data: " + dumps(last).encode() + b"\n\n")
        out.append(DONE)
        self.finished = True

    def keepalive(self) -> bytes:
        """An SSE comment for a long upstream silence (the SDK skips comments)."""
        return KEEPALIVE

    def error(self, exc: VdmError) -> bytes:
        """A failure after the stream started: an error chunk, which makes the SDK raise
        `APIError`, then `[DONE]`; never a silent close. Nothing once the stream is over."""
        if self.finished:
            return b""
        self.finished = True
        return b"data: " + openai_error_body(exc) + b"\n\n" + DONE


def chat_completion_from_message(
    message: Mapping[str, Any],
    model: str,
    *,
    reasoning_tokens: int = 0,
    created: int | None = None,
    id: str | None = None,
    legacy: bool = False,
) -> dict[str, Any]:
    """A `chat.completion` object from a whole Anthropic message (a non-streamed answer).

    Text blocks join into `content` (null when there is none, as OpenAI sends with tool
    calls); tool_use blocks become `tool_calls` (for a `legacy` client, the first becomes
    `function_call`); thinking becomes `reasoning_content` and, with signatures,
    `thinking_blocks`. Unknown block types are dropped with a DEBUG line.
    """
    texts: list[str] = []
    reasoning: list[str] = []
    thinking_blocks: list[dict[str, Any]] = []
    tool_calls: list[dict[str, Any]] = []
    for block in message.get("content") or []:
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind == "tool_use":
            function = {"name": block.get("name"), "arguments": _arguments(block.get("input"))}
            tool_calls.append({"id": block.get("id"), "type": "function", "function": function})
        elif kind == "thinking":
            thinking = str(block.get("thinking") or "")
            reasoning.append(thinking)
            signature = block.get("signature")
            if signature:
                thinking_blocks.append(
                    {"type": "thinking", "thinking": thinking, "signature": signature}
                )
        elif kind == "redacted_thinking":
            thinking_blocks.append({"type": "redacted_thinking", "data": block.get("data")})
        else:
            log.debug("content block %r not representable in a Chat answer; dropped", kind)
    reply: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts else None,
        "refusal": None,
    }
    if tool_calls and legacy:
        reply["function_call"] = tool_calls[0]["function"]
        if len(tool_calls) > 1:
            log.debug("%d tool calls beyond a legacy function_call: dropped", len(tool_calls) - 1)
    elif tool_calls:
        reply["tool_calls"] = tool_calls
    if reasoning:
        reply["reasoning_content"] = "".join(reasoning)
    if thinking_blocks:
        reply["thinking_blocks"] = thinking_blocks
    return {
        "id": id or new_completion_id(),
        "object": "chat.completion",
        "created": created if created is not None else int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": reply,
                "finish_reason": finish_reason(message.get("stop_reason"), legacy),
                "logprobs": None,
            }
        ],
        "usage": chat_usage(message.get("usage") or {}, reasoning_tokens),
    }
