"""The transport behind each provider's httpx client, and the proxy routes beside it.

`PooledTransport` is vdm's own HTTP/1.1 transport (vdm/upstream/h1.py): asyncio Protocols,
responses parsed by httptools, a keep-alive pool per origin that hands out a connection in
O(1). It replaced httpcore's pool (which walked every pooled connection, with a syscall for
each idle one, on every request) and then httpcore and h11 themselves (issue 15,
docs/performance.md).

Proxies from the environment do not come for free: httpx reads `HTTP(S)_PROXY`, `ALL_PROXY` and
`NO_PROXY` only for a client built without a transport (encode/httpx#1122), and vdm always
passes this one. `proxy_mounts` rebuilds httpx's own table from the same variables as mounts
beside it: a proxied origin goes through httpx's stock proxy transport (its connection pool, not
this one), a `NO_PROXY` one through this pool.

A request may carry a deadline (the `DEADLINE` extension, `time.monotonic()` seconds): no read
of its response waits past it (vdm/upstream/h1.py), which is how a call's total timeout bounds
a stream that keeps trickling.
"""

from __future__ import annotations

import logging
import os
import ssl

import httpx
from httpx._utils import URLPattern, get_environment_proxies

from vdm.config.secrets import safe_url
from vdm.protocol.errors import VdmError
from vdm.upstream.h1 import H1Transport
from vdm.upstream.network import DEADLINE as DEADLINE

log = logging.getLogger(__name__)


class PooledTransport(H1Transport):
    """vdm's HTTP/1.1 transport with its keep-alive pool (`pool.idle_count`):
    `PooledTransport(*, ssl_context=None, keepalive_expiry=30.0, max_idle=256)`."""


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
