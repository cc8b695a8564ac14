"""Canonical events -> Anthropic Messages SSE bytes (the Anthropic frontend's stream encoder).

Event grammar (DESIGN.md): one `message_start`, then per block `content_block_start`,
deltas, `content_block_stop`, then `message_delta` (stop reason, usage) and `message_stop`.
Deltas, the hot path, are written from pre-encoded byte templates: one JSON encoding of the
payload string per event (byte for byte what encoding the whole event would give).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from orjson import dumps as _orjson_dumps

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
from vdm.protocol.ids import random_hex
from vdm.protocol.jsonio import dumps
from vdm.protocol.sse import encode_event

PING = b'event: ping\ndata: {"type":"ping"}\n\n'
MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def _delta(kind: str, key: str) -> bytes:
    """The template of a `content_block_delta` of `kind` (`%d` the index, `%b` the JSON of
    its `key`'s value)."""
    return (
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
        f'"delta":{{"type":"{kind}","{key}":%b}}}}\n\n'
    ).encode()


_TEXT_DELTA = _delta("text_delta", "text")
_INPUT_JSON_DELTA = _delta("input_json_delta", "partial_json")
_THINKING_DELTA = _delta("thinking_delta", "thinking")
_SIGNATURE_DELTA = _delta("signature_delta", "signature")
_TEXT_START = (
    b'event: content_block_start\ndata: {"type":"content_block_start","index":%d,'
    b'"content_block":{"type":"text","text":""}}\n\n'
)
_THINKING_START = (
    b'event: content_block_start\ndata: {"type":"content_block_start","index":%d,'
    b'"content_block":{"type":"thinking","thinking":"","signature":""}}\n\n'
)
_STOP = b'event: content_block_stop\ndata: {"type":"content_block_stop","index":%d}\n\n'


def new_message_id() -> str:
    # 96 random bits, as 24 hex digits (distinct, not secret: vdm/protocol/ids.py).
    return "msg_" + random_hex()


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
    # From the OS's CSPRNG, unlike message ids: the reasoning cache trusts a tool id's
    # random part to be out of another user's reach (`codec.unpredictable`), and a
    # Mersenne Twister's output can be predicted from the message ids a client sees.
    return "toolu_" + os.urandom(12).hex()


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
                try:  # `jsonio.dumps` inlined: this runs for every text delta
                    text = _orjson_dumps(event.text)
                except TypeError:  # a lone surrogate: what only the standard library writes
                    text = dumps(event.text)
                out.append(_TEXT_DELTA % (event.index, text))
            elif isinstance(event, InputJsonDelta):
                out.append(_INPUT_JSON_DELTA % (event.index, dumps(event.partial_json)))
            elif isinstance(event, ThinkingDelta):
                out.append(_THINKING_DELTA % (event.index, dumps(event.thinking)))
            elif isinstance(event, BlockStop):
                out.append(_STOP % event.index)
            elif isinstance(event, TextStart):
                out.append(_TEXT_START % event.index)
            elif isinstance(event, ThinkingStart):
                out.append(_THINKING_START % event.index)
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
                out.append(_SIGNATURE_DELTA % (event.index, dumps(event.signature)))
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
        out.append(_INPUT_JSON_DELTA % (event.index, dumps(event.input_json)))
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
