"""One HTTP/1.1 client connection: a plain asyncio Protocol whose responses httptools parses.

httptools wraps llhttp, Node's C parser. The protocol feeds each socket read to it inside
`data_received`; its callbacks only append (header pairs, body pieces) and set flags, so a
read of the body takes everything parsed so far in one `b"".join` and waits, when there is
nothing, on one future with one timer handle: no task, cancel scope or anyio per read. That
is also why a burst of chunked-encoding chunks arriving in one socket read comes out as one
piece, not one per chunk (h11 under httpcore yields each on its own).

Whether an idle connection can be reused needs no syscall either: the protocol was told of
an EOF, an error, or bytes the server sent while no request was waiting (`unusable`).

The transport around it (pool, request writing, response objects) is vdm/upstream/h1.py.
Transports are duck-typed: uvloop's are not subclasses of asyncio's.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, cast

import httptools
import httpx

if TYPE_CHECKING:
    from vdm.upstream.network import ReadHooks

#: Stop reading from the socket while this much parsed body is buffered and unread.
_HIGH_WATER = 4 * 1024 * 1024
#: A response head larger than this is refused (h11, httpcore's parser, allows 100 KB).
_MAX_HEAD = 256 * 1024
_VERSIONS = {"1.1": b"HTTP/1.1", "1.0": b"HTTP/1.0"}


class _HeadDone(Exception):
    """Raised in a callback to stop llhttp after the head of a HEAD response, which it would
    otherwise take for the head of a body of `content-length` bytes."""


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class H1Connection(asyncio.Protocol):
    """A connection to one origin, carrying one request at a time. The request side is the
    caller's (`write`, `drain`); the response is parsed as it arrives and read with
    `head_wait` and `read`."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        # The response in flight.
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        #: Its `Content-Length` (several joined with ", ", as httpx's `Headers.get` does) and
        #: whether it has a `Content-Encoding`: noted while parsing, so nothing looks them up
        #: in httpx's `Headers` (a miss there raises and catches a KeyError).
        self.content_length = b""
        self.encoded = False
        self.http_version = b"HTTP/1.1"
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self._body: list[bytes] = []
        self._buffered = 0
        self._head_size = 0
        self._head_request = False
        self._informational = False
        # The connection.
        #: A request is in flight: bytes from the server are its response.
        self.busy = False
        #: Never to be reused (an error, an EOF, bytes out of turn, a response cut short).
        self.unusable = False
        self.eof = False
        #: When it was put back in the pool (`time.monotonic()`).
        self.idle_since = 0.0
        self._problem: httpx.TransportError | None = None
        self._waiter: asyncio.Future[None] | None = None
        #: One timer for the waits of this connection, moved only when a wait must end
        #: before it: a timer made and cancelled per wait cost more than the read itself
        #: on a paced stream. `_expires` is when the current wait ends (loop time; None:
        #: never), `_timer_at` when the timer fires.
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._expires: float | None = None
        self._drained: asyncio.Future[None] | None = None
        self._paused = False
        self._ssl_object: Any = None

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        # Kept for every read's wait: asyncio's lookup of the running loop checks the process
        # id (a getpid system call) on each call.
        self._loop = asyncio.get_running_loop()
        # Kept: asyncio's TLS transport cannot tell it once the connection is lost.
        self._ssl_object = transport.get_extra_info("ssl_object")

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if not self.busy or parser is None:
            # The server spoke while no request was waiting (an early close notice, a stray
            # answer), or after a HEAD response: whatever it is, the connection is spent.
            self.unusable = True
            return
        if not self.head_done:
            self._head_size += len(data)
            if self._head_size > _MAX_HEAD:
                self._fail(httpx.RemoteProtocolError(f"response head over {_MAX_HEAD} bytes"))
                return
        try:
            parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if not isinstance(exc.__context__, _HeadDone):
                self._fail(httpx.RemoteProtocolError(f"malformed HTTP response: {exc}"))
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed HTTP response: {exc}"))
        if self._buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = self.unusable = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = self.unusable = True
        self._stop_timer()
        if exc is not None and self._problem is None:
            self._problem = httpx.ReadError(str(exc) or type(exc).__name__)
        self._wake()
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_result(None)

    def pause_writing(self) -> None:
        self._drained = self._loop.create_future()

    def resume_writing(self) -> None:
        drained = self._drained
        self._drained = None
        if drained is not None and not drained.done():
            drained.set_result(None)

    # -- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            self.unusable = True  # a second answer to one request: out of step with it

    def on_status(self, status: bytes) -> None:
        self.reason += status  # llhttp may hand a span over in pieces

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        size = len(name)  # lowered only when the length could match
        if size == 14 and name.lower() == b"content-length":
            length = self.content_length
            self.content_length = length + b", " + value if length else value
        elif size == 16 and name.lower() == b"content-encoding":
            self.encoded = True

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        status = self._parser.get_status_code()
        if status < 200:
            # 100 Continue and other interim answers: llhttp parses the final one next.
            self._informational = True
            self.reason = b""
            self.headers = []
            self.content_length = b""
            self.encoded = False
            return
        self.status = status
        self.head_done = True
        self.http_version = _VERSIONS.get(self._parser.get_http_version(), b"HTTP/1.1")
        if self._head_request:
            self.complete = True
            self.unusable = True  # llhttp has stopped: a new parser would be needed
            self._parser = None
            raise _HeadDone

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        self._buffered += len(body)

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        assert self._parser is not None
        self.complete = True
        self.keep_alive = self._parser.should_keep_alive()

    # -- the caller's side -------------------------------------------------------------------

    def start(self, head_request: bool) -> None:
        """A request is about to be written: forget the previous response."""
        self.busy = True
        self._head_request = head_request
        self.status = self._head_size = 0
        self.reason = b""
        self.headers = []
        self.content_length = b""
        self.head_done = self.complete = self.keep_alive = self.encoded = False

    def reusable(self) -> bool:
        transport = self.transport
        return not (self.unusable or transport is None or transport.is_closing())

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing() or self.eof:
            raise self._problem or httpx.WriteError("the server closed the connection")
        transport.write(data)

    async def drain(self, timeout: float | None) -> None:
        """Wait until the transport's write buffer is below its high-water mark (a caller
        may skip the call while `write_paused` is False)."""
        drained = self._drained
        if drained is None:
            return
        timer = None
        if timeout is not None:
            timer = self._loop.call_later(timeout, _expire, drained)
        try:
            await drained
        except TimeoutError:
            raise httpx.WriteTimeout(f"could not write the request within {timeout:g} s") from None
        finally:
            if timer is not None:
                timer.cancel()

    @property
    def write_paused(self) -> bool:
        """The transport's write buffer is above its high-water mark: `drain` would wait."""
        return self._drained is not None

    def head_wait(
        self, timeouts: dict[str, Any], deadline: float | None
    ) -> Coroutine[Any, Any, None] | None:
        """None once the response head is in, else the wait for more of it (to await, then
        ask again); raises when it can no longer come. A loop its caller runs rather than a
        coroutine of its own: one layer less on every resumption of the request's task."""
        if self.head_done:
            return None
        if self._problem is not None:
            raise self._problem
        if self.eof:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return self._wait(timeouts.get("read"), deadline)

    async def read(self, timeouts: dict[str, Any], hooks: ReadHooks) -> bytes:
        """All of the body parsed since the last read (b"" at its end); awaits `hooks.on_idle`
        before waiting for the socket, and waits no longer than the read timeout (looked up
        anew each time: vdm/upstream/timing.py lowers it once the headers are in) nor past
        `hooks.deadline`."""
        idle_called = False
        while True:
            body = self._body
            if body:
                data = body[0] if len(body) == 1 else b"".join(body)
                body.clear()
                self._buffered = 0
                if self._paused and self.transport is not None:
                    self._paused = False
                    self.transport.resume_reading()
                return data
            if self.complete:
                return b""
            if self._problem is not None:
                raise self._problem
            if self.eof:
                if self._until_eof():
                    self.complete = True
                    return b""
                raise httpx.RemoteProtocolError(
                    "peer closed connection without sending complete message body"
                )
            on_idle = hooks.on_idle
            if on_idle is not None and not idle_called:
                idle_called = True
                await on_idle()
                continue  # it may have let more data in
            idle_called = False
            await self._wait(timeouts.get("read"), hooks.deadline)

    def close(self) -> None:
        self.unusable = True
        self.busy = False
        self._stop_timer()
        if self.transport is not None:
            self.transport.close()

    def get_extra_info(self, info: str) -> Any:
        transport = self.transport
        if info == "ssl_object":
            return self._ssl_object
        if info == "is_readable":
            return self.unusable
        if transport is None or self.eof:
            return None
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        return transport.get_extra_info(info)  # ssl_object, socket, peercert, ...

    # -- internals -----------------------------------------------------------------------------

    def _fail(self, problem: httpx.TransportError) -> None:
        if self._problem is None:
            self._problem = problem
        self.unusable = True
        self._parser = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self, timeout: float | None, deadline: float | None) -> None:
        """Until the protocol is told something (data, EOF, an error)."""
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise httpx.ReadTimeout("the call's deadline has passed")
            timeout = left if timeout is None else min(timeout, left)
        loop = self._loop
        waiter = self._waiter = loop.create_future()
        if timeout is None:
            self._expires = None
        else:
            expires = self._expires = loop.time() + timeout
            if self._timer is None or self._timer_at > expires:
                self._stop_timer()
                self._timer = loop.call_at(expires, self._timer_fired)
                self._timer_at = expires
        try:
            await waiter
        except TimeoutError:
            raise httpx.ReadTimeout(f"no data within {timeout:g} s") from None
        finally:
            self._waiter = None

    def _timer_fired(self) -> None:
        """The shared timer: ends the current wait if it was due by now, else fires again
        when it is (a later wait pushed its end on)."""
        self._timer = None
        waiter, expires = self._waiter, self._expires
        if waiter is None or waiter.done() or expires is None:
            return  # no wait, or one without a timeout: the next wait sets a timer anew
        if expires > self._timer_at:
            self._timer = self._loop.call_at(expires, self._timer_fired)
            self._timer_at = expires
            return
        waiter.set_exception(TimeoutError())

    def _stop_timer(self) -> None:
        timer = self._timer
        if timer is not None:
            self._timer = None
            timer.cancel()

    def _until_eof(self) -> bool:
        """Whether the response's body ends where the connection does (no content-length,
        not chunked; HTTP/1.0 style)."""
        for name, value in self.headers:
            lowered = name.lower()
            if lowered == b"content-length":
                return False
            if lowered == b"transfer-encoding" and b"chunked" in value.lower():
                return False
        return True


async def connect(
    scheme: bytes, host: bytes, port: int, ssl_context: ssl.SSLContext, timeout: float | None
) -> H1Connection:
    """A new connection, TLS for https (verified as `ssl_context` says, `host` as the server
    name); httpx's ConnectError / ConnectTimeout when it cannot be made."""
    loop = asyncio.get_running_loop()
    hostname = host.decode("ascii")
    tls = scheme == b"https"
    try:
        _, connection = await asyncio.wait_for(
            loop.create_connection(
                H1Connection,
                hostname,
                port,
                ssl=ssl_context if tls else None,
                server_hostname=hostname if tls else None,
            ),
            timeout,
        )
    except TimeoutError:
        raise httpx.ConnectTimeout(f"no connection within {timeout:g} s") from None
    except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError is an OSError)
        raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
    sock = connection.get_extra_info("socket")
    if sock is not None:
        # asyncio sets it too; uvloop's default has varied: a request must not wait on Nagle.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection
