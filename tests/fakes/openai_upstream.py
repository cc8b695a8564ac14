"""A fake OpenAI-compatible upstream: a real HTTP/1.1 server on loopback that records requests.

It speaks just enough of the OpenAI Chat Completions protocol for the gateway's tests and
benchmarks, on a real socket, so that the proxy's HTTP client, connection pooling, timeouts and
cancellation are exercised for real::

    with FakeOpenAI() as fake:
        fake.enqueue(SseReply(stream_chunks("Hi there", pieces=3)))
        ...  # point the proxy (or the openai SDK) at fake.base_url
        assert fake.last.json["model"] == "gpt-4o"

Design notes:

* The server runs in a daemon thread with its own asyncio event loop, so it works from sync
  tests, async tests (any backend) and while the test process blocks on a subprocess.
* HTTP is parsed by a small hand-written parser on top of ``asyncio.Protocol`` (no framework):
  request line, headers, ``Content-Length`` and chunked request bodies, keep-alive (HTTP/1.1
  default, ``Connection: close`` honoured) and ``Expect: 100-continue``. Pipelined requests are
  queued and answered in order.
* Replies are pre-rendered to bytes once per reply object; an instant reply (JSON, or an SSE
  stream without delays) is a single ``transport.write`` from ``data_received`` with no task,
  so the fake's own per-request cost stays negligible next to the proxy's in benchmarks.
* Timed replies (delays, pauses, hangs, ``cut_after``, raw bytes) run in a task; the connection's
  ``connection_lost`` (client EOF or reset) cancels that task at once and counts a disconnect,
  so "the client went away mid-stream" is observable within milliseconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import http
import json as _json
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Self, TypeAlias, cast

from tests.fakes.chat_rules import RULES as CHAT_RULES
from tests.fakes.chat_rules import check as check_rules
from tests.fakes.model_limits import chat_rejection

__all__ = [
    "FakeOpenAI",
    "HangReply",
    "JsonReply",
    "RawReply",
    "Recorded",
    "Reply",
    "ReplySource",
    "SseFileReply",
    "SseReply",
    "ToolCallSpec",
    "auto_reply",
    "completion",
    "stream_chunks",
]

#: Fixed ``created`` timestamp used by the builders (2025-01-01T00:00:00Z): builders are pure.
FAKE_CREATED = 1_735_689_600
_FINGERPRINT = "fp_f4ke0c0ffee"
_DEFAULT_TEXT = "Hello from fake"

#: ``(name, arguments_json)`` or ``(name, arguments_json, call_id)``.
ToolCallSpec: TypeAlias = tuple[str, str] | tuple[str, str, str]


# --------------------------------------------------------------------------------------------
# Builders: pure functions producing realistic OpenAI objects
# --------------------------------------------------------------------------------------------


def _tool_call_id(index: int, name: str) -> str:
    digest = hashlib.sha1(f"{index}:{name}".encode(), usedforsecurity=False).hexdigest()
    return "call_" + digest[:24]


def _norm_tool_calls(tool_calls: Sequence[ToolCallSpec] | None) -> list[tuple[str, str, str]]:
    """Return ``[(id, name, arguments)]``."""
    out: list[tuple[str, str, str]] = []
    for i, spec in enumerate(tool_calls or ()):
        name, args = spec[0], spec[1]
        call_id = str(spec[-1]) if len(spec) == 3 else _tool_call_id(i, name)
        out.append((call_id, name, args))
    return out


def _estimate_tokens(*parts: str | None) -> int:
    chars = sum(len(p) for p in parts if p)
    return max(1, (chars + 3) // 4)


def _usage(
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int | None,
    reasoning_tokens: int | None,
) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if cached_tokens is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached_tokens, "audio_tokens": 0}
    if reasoning_tokens is not None:
        usage["completion_tokens_details"] = {
            "reasoning_tokens": reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        }
    return usage


def completion(
    text: str | None = _DEFAULT_TEXT,
    *,
    model: str = "gpt-4o",
    tool_calls: Sequence[ToolCallSpec] | None = None,
    reasoning_content: str | None = None,
    finish_reason: str | None = None,
    prompt_tokens: int = 12,
    completion_tokens: int | None = None,
    cached_tokens: int | None = None,
    reasoning_tokens: int | None = None,
    id: str | None = None,
    created: int = FAKE_CREATED,
    typed_content: bool = False,
) -> dict[str, Any]:
    """A full non-streaming ``chat.completion`` object.

    ``typed_content=True``: Mistral's reasoning models' shape, ``content`` a list of chunks
    (``{"type": "thinking", "thinking": [{"type": "text", "text": …}]}`` for the reasoning,
    then ``{"type": "text", "text": …}``) and no ``reasoning_content``.

    ``finish_reason`` defaults to ``"tool_calls"`` when tool calls are given, else ``"stop"``.
    ``completion_tokens`` defaults to a rough chars/4 estimate of everything generated.
    ``prompt_tokens_details`` appears only when ``cached_tokens`` is given and
    ``completion_tokens_details`` only when ``reasoning_tokens`` is given.
    """
    calls = _norm_tool_calls(tool_calls)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text if (text or not calls) else None,
        "refusal": None,
    }
    if typed_content:
        message["content"] = _typed(reasoning_content, text)
    elif reasoning_content is not None:
        message["reasoning_content"] = reasoning_content
    if calls:
        message["tool_calls"] = [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
            for cid, name, args in calls
        ]
    if completion_tokens is None:
        completion_tokens = _estimate_tokens(text, reasoning_content, *(n + a for _, n, a in calls))
    return {
        "id": id or "chatcmpl-F4keC0mpl3t10nAAAAAAAAAAAAAAAA",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason or ("tool_calls" if calls else "stop"),
            }
        ],
        "usage": _usage(prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens),
        "service_tier": "default",
        "system_fingerprint": _FINGERPRINT,
    }


def _typed(thinking: str | None, text: str | None) -> list[dict[str, Any]]:
    """Mistral's typed content chunks (docs.mistral.ai, reasoning)."""
    chunks: list[dict[str, Any]] = []
    if thinking:
        chunks.append({"type": "thinking", "thinking": [{"type": "text", "text": thinking}]})
    if text:
        chunks.append({"type": "text", "text": text})
    return chunks


_WORDS = re.compile(r"\s*\S+\s*?(?=\s|$)|\s+$")


def _split_text(text: str, pieces: int | None) -> list[str]:
    """Split ``text`` into deltas: word-ish tokens (``"Hello", " world"``) or ``pieces`` slices."""
    if not text:
        return []
    if pieces is None:
        parts = _WORDS.findall(text)
        return parts if "".join(parts) == text else [text]
    pieces = max(1, min(pieces, len(text)))
    size, extra = divmod(len(text), pieces)
    out: list[str] = []
    pos = 0
    for i in range(pieces):
        n = size + (1 if i < extra else 0)
        out.append(text[pos : pos + n])
        pos += n
    return out


def stream_chunks(
    text: str = _DEFAULT_TEXT,
    *,
    model: str = "gpt-4o",
    pieces: int | None = None,
    tool_calls: Sequence[ToolCallSpec] | None = None,
    arg_pieces: int = 4,
    reasoning_content: str | None = None,
    finish_reason: str | None = None,
    usage: bool = True,
    prompt_tokens: int = 12,
    completion_tokens: int | None = None,
    cached_tokens: int | None = None,
    reasoning_tokens: int | None = None,
    id: str | None = None,
    created: int = FAKE_CREATED,
    typed_content: bool = False,
    whole_calls: bool = False,
) -> list[dict[str, Any]]:
    """``chat.completion.chunk`` objects exactly as OpenAI streams them.

    Order: a role chunk (``{"role": "assistant", "content": ""}``), ``reasoning_content``
    deltas (DeepSeek style, with ``content: null``), content deltas, tool-call deltas (first
    fragment: index, id, type, function.name and ``arguments: ""``; then only index and
    ``function.arguments`` pieces, ``arg_pieces`` of them), a final chunk with an empty delta and
    the ``finish_reason``, and with ``usage=True`` a last chunk with ``choices: []`` and
    ``usage`` (as with ``stream_options.include_usage``; the earlier chunks then carry
    ``"usage": null`` like OpenAI's). ``pieces`` splits the text (and the reasoning) into that
    many deltas instead of word-ish tokens.

    ``typed_content=True``: Mistral's reasoning models, every delta's ``content`` a list of
    typed chunks (``thinking`` then ``text``; see ``completion``). ``whole_calls=True``:
    Gemini's OpenAI-compatible endpoint, each call whole in its own chunk (id, name and all
    its arguments) and every one at ``index: 0`` (NousResearch/hermes-agent#62940).
    """
    calls = _norm_tool_calls(tool_calls)
    chunk_id = id or "chatcmpl-F4keStr3amAAAAAAAAAAAAAAAAAAA"
    base: dict[str, Any] = {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": _FINGERPRINT,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        c = dict(base)
        c["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        if usage:
            c["usage"] = None
        return c

    chunks = [chunk({"role": "assistant", "content": ""})]
    for piece in _split_text(reasoning_content or "", pieces):
        if typed_content:
            chunks.append(chunk({"content": _typed(piece, None)}))
        else:
            chunks.append(chunk({"content": None, "reasoning_content": piece}))
    for piece in _split_text(text, pieces):
        chunks.append(chunk({"content": _typed(None, piece) if typed_content else piece}))
    for index, (cid, name, args) in enumerate(calls):
        if whole_calls:
            whole = {"index": 0, "id": cid, "type": "function"}
            chunks.append(
                chunk({"tool_calls": [{**whole, "function": {"name": name, "arguments": args}}]})
            )
            continue
        first = {
            "index": index,
            "id": cid,
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        chunks.append(chunk({"tool_calls": [first]}))
        for frag in _split_text(args, arg_pieces):
            chunks.append(
                chunk({"tool_calls": [{"index": index, "function": {"arguments": frag}}]})
            )
    chunks.append(chunk({}, finish_reason or ("tool_calls" if calls else "stop")))
    if usage:
        if completion_tokens is None:
            completion_tokens = _estimate_tokens(
                text, reasoning_content, *(n + a for _, n, a in calls)
            )
        last = dict(base)
        last["choices"] = []
        last["usage"] = _usage(prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens)
        chunks.append(last)
    return chunks


# --------------------------------------------------------------------------------------------
# Recorded requests
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Recorded:
    """One request as the fake received it (header names lowercased, body de-chunked)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    @cached_property
    def json(self) -> Any:
        """The body parsed as JSON, or ``None`` when empty or not JSON."""
        if not self.body:
            return None
        try:
            return _json.loads(self.body)
        except ValueError:
            return None


# --------------------------------------------------------------------------------------------
# Replies (pre-rendered to wire bytes on first use)
# --------------------------------------------------------------------------------------------


def _dumps(obj: Any) -> bytes:
    return _json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _head(status: int, headers: Mapping[str, str], keep_alive: bool) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    lines = [f"HTTP/1.1 {status} {phrase}"]
    lines.extend(f"{k}: {v}" for k, v in headers.items())
    if not keep_alive:
        lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _merge_headers(defaults: dict[str, str], extra: Mapping[str, str] | None) -> dict[str, str]:
    merged = dict(defaults)
    for k, v in (extra or {}).items():
        merged[k.lower()] = v
    return merged


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


_LAST_CHUNK = b"0\r\n\r\n"
_DONE_EVENT = b"data: [DONE]\n\n"


@dataclass(frozen=True, eq=False)
class JsonReply:
    """A JSON response with ``Content-Length`` (also used for errors).

    ``delay`` (an extension) waits that long before answering, e.g. to model upstream latency.
    """

    body: dict[str, Any] | list[Any] | bytes
    status: int = 200
    headers: Mapping[str, str] | None = None
    delay: float = 0.0

    @cached_property
    def _payload(self) -> bytes:
        return self.body if isinstance(self.body, bytes) else _dumps(self.body)

    @cached_property
    def _wire_keep_alive(self) -> bytes:
        return self._render(True)

    @cached_property
    def _wire_close(self) -> bytes:
        return self._render(False)

    def _render(self, keep_alive: bool) -> bytes:
        payload = self._payload
        headers = _merge_headers(
            {"content-type": "application/json", "content-length": str(len(payload))},
            self.headers,
        )
        headers["content-length"] = str(len(payload))
        return _head(self.status, headers, keep_alive) + payload

    def wire(self, keep_alive: bool = True) -> bytes:
        """The full response bytes."""
        return self._wire_keep_alive if keep_alive else self._wire_close


def _encode_event(event: Mapping[str, Any] | str | bytes) -> bytes:
    if isinstance(event, bytes):
        return event
    if isinstance(event, str):
        return event.encode()
    return b"data: " + _dumps(event) + b"\n\n"


class _StreamBase:
    """Shared wire rendering for SSE replies (chunked ``text/event-stream``)."""

    status: int
    headers: Mapping[str, str] | None
    delay: float

    @property
    def _event_bytes(self) -> list[bytes]:
        raise NotImplementedError

    @property
    def _pauses(self) -> Mapping[int, float]:
        return {}

    @property
    def _cut_after(self) -> int | None:
        return None

    @property
    def _done(self) -> bool:
        return False

    @cached_property
    def _frames(self) -> list[bytes]:
        """Every event as one HTTP chunk, plus ``[DONE]`` unless the stream is cut."""
        frames = [_http_chunk(e) for e in self._event_bytes if e]
        if self._done and self._cut_after is None:
            frames.append(_http_chunk(_DONE_EVENT))
        return frames

    @cached_property
    def _instant(self) -> bool:
        return not self.delay and not self._pauses and self._cut_after is None

    def _head(self, keep_alive: bool) -> bytes:
        headers = _merge_headers(
            {
                "content-type": "text/event-stream",
                "cache-control": "no-cache",
                "transfer-encoding": "chunked",
            },
            self.headers,
        )
        return _head(self.status, headers, keep_alive)

    @cached_property
    def _wire_keep_alive(self) -> bytes:
        return self._head(True) + b"".join(self._frames) + _LAST_CHUNK

    @cached_property
    def _wire_close(self) -> bytes:
        return self._head(False) + b"".join(self._frames) + _LAST_CHUNK

    def wire(self, keep_alive: bool = True) -> bytes:
        """The whole response as sent when there are no delays (for inspection)."""
        return self._wire_keep_alive if keep_alive else self._wire_close


@dataclass(frozen=True, eq=False)
class SseReply(_StreamBase):
    """A ``text/event-stream`` reply sent with ``Transfer-Encoding: chunked``.

    * dict events are sent as ``data: <compact json>\\n\\n``; ``str``/``bytes`` events raw (so
      comments such as ``": keep-alive\\n\\n"`` or ``event:`` lines can be scripted);
    * ``delay`` seconds between events; ``pauses={i: s}`` sleeps ``s`` more before event ``i``;
    * ``done`` appends ``data: [DONE]\\n\\n``;
    * ``cut_after=N`` sends N events and then drops the connection without finishing the chunked
      body and without ``[DONE]`` (an upstream dying mid-stream).
    """

    events: Sequence[Mapping[str, Any] | str | bytes]
    delay: float = 0.0
    done: bool = True
    pauses: Mapping[int, float] | None = None
    cut_after: int | None = None
    headers: Mapping[str, str] | None = None
    status: int = 200

    @cached_property
    def _event_bytes(self) -> list[bytes]:
        return [_encode_event(e) for e in self.events]

    @property
    def _pauses(self) -> Mapping[int, float]:
        return self.pauses or {}

    @property
    def _cut_after(self) -> int | None:
        return self.cut_after

    @property
    def _done(self) -> bool:
        return self.done


def split_sse_events(data: bytes) -> list[bytes]:
    """Split a raw SSE body into events, each keeping its terminating blank line."""
    sep = b"\r\n\r\n" if b"\r\n\r\n" in data else b"\n\n"
    events: list[bytes] = []
    start = 0
    while True:
        end = data.find(sep, start)
        if end < 0:
            break
        events.append(data[start : end + len(sep)])
        start = end + len(sep)
    if start < len(data):
        events.append(data[start:])
    return events


@dataclass(frozen=True, eq=False)
class SseFileReply(_StreamBase):
    """Replays a recorded SSE body verbatim, event by event, with an optional ``delay``.

    Nothing is added: a fixture ends with ``data: [DONE]`` only if the provider sends it.
    """

    path: str | Path
    delay: float = 0.0
    headers: Mapping[str, str] | None = None
    status: int = 200

    @cached_property
    def _event_bytes(self) -> list[bytes]:
        return split_sse_events(Path(self.path).read_bytes())


@dataclass(frozen=True, eq=False)
class HangReply:
    """Accept the request, send nothing for ``seconds``, then close the connection."""

    seconds: float


#: What the connection does after a :class:`RawReply`'s last part.
RawEnd: TypeAlias = Literal["close", "abort", "keep"]

#: The most one :class:`RawReply` writes (2 GiB): an endless body stops there even if the
#: client keeps reading, so a runaway test cannot fill the machine.
RAW_LIMIT = 2 * 1024**3


@dataclass(frozen=True, eq=False)
class RawReply:
    """Raw bytes written to the socket as given, the HTTP head included.

    Nothing is added or checked, so a test can send anything a broken upstream or proxy might:
    a truncated body, a lying ``content-length``, a bad chunk, not HTTP at all.

    * ``parts``: the byte strings to write, in order; or a callable returning a fresh iterator
      of them (an endless body: the fake stops when the client goes away, when the server
      stops, or after ``limit`` bytes; a paused transport is drained first, so a client that
      stops reading holds the writer instead of growing the fake's buffer);
    * ``delay``: seconds between parts (a drip);
    * ``end``: after the last part ``"close"`` the connection (FIN, once written data is
      flushed), ``"abort"`` it (RST, after flushing), or ``"keep"`` it open for the next
      request (the parts must then form one complete response).

    Always sent from a task, so it counts in ``active_streams`` and a client that leaves before
    the end counts in ``disconnects``.
    """

    parts: Sequence[bytes] | Callable[[], Iterator[bytes]]
    delay: float = 0.0
    end: RawEnd = "close"
    limit: int = RAW_LIMIT

    def iter_parts(self) -> Iterator[bytes]:
        """A fresh iterator over the parts (a reply object may be sent many times)."""
        return iter(self.parts()) if callable(self.parts) else iter(self.parts)


Reply: TypeAlias = JsonReply | SseReply | SseFileReply | HangReply | RawReply
ReplySource: TypeAlias = Reply | Callable[[Recorded], Reply]


def _error_body(message: str, type_: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": None}}


_AUTO_JSON = JsonReply(completion(_DEFAULT_TEXT, prompt_tokens=12, completion_tokens=4))
_AUTO_SSE = SseReply(stream_chunks(_DEFAULT_TEXT, prompt_tokens=12, completion_tokens=4))
_MODELS = JsonReply(
    {
        "object": "list",
        "data": [
            {"id": m, "object": "model", "created": FAKE_CREATED, "owned_by": "fake"}
            for m in ("gpt-4o", "gpt-4o-mini", "o3-mini")
        ],
    }
)


def openrouter_search_reply(
    text: str, citations: Sequence[tuple[str, str, str]]
) -> Callable[[Recorded], Reply]:
    """OpenRouter's answer with its `web` plugin: `url_citation` annotations (`(url, title,
    excerpt)`) on the message, or in a stream on the delta before the finish, and only when
    the request asked for the plugin (openrouter.ai/docs/guides/features/web-search)."""

    def reply(request: Recorded) -> Reply:
        asked = request.json if isinstance(request.json, dict) else {}
        searched = any(p.get("id") == "web" for p in asked.get("plugins") or ())
        notes = [
            {
                "type": "url_citation",
                "url_citation": {
                    "url": url,
                    "title": title,
                    "content": excerpt,
                    "start_index": 0,
                    "end_index": len(text),
                },
            }
            for url, title, excerpt in (citations if searched else ())
        ]
        model = str(asked.get("model") or "gpt-4o")
        if asked.get("stream"):
            chunks = stream_chunks(text, model=model)
            if notes:
                chunks.insert(-2, {**chunks[1], "choices": [
                    {"index": 0, "delta": {"annotations": notes}, "finish_reason": None}
                ]})  # fmt: skip
            return SseReply(chunks)
        body = completion(text, model=model)
        if notes:
            body["choices"][0]["message"]["annotations"] = notes
        return JsonReply(body)

    return reply


def auto_reply(request: Recorded) -> Reply:
    """The default reply: "Hello from fake", streamed iff the request body has ``stream: true``.

    The streamed variant always ends with a usage chunk (``choices: []``).
    """
    if b'"stream"' in request.body:
        data = request.json
        if isinstance(data, dict) and data.get("stream") is True:
            return _AUTO_SSE
    return _AUTO_JSON


# --------------------------------------------------------------------------------------------
# The HTTP/1.1 server
# --------------------------------------------------------------------------------------------

_MAX_HEAD = 64 * 1024


class _BadRequest(Exception):
    pass


def _parse_chunked(buf: bytearray, start: int) -> tuple[bytes, int] | None:
    """Decode a chunked body starting at ``start``: ``(body, end)`` or ``None`` if incomplete."""
    body = bytearray()
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size_field = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
        try:
            size = int(size_field, 16)
        except ValueError:
            raise _BadRequest("bad chunk size") from None
        pos = eol + 2
        if size == 0:
            # Optional trailers, then an empty line.
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                if eol == pos:
                    return bytes(body), eol + 2
                pos = eol + 2
        if len(buf) < pos + size + 2:
            return None
        body += buf[pos : pos + size]
        pos += size + 2


class _Connection(asyncio.Protocol):
    def __init__(self, owner: FakeOpenAI) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.busy = False  # a response is being produced (or the connection is closing)
        self.closed = False
        self.live = False  # a timed response is in flight (interruptible, counts disconnects)
        self.task: asyncio.Task[None] | None = None
        self.paused = False
        self.drain_waiter: asyncio.Future[None] | None = None
        self.sent_continue = False

    # -- asyncio.Protocol callbacks -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.owner._conns.add(self)
        self.owner._connection_count += 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._process()

    def eof_received(self) -> bool | None:
        return None  # close our side too: a half-closed HTTP client is a gone client

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.owner._conns.discard(self)
        if self.live:
            self.live = False
            if not self.owner._stopping:
                self.owner._note_disconnect()
        if self.task is not None and not self.task.done():
            self.task.cancel()
        waiter = self.drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        waiter = self.drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- request parsing ------------------------------------------------------------------------

    def _process(self) -> None:
        buf = self.buf
        while buf and not self.busy and not self.closed:
            try:
                if not self._handle_one(buf):
                    return
            except _BadRequest as exc:
                self._fail(400, str(exc))
                return

    def _handle_one(self, buf: bytearray) -> bool:
        """Parse and answer one request; ``False`` when more bytes are needed."""
        while buf.startswith(b"\r\n"):  # tolerate stray CRLFs between requests
            del buf[:2]
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > _MAX_HEAD:
                raise _BadRequest("request head too large")
            return False
        lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            raise _BadRequest("malformed request line") from None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise _BadRequest("malformed header line")
            name = name.strip().lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        body_start = end + 4
        if "chunked" in headers.get("transfer-encoding", "").lower():
            parsed = _parse_chunked(buf, body_start)
            if parsed is None:
                self._maybe_continue(headers)
                return False
            body, body_end = parsed
        else:
            try:
                length = int(headers.get("content-length") or 0)
            except ValueError:
                raise _BadRequest("bad content-length") from None
            body_end = body_start + length
            if len(buf) < body_end:
                self._maybe_continue(headers)
                return False
            body = bytes(buf[body_start:body_end])
        del buf[:body_end]
        self.sent_continue = False
        if version == "HTTP/1.1":
            keep_alive = "close" not in headers.get("connection", "").lower()
        else:
            keep_alive = False
        self._dispatch(method, target, headers, body, keep_alive)
        return True

    def _maybe_continue(self, headers: dict[str, str]) -> None:
        if (
            not self.sent_continue
            and headers.get("expect", "").lower() == "100-continue"
            and self.transport is not None
        ):
            self.sent_continue = True
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _fail(self, status: int, message: str) -> None:
        self.busy = True
        if self.transport is not None:
            self.transport.write(self.owner._error_reply(status, message).wire(False))
            self.transport.close()

    # -- responding -----------------------------------------------------------------------------

    def _dispatch(
        self, method: str, target: str, headers: dict[str, str], body: bytes, keep_alive: bool
    ) -> None:
        path, _, query = target.partition("?")
        request = Recorded(method, path, query, headers, body)
        self.owner._record(request)
        self._send(self.owner._route(request), keep_alive)

    def _send(self, reply: Reply, keep_alive: bool) -> None:
        transport = self.transport
        assert transport is not None
        wire: bytes | None = None
        if isinstance(reply, JsonReply):
            if not reply.delay:
                wire = reply.wire(keep_alive)
        elif isinstance(reply, SseReply | SseFileReply) and reply._instant:
            wire = reply.wire(keep_alive)
        if wire is not None:
            transport.write(wire)
            if not keep_alive:
                self.busy = True
                transport.close()
            return
        self.busy = True
        self.live = True
        self.owner._active_streams += 1
        task = asyncio.get_running_loop().create_task(self._send_timed(reply, keep_alive))
        self.task = task
        self.owner._tasks.add(task)
        task.add_done_callback(self.owner._tasks.discard)

    async def _send_timed(self, reply: Reply, keep_alive: bool) -> None:
        owner = self.owner
        transport = self.transport
        assert transport is not None
        try:
            if isinstance(reply, HangReply):
                await asyncio.sleep(reply.seconds)
                self.live = False
                transport.close()
                return
            if isinstance(reply, JsonReply):
                await asyncio.sleep(reply.delay)
                self.live = False
                transport.write(reply.wire(keep_alive))
            elif isinstance(reply, RawReply):
                if not await self._raw(reply):
                    return  # closed or aborted as the reply asked
            elif not await self._stream(reply, keep_alive):
                return  # cut: connection already dropped
            self.live = False
            if keep_alive:
                self.busy = False
                if self.buf:
                    self._process()
            else:
                transport.close()
        except asyncio.CancelledError:
            pass  # the client went away (counted in connection_lost) or the server is stopping
        finally:
            if self.task is asyncio.current_task():  # not if a pipelined successor took over
                self.live = False
            owner._active_streams -= 1

    async def _stream(self, reply: SseReply | SseFileReply, keep_alive: bool) -> bool:
        transport = self.transport
        assert transport is not None
        transport.write(reply._head(keep_alive))
        delay = reply.delay
        pauses = reply._pauses
        cut = reply._cut_after
        for i, frame in enumerate(reply._frames):
            if cut is not None and i >= cut:
                break
            wait = (delay if i else 0.0) + pauses.get(i, 0.0)
            if wait > 0:
                await asyncio.sleep(wait)
            transport.write(frame)
            if self.paused:
                await self._drain()
        if cut is not None:
            # Let what was written reach the client, then drop the connection mid-body.
            deadline = time.monotonic() + 2.0
            while transport.get_write_buffer_size() and time.monotonic() < deadline:
                await asyncio.sleep(0.001)
            self.live = False
            self.busy = True
            transport.abort()
            return False
        transport.write(_LAST_CHUNK)
        return True

    async def _raw(self, reply: RawReply) -> bool:
        """Write a :class:`RawReply`; ``False`` when it ended the connection."""
        transport = self.transport
        assert transport is not None
        sent = 0
        for i, part in enumerate(reply.iter_parts()):
            if i and reply.delay > 0:
                await asyncio.sleep(reply.delay)
            elif i % 64 == 63:
                await asyncio.sleep(0)  # a fast endless body must not starve other connections
            if self.closed:
                return False
            transport.write(part)
            sent += len(part)
            if self.paused:
                await self._drain()
            if sent >= reply.limit:
                break
        if reply.end == "keep":
            return True
        if reply.end == "abort":
            # abort() discards what is buffered: let it reach the client first.
            deadline = time.monotonic() + 2.0
            while transport.get_write_buffer_size() and time.monotonic() < deadline:
                await asyncio.sleep(0.001)
        self.live = False
        self.busy = True
        if reply.end == "abort":
            # A zero linger time makes the close a reset (RST), not an orderly FIN.
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        else:
            transport.close()
        return False

    async def _drain(self) -> None:
        if self.closed:
            return
        waiter = asyncio.get_running_loop().create_future()
        self.drain_waiter = waiter
        try:
            await waiter
        finally:
            self.drain_waiter = None

    def shutdown(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()


class FakeOpenAI:
    """A fake OpenAI-compatible upstream on ``127.0.0.1`` (OS-picked port) in its own thread.

    Routes: ``POST .../chat/completions`` (scripted replies), ``GET .../models`` (a small list),
    anything else 404 in OpenAI's error shape. Every request is recorded (``record=False`` only
    counts them, for long benchmarks).

    Replies come from :meth:`enqueue` (FIFO) and, when the queue is empty, from :attr:`default`
    (initially :func:`auto_reply`). A reply source may be a callable ``(Recorded) -> Reply``.

    Other protocols subclass it and override :meth:`_route` and :meth:`_error_reply`
    (see ``tests.fakes.anthropic_upstream.FakeAnthropic``).
    """

    #: Name of the server thread (a subclass names its protocol).
    _thread_name = "fake-openai"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        record: bool = True,
        rules: str | None = None,
    ) -> None:
        self.host = host
        if rules is not None and rules not in CHAT_RULES:
            raise ValueError(f"no rules for provider family {rules!r}; known: {sorted(CHAT_RULES)}")
        #: A provider family (`tests.fakes.chat_rules`): chat requests that provider's API
        #: refuses get its error instead of a scripted reply.
        self.rules = rules
        self._requested_port = port
        self._record_bodies = record
        self._default: ReplySource = auto_reply
        self._queue: deque[ReplySource] = deque()
        self._lock = threading.Lock()
        self._requests: list[Recorded] = []
        self._request_count = 0
        self._connection_count = 0
        self._active_streams = 0
        self._disconnects = 0
        self._disconnect_event = threading.Event()
        self._conns: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Self:
        name = type(self).__name__
        if self._thread is not None:
            raise RuntimeError(f"{name} already started")
        self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"{name} did not start within 10 s")
        if self._error is not None:
            raise RuntimeError(f"{name} failed to start") from self._error
        return self

    def stop(self) -> None:
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None or loop is None or stop_event is None or not thread.is_alive():
            return
        try:
            loop.call_soon_threadsafe(stop_event.set)
        except RuntimeError:  # loop already closed
            pass
        thread.join(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
        finally:
            self._ready.set()
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        server = await loop.create_server(
            lambda: _Connection(self),
            self.host,
            self._requested_port,
            backlog=1024,
            reuse_address=True,
        )
        self._port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stop_event.wait()
        finally:
            self._stopping = True
            server.close()
            for conn in list(self._conns):
                conn.shutdown()
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            await server.wait_closed()
            # Let the transports' connection_lost callbacks run so every socket is closed.
            for _ in range(3):
                await asyncio.sleep(0)

    # -- addresses ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no path)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, what an OpenAI client takes as ``base_url``."""
        return f"{self.url}/v1"

    # -- routing --------------------------------------------------------------------------------

    def _route(self, request: Recorded) -> Reply:
        """The reply to ``request`` (called on the server loop, after recording)."""
        method, path = request.method, request.path
        if method == "POST" and path.endswith("/chat/completions"):
            if self.rules is not None:
                rejected = check_rules(self.rules, request.json, path)
                if rejected is not None:
                    return JsonReply(rejected[1], status=rejected[0])
            # Output ceilings per model (tests/fakes/model_limits.py), OpenAI's without rules.
            rejected = chat_rejection(self.rules or "openai", request.json)
            if rejected is not None:
                return JsonReply(rejected[1], status=rejected[0])
            return self._next_reply(request)
        if method == "GET" and path.endswith("/models"):
            return _MODELS
        return self._error_reply(
            404, f"Unknown request URL: {method} {path}. Please check the URL."
        )

    def _error_reply(self, status: int, message: str) -> JsonReply:
        """An error in this protocol's shape: 404s, malformed requests, broken reply callables."""
        type_ = "server_error" if status >= 500 else "invalid_request_error"
        return JsonReply(_error_body(message, type_), status=status)

    # -- scripting ------------------------------------------------------------------------------

    def enqueue(self, *replies: ReplySource) -> None:
        """Queue replies, answered FIFO by the next chat-completion requests."""
        self._queue.extend(replies)

    @property
    def default(self) -> ReplySource:
        """The reply used when the queue is empty (initially :func:`auto_reply`)."""
        return self._default

    @default.setter
    def default(self, reply: ReplySource) -> None:
        self._default = reply

    @property
    def queued(self) -> int:
        """Replies still waiting in the queue."""
        return len(self._queue)

    def _next_reply(self, request: Recorded) -> Reply:
        try:
            source = self._queue.popleft()
        except IndexError:
            source = self._default
        if callable(source):
            try:
                return source(request)
            except Exception as exc:  # make a broken script visible to the test
                return self._error_reply(500, f"fake upstream reply callable failed: {exc!r}")
        return source

    # -- recording ------------------------------------------------------------------------------

    def _record(self, request: Recorded) -> None:
        with self._lock:
            self._request_count += 1
            if self._record_bodies:
                self._requests.append(request)

    @property
    def requests(self) -> list[Recorded]:
        """A snapshot of the recorded requests, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def last(self) -> Recorded:
        """The most recent recorded request."""
        with self._lock:
            if not self._requests:
                raise LookupError(f"{type(self).__name__} has not recorded any request")
            return self._requests[-1]

    @property
    def request_count(self) -> int:
        """Requests received (since start or the last :meth:`clear`), recorded or not."""
        return self._request_count

    def clear(self) -> None:
        """Forget recorded requests and reset the request and disconnect counters.

        The reply queue and :attr:`default` are left alone.
        """
        with self._lock:
            self._requests.clear()
            self._request_count = 0
            self._disconnects = 0
            self._disconnect_event.clear()

    def wait_for_requests(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Wait until at least ``count`` requests have arrived."""
        deadline = time.monotonic() + timeout
        while self._request_count < count:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.002)
        return True

    # -- observability --------------------------------------------------------------------------

    @property
    def connection_count(self) -> int:
        """TCP connections accepted since start."""
        return self._connection_count

    @property
    def active_streams(self) -> int:
        """Timed responses (delayed/paused/cut streams, hangs, delayed JSON) now in flight."""
        return self._active_streams

    @property
    def disconnects(self) -> int:
        """Timed responses the client abandoned (closed or reset) before they were finished."""
        return self._disconnects

    def wait_for_disconnect(self, timeout: float = 5.0) -> bool:
        """Wait until at least one client disconnect has been observed (since :meth:`clear`)."""
        return self._disconnect_event.wait(timeout)

    def _note_disconnect(self) -> None:
        with self._lock:
            self._disconnects += 1
        self._disconnect_event.set()

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None else "not started"
        return f"<{type(self).__name__} {where} requests={self._request_count}>"


def main(argv: Sequence[str] | None = None) -> None:
    """Run the fake standalone (e.g. as a benchmark's upstream in its own process).

    ``python -m tests.fakes.openai_upstream [--port N] [--record]`` writes the base URL on one
    line to stdout, then serves the default replies until SIGINT/SIGTERM.
    """
    import argparse
    import signal
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--record", action="store_true", help="keep every request in memory")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with FakeOpenAI(args.host, args.port, record=args.record) as fake:
        sys.stdout.write(fake.base_url + "\n")
        sys.stdout.flush()
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
