"""Small pure-ASGI helpers: read a body, send a whole response, watch for disconnects."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from vdm.protocol import jsonio
from vdm.protocol.errors import VdmError, anthropic_error_response
from vdm.server.task_scope import TaskScope
from vdm.usage.trace import Trace

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Anthropic's own request size limit.
MAX_BODY_BYTES = 32 * 1024 * 1024
#: A body over the limit is still read (and dropped), up to this many more bytes and
#: seconds, so that the client, busy sending it, gets to read the 413: a server that answers
#: and closes with unread data on the socket resets the connection, and the client sees
#: that instead of the answer.
DISCARD_BYTES = 2 * MAX_BODY_BYTES
DISCARD_SECONDS = 10.0
#: A request body an early refusal still reads, so that the connection stays usable
#: (`drain_unread`): at most this many bytes, for at most this long.
UNREAD_BYTES = 1024 * 1024
UNREAD_SECONDS = 1.0
#: How long to wait for the rest of an upstream body once the answer is complete (`[DONE]`
#: after the last event, ...), so that its connection can go back to the pool.
DRAIN_SECONDS = 1.0

#: The scope extension (`scope["extensions"][DISCONNECT]`) through which a server tells the
#: app when the request's stream closes (the client left, or the response ended: when the
#: `http.disconnect` message would be queued), with no task waiting on `receive` for it
#: (`run_until_disconnect`): vdm's HTTP/1.1 protocol (fast_h1) offers it.
DISCONNECT = "vdm.disconnect"

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class DisconnectHook(Protocol):
    """A `DISCONNECT` extension: calls back once when the request's stream closes, the
    client gone or the response ended (at once if it has closed already)."""

    def watch(self, callback: Callable[[], None]) -> None: ...

    def unwatch(self) -> None: ...


def disconnect_hook(scope: Scope) -> DisconnectHook | None:
    """The server's `DISCONNECT` extension in `scope`, if it offers one."""
    extensions = scope.get("extensions")
    return extensions.get(DISCONNECT) if extensions else None


@dataclass(frozen=True, slots=True)
class Incoming:
    """What the endpoint handlers need of a request."""

    body: bytes
    headers: list[tuple[bytes, bytes]]
    #: The client's own provider key, for `!PASSTHRU` providers (see vdm/server/auth.py).
    client_key: str | None = None
    #: What accounting learns of the request (a detached one when built outside the app).
    trace: Trace = field(default_factory=lambda: Trace("", "POST", "", "messages"))
    #: The server's way of saying the request's stream closed (`DISCONNECT`), when it has one.
    disconnect: DisconnectHook | None = None


class ClientDisconnected(Exception):
    """The client went away before its request body was read."""


def _too_large() -> VdmError:
    return VdmError(413, f"request body exceeds {MAX_BODY_BYTES // (1024 * 1024)} MB")


def content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The declared body size, or None (chunked, or no body)."""
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.strip().isdigit() else None
    return None


async def read_body(
    receive: Receive,
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    timeout: float | None = None,
) -> bytes:
    """The whole request body. Over `MAX_BODY_BYTES` (declared in Content-Length, or read so
    far) it is a 413, sent once the rest is read and dropped (within bounds); a body that
    has not fully arrived after `timeout` seconds is a 408 (a slow client cannot hold the
    connection)."""
    declared = content_length(headers or [])
    if declared is not None and declared > MAX_BODY_BYTES:
        await _discard(receive)
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    deadline = math.inf  # set once the first message is in
    first = more = True
    try:
        while more:
            # No timer (a cancel scope and a timer handle, a measurable part of a small
            # request's CPU) where nothing can keep the next message waiting: the first one,
            # and the end of a body whose declared length has arrived, which Hypercorn sends
            # as a message of its own, queued as soon as the parser has the last byte.
            if first or timeout is None or (declared is not None and size >= declared):
                message = await receive()
            else:
                with anyio.fail_at(deadline):
                    message = await receive()
            if first:
                first = False
                if timeout is not None:
                    # anyio's clock is the loop's, CLOCK_MONOTONIC on asyncio's loops and
                    # uvloop's (which reads it once per loop turn, in milliseconds): read
                    # directly, without anyio's lookup of the running backend (~2 % of a small
                    # request's CPU) or asyncio's of the running loop (a getpid system call).
                    deadline = time.monotonic() + timeout
            if message["type"] == "http.disconnect":
                raise ClientDisconnected
            chunk = message.get("body", b"")
            more = message.get("more_body", False)
            if chunk:
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    if more:
                        with anyio.fail_at(deadline):
                            await _discard(receive)
                    raise _too_large()
                chunks.append(chunk)
    except TimeoutError:
        raise VdmError(
            408, f"the request body did not arrive within {timeout:g} s (BODY_TIMEOUT)"
        ) from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def drain_unread(receive: Receive, headers: list[tuple[bytes, bytes]]) -> None:
    """Read and drop a small request body an error answer did not need (a refusal before
    any handler ran), within `UNREAD_BYTES` and `UNREAD_SECONDS`: HTTP/1.1 closes a
    connection whose request was not read to its end, and a client that sent its body in a
    second packet would find the connection it keeps for its next request gone."""
    declared = content_length(headers)
    if declared and declared <= UNREAD_BYTES:
        try:
            await _discard(receive, UNREAD_BYTES, UNREAD_SECONDS)
        except ClientDisconnected:
            pass


async def _discard(
    receive: Receive, limit: int = DISCARD_BYTES, seconds: float = DISCARD_SECONDS
) -> None:
    """Read and drop the rest of a body, within `limit` bytes and `seconds`."""
    dropped = 0
    with anyio.move_on_after(seconds):
        while dropped <= limit:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected
            dropped += len(message.get("body", b""))
            if not message.get("more_body", False):
                return


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *(headers if headers is not None else JSON_HEADERS),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, data: Any) -> None:
    await send_bytes(send, status, jsonio.dumps(data))


async def send_error(send: Send, error: VdmError) -> None:
    """`error` as an Anthropic client gets it: an Anthropic-format upstream's own answer
    relayed unchanged, or vdm's in Anthropic's envelope (vdm/protocol/errors.py)."""
    status, body, headers = anthropic_error_response(error)
    await send_bytes(send, status, body, headers)


async def run_until_disconnect(
    receive: Receive,
    work: Callable[[], Awaitable[None]],
    loop: asyncio.AbstractEventLoop | None = None,
    disconnect: DisconnectHook | None = None,
) -> bool:
    """Run `work` until it finishes (True) or the client disconnects (False).

    A disconnect cancels `work`, and with it the upstream request it is awaiting: no per-chunk
    polling needed. `work`'s exceptions propagate unwrapped. A helper task `work` starts is
    its own to end (the stream relay's keep-alive pings).

    The cancellation is asyncio's own (`TaskScope`): anyio's task group and cancel scope
    around `work` and a watcher were ~8 % of vdm's CPU for a small request under load
    (py-spy). With the server's `disconnect` hook (`DISCONNECT`) nothing else runs; without
    it, a watcher task reads `receive` for the `http.disconnect`. `loop`, the running loop
    when the caller knows it, saves looking it up (`Gateway.loop`).
    """
    if disconnect is not None:
        with TaskScope(loop) as scope:
            disconnect.watch(scope.cancel)
            try:
                await work()
            finally:
                disconnect.unwatch()
        return not scope.cancelled_caught
    watching = _Watch(receive)
    with TaskScope(loop) as scope:
        watching.scope = scope
        watcher = (loop or asyncio.get_running_loop()).create_task(watching.run())
        try:
            await work()
        finally:
            watcher.cancel()
    if watching.error is not None:  # `receive` itself failed
        raise watching.error
    return not scope.cancelled_caught


class _Watch:
    """Reads the client's messages while `work` runs: a disconnect cancels `scope`."""

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.scope = TaskScope()
        self.error: Exception | None = None

    async def run(self) -> None:
        try:
            while True:
                message = await self.receive()
                if message["type"] == "http.disconnect":
                    self.scope.cancel()
                    return
        except Exception as exc:
            self.error = exc
            self.scope.cancel()
