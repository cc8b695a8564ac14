"""Hypercorn's HTTP/1.1 protocol with httptools (llhttp, in C) in place of h11.

h11 parses in pure Python and took 10-20 % of vdm's CPU per request. `HttptoolsProtocol` is a
drop-in for Hypercorn's `H11Protocol`: the TCP server, lifespan and shutdown stay Hypercorn's;
the parsing of requests, the writing of responses and the keep-alive timer (below) change, and
each request's ASGI stream is Hypercorn's HTTPStream with shortcuts (`h1_stream.AppStream`).
It behaves as the stock protocol does, byte for byte on the wire where it can: keep-alive and
`keep_alive_max_requests`, pipelined requests answered in order (reading stops meanwhile, as
h11 pauses), `100 Continue` sent right after the head of a request that expects it, 431 for a
head still incomplete beyond `h11_max_incomplete_size`, 400 for a malformed request, 501 for
an unknown transfer coding. Upgrade requests (WebSocket, h2c, CONNECT) and HTTP/2's preface go
to the stock machinery, which raises the errors ProtocolWrapper switches protocols on.

Idle time is Hypercorn's until the first request's head is complete, then the protocol's own:
Hypercorn restarts an idle task for each keep-alive cycle and stops it (awaiting it, a loop
turn) for each request, ~4 % of a small request's CPU; a `call_later` timer costs a fraction
of that. It closes the connection after `keep_alive_timeout` without a complete head (the
header timeout too), and one watcher per worker closes the idle ones at shutdown, as
Hypercorn's idle task does.

`select()` installs it (or restores h11) in the name ProtocolWrapper looks up per connection.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from itertools import chain
from typing import Any

import h11
import hypercorn.protocol
from hypercorn.config import Config
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.protocol.events import Body, Data, EndBody, Request, Response, StreamClosed
from hypercorn.protocol.events import Event as StreamEvent
from hypercorn.protocol.h11 import H2ProtocolAssumedError, H11Protocol
from hypercorn.typing import (
    AppWrapper,
    ConnectionState,
    TaskGroup,
    WorkerContext,
)

from vdm.server import h1_wire
from vdm.server.h1_stream import AppStream
from vdm.server.h1_wire import Framing

try:
    import httptools
except ImportError:  # select() falls back to h11
    httptools = None  # type: ignore[assignment]

log = logging.getLogger("vdm")

#: The Hypercorn release whose H11Protocol this one was written against and tested with.
TESTED_HYPERCORN = "0.18.0"
STREAM_ID = 1
#: What the parser queues for the connection to act on, in order (payload in brackets): a
#: request head (RequestHead), body data (bytes), the body's end, an error (status), an upgrade
#: handed to the stock protocol (the bytes to replay).
_HEAD, _BODY, _END, _ERROR, _UPGRADE = range(5)
_PREFACE = b"PRI * HTTP/2.0\r\n"
_NOT_IN_VALUE = re.compile(rb"[\x00\n\r\x0b\x0c]")


def _server_headers(config: Config) -> list[tuple[bytes, bytes]]:
    """`config.response_headers("h11")` (Date, Server, ...), made once a second: formatting
    the date for every response was a measurable part of a small one's CPU. The list is
    shared: callers copy it before adding to it."""
    global _cached
    second = int(time.time())
    if _cached[0] != second or _cached[1] is not config:
        _cached = (second, config, config.response_headers("h11"))
    return _cached[2]


#: The second, the config and its response headers then (one server per process, mostly).
_cached: tuple[int, Config | None, list[tuple[bytes, bytes]]] = (-1, None, [])


#: Per Hypercorn worker: its connections waiting for their next request (their timer running),
#: which shutdown closes at once. Keyed weakly: a worker's context goes with its watcher.
_idle_by_worker: weakref.WeakKeyDictionary[WorkerContext, set[HttptoolsProtocol]] = (
    weakref.WeakKeyDictionary()
)
#: The watchers running (the loop keeps only weak references to tasks).
_watchers: set[asyncio.Task[None]] = set()


def _idle_of(context: WorkerContext) -> set[HttptoolsProtocol]:
    """The idle connections of `context`'s worker; the first call starts its watcher."""
    idle = _idle_by_worker.get(context)
    if idle is None:
        idle = _idle_by_worker[context] = set()
        watcher = asyncio.get_running_loop().create_task(_close_idle_at_shutdown(context, idle))
        _watchers.add(watcher)
        watcher.add_done_callback(_watchers.discard)
    return idle


async def _close_idle_at_shutdown(context: WorkerContext, idle: set[HttptoolsProtocol]) -> None:
    # Graceful shutdown waits for busy connections only. One that becomes idle later closes
    # itself: _maybe_recycle sees `terminated`.
    await context.terminated.wait()
    for connection in list(idle):
        connection._idle_timeout()


class _Reject(Exception):
    """Raised in a parser callback to stop parsing a request h11 would refuse."""


class HttptoolsProtocol:
    """A drop-in for Hypercorn's H11Protocol that parses with httptools (see the module)."""

    def __init__(
        self,
        app: AppWrapper,
        config: Config,
        context: WorkerContext,
        task_group: TaskGroup,
        connection_state: ConnectionState,
        ssl: bool,
        client: tuple[str, int] | None,
        server: tuple[str, int] | None,
        send: Callable[[Event], Awaitable[None]],
    ) -> None:
        self.app, self.config, self.context, self.task_group = app, config, context, task_group
        self.connection_state, self.ssl, self.client, self.server = (
            connection_state,
            ssl,
            client,
            server,
        )
        self.send = send
        self.loop = asyncio.get_running_loop()
        self.can_read = context.event_class()
        # Hypercorn's idle task runs until the first request's head; then the timer, between
        # a response and the next request's head.
        self.hypercorn_idle = True
        self.idle_timer: asyncio.TimerHandle | None = None
        self.idle = _idle_of(context)
        self.keep_alive_requests = 0
        self.stream: AppStream | None = None
        self.delegate: H11Protocol | None = None
        self.parser = httptools.HttpRequestParser(self)
        # llhttp refuses control bytes in header values that h11 lets through (and the app
        # then answers, e.g. vdm's 400 naming the header): values are checked as h11 does.
        self.parser.set_dangerous_leniencies(lenient_headers=True)
        self.events: deque[tuple[int, Any]] = deque()
        self.closed = False  # the connection is done with: nothing more is read or written
        self.broken = False  # the parser failed: later bytes are ignored
        # The head being parsed.
        self.in_message = self.in_head = self.upgrading = False
        self.head_bytes = 0
        self.url: list[bytes] = []
        self.headers: list[tuple[bytes, bytes]] = []
        self.began = self.completed = 0  # messages begun / completed in the current chunk
        self.error_status = 400  # for the request being parsed, should the parser fail
        self._new_cycle()

    def _new_cycle(self) -> None:
        self.method = b""
        self.http_10 = False
        self.request_keep_alive = True
        self.request_done = False
        self.responded = False  # a final response head was made
        self.response_done = False
        self.reusable = False
        self.out_closed = False  # an error response went out: the stream's writes are dropped
        self.framing = Framing.LENGTH
        self.left = 0
        self.pending = b""  # a response head waiting to go out with the first body bytes
        self.last_body = False  # the app sent its last body: it waits for the body's end

    async def initiate(self) -> None:
        pass

    async def handle(self, event: Event) -> None:
        if self.delegate is not None:
            return await self.delegate.handle(event)
        if isinstance(event, RawData):
            if self.closed or self.broken:
                return
            if event.data:
                try:
                    self._feed(event.data)
                except H2ProtocolAssumedError:
                    if self._disarm():  # Hypercorn's idle task times HTTP/2, as it did
                        await self.send(Updated(idle=True))
                    raise
            elif self.in_message:  # the client closed mid-request (h11 answers 400)
                self.events.append((_ERROR, 400))
                self.broken = True
            await self._act()
        elif isinstance(event, Closed):
            # Unlike h11, also wake a pipelined request waiting on a connection now gone.
            self.closed = True
            self._disarm()
            await self.can_read.set()
            await self._close_stream()

    # -- parsing: httptools calls these from feed_data --------------------------------------

    def _feed(self, data: bytes) -> None:
        idle = not (self.in_message or self.events) and self.stream is None
        if idle and data.startswith(_PREFACE):
            raise H2ProtocolAssumedError(data)  # stock answers HTTP/2 prior knowledge so
        was_in_head = self.in_head
        self.began = self.completed = 0
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self.events.append((_UPGRADE, self._replay_head() + data[upgrade.args[0] :]))
            self.broken = True
        except httptools.HttpParserError:
            self.events.append((_ERROR, self.error_status))
            self.broken = True
        else:
            if not self.in_head:
                return
            # h11 answers 431 when the head it still waits for outgrows its limit. A head
            # begun in an earlier chunk holds all of this one; one begun here holds at least
            # what the callbacks saw, and all of the chunk if no message ended in it.
            if was_in_head and not self.began:
                self.head_bytes += len(data)
            elif not self.completed:
                self.head_bytes = len(data)
            if self.head_bytes > self.config.h11_max_incomplete_size:
                self.events.append((_ERROR, 431))
                self.broken = True

    def on_message_begin(self) -> None:
        self.in_message = self.in_head = True
        self.began += 1
        self.url, self.headers, self.head_bytes = [], [], 0
        self.error_status = 400

    def on_url(self, url: bytes) -> None:
        self.url.append(url)
        self.head_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.in_head:  # not a chunked body's trailer
            value = value.strip(b" \t")
            if _NOT_IN_VALUE.search(value):
                raise _Reject("h11 refuses NUL, CR, LF, VT and FF in header values")
            self.headers.append((name, value))
            self.head_bytes += len(name) + len(value) + 4

    def on_headers_complete(self) -> None:
        self.in_head = False
        parser = self.parser
        if parser.should_upgrade():
            self.upgrading = True
            return
        raw = self.headers
        lowered = [(name.lower(), value) for name, value in raw]  # once, for every check
        names = [name for name, _ in lowered]
        hosts = names.count(b"host")
        version = parser.get_http_version()
        if hosts > 1 or (hosts == 0 and version == "1.1"):
            raise _Reject("h11 requires one Host header")
        if b"transfer-encoding" in names:
            codings = h1_wire.comma_tokens(lowered, b"transfer-encoding")
            if codings and codings != [b"chunked"]:
                self.error_status = 501
                raise _Reject("only chunked transfer coding is supported")
        head = h1_wire.RequestHead(parser.get_method(), b"".join(self.url), version, lowered, names)
        if self.config.h11_pass_raw_headers:
            head.headers = raw
        self.events.append((_HEAD, head))

    def on_body(self, body: bytes) -> None:
        self.events.append((_BODY, body))

    def on_message_complete(self) -> None:
        self.in_message = False
        self.completed += 1
        if not self.upgrading:
            self.events.append((_END, None))

    def _replay_head(self) -> bytes:
        """The upgrade request's head again, for the stock protocol to parse."""
        parser = self.parser
        version = parser.get_http_version().encode("ascii")
        lines = [b"%s %s HTTP/%s\r\n" % (parser.get_method(), b"".join(self.url), version)]
        lines.extend(b"%s: %s\r\n" % pair for pair in self.headers)
        lines.append(b"\r\n")
        return b"".join(lines)

    # -- acting on what was parsed, in order ------------------------------------------------

    async def _act(self) -> None:
        events = self.events
        while events and not self.closed:
            kind, payload = events[0]
            if kind in (_BODY, _END):
                events.popleft()
                if self.stream is None:
                    continue
                if kind == _BODY and events and events[0][0] == _END:
                    events.popleft()  # its end came with it: one message to the app
                    self.request_done = True
                    await self.stream.request_end(payload)
                elif kind == _BODY:
                    await self.stream.handle(Body(stream_id=STREAM_ID, data=payload))
                else:
                    self.request_done = True
                    await self.stream.handle(EndBody(stream_id=STREAM_ID))
            elif self.stream is not None and self.request_done:
                # A pipelined request waits for the answer in flight (h11 pauses so): reading
                # stops until the stream is recycled.
                await self.can_read.clear()
                await self.can_read.wait()
            elif kind == _HEAD:
                events.popleft()
                await self._start_request(payload)
            elif kind == _ERROR:
                events.clear()
                if not self.responded:
                    await self._send_error_response(payload)
                self.out_closed = self.closed = True
                await self.send(Closed())
            else:  # _UPGRADE
                events.clear()
                self._disarm()  # the stock protocol keeps Hypercorn's idle task
                self.delegate = H11Protocol(
                    self.app,
                    self.config,
                    self.context,
                    self.task_group,
                    self.connection_state,
                    self.ssl,
                    self.client,
                    self.server,
                    self.send,
                )
                self.delegate.keep_alive_requests = self.keep_alive_requests
                await self.delegate.handle(RawData(data=payload))
                return

    async def _start_request(self, head: h1_wire.RequestHead) -> None:
        if self.idle_timer is not None:
            self._disarm()
        elif self.hypercorn_idle:
            self.hypercorn_idle = False
            await self.send(Updated(idle=False))
        self.method, self.http_10 = head.method, head.version == "1.0"
        self.request_keep_alive = head.keep_alive
        self.stream = AppStream(
            self,
            self.app,
            self.config,
            self.context,
            self.task_group,
            self.ssl,
            self.client,
            self.server,
            self.stream_send,
            STREAM_ID,
        )
        await self.stream.handle(
            Request(
                stream_id=STREAM_ID,
                headers=head.headers,
                http_version=head.version,
                method=head.method.decode("ascii").upper(),
                raw_path=head.target,
                state=self.connection_state,
            )
        )
        self.keep_alive_requests += 1
        await self.context.mark_request()
        if head.expect:
            await self._write(h1_wire.informational_head(100, _server_headers(self.config)))

    # -- writing what the stream sends ------------------------------------------------------

    async def stream_send(self, event: StreamEvent) -> None:
        if isinstance(event, Response):
            await self.respond(event.status_code, event.headers)
        elif isinstance(event, Body):
            await self.send_body(event.data)
        elif isinstance(event, EndBody):
            await self.end_body()
        elif isinstance(event, Data):  # WebSocket frames: never here, upgrades are delegated
            await self.send(RawData(data=event.data))
        elif isinstance(event, StreamClosed):
            await self.stream_closed()
        # InformationalResponse (103 Early Hints), EndData: nothing on HTTP/1, as in Hypercorn.

    async def respond(self, status: int, app_headers: list[tuple[bytes, bytes]]) -> None:
        """A response's head (a final one is held back for the first body bytes)."""
        if self.out_closed:
            return
        headers = list(chain(app_headers, _server_headers(self.config)))
        if status < 200:
            await self._write(h1_wire.informational_head(status, headers))
            return
        if self.keep_alive_requests >= self.config.keep_alive_max_requests:
            headers.append((b"connection", b"close"))
        head, self.framing, self.left, self.reusable = h1_wire.response_head(
            status,
            headers,
            trusted=len(app_headers),
            method=self.method,
            http_10=self.http_10,
            keep_alive=self.request_keep_alive,
        )
        self.responded = True
        # Held back to go out with the first body bytes, in one send; flushed on the next
        # loop turn if the app awaits something else first.
        self.pending = head
        self.loop.call_soon(self._flush_soon)

    async def stream_closed(self) -> None:
        await self._maybe_recycle()

    async def send_body(self, data: bytes) -> None:
        if self.out_closed or not data:
            return
        if self.framing is Framing.CHUNKED:
            data = h1_wire.chunk(data)
        elif self.framing is Framing.LENGTH:
            if len(data) > self.left:
                self.reusable = False
                raise h11.LocalProtocolError("Too much data for declared Content-Length")
            self.left -= len(data)
        if self.last_body:  # the body's end follows at once: both go out in one write
            self.pending += data
            return
        await self._write(data)

    async def end_body(self) -> None:
        if self.out_closed:
            return
        if self.framing is Framing.LENGTH and self.left:
            self.reusable = False
            raise h11.LocalProtocolError("Too little data for declared Content-Length")
        self.response_done = True
        await self._write(h1_wire.LAST_CHUNK if self.framing is Framing.CHUNKED else b"")

    async def _write(self, data: bytes) -> None:
        """Send `data` after any head held back; the pair goes out in one write."""
        if self.pending:
            data, self.pending = self.pending + data, b""
        if data:
            await self.send(RawData(data=data))

    def _flush_soon(self) -> None:
        if self.pending:
            self.task_group.spawn(self._write, b"")

    async def _send_error_response(self, status: int) -> None:
        headers = [(b"content-length", b"0"), (b"connection", b"close")]
        head, *_ = h1_wire.response_head(
            status,
            headers + _server_headers(self.config),
            trusted=0,
            method=self.method,
            http_10=self.http_10,
            keep_alive=self.request_keep_alive,
        )
        await self._write(head)

    async def _maybe_recycle(self) -> None:
        await self._close_stream()
        if (
            not self.context.terminated.is_set()
            and self.response_done
            and self.reusable
            and self.request_done
            and not self.out_closed
        ):
            self._new_cycle()
            self._arm()
            await self.can_read.set()
        else:
            await self._write(b"")  # a head held back still goes out, as h11 wrote it
            self.closed = True
            await self.can_read.set()
            await self.send(Closed())

    async def _close_stream(self) -> None:
        if self.stream is not None:
            stream, self.stream = self.stream, None
            await stream.handle(StreamClosed(stream_id=STREAM_ID))

    # -- idle time between requests ---------------------------------------------------------

    def _arm(self) -> None:
        self.idle_timer = self.loop.call_later(self.config.keep_alive_timeout, self._idle_timeout)
        self.idle.add(self)

    def _disarm(self) -> bool:
        """Stop the timer; whether it was running."""
        if self.idle_timer is None:
            return False
        self.idle_timer.cancel()
        self.idle_timer = None
        self.idle.discard(self)
        return True

    def _idle_timeout(self) -> None:
        """Close the connection, idle too long or at shutdown, as Hypercorn's idle task does."""
        self._disarm()
        if not self.closed:
            self.closed = True  # bytes arriving meanwhile are not a request any more
            self.task_group.spawn(self._close_idle)

    async def _close_idle(self) -> None:
        # The protocol first, then the socket (Hypercorn's _initiate_server_close); the read
        # loop then sees the end of the connection and ends.
        await self.handle(Closed())
        await self.send(Closed())


def _unsupported() -> str | None:
    """Why the httptools protocol cannot be used here, or None."""
    if httptools is None:
        return "httptools is not installed"
    try:
        installed = version("hypercorn")
    except PackageNotFoundError:
        return "Hypercorn's version cannot be read"
    if installed != TESTED_HYPERCORN:
        return (
            f"Hypercorn {installed} is installed, the httptools protocol knows {TESTED_HYPERCORN}"
        )
    return None


def select(choice: str) -> str:
    """Install the HTTP/1.1 protocol `choice` ("auto", "httptools" or "h11") into Hypercorn
    for the connections accepted from now on; returns the one in force. "auto" and
    "httptools" fall back to h11, with a warning, where httptools cannot be used."""
    if choice not in ("auto", "httptools", "h11"):
        raise ValueError(f"unknown HTTP parser {choice!r}: use auto, httptools or h11")
    chosen: type[Any] = H11Protocol
    if choice != "h11":
        reason = _unsupported()
        if reason is None:
            chosen = HttptoolsProtocol
        else:
            log.warning("HTTP_PARSER=%s: using h11 instead: %s", choice, reason)
    # ProtocolWrapper looks the name up for each connection.
    hypercorn.protocol.H11Protocol = chosen  # type: ignore[attr-defined]
    return "httptools" if chosen is HttptoolsProtocol else "h11"
