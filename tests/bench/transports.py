"""CPU per upstream request of four httpx transports: ``python -m tests.bench.transports``.

Issue 15 asks whether vdm's own HTTP/1.1 transport (vdm/upstream/h1.py, httptools) is worth
keeping next to a maintained library. This script starts the bench's fake upstream
(``tests.bench.upstream``, its own process) and, in this process, sends N requests one after
the other through ``httpx.AsyncClient`` the way vdm does (``build_request``, then the
transport, as ``UpstreamClient._send_once``), reading each answer whole:

* ``httpx``: httpx's default transport (httpcore, h11, anyio);
* ``aiohttp``: ``httpx_aiohttp.AiohttpTransport`` (aiohttp's C parser);
* ``httpcore+lifo``: vdm's previous transport, httpcore connections in an O(1) pool on the
  asyncio network backend (copied here as the baseline);
* ``h1``: vdm's ``PooledTransport`` on httptools.

Scenarios are the bench's (a), a small JSON answer, and (b), a 50-chunk SSE stream sent in
one write, with the request bodies vdm sends upstream for them. Each runs on asyncio and on
uvloop; transports alternate within each round and the median of the rounds is shown (the
machine is shared and noisy). The figure is this process's CPU time (``time.process_time``)
per request: the client side only, the upstream's work is not in it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any

import httpcore
import httpx
import uvloop
from httpx._transports.default import AsyncResponseStream, map_httpcore_exceptions
from httpx_aiohttp import AiohttpTransport

from tests.bench.httpcore_backend import AsyncioBackend
from tests.bench.run import start_upstream, stop
from tests.bench.scenarios import SCENARIOS, openai_body
from vdm.upstream.network import ReadHooks
from vdm.upstream.pool import PooledTransport

# -- the previous transport (vdm/upstream/pool.py before issue 15), the baseline -------------


def _key(origin: httpcore.Origin) -> tuple[bytes, bytes, int]:
    return (origin.scheme, origin.host, origin.port)


class _Releasing:
    def __init__(
        self, stream: AsyncIterable[bytes], connection: httpcore.AsyncHTTPConnection, pool: Any
    ) -> None:
        self._stream, self._connection, self._pool = stream, connection, pool

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            close = getattr(self._stream, "aclose", None)
            if close is not None:
                await close()
        finally:
            await self._pool.release(self._connection)


class _LifoPool:
    def __init__(self) -> None:
        self._backend = AsyncioBackend()
        self._ssl = httpx.create_ssl_context()
        self._idle: dict[Any, list[httpcore.AsyncHTTPConnection]] = {}

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        origin = request.url.origin
        stack = self._idle.setdefault(_key(origin), [])
        connection = None
        while stack:
            candidate = stack.pop()
            if candidate.is_idle() and not candidate.has_expired():
                connection = candidate
                break
            await candidate.aclose()
        if connection is None:
            connection = httpcore.AsyncHTTPConnection(
                origin=origin,
                ssl_context=self._ssl,
                keepalive_expiry=30.0,
                network_backend=self._backend,
            )
        response = await connection.handle_async_request(request)
        body = response.stream
        assert isinstance(body, AsyncIterable)
        return httpcore.Response(
            status=response.status,
            headers=response.headers,
            content=_Releasing(body, connection, self),
            extensions=response.extensions,
        )

    async def release(self, connection: httpcore.AsyncHTTPConnection) -> None:
        stack = self._idle.setdefault(_key(connection._origin), [])
        if connection.is_idle():
            stack.append(connection)
        else:
            await connection.aclose()

    async def aclose(self) -> None:
        for stack in self._idle.values():
            for connection in stack:
                await connection.aclose()


class HttpcoreLifoTransport(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self.pool = _LifoPool()

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


# -- the measurement ----------------------------------------------------------------------------

TRANSPORTS: dict[str, Callable[[], httpx.AsyncBaseTransport]] = {
    "httpx": httpx.AsyncHTTPTransport,
    "aiohttp": AiohttpTransport,
    "httpcore+lifo": HttpcoreLifoTransport,
    "h1": PooledTransport,
}


async def _noop() -> None:
    return None


async def _one(client: httpx.AsyncClient, body: bytes, stream: bool) -> int:
    request = client.build_request(
        "POST",
        "/v1/chat/completions",
        content=body,
        headers={"content-type": "application/json", "authorization": "Bearer sk-bench"},
    )
    response = await client._transport_for_url(request.url).handle_async_request(request)
    size = 0
    try:
        network = response.extensions.get("network_stream")
        if stream and isinstance(network, ReadHooks):
            network.on_idle = _noop  # vdm's relay sets its hook; the cost of calling it counts
        async for chunk in response.aiter_bytes():
            size += len(chunk)
    finally:
        await response.aclose()
    if response.status_code != 200 or not size:
        raise RuntimeError(f"HTTP {response.status_code}, {size} bytes")
    return size


async def _measure(port: int, name: str, body: bytes, stream: bool, n: int) -> float:
    """CPU milliseconds per request, over n requests after a warm-up."""
    transport = TRANSPORTS[name]()
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", transport=transport, timeout=30.0
    ) as client:
        for _ in range(20):
            await _one(client, body, stream)
        began = time.process_time()
        for _ in range(n):
            await _one(client, body, stream)
        return (time.process_time() - began) * 1000 / n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=500, help="requests per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    scenarios = {s.key: s for s in SCENARIOS}
    bodies = {"a": (openai_body(scenarios["a"]), False), "b": (openai_body(scenarios["b"]), True)}
    loops: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop,
        "uvloop": uvloop.new_event_loop,
    }
    proc, port = start_upstream()
    results: dict[tuple[str, str, str], list[float]] = {}
    try:
        for _ in range(args.rounds):
            for loop_name, factory in loops.items():
                with asyncio.Runner(loop_factory=factory) as runner:
                    for key, (body, stream) in bodies.items():
                        for name in TRANSPORTS:
                            ms = runner.run(_measure(port, name, body, stream, args.n))
                            results.setdefault((loop_name, key, name), []).append(ms)
    finally:
        stop(proc)
    out = sys.stdout
    out.write(
        f"CPU ms per request, client process only, median of {args.rounds} rounds of "
        f"{args.n} (ratio to httpx's default transport)\n"
    )
    out.write(f"{'loop':8} {'scenario':22} " + " ".join(f"{t:>17}" for t in TRANSPORTS) + "\n")
    titles = {"a": "(a) small JSON", "b": "(b) 50-chunk stream"}
    for loop_name in loops:
        for key in bodies:
            base = statistics.median(results[(loop_name, key, "httpx")])
            cells = []
            for name in TRANSPORTS:
                ms = statistics.median(results[(loop_name, key, name)])
                cells.append(f"{ms:8.3f} ({ms / base:4.2f}x)")
            out.write(f"{loop_name:8} {titles[key]:22} " + " ".join(cells) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
