"""OpenAI Chat Completions response/stream -> canonical (Anthropic) message/events (pure).

`message_from_chat` converts a whole response; `ChatStreamDecoder` is the stream state
machine: `feed(bytes)` takes upstream reads (SSE `data:` chunks, `[DONE]`) and returns
canonical events, `finish()` closes the message. A text block is only opened for non-empty
text.

Reasoning (`reasoning_content`, or `reasoning`, or Mistral's `thinking` content chunks)
becomes a thinking block signed `vdm-rc1` (vdm/protocol/signatures.py): never mistaken for an
Anthropic signature, and recognised when the client sends the block back, so the text can
travel back to providers that need it. Tool call ids Anthropic would refuse (Kimi's
`functions.Bash:0`) reach the client as `vdmid_…` (`safe_tool_id`). What both decoders read
alike (usage, stop reason, errors, arguments, ids) is in vdm/protocol/chat_answer.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orjson import loads as _orjson_loads

from vdm.protocol.anthropic_stream import anthropic_message
from vdm.protocol.chat_answer import (
    client_call_id,
    content_parts,
    error_from_chunk,
    message_reasoning,
    stop_reason,
    thought_signature,
)
from vdm.protocol.chat_answer import tool_input as tool_input
from vdm.protocol.chat_answer import usage_from_chat as usage_from_chat
from vdm.protocol.codec import Target
from vdm.protocol.errors import VdmError, held
from vdm.protocol.events import (
    Blocks,
    CitationDelta,
    Event,
    InputJsonDelta,
    MessageEnd,
    ServerToolResultStart,
    ServerToolUseStart,
    ToolUseStart,
)
from vdm.protocol.reasoning import from_chat_usage
from vdm.protocol.search_stub import StubAnswers, answer_stub_calls
from vdm.protocol.signatures import CHAT_REASONING
from vdm.protocol.sse import SseDecoder, json_event
from vdm.protocol.web_search import (
    chat_annotation,
    new_server_tool_id,
    query_json,
    results_of,
    search_blocks,
)


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
    reasoning = message_reasoning(message)
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
            "id": client_call_id(target, call.get("id"), thought_signature(call)),
            "name": target.client_tool_name(function.get("name") or ""),
            "input": tool_input(function.get("arguments")),
        }
        content.append(block)
        if reasoning and target.reasoning_cache is not None and target.caps.reasoning_echo:
            target.reasoning_cache.put(block["id"], block["name"], block["input"], reasoning)
    reason, sequence = stop_reason(
        choice.get("finish_reason"), choice, stop_sequences, bool(tool_calls)
    )
    searches = 0
    if target.web_search_query is not None:
        citations = [c for c in map(chat_annotation, message.get("annotations") or ()) if c]
        texts = [b for b in content if b["type"] == "text"]
        if citations and texts:
            texts[-1]["citations"] = citations
        call = new_server_tool_id()
        content.extend(search_blocks(call, target.web_search_query, results_of(citations)))
        searches = 1
    message = anthropic_message(
        target.requested,
        content,
        reason,
        sequence,
        usage_from_chat(response.get("usage")),
        searches,
    )
    return answer_stub_calls(message, target)


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
        #: Answers the model's calls of the web search stub (vdm/protocol/search_stub.py).
        self._stub = StubAnswers(target)
        self.stop_sequences = stop_sequences
        self.done = False
        self.finished = False
        self.finish_reason: str | None = None
        self.usage: dict[str, int] = {"input_tokens": 0, "output_tokens": 0}
        self.reasoning_tokens = 0
        self._sse = SseDecoder()
        self._error: VdmError | None = None  # raised by `finish` (see `feed`)
        self._blocks = Blocks()
        self._tools: dict[int, _ToolCall] = {}
        #: The provider's `index` -> the position of the call it now continues (they differ
        #: when a provider reuses an index for a new call: Gemini's compat endpoint).
        self._positions: dict[int, int] = {}
        self._last_choice: dict[str, Any] = {}
        self._had_tool_calls = False
        #: OpenRouter's web search citations (`delta.annotations`), reported at the end.
        self._citations: list[dict[str, Any]] = []
        #: The reasoning text, kept only where it must travel back (for the cache).
        self._reasoning: list[str] | None = (
            [] if target.caps.reasoning_echo and target.reasoning_cache is not None else None
        )

    def feed(self, data: bytes) -> list[Event]:
        """Events for one upstream read. Raises VdmError for an in-band upstream error."""
        out: list[Event] = []
        if self.done:
            return out
        feed_chunk = self.feed_chunk
        try:
            for event in self._sse.feed_data(data):
                if event == b"[DONE]":
                    self.done = True
                    break
                # No number of a chunk's reaches the client but token counts: no look for
                # integers beyond 64 bits (tool arguments are JSON in a string). orjson
                # straight away, the hot path; `json_event` for what it refuses (invalid
                # UTF-8, what the standard library reads, the 502 of what is no object).
                try:
                    chunk = _orjson_loads(event)
                except ValueError:
                    chunk = json_event(event, exact_ints=False)
                if type(chunk) is not dict:
                    chunk = json_event(event, exact_ints=False)
                feed_chunk(chunk, out)
                if self.done:
                    break
        except VdmError as exc:
            self._error, self.done = held(exc, out), True  # see `held`
        if not self.target.web_search_stub:  # what `_stub` checks first, without its call
            return out
        return self._stub(out)

    def finish(self) -> list[Event]:
        """Close the open block and the message; raises VdmError if the stream was cut."""
        out: list[Event] = []
        if self._error is not None:
            raise self._error
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
        searches = 0
        if self.target.web_search_query is not None:
            self._searched(self.target.web_search_query, out)
            searches = 1
        blocks.close(out)
        if self._reasoning:
            cache = self.target.reasoning_cache
            assert cache is not None
            text = "".join(self._reasoning)
            for call in self._tools.values():
                name = self.target.client_tool_name(call.name or "")
                arguments = tool_input("".join(call.arguments or ()))
                cache.put(call.client_id, name, arguments, text)
        out.append(MessageEnd(reason, sequence, self.usage, searches))
        return self._stub(out)

    def _searched(self, query: str, out: list[Event]) -> None:
        """The request-wide search (OpenRouter's `web` plugin): the citations on the open
        text block, then the search and the cited pages as its results."""
        blocks = self._blocks
        if blocks.is_open("text"):
            out.extend(CitationDelta(blocks.open_index, c) for c in self._citations)
        call = new_server_tool_id()
        _, result = search_blocks(call, query, results_of(self._citations))
        out.append(
            ServerToolUseStart(blocks.open(out, "search"), call, "web_search", query_json(query))
        )
        out.append(ServerToolResultStart(blocks.open(out, "search_result"), result))

    def feed_chunk(self, chunk: dict[str, Any], out: list[Event]) -> None:
        """Events for one parsed `chat.completion.chunk`."""
        get = chunk.get
        if get("error"):
            raise error_from_chunk(chunk["error"])
        usage = get("usage")
        if not usage:  # `chat_answer.chunk_usage`, inlined: this runs for every chunk
            groq = get("x_groq")  # Groq reports stream usage here
            usage = groq.get("usage") if isinstance(groq, dict) else None
        if usage:
            self.usage = usage_from_chat(usage)
            self.reasoning_tokens = from_chat_usage(usage)
        choices = get("choices")
        if not choices:
            if usage and self.finish_reason is not None:
                # The usage chunk after the finish (`stream_options.include_usage`) is the
                # last: the answer is complete without waiting for `[DONE]`, which a provider
                # may send late or never.
                self.done = True
            return
        choice = choices[0]
        delta = choice.get("delta") or {}
        get = delta.get
        reasoning = get("reasoning_content") or get("reasoning")
        if reasoning and isinstance(reasoning, str):
            self._blocks.thinking(out, reasoning, signature=CHAT_REASONING)
            if self._reasoning is not None:
                self._reasoning.append(reasoning)
        content = get("content")
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
        annotations = get("annotations")
        if annotations and self.target.web_search_query is not None:
            self._citations.extend(c for c in map(chat_annotation, annotations) if c)
        tool_calls = get("tool_calls")
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
        signature = thought_signature(fragment)
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
        call.client_id = client_call_id(self.target, call.id, call.signature)
        out.append(ToolUseStart(index, call.client_id, name))
        call.index = index
        if call.pending:
            out.append(InputJsonDelta(index, call.pending))
            call.pending = ""
