"""An httpx transport whose keep-alive pool hands out a connection in O(1).

httpcore's `AsyncConnectionPool` (1.0.x) walks every pooled connection, with a readability
syscall for each idle one, on every request and every response close. With 50 concurrent
streams that scan was a third of vdm's CPU (`make bench`, docs/performance.md). This pool keeps
idle HTTP/1.1 connections per origin on a stack: checkout pops one and checks only that one;
a closed response pushes its connection back if it is reusable.

Connections are httpcore's own `AsyncHTTPConnection`, and errors go through httpx's own
mapping, so callers see ordinary httpx behaviour and exceptions. Proxies from the environment
keep working: httpx mounts its own proxy transports beside this one.

A request may carry a deadline (the `DEADLINE` extension, `time.monotonic()` seconds): no read
of its response body waits past it (vdm/upstream/network.py), which is how a call's total
timeout bounds a stream that keeps trickling. The connection forgets it when the body closes.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterable, AsyncIterator

import httpcore
import httpx
from httpx._transports.default import AsyncResponseStream, map_httpcore_exceptions

from vdm.upstream.network import AsyncioBackend, AsyncioStream

#: Request extension: the instant (`time.monotonic()`) by which the response must be read.
DEADLINE = "vdm.deadline"


def _key(origin: httpcore.Origin) -> tuple[bytes, bytes, int]:
    return (origin.scheme, origin.host, origin.port)


class _Releasing:
    """A response body that gives its connection back to the pool when closed."""

    def __init__(
        self,
        stream: AsyncIterable[bytes],
        connection: httpcore.AsyncHTTPConnection,
        pool: LifoPool,
        network: AsyncioStream | None,
    ) -> None:
        self._stream = stream
        self._connection = connection
        self._pool = pool
        #: The connection's stream while it carries a deadline for this response.
        self._network = network

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        if self._network is not None:
            self._network.deadline = None  # the next request on the connection has its own
            self._network = None
        try:
            close = getattr(self._stream, "aclose", None)
            if close is not None:
                await close()
        finally:
            await self._pool.release(self._connection)


class LifoPool:
    """Idle connections per origin, most recently used first."""

    def __init__(self, ssl_context: ssl.SSLContext, keepalive_expiry: float, max_idle: int) -> None:
        self._ssl_context = ssl_context
        self._keepalive_expiry = keepalive_expiry
        self._max_idle = max_idle
        self._backend = AsyncioBackend()
        self._idle: dict[tuple[bytes, bytes, int], list[httpcore.AsyncHTTPConnection]] = {}

    @property
    def idle_count(self) -> int:
        return sum(len(stack) for stack in self._idle.values())

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        origin = request.url.origin
        stack = self._idle.setdefault(_key(origin), [])
        while True:
            connection: httpcore.AsyncHTTPConnection | None = None
            while stack:
                candidate = stack.pop()
                if candidate.is_idle() and not candidate.has_expired():
                    connection = candidate
                    break
                await candidate.aclose()
            fresh = connection is None
            if connection is None:
                connection = httpcore.AsyncHTTPConnection(
                    origin=origin,
                    ssl_context=self._ssl_context,
                    keepalive_expiry=self._keepalive_expiry,
                    network_backend=self._backend,
                )
            try:
                response = await connection.handle_async_request(request)
            except httpcore.ConnectionNotAvailable:
                if fresh:
                    raise
                continue  # it was taken down between the check and the request: use another
            except BaseException:
                await connection.aclose()
                raise
            body = response.stream
            assert isinstance(body, AsyncIterable)
            network = response.extensions.get("network_stream")
            deadline = request.extensions.get(DEADLINE)
            if isinstance(network, AsyncioStream) and deadline is not None:
                network.deadline = deadline
            else:
                network = None
            return httpcore.Response(
                status=response.status,
                headers=response.headers,
                content=_Releasing(body, connection, self, network),
                extensions=response.extensions,
            )

    async def release(self, connection: httpcore.AsyncHTTPConnection) -> None:
        stack = self._idle.setdefault(_key(connection._origin), [])
        if connection.is_idle() and len(stack) < self._max_idle:
            stack.append(connection)
        else:
            await connection.aclose()

    async def aclose(self) -> None:
        stacks = list(self._idle.values())
        self._idle.clear()
        for stack in stacks:
            for connection in stack:
                await connection.aclose()


class PooledTransport(httpx.AsyncBaseTransport):
    """httpx transport over `LifoPool` (HTTP/1.1)."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_expiry: float = 30.0,
        max_idle: int = 256,
    ) -> None:
        context = ssl_context or httpx.create_ssl_context()
        self.pool = LifoPool(context, keepalive_expiry, max_idle)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with map_httpcore_exceptions():
            response = await self.pool.handle_async_request(core_request)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=AsyncResponseStream(response.stream),  # type: ignore[arg-type]
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.pool.aclose()
