"""Canonical events / Anthropic messages -> OpenAI Responses answers (the Responses frontend's
encoder; dialects.md B3, B4).

Two kinds of client read this: Codex CLI, which builds messages and tool calls only from
`response.output_item.done` and ends the turn at `response.completed`, and the `openai` SDK's
stream helper, which needs `response.created` first and each item, and each content part,
announced (`output_item.added`, `content_part.added`) before a delta refers to it by index.
So every Anthropic block becomes one output item that is added, fed, and done in turn, and
`output_index` counts items in the order they were added.

What a Responses client's tools became upstream is undone here (`ToolRoutes`): a flattened
namespace member goes back as a `function_call` with its `namespace`, since Codex routes a
call by (namespace, name); a freeform tool goes back as a `custom_tool_call` carrying the raw
string. Thinking goes out as a reasoning item: the text as its summary, the whole block
(signature included) packed into `encrypted_content`, which Codex stores and sends back. A
redacted thinking block is a reasoning item too, with no summary and the block (its `data`)
packed the same way, so the next turn can hand it back to Anthropic unchanged.

`sequence_number` counts every event the stream writes, keepalives included, from 0 and
without gaps: each event is numbered when it is encoded, so bytes must reach the client in
the order they were encoded (a keepalive after the events encoded before it).

Deltas, the hot path, are written from a prefix pre-formatted when their item opens: one
`dumps` of the fragment per event, no pydantic.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from vdm.protocol.errors import VdmError
from vdm.protocol.events import (
    BlockStop,
    Event,
    InputJsonDelta,
    MessageEnd,
    RedactedThinkingStart,
    SignatureDelta,
    TextDelta,
    TextStart,
    ThinkingDelta,
    ThinkingStart,
    ToolUseStart,
)
from vdm.protocol.responses_objects import (
    INCOMPLETE_REASONS,
    call_item,
    custom_input,
    message_item,
    new_id,
    output_text,
    reasoning_item,
    request_echo,
    response_error,
    response_object,
    responses_usage,
    tool_arguments,
)
from vdm.protocol.responses_tools import ToolRoutes
from vdm.protocol.sse import dumps, encode_event

log = logging.getLogger(__name__)


class _Item:
    """The output item of the open block."""

    __slots__ = ("kind", "id", "index", "prefix", "parts", "signature", "call_id", "name", "open")

    def __init__(self, kind: str, item_id: str, index: int) -> None:
        self.kind = kind  # "reasoning" | "redacted" | "message" | "call"
        self.id = item_id
        self.index = index
        #: The pre-formatted start of this item's delta events (None: deltas are buffered).
        self.prefix: str | None = None
        self.parts: list[str] = []
        #: A thinking block's signature; a redacted block's `data`.
        self.signature = ""
        self.call_id = ""
        self.name = ""
        #: A reasoning item's summary part has been announced (on its first text).
        self.open = False


def _delta_prefix(kind: str, fields: str) -> str:
    return f'event: {kind}\ndata: {{"type":"{kind}",{fields},"delta":'


class ResponsesStreamEncoder:
    """Writes one Responses SSE stream (`event: <type>` + `data: <json>`) for the client's
    `model` name; `sequence_number` counts every event from 0."""

    __slots__ = ("model", "tools", "id", "started", "finished", "_head", "_seq", "_items", "_done")

    def __init__(
        self,
        model: str,
        tools: ToolRoutes,
        request: Mapping[str, Any] | None = None,
        response_id: str | None = None,
        created_at: int | None = None,
    ) -> None:
        self.model = model
        self.tools = tools
        self.id = response_id or new_id("resp_")
        self.started = False
        #: The final event (completed, incomplete or failed) is written: nothing may follow.
        self.finished = False
        created = created_at if created_at is not None else int(time.time())
        self._head = {
            "id": self.id,
            "created_at": created,
            "model": model,
            "echo": request_echo(request),
        }
        self._seq = 0
        #: Anthropic block index -> its open output item.
        self._items: dict[int, _Item] = {}
        #: Every item done so far, in output_index order: the final response's `output`.
        self._done: list[dict[str, Any]] = []

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, **fields, "sequence_number": self._seq}
        self._seq += 1
        return encode_event(kind, data)

    def _lifecycle(self, kind: str, status: str, **fields: Any) -> bytes:
        output = self._done if status != "in_progress" else []
        return self._event(kind, response=response_object(self._head, status, output, **fields))

    def start(self) -> bytes:
        """`response.created` and `response.in_progress`, sent as soon as the upstream answers;
        nothing if the stream has started already (a keepalive may have started it), since a
        second `response.created` would be taken for a new response."""
        if self.started:
            return b""
        self.started = True
        created = self._lifecycle("response.created", "in_progress")
        return created + self._lifecycle("response.in_progress", "in_progress")

    def keepalive(self) -> bytes:
        """A `response.in_progress` for a long upstream silence (Codex gives up after 300 s of
        none); the stream's start if it has not started; nothing once it is over. It takes
        the next `sequence_number`: the caller sends it after every byte encoded before it."""
        if self.finished:
            return b""
        if not self.started:
            return self.start()
        return self._lifecycle("response.in_progress", "in_progress")

    def encode(self, events: Iterable[Event], out: list[bytes], reasoning_tokens: int = 0) -> None:
        """Append the bytes of `events` to `out`. `reasoning_tokens` is the decoder's count
        (`StreamDecoder.reasoning_tokens`), reported in the usage at MessageEnd."""
        if self.finished:
            return
        if not self.started:
            out.append(self.start())
        for event in events:
            if isinstance(event, TextDelta):
                self._delta(event.index, event.text, out)
            elif isinstance(event, InputJsonDelta):
                self._delta(event.index, event.partial_json, out)
            elif isinstance(event, ThinkingDelta):
                self._delta(event.index, event.thinking, out)
            elif isinstance(event, TextStart):
                self._open_message(event.index, out)
            elif isinstance(event, ThinkingStart):
                self._open_reasoning(event.index, out)
            elif isinstance(event, RedactedThinkingStart):
                self._open_reasoning(event.index, out, redacted=event.data)
            elif isinstance(event, ToolUseStart):
                self._open_call(event, out)
            elif isinstance(event, SignatureDelta):
                item = self._items.get(event.index)
                if item is not None:
                    item.signature = event.signature
            elif isinstance(event, BlockStop):
                self._close(event.index, out)
            elif isinstance(event, MessageEnd):
                self._end(event, out, reasoning_tokens)
                return

    def _delta(self, index: int, text: str, out: list[bytes]) -> None:
        item = self._items.get(index)
        if item is None:
            log.debug("delta for block %d, which is not open; dropped", index)
            return
        if not text:
            return
        item.parts.append(text)
        if item.kind == "reasoning" and not item.open:
            out.append(self._summary_part(item, "added", ""))
        if item.prefix is not None:
            out.append(f'{item.prefix}{dumps(text)},"sequence_number":{self._seq}}}\n\n'.encode())
            self._seq += 1

    def _next(self, out: list[bytes]) -> int:
        """The output_index of a new item, once a block left open is closed (blocks come one
        at a time: a start while one is open means its stop was lost)."""
        for open_index in list(self._items):
            self._close(open_index, out)
        return len(self._done)

    def _add(self, index: int, item: _Item, added: dict[str, Any], out: list[bytes]) -> None:
        self._items[index] = item
        out.append(self._event("response.output_item.added", output_index=item.index, item=added))

    def _open_message(self, index: int, out: list[bytes]) -> None:
        item = _Item("message", new_id("msg_"), self._next(out))
        self._add(index, item, message_item(item.id, [], "in_progress"), out)
        where = self._where(item)
        part = output_text("")
        out.append(self._event("response.content_part.added", **where, content_index=0, part=part))
        fields = f'"item_id":"{item.id}","output_index":{item.index},"content_index":0'
        item.prefix = _delta_prefix("response.output_text.delta", fields + ',"logprobs":[]')

    def _open_reasoning(self, index: int, out: list[bytes], redacted: str | None = None) -> None:
        """A reasoning item; `redacted` is a redacted block's data (an item without summary,
        and without deltas: nothing is announced but the item)."""
        kind = "reasoning" if redacted is None else "redacted"
        item = _Item(kind, new_id("rs_"), self._next(out))
        added: dict[str, Any] = {
            "id": item.id,
            "type": "reasoning",
            "summary": [],
            "encrypted_content": None,
        }
        self._add(index, item, added, out)
        if redacted is not None:
            item.signature = redacted
            return  # `prefix` stays None: a stray delta is buffered and never sent
        fields = f'"item_id":"{item.id}","output_index":{item.index},"summary_index":0'
        item.prefix = _delta_prefix("response.reasoning_summary_text.delta", fields)

    def _open_call(self, event: ToolUseStart, out: list[bytes]) -> None:
        index = self._next(out)
        call = call_item(self.tools, event.name, event.id, "", "in_progress")
        item = _Item("call", call["id"], index)
        item.call_id, item.name = event.id, event.name
        self._add(event.index, item, call, out)
        if call["type"] == "function_call":
            fields = f'"item_id":"{item.id}","output_index":{item.index}'
            item.prefix = _delta_prefix("response.function_call_arguments.delta", fields)
        # A freeform tool's input arrives as partial JSON of {"input": ...}: sent when done.

    @staticmethod
    def _where(item: _Item) -> dict[str, Any]:
        return {"item_id": item.id, "output_index": item.index}

    def _summary_part(self, item: _Item, phase: str, text: str) -> bytes:
        item.open = True
        part = {"type": "summary_text", "text": text}
        kind = f"response.reasoning_summary_part.{phase}"
        return self._event(kind, **self._where(item), summary_index=0, part=part)

    def _close(self, index: int, out: list[bytes]) -> None:
        """The block's closing events and its whole item (`output_item.done`)."""
        item = self._items.pop(index, None)
        if item is None:
            log.debug("block_stop for block %d, which is not open", index)
            return
        text, where = "".join(item.parts), self._where(item)
        event = self._event
        if item.kind == "message":
            part = output_text(text)
            out.append(
                event("response.output_text.done", **where, content_index=0, text=text, logprobs=[])
            )
            out.append(event("response.content_part.done", **where, content_index=0, part=part))
            done = message_item(item.id, [part], "completed")
        elif item.kind == "reasoning":
            if item.open:
                out.append(
                    event(
                        "response.reasoning_summary_text.done", **where, summary_index=0, text=text
                    )
                )
                out.append(self._summary_part(item, "done", text))
            block = {"type": "thinking", "thinking": text, "signature": item.signature}
            done = reasoning_item(item.id, text, block)
        elif item.kind == "redacted":
            redacted = {"type": "redacted_thinking", "data": item.signature}
            done = reasoning_item(item.id, "", redacted)
        else:
            done = call_item(self.tools, item.name, item.call_id, "", "completed", item.id)
            if done["type"] == "function_call":
                done["arguments"] = arguments = text or "{}"
                name = done["name"]
                out.append(
                    event(
                        "response.function_call_arguments.done",
                        **where,
                        name=name,
                        arguments=arguments,
                    )
                )
            else:
                done["input"] = raw = custom_input(text)
                if raw:
                    out.append(event("response.custom_tool_call_input.delta", **where, delta=raw))
                out.append(event("response.custom_tool_call_input.done", **where, input=raw))
        self._done.append(done)
        out.append(event("response.output_item.done", output_index=item.index, item=done))

    def _end(self, event: MessageEnd, out: list[bytes], reasoning_tokens: int) -> None:
        for index in list(self._items):
            self._close(index, out)
        usage = responses_usage(event.usage, reasoning_tokens)
        reason = INCOMPLETE_REASONS.get(event.stop_reason)
        status = "incomplete" if reason else "completed"
        out.append(self._lifecycle(f"response.{status}", status, usage=usage, incomplete=reason))
        self.finished = True

    def error(self, exc: VdmError) -> bytes:
        """A failure: `response.failed` with Codex's `error.code` for it (B4), after
        `response.created` if the stream had not started; the caller closes the stream right
        after, which is when Codex acts on it. Nothing once the stream is over."""
        if self.finished:
            return b""
        head = b""
        if not self.started:
            self.started = True
            head = self._lifecycle("response.created", "in_progress")
        self.finished = True
        return head + self._lifecycle("response.failed", "failed", error=response_error(exc))


def responses_error_stream(
    exc: VdmError, model: str, request: Mapping[str, Any] | None = None
) -> bytes | None:
    """The HTTP 200 stream (`response.created`, `response.failed`) answering a streaming
    request whose upstream failed before its stream began, for the failures Codex handles
    only in-band: a context overflow (a 400 would read as a generic invalid request), a rate
    limit (an HTTP 429 is fatal for Codex, a failed event is retried after the delay) and a
    server error (retried). None for anything else: that gets an HTTP error in OpenAI's JSON
    shape (`chat_from_events.openai_error_response`)."""
    if not (exc.overflow or exc.status == 429 or exc.status >= 500):
        return None
    return ResponsesStreamEncoder(model, ToolRoutes(), request).error(exc)


# --- the whole answer -----------------------------------------------------------------------


def response_from_message(
    message: Mapping[str, Any],
    model: str,
    tools: ToolRoutes,
    request: Mapping[str, Any] | None = None,
    reasoning_tokens: int = 0,
    *,
    response_id: str | None = None,
    created_at: int | None = None,
) -> dict[str, Any]:
    """The `response` object for a whole Anthropic message (a non-streamed answer): the same
    items a stream of that message would leave done, in block order. Empty text blocks and
    block types with no Responses counterpart (server tools, their results) are dropped."""
    output: list[dict[str, Any]] = []
    for block in message.get("content") or []:
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "text":
            if block.get("text"):
                output.append(
                    message_item(new_id("msg_"), [output_text(str(block["text"]))], "completed")
                )
        elif kind == "thinking":
            text = str(block.get("thinking") or "")
            signed = {
                "type": "thinking",
                "thinking": text,
                "signature": block.get("signature") or "",
            }
            output.append(reasoning_item(new_id("rs_"), text, signed))
        elif kind == "redacted_thinking":
            redacted = {"type": "redacted_thinking", "data": block.get("data") or ""}
            output.append(reasoning_item(new_id("rs_"), "", redacted))
        elif kind == "tool_use":
            name, tool_input = str(block.get("name") or ""), block.get("input")
            if name in tools.custom:
                payload = custom_input(tool_arguments(tool_input))
            else:
                payload = tool_arguments(tool_input)
            output.append(call_item(tools, name, str(block.get("id") or ""), payload, "completed"))
        else:
            log.debug("content block %r not representable in a Responses answer; dropped", kind)
    head = {
        "id": response_id or new_id("resp_"),
        "created_at": created_at if created_at is not None else int(time.time()),
        "model": model,
        "echo": request_echo(request),
    }
    reason = INCOMPLETE_REASONS.get(str(message.get("stop_reason")))
    usage = responses_usage(message.get("usage") or {}, reasoning_tokens)
    return response_object(
        head, "incomplete" if reason else "completed", output, usage, incomplete=reason
    )
