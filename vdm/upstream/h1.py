"""vdm's HTTP/1.1 transport for httpx: asyncio Protocols, httptools parsing, a LIFO pool.

httpx's default transport goes through httpcore and h11, both pure Python: with the layers
around them they were ~40 % of vdm's CPU (docs/performance.md, issue 15). Here a request is
written with one `transport.write` (head and a bytes body together), the response is parsed
in C as it arrives (vdm/upstream/h1_connection.py), and its body comes out one piece per
socket read, however many chunked-encoding chunks that read held.

Idle connections wait per origin on a stack: checkout pops the most recently used and looks
only at it; the oldest is closed once it has been idle `keepalive_expiry` seconds. A
connection goes back on the stack only once its response was read to the end (`aclose` of a
body cut short closes it), the server allowed keep-alive and said nothing out of turn.

A response's `network_stream` extension is its body stream, a `ReadHooks`: a reader may set
`on_idle` (awaited before a read waits for the socket) and `deadline` (no read waits past
it, which the `DEADLINE` request extension sets too). Errors are httpx's own exceptions, so
vdm/upstream/failures.py maps them as it maps httpx's. `body_reader` takes a response's body
straight from this transport when it has no content-encoding: httpx's decoder and chunker
layers then have nothing to do but cost.
"""

from __future__ import annotations

import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import httpx

from vdm.upstream.h1_connection import H1Connection, connect
from vdm.upstream.network import DEADLINE, ReadHooks

_Origin = tuple[bytes, bytes, int]
_DEFAULT_PORTS = {b"http": 80, b"https": 443}


class H1Pool:
    """Idle connections per origin, most recently used on top."""

    def __init__(self, keepalive_expiry: float, max_idle: int) -> None:
        self._expiry = keepalive_expiry
        self._max_idle = max_idle
        self._idle: dict[_Origin, deque[H1Connection]] = {}
        self._closed = False

    @property
    def idle_count(self) -> int:
        return sum(len(stack) for stack in self._idle.values())

    def checkout(self, origin: _Origin) -> H1Connection | None:
        stack = self._idle.get(origin)
        if not stack:
            return None
        oldest = time.monotonic() - self._expiry
        while stack:
            connection = stack.pop()
            if connection.reusable() and connection.idle_since > oldest:
                return connection
            connection.close()
        return None

    def release(self, origin: _Origin, connection: H1Connection) -> None:
        connection.busy = False
        if self._closed:
            connection.close()
            return
        stack = self._idle.get(origin)
        if stack is None:
            stack = self._idle[origin] = deque()
        now = connection.idle_since = time.monotonic()
        # The bottom of the stack is the longest idle: expire from there, O(1) per release.
        while stack and stack[0].idle_since <= now - self._expiry:
            stack.popleft().close()
        if len(stack) < self._max_idle:
            stack.append(connection)
        else:
            connection.close()

    def close(self) -> None:
        self._closed = True
        stacks = list(self._idle.values())
        self._idle.clear()
        for stack in stacks:
            for connection in stack:
                connection.close()


class H1Body(httpx.AsyncByteStream, ReadHooks):
    """A response's body, and its `network_stream`: each item is everything that arrived
    since the last; closing it gives the connection back to the pool or closes it."""

    def __init__(
        self,
        connection: H1Connection,
        pool: H1Pool,
        origin: _Origin,
        timeouts: dict[str, Any],
        deadline: float | None,
    ) -> None:
        self._connection: H1Connection | None = connection
        #: Still answers `get_extra_info` once the body is closed, as httpcore's streams do.
        self._socket = connection
        self._pool = pool
        self._origin = origin
        self._timeouts = timeouts
        self.deadline = deadline
        #: The response's `Content-Length` ("" without one) and whether it has a
        #: `Content-Encoding`, as parsed (vdm/upstream/h1_connection.py).
        self.content_length = connection.content_length.decode("latin-1")
        self.encoded = connection.encoded

    # An iterator object rather than an async generator: the event loop tracks every
    # generator in a weak set, per response; this needs none of that.
    def __aiter__(self) -> H1Body:
        return self

    async def __anext__(self) -> bytes:
        data = await self.read()
        if not data:
            raise StopAsyncIteration
        return data

    def read(self) -> Coroutine[Any, Any, bytes]:
        """The next read (b"" at the body's end): the connection's own coroutine, with no
        layer of this one's around it, and no StopAsyncIteration raised at the end."""
        connection = self._connection
        if connection is None:
            raise httpx.StreamClosed()
        return connection.read(self._timeouts, self)

    @property
    def arrived(self) -> bool:
        """Whether all of the body has arrived: reading the rest will not wait."""
        connection = self._connection
        return connection is not None and connection.complete

    async def aclose(self) -> None:
        connection = self._connection
        if connection is None:
            return
        self._connection = None
        self.on_idle = None
        if connection.complete and connection.keep_alive and connection.reusable():
            self._pool.release(self._origin, connection)
        else:
            connection.close()  # a body cut short: what is left of it would be the next answer

    def get_extra_info(self, info: str) -> Any:
        """As httpcore's network streams: `ssl_object`, `client_addr`, `server_addr`,
        `socket`, `is_readable`."""
        return self._socket.get_extra_info(info)


def body_reader(response: httpx.Response) -> Callable[[], Awaitable[bytes]]:
    """What to await for each read of a response's body: the next piece, never empty, and
    b"" at its end. httpx's `aiter_bytes` passes each through a decoder chain, a chunker and
    an error context; a body from vdm's own transport that has no content-encoding needs
    none of them, and is read straight from it (each read is everything that arrived).
    Unlike `aiter_bytes`, the end of such a body does not close the response: the caller
    does (which gives the connection back)."""
    stream = response.stream
    if isinstance(stream, H1Body) and not stream.encoded:
        response.is_stream_consumed = True
        return stream.read
    pieces = response.aiter_bytes()

    async def read() -> bytes:
        async for piece in pieces:
            if piece:
                return piece
        return b""

    return read


async def close(response: httpx.Response) -> None:
    """`response.aclose()`. A body from vdm's own transport is closed without the error
    context httpx puts around it (a context manager per response): closing it raises no
    httpx error for that context to name the request in."""
    stream = response.stream
    if isinstance(stream, H1Body):
        if not response.is_closed:
            response.is_closed = True
            await stream.aclose()
    else:
        await response.aclose()


class H1Transport(httpx.AsyncBaseTransport):
    """An httpx transport for http:// and https:// over HTTP/1.1, with a keep-alive pool
    (`pool`). `ssl_context` verifies servers (default: `httpx.create_ssl_context()`, which
    reads SSL_CERT_FILE and SSL_CERT_DIR)."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_expiry: float = 30.0,
        max_idle: int = 256,
    ) -> None:
        self._ssl_context = ssl_context or httpx.create_ssl_context()
        self.pool = H1Pool(keepalive_expiry, max_idle)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.raw_scheme
        port = url.port or _DEFAULT_PORTS.get(scheme)
        if port is None:
            raise httpx.UnsupportedProtocol(f"cannot send {scheme!r} URLs", request=request)
        origin = (scheme, url.raw_host, port)
        extensions = request.extensions
        timeouts: dict[str, Any] = extensions.get("timeout") or {}
        deadline: float | None = extensions.get(DEADLINE)
        connection = self.pool.checkout(origin)
        if connection is None:
            connection = await connect(
                scheme, url.raw_host, port, self._ssl_context, timeouts.get("connect")
            )
        method = request.method
        connection.start(method == "HEAD")
        try:
            try:
                stream = request.stream
                if isinstance(stream, httpx.ByteStream):
                    # A body in memory (vdm's own requests), head and body in one write: here
                    # rather than in `_send`, one coroutine less per request. Iterated as the
                    # sync stream it also is, which spares an async generator.
                    content = b"".join(stream)
                    head = _head(method, url, request.headers)
                    connection.write(head + content if content else head)
                    if connection.write_paused:
                        await connection.drain(timeouts.get("write"))
                else:
                    await _send(connection, request, timeouts.get("write"))
            except httpx.WriteError:
                # The server may answer (a 413, a 401) and close before taking the whole
                # body: its answer says more than the failed write.
                if not connection.head_done:
                    raise
            while (waiting := connection.head_wait(timeouts, deadline)) is not None:
                await waiting
        except BaseException:
            connection.close()
            raise
        body = H1Body(connection, self.pool, origin, timeouts, deadline)
        return httpx.Response(
            connection.status,
            headers=connection.headers,
            stream=body,
            extensions={
                "http_version": connection.http_version,
                "reason_phrase": connection.reason,
                "network_stream": body,
            },
        )

    async def aclose(self) -> None:
        self.pool.close()


async def _send(connection: H1Connection, request: httpx.Request, timeout: float | None) -> None:
    """Write a request whose body is an async stream (a bytes one is written with its head,
    in `H1Transport.handle_async_request`): a body of unknown length (httpx then sets
    `transfer-encoding: chunked`) as chunks, each after the last drained."""
    pending = _head(request.method, request.url, request.headers)
    stream = request.stream
    chunked = "chunked" in request.headers.get("transfer-encoding", "")
    assert isinstance(stream, httpx.AsyncByteStream)
    async for part in stream:
        if not part:
            continue
        if chunked:
            part = b"%x\r\n%s\r\n" % (len(part), part)
        connection.write(pending + part if pending else part)
        pending = b""
        await connection.drain(timeout)
    if chunked:
        pending += b"0\r\n\r\n"
    if pending:
        connection.write(pending)
        await connection.drain(timeout)


def _head(method: str, url: httpx.URL, headers: httpx.Headers) -> bytes:
    parts = [method.encode("ascii"), b" ", url.raw_path, b" HTTP/1.1\r\n"]
    # `Headers.raw` without the list of pairs it builds for each call: (name as given, name
    # lowered, value) is what httpx keeps.
    items = headers._list
    for name, _, value in items:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    head = b"".join(parts)
    # A CR or LF inside a name, value or target would split the head (header injection):
    # counting line ends is two C-speed scans, cheaper than checking each header.
    lines = len(items) + 2
    if head.count(b"\n") != lines or head.count(b"\r") != lines:
        raise httpx.LocalProtocolError("a request header or the target holds CR or LF")
    return head
