"""A fake Anthropic Messages API upstream: :class:`FakeOpenAI`'s HTTP/1.1 server, Anthropic routes.

Everything but the protocol is inherited: the loopback server in its own thread, request
recording, scripting (:meth:`~FakeOpenAI.enqueue`, :attr:`~FakeOpenAI.default`) and timed
replies (``delay``, ``pauses``, ``cut_after``, :class:`HangReply`)::

    with FakeAnthropic() as fake:
        fake.enqueue(AnthropicSseReply(anthropic_stream_events("Hi there", pieces=3)))
        ...  # point the proxy (or the anthropic SDK) at fake.base_url, which has no /v1
        assert fake.last.headers["anthropic-version"] == "2023-06-01"

Anthropic's stream grammar differs from OpenAI's: every event carries an ``event: <type>`` line
before its ``data:`` line, and the stream ends with ``message_stop``, never ``data: [DONE]``.
The builders return those events as raw bytes, so a test can compare what a client received
with what the upstream sent byte for byte.
"""

from __future__ import annotations

import hashlib
import json as _json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

from tests.fakes.anthropic_rules import check as check_rules
from tests.fakes.anthropic_rules import sign
from tests.fakes.openai_upstream import (
    FakeOpenAI,
    HangReply,
    JsonReply,
    Recorded,
    Reply,
    SseReply,
    ToolCallSpec,
    _dumps,
    _encode_event,
    _estimate_tokens,
    _split_text,
)
from vdm.protocol.errors import ANTHROPIC_ERROR_TYPES

__all__ = [
    "AnthropicSseReply",
    "FakeAnthropic",
    "HangReply",
    "JsonReply",
    "Recorded",
    "anthropic_auto_reply",
    "anthropic_error",
    "anthropic_event",
    "anthropic_message",
    "anthropic_stream_events",
]

DEFAULT_MODEL = "claude-sonnet-4-5"
_DEFAULT_TEXT = "Hello from fake Anthropic"
_MESSAGE_ID = "msg_01F4keMe55ageAAAAAAAAAAA"
_AUTO_INPUT_TOKENS = 12
_AUTO_OUTPUT_TOKENS = 6

#: Anthropic's error ``type`` per HTTP status (used when :func:`anthropic_error` gets none).
_ERROR_TYPES = ANTHROPIC_ERROR_TYPES
_ERROR_MESSAGES: dict[str, str] = {
    "authentication_error": "invalid x-api-key",
    "not_found_error": "Not found",
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit",
    "overloaded_error": "Overloaded",
}

_MODELS: list[dict[str, str]] = [
    {
        "type": "model",
        "id": "claude-sonnet-4-5",
        "display_name": "Claude Sonnet 4.5",
        "created_at": "2025-09-29T00:00:00Z",
    },
    {
        "type": "model",
        "id": "claude-haiku-4-5",
        "display_name": "Claude Haiku 4.5",
        "created_at": "2025-10-15T00:00:00Z",
    },
    {
        "type": "model",
        "id": "claude-opus-4-1",
        "display_name": "Claude Opus 4.1",
        "created_at": "2025-08-05T00:00:00Z",
    },
]
_MODELS_REPLY = JsonReply(
    {
        "data": _MODELS,
        "has_more": False,
        "first_id": _MODELS[0]["id"],
        "last_id": _MODELS[-1]["id"],
    }
)


# --------------------------------------------------------------------------------------------
# Builders: pure functions producing realistic Anthropic objects and events
# --------------------------------------------------------------------------------------------


def _tool_use_block(spec: ToolCallSpec) -> tuple[str, str, str]:
    """``(id, name, input_json)`` from ``(name, input_json[, id])``."""
    name, args = spec[0], spec[1]
    if len(spec) == 3:
        return str(spec[-1]), name, args
    digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()
    return "toolu_01" + digest[:22], name, args


def _signature(thinking: str) -> str:
    """A deterministic stand-in for the opaque signature that seals a thinking block (the
    rules check it: `tests.fakes.anthropic_rules.sign`)."""
    return sign(thinking)


def _usage(
    input_tokens: int, output_tokens: int, cache_read: int, cache_creation: int
) -> dict[str, int]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": cache_creation,
        "cache_read_input_tokens": cache_read,
        "output_tokens": output_tokens,
    }


def anthropic_event(data: Mapping[str, Any]) -> bytes:
    """One SSE event in Anthropic's framing: ``event: <data["type"]>\\ndata: <json>\\n\\n``."""
    return b"event: " + str(data["type"]).encode() + b"\ndata: " + _dumps(data) + b"\n\n"


def anthropic_message(
    text: str = _DEFAULT_TEXT,
    *,
    model: str = DEFAULT_MODEL,
    input_tokens: int = _AUTO_INPUT_TOKENS,
    output_tokens: int | None = None,
    cache_read: int = 0,
    cache_creation: int = 0,
    stop_reason: str | None = None,
    thinking: str | None = None,
    tool_use: ToolCallSpec | None = None,
    id: str = _MESSAGE_ID,
) -> dict[str, Any]:
    """A full non-streaming ``message`` object.

    Content blocks in Anthropic's order: an optional ``thinking`` block (with a signature), the
    ``text`` block (left out when ``text`` is empty and a tool is used) and an optional
    ``tool_use`` block from ``(name, input_json[, id])``. ``stop_reason`` defaults to
    ``"tool_use"`` with a tool, else ``"end_turn"``; ``output_tokens`` to a chars/4 estimate.
    """
    content: list[dict[str, Any]] = []
    if thinking is not None:
        content.append(
            {"type": "thinking", "thinking": thinking, "signature": _signature(thinking)}
        )
    if text or tool_use is None:
        content.append({"type": "text", "text": text})
    generated = [text, thinking]
    if tool_use is not None:
        tool_id, name, args = _tool_use_block(tool_use)
        content.append(
            {"type": "tool_use", "id": tool_id, "name": name, "input": _json.loads(args)}
        )
        generated.append(name + args)
    if output_tokens is None:
        output_tokens = _estimate_tokens(*generated)
    return {
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason or ("tool_use" if tool_use is not None else "end_turn"),
        "stop_sequence": None,
        "usage": _usage(input_tokens, output_tokens, cache_read, cache_creation),
    }


def anthropic_stream_events(
    text: str = _DEFAULT_TEXT,
    *,
    model: str = DEFAULT_MODEL,
    pieces: int | None = None,
    input_tokens: int = _AUTO_INPUT_TOKENS,
    output_tokens: int | None = None,
    cache_read: int = 0,
    cache_creation: int = 0,
    stop_reason: str | None = None,
    thinking: str | None = None,
    tool_use: ToolCallSpec | None = None,
    arg_pieces: int = 4,
    ping: bool = True,
    id: str = _MESSAGE_ID,
) -> list[bytes]:
    """The raw SSE events of a streamed message, exactly as Anthropic sends them.

    ``message_start`` (the message with empty content, ``stop_reason: null`` and the input-side
    usage, ``output_tokens: 1``), a ``ping`` (unless ``ping=False``), then per content block
    ``content_block_start`` / ``content_block_delta``... / ``content_block_stop``: an optional
    thinking block (``thinking_delta`` pieces, then one ``signature_delta``), the text block
    (``text_delta`` pieces; left out when ``text`` is empty and a tool is used) and an optional
    tool_use block (``input_json_delta`` pieces: an empty one first, as Anthropic does, then
    ``arg_pieces`` slices of the JSON). Last come ``message_delta`` (``stop_reason`` and the
    final ``output_tokens``) and ``message_stop``. Arguments mean what they mean for
    :func:`anthropic_message`, whose object the SDK accumulates from these events.
    """
    final = anthropic_message(
        text,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read=cache_read,
        cache_creation=cache_creation,
        stop_reason=stop_reason,
        thinking=thinking,
        tool_use=tool_use,
        id=id,
    )
    start = dict(final, content=[], stop_reason=None)
    start["usage"] = _usage(input_tokens, 1, cache_read, cache_creation)
    events = [anthropic_event({"type": "message_start", "message": start})]
    if ping:
        events.append(anthropic_event({"type": "ping"}))

    def block(index: int, content_block: dict[str, Any], deltas: list[dict[str, Any]]) -> None:
        events.append(
            anthropic_event(
                {"type": "content_block_start", "index": index, "content_block": content_block}
            )
        )
        for delta in deltas:
            events.append(
                anthropic_event({"type": "content_block_delta", "index": index, "delta": delta})
            )
        events.append(anthropic_event({"type": "content_block_stop", "index": index}))

    for index, content in enumerate(final["content"]):
        kind = content["type"]
        if kind == "thinking":
            deltas = [
                {"type": "thinking_delta", "thinking": p}
                for p in _split_text(content["thinking"], pieces)
            ]
            deltas.append({"type": "signature_delta", "signature": content["signature"]})
            block(index, {"type": "thinking", "thinking": "", "signature": ""}, deltas)
        elif kind == "text":
            deltas = [{"type": "text_delta", "text": p} for p in _split_text(text, pieces)]
            block(index, {"type": "text", "text": ""}, deltas)
        else:
            assert tool_use is not None
            args = tool_use[1]
            deltas = [
                {"type": "input_json_delta", "partial_json": p}
                for p in ["", *_split_text(args, arg_pieces)]
            ]
            block(index, dict(content, input={}), deltas)
    events.append(
        anthropic_event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": final["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": final["usage"]["output_tokens"]},
            }
        )
    )
    events.append(anthropic_event({"type": "message_stop"}))
    return events


def anthropic_error(
    status: int,
    type_: str | None = None,
    message: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
) -> JsonReply:
    """An error reply in Anthropic's shape: ``{"type": "error", "error": {type, message}}``.

    ``type_`` defaults from the status (401 ``authentication_error``, 429 ``rate_limit_error``,
    529 ``overloaded_error``, ...); pass ``headers={"retry-after": "3"}`` for rate limits.
    """
    type_ = type_ or _ERROR_TYPES.get(status, "api_error")
    message = message or _ERROR_MESSAGES.get(type_, type_.replace("_", " "))
    body = {"type": "error", "error": {"type": type_, "message": message}}
    return JsonReply(body, status=status, headers=headers)


# --------------------------------------------------------------------------------------------
# Replies
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class AnthropicSseReply(SseReply):
    """An :class:`SseReply` in Anthropic's framing.

    ``bytes``/``str`` events (such as :func:`anthropic_stream_events`'s) are sent as they are,
    ``dict`` events through :func:`anthropic_event`; ``done`` defaults to ``False`` because an
    Anthropic stream ends with ``message_stop``, never ``[DONE]``. ``delay``, ``pauses``,
    ``cut_after``, ``headers`` and ``status`` work as for :class:`SseReply`.
    """

    done: bool = False

    @cached_property
    def _event_bytes(self) -> list[bytes]:
        return [
            anthropic_event(e) if isinstance(e, Mapping) else _encode_event(e) for e in self.events
        ]


@lru_cache(maxsize=64)
def _auto_replies(model: str) -> tuple[JsonReply, AnthropicSseReply]:
    # Cached per model so that each reply renders its wire bytes once (benchmarks reuse them).
    text, inp, out = _DEFAULT_TEXT, _AUTO_INPUT_TOKENS, _AUTO_OUTPUT_TOKENS
    return (
        JsonReply(anthropic_message(text, model=model, input_tokens=inp, output_tokens=out)),
        AnthropicSseReply(
            anthropic_stream_events(text, model=model, input_tokens=inp, output_tokens=out)
        ),
    )


def anthropic_auto_reply(request: Recorded) -> Reply:
    """The default reply: "Hello from fake Anthropic" for the requested model.

    A stream (:func:`anthropic_stream_events`) iff the body has ``"stream": true``, else a
    message object; 12 input and 6 output tokens either way.
    """
    data = request.json
    if not isinstance(data, dict):
        data = {}
    model = data.get("model")
    json_reply, sse_reply = _auto_replies(model if isinstance(model, str) else DEFAULT_MODEL)
    return sse_reply if data.get("stream") is True else json_reply


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class FakeAnthropic(FakeOpenAI):
    """A fake Anthropic Messages API upstream on ``127.0.0.1`` (OS-picked port).

    Routes (exact paths, so a client that doubles the version, ``/v1/v1/messages``, gets a 404):

    * ``POST /v1/messages``: scripted replies (:meth:`enqueue`, then :attr:`default`, initially
      :func:`anthropic_auto_reply`);
    * ``POST /v1/messages/count_tokens``: ``{"input_tokens": count_tokens_result}``;
    * ``GET /v1/models`` and ``GET /v1/models/{id}``: three Claude models in Anthropic's shape;
    * anything else: 404 ``not_found_error``.

    Every request is recorded, count_tokens and models included. :attr:`base_url` has no
    ``/v1``: Anthropic clients append the version path themselves.
    """

    _thread_name = "fake-anthropic"

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, record: bool = True, strict: bool = True
    ) -> None:
        super().__init__(host, port, record=record)
        self._default = anthropic_auto_reply
        #: Refuse what the real API refuses (`tests.fakes.anthropic_rules`) before any
        #: scripted reply; off only for a test that sends odd bodies on purpose.
        self.strict = strict
        #: What ``POST /v1/messages/count_tokens`` answers as ``input_tokens``.
        self.count_tokens_result = 42

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, what an Anthropic client takes as ``base_url``."""
        return self.url

    def _route(self, request: Recorded) -> Reply:
        method, path = request.method, request.path
        if method == "POST" and path == "/v1/messages":
            rejected = check_rules(request.json) if self.strict else None
            if rejected is not None:
                return JsonReply(rejected[1], status=rejected[0])
            return self._next_reply(request)
        if method == "POST" and path == "/v1/messages/count_tokens":
            return JsonReply({"input_tokens": self.count_tokens_result})
        if method == "GET" and path == "/v1/models":
            return _MODELS_REPLY
        if method == "GET" and path.startswith("/v1/models/"):
            model_id = path.removeprefix("/v1/models/")
            for model in _MODELS:
                if model["id"] == model_id:
                    return JsonReply(model)
            return anthropic_error(404, "not_found_error", f"model: {model_id}")
        return anthropic_error(404, "not_found_error", f"Not found: {method} {path}")

    def _error_reply(self, status: int, message: str) -> JsonReply:
        return anthropic_error(status, message=message)
