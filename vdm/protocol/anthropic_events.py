"""Anthropic Messages SSE -> canonical events (the Anthropic backend's stream decoder, used
when a client of another dialect reaches an Anthropic-format provider).

The canonical events follow Anthropic's own stream grammar, so most of the work is a rename:
`content_block_start` of a `text`, `thinking` or `tool_use` block opens one, its
`text_delta` / `thinking_delta` / `signature_delta` / `input_json_delta` become deltas,
`content_block_stop` closes it, and `message_stop` ends the message with the stop reason and
usage gathered from `message_start` and `message_delta` (cumulative: merged, never summed).
A `redacted_thinking` block comes whole in its start (`data`, no deltas) and becomes a
`RedactedThinkingStart`: the client must send it back unchanged in a tool loop with thinking
on (the assistant turn has to begin with its thinking), so it is never dropped.

What canonical events cannot carry is dropped with a DEBUG line, never an error, and the
indexes of what is kept are renumbered from 0 without gaps (`Blocks`):

- server tool blocks (`server_tool_use`, `web_search_tool_result`, `mcp_tool_use`, ...):
  Anthropic ran the tool and gave its result; a client of another dialect could neither run
  nor replay it, and the model's text that follows says what it found.
- a `redacted_thinking` block without its `data` (nothing to send back).
- any block or delta type this version does not know (`citations_delta`, ...), and empty
  text or thinking blocks (an empty text block is not valid canonical output).

Blocks of the kept kinds open lazily, on their first non-empty text or signature, which is
what makes empty ones disappear without leaving a gap.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from vdm.protocol.anthropic_observe import usage_of
from vdm.protocol.errors import ANTHROPIC_ERROR_TYPES, VdmError, context_overflow, held
from vdm.protocol.events import (
    Blocks,
    Event,
    InputJsonDelta,
    MessageEnd,
    RedactedThinkingStart,
    SignatureDelta,
    ThinkingStart,
    ToolUseStart,
)
from vdm.protocol.sse import MAX_LINE_BYTES, SseDecoder, json_event

log = logging.getLogger(__name__)

#: Anthropic error `type` -> HTTP status: the inverse of the table errors are rendered with,
#: so an upstream `overloaded_error` reaches the client as the 529 it was.
ERROR_STATUS: dict[str, int] = {kind: status for status, kind in ANTHROPIC_ERROR_TYPES.items()}
#: The block types canonical events carry, by the delta type each accepts.
_DELTAS: dict[str, frozenset[str]] = {
    "text": frozenset({"text_delta"}),
    "thinking": frozenset({"thinking_delta", "signature_delta"}),
    "tool_use": frozenset({"input_json_delta"}),
    "redacted_thinking": frozenset(),
}


def error_from_event(payload: dict[str, Any]) -> VdmError:
    """The VdmError for an upstream `error` event: the status its `error.type` stands for
    (500 for a type this version does not know) and the upstream's own message."""
    error = payload.get("error")
    error = error if isinstance(error, dict) else {}
    kind = error.get("type")
    kind = kind if isinstance(kind, str) else "api_error"
    message = str(error.get("message") or kind)
    status = ERROR_STATUS.get(kind, 500)
    overflow = status == 400 and context_overflow(message) is not None
    return VdmError(status, message, error_type=kind, overflow=overflow)


class AnthropicEventDecoder:
    """State machine: Anthropic Messages stream bytes in, canonical events out.

    `feed` returns the events of each read (reads may split events anywhere); the message's
    `MessageEnd` comes with `message_stop`, after which `done` is set and the rest of the
    body is ignored. `finish` raises a 502 if the body ended before `message_stop`."""

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self.done = False
        self.usage: dict[str, int] = {"input_tokens": 0, "output_tokens": 0}
        #: Anthropic does not say how much of the output was thinking (it is billed as output).
        self.reasoning_tokens = 0
        self._sse = SseDecoder(max_line_bytes)
        self._error: VdmError | None = None  # raised by `finish` (see `feed`)
        self._blocks = Blocks()
        #: Upstream block index -> its kind, for the blocks that are kept.
        self._kinds: dict[int, str] = {}
        self._stop_reason: str | None = None
        self._stop_sequence: str | None = None

    def feed(self, data: bytes) -> list[Event]:
        """Events for one upstream read. Raises VdmError for an upstream `error` event."""
        out: list[Event] = []
        if self.done:
            return out
        try:
            for event in self._sse.feed(data):
                self._event(event.event, event.data, out)
                if self.done:
                    break
        except VdmError as exc:
            self._error, self.done = held(exc, out), True  # see `held`
        return out

    def feed_event(self, data: str | bytes, name: str = "") -> list[Event]:
        """Events for one whole Anthropic stream event, its JSON `data` (the `type` in it
        names it), for an upstream that frames events itself (Bedrock's event stream carries
        each one in a `chunk`). Raises VdmError for an `error` event."""
        out: list[Event] = []
        if not self.done:
            self._event(
                name, data if isinstance(data, str) else data.decode("utf-8", "replace"), out
            )
        return out

    def finish(self) -> list[Event]:
        """Nothing more once `message_stop` came (its events were returned by `feed`); a 502
        if the body ended before it."""
        out: list[Event] = []
        if self._error is not None:
            raise self._error
        if not self.done:
            for event in self._sse.flush():
                self._event(event.event, event.data, out)
                if self.done:
                    break
        if not self.done:
            raise VdmError(502, "upstream stream ended before the response was complete")
        return out

    # -- dispatch ----------------------------------------------------------------------------

    def _event(self, name: str, data: str, out: list[Event]) -> None:
        if name == "ping":
            return  # keep-alives are not even parsed
        payload = json_event(data)
        kind = payload.get("type", name)
        if kind == "content_block_delta":
            self._delta(payload, out)
        elif kind == "content_block_start":
            self._start(payload, out)
        elif kind == "content_block_stop":
            index = payload.get("index")
            if isinstance(index, int):
                self._kinds.pop(index, None)
                if self._blocks.is_open(index):
                    self._blocks.close(out)
        elif kind == "message_start":
            message = payload.get("message")
            if isinstance(message, dict):
                self.usage.update(usage_of(message))
        elif kind == "message_delta":
            self.usage.update(usage_of(payload))
            delta = payload.get("delta")
            if isinstance(delta, dict):
                reason, sequence = delta.get("stop_reason"), delta.get("stop_sequence")
                if isinstance(reason, str):
                    self._stop_reason = reason
                if isinstance(sequence, str):
                    self._stop_sequence = sequence
        elif kind == "message_stop":
            self._end(out)
        elif kind == "error":
            raise error_from_event(payload)
        elif kind != "ping":
            log.debug("Anthropic stream event %r is unknown: dropped", kind)

    def _start(self, payload: dict[str, Any], out: list[Event]) -> None:
        index, block = payload.get("index"), payload.get("content_block")
        # Blocks come one at a time: a start means the previous block is over.
        self._blocks.close(out)
        if not isinstance(index, int) or not isinstance(block, dict):
            log.debug("content_block_start without an index or a block: dropped")
            return
        kind = block.get("type")
        if kind not in _DELTAS:
            log.debug("Anthropic %r block %d has no canonical form: dropped", kind, index)
            return
        if kind == "redacted_thinking":
            data = _text(block, "data")
            if data:
                self._kinds[index] = kind
                out.append(RedactedThinkingStart(self._blocks.open(out, index), data))
            else:
                log.debug("redacted_thinking block %d without data: dropped", index)
            return
        self._kinds[index] = kind
        if kind == "tool_use":
            start = ToolUseStart(
                self._blocks.open(out, index), str(block.get("id", "")), str(block.get("name", ""))
            )
            out.append(start)
            given = block.get("input")
            if isinstance(given, dict) and given:
                # Anthropic starts with `{}` and streams the input; a proxy may send it whole.
                out.append(InputJsonDelta(start.index, json.dumps(given, ensure_ascii=False)))
        elif kind == "text":
            self._blocks.text(out, _text(block, "text"), key=index)
        else:
            self._blocks.thinking(out, _text(block, "thinking"), key=index)
            self._signature(out, index, _text(block, "signature"))

    def _delta(self, payload: dict[str, Any], out: list[Event]) -> None:
        index, delta = payload.get("index"), payload.get("delta")
        block = self._kinds.get(index) if isinstance(index, int) else None
        if block is None or not isinstance(delta, dict):
            return  # a delta of a dropped block: said once, at its start
        kind = delta.get("type")
        if kind not in _DELTAS[block]:
            log.debug("%r in a %s block has no canonical form: dropped", kind, block)
            return
        assert isinstance(index, int)  # for mypy: `block` was found under it
        blocks = self._blocks
        if kind == "text_delta":
            blocks.text(out, _text(delta, "text"), key=index)
        elif kind == "input_json_delta":
            fragment = _text(delta, "partial_json")
            if fragment and blocks.is_open(index):
                out.append(InputJsonDelta(blocks.open_index, fragment))
        elif kind == "thinking_delta":
            blocks.thinking(out, _text(delta, "thinking"), key=index)
        else:
            self._signature(out, index, _text(delta, "signature"))

    def _signature(self, out: list[Event], index: int, signature: str) -> None:
        """A thinking block's signature, opening the block if no text came (thinking with
        `display: "omitted"` is a signature alone)."""
        if not signature:
            return
        blocks = self._blocks
        if not blocks.is_open(index):
            out.append(ThinkingStart(blocks.open(out, index)))
        out.append(SignatureDelta(blocks.open_index, signature))

    def _end(self, out: list[Event]) -> None:
        self._blocks.close(out)
        self._kinds.clear()
        self.done = True
        reason = self._stop_reason
        if reason is None:
            log.debug("message_stop without a stop_reason: read as end_turn")
            reason = "end_turn"
        out.append(MessageEnd(reason, self._stop_sequence, dict(self.usage)))


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""
