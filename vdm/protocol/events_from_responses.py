"""OpenAI Responses stream -> canonical (Anthropic) events (pure): `ResponsesStreamDecoder`,
the stream state machine (../shared/reference/dialects.md A3). The rules are in
vdm/protocol/anthropic_from_responses.py's docstring; a whole answer is converted there.

Items are decoded one at a time: events of an item that starts while another is still open
are held until that one is done, so blocks never interleave. An item that was never announced
(`response.output_item.added`) is decoded whole from its `output_item.done`, or from the
terminal event's `response.output` (servers that send whole items, completed-only streams).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from vdm.protocol.anthropic_stream import new_tool_id
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
    ThinkingDelta,
    ThinkingStart,
    ToolUseStart,
)
from vdm.protocol.reasoning import from_responses_usage
from vdm.protocol.responses_output import (
    error_from_failure,
    part_texts,
    reasoning_text,
    stop_reason,
    usage_from_responses,
)
from vdm.protocol.search_stub import StubAnswers
from vdm.protocol.signatures import pack_reasoning
from vdm.protocol.sse import SseDecoder, json_event
from vdm.protocol.web_search import (
    query_json,
    search_blocks,
    search_query,
    search_results,
    server_tool_id,
    url_citation,
)

log = logging.getLogger(__name__)

#: The events that can start decoding an item: its announcement, or the item sent whole.
_OPENERS = ("response.output_item.added", "response.output_item.done")


@dataclass(slots=True)
class _Item:
    """What the decoder knows of one output item."""

    kind: str
    #: Text (or thinking, or arguments) already sent for it.
    sent: bool = False
    #: A message's text so far, for the spans its citations quote (joined only then).
    parts: list[str] = field(default_factory=list)


class ResponsesStreamDecoder:
    """State machine: Responses stream bytes in, canonical events out."""

    def __init__(self, target: Target, *, thinking: bool = True) -> None:
        self.target = target
        #: Answers the model's calls of the web search stub (vdm/protocol/search_stub.py).
        self._stub = StubAnswers(target)
        self.thinking = thinking
        self.done = False
        self.usage: dict[str, int] = {"input_tokens": 0, "output_tokens": 0}
        self.reasoning_tokens = 0
        self._sse = SseDecoder()
        self._error: VdmError | None = None  # raised by `finish` (see `feed`)
        self._blocks = Blocks()
        self._items: dict[int, _Item] = {}
        #: Ids (`id`, `call_id`) of the items decoded, so the final output repeats none.
        self._seen: set[str] = set()
        #: The output_index being decoded; events of others wait in `_held`.
        self._current: int | None = None
        self._held: dict[int, list[dict[str, Any]]] = {}
        self._finished: set[int] = set()
        self._tool_use = False
        self._refusal = False
        self._searches = 0

    def feed(self, data: bytes) -> list[Event]:
        """Events for one upstream read. Raises VdmError for a failed response."""
        out: list[Event] = []
        if self.done:
            return out
        try:
            for event in self._sse.feed(data):
                self._event(json_event(event.data), out)
                if self.done:
                    break
        except VdmError as exc:
            self._error, self.done = held(exc, out), True  # see `held`
        return self._stub(out)

    def finish(self) -> list[Event]:
        """Nothing more once the response ended; raises VdmError if the stream was cut."""
        out: list[Event] = []
        if self._error is not None:
            raise self._error
        if not self.done:
            for event in self._sse.flush():
                self._event(json_event(event.data), out)
        if not self.done:
            raise VdmError(502, "upstream stream ended before the response was complete")
        return self._stub(out)

    # -- dispatch --------------------------------------------------------------------------------

    def _event(self, event: dict[str, Any], out: list[Event]) -> None:
        kind = event.get("type")
        if kind in ("response.completed", "response.incomplete"):
            self._end(event.get("response") or {}, out)
        elif kind == "response.failed":
            raise error_from_failure((event.get("response") or {}).get("error"))
        elif kind == "error":
            raise error_from_failure(event)
        else:
            index = event.get("output_index")
            if not isinstance(index, int) or index in self._finished:
                return  # response.created / in_progress / keepalives, or a late straggler
            if index not in self._items and index not in self._held and kind not in _OPENERS:
                # Part of an item never announced: it is decoded whole from its done event
                # or from the response's output at the end.
                log.debug("%s for output %d before its output_item.added: dropped", kind, index)
                return
            if self._current is None:
                self._current = index
            if index == self._current:
                self._item_event(index, event, out)
            else:
                self._held.setdefault(index, []).append(event)

    def _next_held(self, out: list[Event]) -> None:
        """Decode held items in arrival order once the current one is done."""
        while self._current is None and self._held:
            index = next(iter(self._held))
            self._current = index
            for event in self._held.pop(index):
                if index in self._finished:
                    break
                self._item_event(index, event, out)

    def _end(self, response: dict[str, Any], out: list[Event]) -> None:
        # Close an item cut short (an incomplete response), then decode what was held back.
        while True:
            self._blocks.close(out)
            if self._current is not None:
                self._finished.add(self._current)
                self._current = None
            self._next_held(out)
            if self._current is None:
                break
        # Items this stream never announced (a server that sends whole items in the terminal
        # event only, or a completed-only stream): decoded whole from the response's output.
        for index, payload in enumerate(response.get("output") or ()):
            if index in self._items or not isinstance(payload, dict):
                continue
            ids = {payload.get("id"), payload.get("call_id")} - {None}
            if ids & self._seen:  # an item already decoded under another index
                continue
            self._whole(index, payload, out)
        self.usage = usage_from_responses(response.get("usage"))
        self.reasoning_tokens = from_responses_usage(response.get("usage"))
        reason = stop_reason(response, self._tool_use, self._refusal)
        out.append(MessageEnd(reason, None, self.usage, self._searches))
        self.done = True

    # -- one item --------------------------------------------------------------------------------

    def _whole(self, index: int, payload: dict[str, Any], out: list[Event]) -> None:
        """One output item decoded whole, as its `added` then its `done` event would."""
        self._current = index
        self._added(index, payload, out)
        self._done(index, self._items[index], payload, out)

    def _item_event(self, index: int, event: dict[str, Any], out: list[Event]) -> None:
        kind = event.get("type")
        item = self._items.get(index)
        if kind == "response.output_item.added":
            self._added(index, event.get("item") or {}, out)
        elif item is None:
            if kind == "response.output_item.done" and isinstance(event.get("item"), dict):
                # An item sent whole, never announced: its done event carries all of it.
                self._whole(index, event["item"], out)
            else:
                # (a held event of an item whose done event never came: decoded at the end)
                log.debug("%s for output %d before its output_item.added: dropped", kind, index)
        elif kind == "response.output_item.done":
            self._done(index, item, event.get("item") or {}, out)
        elif item.kind == "message":
            self._message_event(index, item, kind, event, out)
        elif item.kind == "reasoning":
            self._reasoning_event(index, item, kind, event, out)
        elif item.kind == "function_call":
            if kind == "response.function_call_arguments.delta":
                self._arguments(index, item, event.get("delta"), out)
            elif kind == "response.function_call_arguments.done" and not item.sent:
                self._arguments(index, item, event.get("arguments") or "{}", out)

    def _added(self, index: int, payload: dict[str, Any], out: list[Event]) -> None:
        kind = str(payload.get("type"))
        self._items[index] = _Item(kind)
        self._seen.update(str(v) for v in (payload.get("id"), payload.get("call_id")) if v)
        if kind == "function_call":
            self._tool_use = True
            block = self._blocks.open(out, index)
            call = payload.get("call_id") or payload.get("id") or new_tool_id()
            name = self.target.client_tool_name(str(payload.get("name") or ""))
            out.append(ToolUseStart(block, self.target.client_tool_id(call), name))
        elif kind not in ("message", "reasoning", "web_search_call"):
            log.debug("ignored a %s output item", kind)

    def _done(self, index: int, item: _Item, payload: dict[str, Any], out: list[Event]) -> None:
        blocks = self._blocks
        if item.kind == "message" and not item.sent:
            # A provider that sends whole items only: the text is in the done item.
            for part in payload.get("content") or ():
                for text in part_texts([part], "output_text", "refusal"):
                    self._text(index, item, text, out)
                    for note in part.get("annotations") or ():
                        self._citation(index, item, note, out)
            self._refusal = self._refusal or bool(part_texts(payload.get("content"), "refusal"))
        elif item.kind == "reasoning" and self.thinking:
            encrypted = payload.get("encrypted_content")
            if not item.sent:
                text = reasoning_text(payload)
                if text or encrypted:
                    self._thinking(index, item, text, out)
            if blocks.is_open(index):
                # The encrypted content is complete only now (the `added` copy may not be).
                blocks.signature = pack_reasoning(str(payload.get("id") or ""), encrypted)
        elif item.kind == "function_call" and not item.sent:
            self._arguments(index, item, payload.get("arguments") or "{}", out)
        elif item.kind == "web_search_call":
            self._search(index, payload, out)
        if blocks.is_open(index):
            blocks.close(out)
        self._finished.add(index)
        self._current = None
        self._next_held(out)

    def _message_event(
        self, index: int, item: _Item, kind: Any, event: dict[str, Any], out: list[Event]
    ) -> None:
        if kind == "response.output_text.delta":
            self._text(index, item, event.get("delta"), out)
        elif kind == "response.refusal.delta":
            self._refusal = True
            self._text(index, item, event.get("delta"), out)
        elif kind == "response.output_text.annotation.added":
            self._citation(index, item, event.get("annotation"), out)
        elif kind in ("response.output_text.done", "response.refusal.done") and not item.sent:
            self._refusal = self._refusal or kind == "response.refusal.done"
            self._text(index, item, event.get("text") or event.get("refusal"), out)

    def _reasoning_event(
        self, index: int, item: _Item, kind: Any, event: dict[str, Any], out: list[Event]
    ) -> None:
        if kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            self._thinking(index, item, event.get("delta"), out)
        elif kind == "response.reasoning_summary_part.added":
            if event.get("summary_index", 0) > 0 and item.sent:
                self._thinking(index, item, "\n\n", out)
        elif kind == "response.reasoning_summary_text.done" and not item.sent:
            self._thinking(index, item, event.get("text"), out)

    def _text(self, index: int, item: _Item, text: Any, out: list[Event]) -> None:
        if isinstance(text, str) and text:
            self._blocks.text(out, text, key=index)
            item.sent = True
            item.parts.append(text)

    def _citation(self, index: int, item: _Item, annotation: Any, out: list[Event]) -> None:
        """A `url_citation` of the message's text, on its open text block. (Offsets count
        across the item's text parts, which are one block here.)"""
        if not self._blocks.is_open(index):
            log.debug("dropped an annotation outside its text block")
            return
        citation = url_citation("".join(item.parts), annotation)
        if citation is None:
            return
        out.append(CitationDelta(self._blocks.open_index, citation))

    def _search(self, index: int, payload: dict[str, Any], out: list[Event]) -> None:
        """A finished `web_search_call`: Anthropic's `server_tool_use` then its result."""
        query = search_query(payload)
        if query is None:
            log.debug("dropped a web_search_call that was not a search")
            return
        self._searches += 1
        call = server_tool_id(str(payload.get("id") or ""))
        _, result = search_blocks(call, query, search_results(payload, {}))
        out.append(
            ServerToolUseStart(self._blocks.open(out, index), call, "web_search", query_json(query))
        )
        self._blocks.close(out)
        out.append(ServerToolResultStart(self._blocks.open(out, ("result", index)), result))
        self._blocks.close(out)

    def _thinking(self, index: int, item: _Item, text: Any, out: list[Event]) -> None:
        if not self.thinking or not isinstance(text, str):
            return
        if not self._blocks.is_open(index):
            out.append(ThinkingStart(self._blocks.open(out, index)))
        if text:
            out.append(ThinkingDelta(self._blocks.open_index, text))
            item.sent = True

    def _arguments(self, index: int, item: _Item, fragment: Any, out: list[Event]) -> None:
        if isinstance(fragment, str) and fragment and self._blocks.is_open(index):
            out.append(InputJsonDelta(self._blocks.open_index, fragment))
            item.sent = True
