"""Canonical events -> Anthropic Messages SSE bytes (the Anthropic frontend's stream encoder).

Event grammar (DESIGN.md): one `message_start`, then per block `content_block_start`,
deltas, `content_block_stop`, then `message_delta` (stop reason, usage) and `message_stop`.
Deltas, the hot path, are written from pre-formatted templates: one `json.dumps` of the
payload string per event.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from vdm.protocol.errors import VdmError, anthropic_error_event
from vdm.protocol.events import (
    BlockStop,
    CitationDelta,
    Event,
    InputJsonDelta,
    MessageEnd,
    RedactedThinkingStart,
    ServerToolResultStart,
    ServerToolUseStart,
    SignatureDelta,
    TextDelta,
    TextStart,
    ThinkingDelta,
    ThinkingStart,
    ToolUseStart,
)
from vdm.protocol.sse import dumps, encode_event

PING = b'event: ping\ndata: {"type":"ping"}\n\n'
MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'

_DELTA = (
    'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
    '"delta":{"type":"%s","%s":%s}}\n\n'
)
_TEXT_START = (
    'event: content_block_start\ndata: {"type":"content_block_start","index":%d,'
    '"content_block":{"type":"text","text":""}}\n\n'
)
_THINKING_START = (
    'event: content_block_start\ndata: {"type":"content_block_start","index":%d,'
    '"content_block":{"type":"thinking","thinking":"","signature":""}}\n\n'
)
_STOP = 'event: content_block_stop\ndata: {"type":"content_block_stop","index":%d}\n\n'


def new_message_id() -> str:
    return "msg_" + uuid.uuid4().hex[:24]


def anthropic_message(
    requested: str,
    content: list[dict[str, Any]],
    stop_reason: str,
    stop_sequence: str | None,
    usage: dict[str, int],
    web_search_requests: int = 0,
) -> dict[str, Any]:
    """A whole (non-streamed) Anthropic Message for the client's `requested` model name."""
    return {
        "id": new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": requested,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": with_searches(usage, web_search_requests),
    }


def with_searches(usage: Mapping[str, int], web_search_requests: int) -> dict[str, Any]:
    """`usage` plus Anthropic's count of the provider's web searches, when there were any."""
    out: dict[str, Any] = dict(usage)
    if web_search_requests:
        out["server_tool_use"] = {"web_search_requests": web_search_requests}
    return out


def new_tool_id() -> str:
    return "toolu_" + uuid.uuid4().hex[:24]


class AnthropicStreamEncoder:
    """Writes one Anthropic SSE stream for the client's `model` name."""

    __slots__ = ("model", "message_id", "started")

    def __init__(self, model: str, message_id: str | None = None) -> None:
        self.model = model
        self.message_id = message_id or new_message_id()
        self.started = False

    def start(self) -> bytes:
        """`message_start`, sent as soon as the upstream answers."""
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

    def keepalive(self) -> bytes:
        """What keeps the client waiting during a long upstream silence."""
        return PING

    def error(self, exc: VdmError) -> bytes:
        """A failure after the stream started: an SSE `error` event, which ends it."""
        return anthropic_error_event(exc)

    def encode(self, events: Iterable[Event], out: list[bytes], reasoning_tokens: int = 0) -> None:
        """Append the bytes of `events` to `out` (Anthropic streams carry no reasoning count:
        `reasoning_tokens` is for other dialects' encoders)."""
        for event in events:
            if isinstance(event, TextDelta):
                out.append(
                    (_DELTA % (event.index, "text_delta", "text", dumps(event.text))).encode()
                )
            elif isinstance(event, InputJsonDelta):
                partial = dumps(event.partial_json)
                out.append(
                    (_DELTA % (event.index, "input_json_delta", "partial_json", partial)).encode()
                )
            elif isinstance(event, ThinkingDelta):
                thinking = dumps(event.thinking)
                out.append(
                    (_DELTA % (event.index, "thinking_delta", "thinking", thinking)).encode()
                )
            elif isinstance(event, BlockStop):
                out.append((_STOP % event.index).encode())
            elif isinstance(event, TextStart):
                out.append((_TEXT_START % event.index).encode())
            elif isinstance(event, ThinkingStart):
                out.append((_THINKING_START % event.index).encode())
            elif isinstance(event, ToolUseStart):
                out.append(
                    encode_event(
                        "content_block_start",
                        {
                            "type": "content_block_start",
                            "index": event.index,
                            "content_block": {
                                "type": "tool_use",
                                "id": event.id,
                                "name": event.name,
                                "input": {},
                            },
                        },
                    )
                )
            elif isinstance(event, RedactedThinkingStart):
                block = {"type": "redacted_thinking", "data": event.data}
                out.append(
                    encode_event(
                        "content_block_start",
                        {
                            "type": "content_block_start",
                            "index": event.index,
                            "content_block": block,
                        },
                    )
                )
            elif isinstance(event, SignatureDelta):
                signature = dumps(event.signature)
                out.append(
                    (_DELTA % (event.index, "signature_delta", "signature", signature)).encode()
                )
            elif isinstance(event, MessageEnd):
                out.append(
                    encode_event(
                        "message_delta",
                        {
                            "type": "message_delta",
                            "delta": {
                                "stop_reason": event.stop_reason,
                                "stop_sequence": event.stop_sequence,
                            },
                            "usage": with_searches(event.usage, event.web_search_requests),
                        },
                    )
                )
                out.append(MESSAGE_STOP)
            else:
                _server_tool_event(event, out)


def _server_tool_event(event: Event, out: list[bytes]) -> None:
    """The provider's own web search as Anthropic streams its server tool: the call's
    `server_tool_use` start then its input as one `input_json_delta`; the result block whole
    in its start event; citations as `citations_delta` on the text block."""
    if isinstance(event, ServerToolUseStart):
        block = {"type": "server_tool_use", "id": event.id, "name": event.name, "input": {}}
        start = {"type": "content_block_start", "index": event.index, "content_block": block}
        out.append(encode_event("content_block_start", start))
        partial = dumps(event.input_json)
        out.append((_DELTA % (event.index, "input_json_delta", "partial_json", partial)).encode())
    elif isinstance(event, ServerToolResultStart):
        start = {
            "type": "content_block_start",
            "index": event.index,
            "content_block": dict(event.block),
        }
        out.append(encode_event("content_block_start", start))
    elif isinstance(event, CitationDelta):
        delta = {"type": "citations_delta", "citation": dict(event.citation)}
        body = {"type": "content_block_delta", "index": event.index, "delta": delta}
        out.append(encode_event("content_block_delta", body))
