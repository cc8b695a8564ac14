"""An httpx transport whose keep-alive pool hands out a connection in O(1).

httpcore's `AsyncConnectionPool` (1.0.x) walks every pooled connection, with a readability
syscall for each idle one, on every request and every response close. With 50 concurrent
streams that scan was a third of vdm's CPU (`make bench`, docs/performance.md). This pool keeps
idle HTTP/1.1 connections per origin on a stack: checkout pops one and checks only that one;
a closed response pushes its connection back if it is reusable.

Connections are httpcore's own `AsyncHTTPConnection`, and errors go through httpx's own
mapping, so callers see ordinary httpx behaviour and exceptions.

Proxies from the environment do not come for free: httpx reads `HTTP(S)_PROXY`, `ALL_PROXY` and
`NO_PROXY` only for a client built without a transport (encode/httpx#1122), and vdm always
passes this one. `proxy_mounts` rebuilds httpx's own table from the same variables as mounts
beside it: a proxied origin goes through httpx's stock proxy transport (its connection pool, not
this one), a `NO_PROXY` one through this pool.

A request may carry a deadline (the `DEADLINE` extension, `time.monotonic()` seconds): no read
of its response body waits past it (vdm/upstream/network.py), which is how a call's total
timeout bounds a stream that keeps trickling. The connection forgets it when the body closes.
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import AsyncIterable, AsyncIterator

import httpcore
import httpx
from httpx._transports.default import AsyncResponseStream, map_httpcore_exceptions
from httpx._utils import URLPattern, get_environment_proxies

from vdm.config.secrets import safe_url
from vdm.protocol.errors import VdmError
from vdm.upstream.network import AsyncioBackend, AsyncioStream

log = logging.getLogger(__name__)

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


#: Connections through a proxy: no cap on concurrent ones (vdm's pool has none; httpx's
#: default of 100 would queue the 101st stream), as many idle ones kept as `PooledTransport`.
_PROXY_LIMITS = httpx.Limits(
    max_connections=None, max_keepalive_connections=256, keepalive_expiry=30.0
)


class ProxyTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport through one proxy; `shown` is the proxy's URL with any
    credentials masked, for logs."""

    def __init__(self, url: str, ssl_context: ssl.SSLContext) -> None:
        # One context for both TLS legs: to an https:// proxy and, through its tunnel, to
        # the upstream; so a custom CA bundle (SSL_CERT_FILE) covers both. (httpcore refuses
        # a proxy TLS context for an http:// proxy.)
        proxy = httpx.Proxy(url)
        if proxy.url.scheme == "https":
            proxy = httpx.Proxy(url, ssl_context=ssl_context)
        super().__init__(
            proxy=proxy,
            verify=ssl_context,
            limits=_PROXY_LIMITS,
        )
        self.shown = safe_url(url)


class UnusableProxy(httpx.AsyncBaseTransport):
    """Stands for a proxy the environment names that httpx cannot use (`socks://`, or
    `socks5://` without socksio). Only a request routed to it fails, with `problem`: a
    proxy variable that never applies to vdm's calls (a desktop's `all_proxy=socks://…`
    next to a usable `https_proxy`) must not break them, and one that does must not be
    bypassed in silence, sending API keys around the network's proxy."""

    def __init__(self, problem: str) -> None:
        self.problem = problem

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise VdmError(502, self.problem, unavailable=True)


def proxy_mounts(ssl_context: ssl.SSLContext) -> dict[str, httpx.AsyncBaseTransport | None]:
    """httpx mounts for the proxies of the environment, as httpx itself would read them
    (`get_environment_proxies`: `http_proxy`, `https_proxy`, `all_proxy`, any case, lowercase
    first; `no_proxy`): a URL pattern -> a transport through its proxy, or None for a
    `NO_PROXY` entry (httpx then uses the client's own transport). Empty when no proxy is
    set. A proxy that cannot be used becomes an `UnusableProxy`, and a `NO_PROXY` entry httpx
    cannot parse is left out (with a warning): never an exception here, where httpx's own
    client would raise on every request."""
    mounts: dict[str, httpx.AsyncBaseTransport | None] = {}
    for pattern, url in get_environment_proxies().items():
        if url is not None:
            mounts[pattern] = _proxy_transport(pattern, url, ssl_context)
        elif _readable(pattern):
            mounts[pattern] = None
    return mounts


#: NO_PROXY patterns already warned about: one warning per process, not one per provider.
_warned: set[str] = set()


def _readable(pattern: str) -> bool:
    """Whether httpx can parse a `NO_PROXY` pattern; it cannot `[::1]` (it makes
    `all://*[::1]` of it) nor an IPv6 range. Such an entry is ignored: the host it names
    goes through the proxy, which is where traffic goes anyway unless exempted."""
    try:
        URLPattern(pattern)
    except (httpx.InvalidURL, ValueError):
        if pattern not in _warned:
            _warned.add(pattern)
            log.warning(
                "NO_PROXY: cannot read the entry that becomes %r, ignored: calls to that host "
                "use the proxy (write IPv6 addresses without brackets; ranges are not read)",
                pattern,
            )
        return False
    return True


def _proxy_transport(
    pattern: str, url: str, ssl_context: ssl.SSLContext
) -> httpx.AsyncBaseTransport:
    try:
        return ProxyTransport(url, ssl_context)
    except ImportError:  # httpx imports socksio for a socks5:// proxy
        reason = "SOCKS proxies need the socksio package (pip install 'httpx[socks]')"
    except (ValueError, httpx.InvalidURL):
        # `socks://` is what GNOME's proxy settings export; httpx knows no such scheme.
        reason = "vdm can use http://, https://, socks5:// and socks5h:// proxies"
    variable = _variable(pattern)
    return UnusableProxy(
        f"{variable}={safe_url(url)} cannot be used: {reason}; fix or unset {variable}, "
        "or list the provider's host in NO_PROXY"
    )


def _variable(pattern: str) -> str:
    """The variable a proxy pattern came from (`https://` -> `https_proxy` or `HTTPS_PROXY`:
    the lowercase one wins when both are set, as in `urllib.request.getproxies`)."""
    lower = pattern.partition("://")[0] + "_proxy"
    return lower if os.environ.get(lower) else lower.upper()


def log_route(provider: str, client: httpx.AsyncClient) -> None:
    """Say once, when a provider's client with proxy mounts is made, how its calls leave:
    through which proxy or direct (DEBUG), or into an unusable proxy (WARNING: each of its
    calls will fail, saying why)."""
    transport = client._transport_for_url(client.base_url)
    if isinstance(transport, UnusableProxy):
        log.warning("provider %s: %s", provider, transport.problem)
    elif isinstance(transport, ProxyTransport):
        log.debug("provider %s goes through the proxy %s", provider, transport.shown)
    else:
        log.debug(
            "provider %s goes direct: no proxy applies to %s (NO_PROXY, or none for its scheme)",
            provider,
            client.base_url.host,
        )
