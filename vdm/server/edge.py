"""What a request must look like before vdm does anything with it: the browser-safety and
header rules of the edge, as pure functions of the request head.

A web page the user visits can make the browser send requests to `127.0.0.1:8082`. Three
rules keep it from spending the user's keys:

- **Host**: a DNS-rebinding page reaches vdm under its own name (`evil.example` resolving to
  127.0.0.1), and the browser sends that name in `Host`. Unless the server was started for a
  network (`ALLOW_REMOTE`), only loopback names are served: `localhost`, `*.localhost`,
  `127.0.0.1` (any 127/8 address) and `[::1]`, with any port.
- **Origin**: browsers put `Origin` on every cross-site request and on every POST; vdm's
  clients (SDKs, Claude Code) never send it. A request carrying one is refused unless that
  origin is configured (`ALLOWED_ORIGINS`); a configured one gets CORS answers. One more is
  allowed: vdm's own pages (the dashboard, whose login form POSTs) are served under the
  request's `Host`, so their Origin is `http://<Host>`. That equality alone would prove
  nothing (a DNS-rebinding page also sends its own name in both), which is why it counts only
  when the Host rule above has held, i.e. when the Host is a loopback name: then the page
  is one vdm itself served on this machine. A server started for a network (`ALLOW_REMOTE`)
  accepts any Host, so there the dashboard's own address must be listed in
  `ALLOWED_ORIGINS` for its login to work.
- **Content-Type**: a POST must be `application/json`. The forms and `text/plain` bodies a
  page may send without a CORS preflight are refused.

Header values vdm reads or forwards must be visible ASCII: a non-ASCII or control byte would
crash the upstream request (httpx encodes headers as ASCII) or reach the provider garbled, so
it is a 400 naming the header instead.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from vdm.protocol.errors import VdmError

Headers = Iterable[tuple[bytes, bytes]]

#: Headers whose values vdm uses or forwards upstream, by exact name or by prefix.
CHECKED_HEADERS = frozenset(
    {b"x-api-key", b"authorization", b"user-agent", b"x-vdm-session", b"content-type"}
)
CHECKED_PREFIXES = (b"anthropic-", b"x-stainless-", b"x-claude-")
#: Visible ASCII, space and tab: what a header value may hold (RFC 9110 field-value, minus
#: obs-text, which no client of vdm sends).
_VALUE_BYTES = bytes([0x09, *range(0x20, 0x7F)])

JSON_TYPE = "application/json"
#: How long a browser may cache a preflight answer.
PREFLIGHT_MAX_AGE = b"600"


@dataclass(frozen=True, slots=True)
class EdgePolicy:
    """The edge rules of one server, from its settings."""

    #: Served to a network: any Host is accepted.
    allow_remote: bool = False
    #: Origins whose requests are served (lower case, no trailing slash).
    allowed_origins: frozenset[str] = frozenset()


def header(headers: Headers, name: bytes) -> bytes | None:
    """The first value of header `name` (lower case), or None."""
    for key, value in headers:
        if key == name:
            return value
    return None


def check_header_values(headers: Headers) -> None:
    """Raises VdmError(400) naming the first header vdm uses or forwards whose value holds a
    non-ASCII or control byte. The value itself is never quoted: it may be a key."""
    for name, value in headers:
        # What is left once the allowed bytes are deleted (C speed; a set's `issuperset`
        # walked the value byte by byte, 4x slower, on every header of every request).
        if (name in CHECKED_HEADERS or name.startswith(CHECKED_PREFIXES)) and value.translate(
            None, _VALUE_BYTES
        ):
            raise VdmError(
                400,
                f"header {name.decode('latin-1')} holds a non-ASCII or control character; "
                "header values must be printable ASCII",
            )


@lru_cache(maxsize=256)  # few distinct values; `ipaddress` parsing each request showed in profiles
def is_loopback_host(value: str) -> bool:
    """Whether a `Host` header value names this machine: `localhost`, `*.localhost`, a 127/8
    address or `[::1]`, with or without a port."""
    host = value.strip().lower()
    if host.startswith("["):
        inside, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not _port(rest)):
            return False
        host = inside
    elif host.count(":") == 1:
        host, port = host.split(":")
        if not _port(":" + port):
            return False
    host = host.rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_address(host: str) -> bool:
    """Whether a bind address (`127.0.0.1`, `::1`, `localhost`) is loopback."""
    bare = host.strip().strip("[]")
    return is_loopback_host(f"[{bare}]" if ":" in bare else bare)


def _port(rest: str) -> bool:
    return rest.startswith(":") and rest[1:].isdigit() and len(rest) <= 6


def check_origin(headers: Headers, policy: EdgePolicy) -> bytes | None:
    """The request's Origin when it is an allowed one (CORS headers are then due), None when
    there is none or it is the page's own (`http://<Host>` with a loopback Host); raises
    VdmError(403) for any other."""
    origin = header(headers, b"origin")
    if origin is None:
        return None
    text = origin.decode("latin-1").strip().lower().rstrip("/")
    if text in policy.allowed_origins:
        return origin
    host = header(headers, b"host")
    if host is not None:
        own = host.decode("latin-1").strip().lower()
        if text == f"http://{own}" and is_loopback_host(own):
            return None  # vdm's own page, same origin: no CORS headers are due
    raise VdmError(
        403,
        f"requests from web pages are refused (Origin: {text[:100]}); to let a page at that "
        "origin call vdm, add it to ALLOWED_ORIGINS",
    )


def check_host(headers: Headers, policy: EdgePolicy) -> None:
    """Raises VdmError(403) for a `Host` that is not a loopback name, unless the server is
    served to a network. A request without Host (HTTP/1.0) is not a browser's."""
    if policy.allow_remote:
        return
    host = header(headers, b"host")
    if host is None or is_loopback_host(host.decode("latin-1")):
        return
    raise VdmError(
        403,
        f"Host {host.decode('latin-1')[:100]!r} is not a loopback name: this vdm serves "
        "localhost only (a defence against DNS rebinding); start it with --allow-remote (or "
        "ALLOW_REMOTE=true) to serve it under other names",
    )


def check_json(headers: Headers) -> None:
    """Raises VdmError(415) unless the body is declared `application/json` (parameters such
    as `charset=utf-8` are fine)."""
    declared = header(headers, b"content-type")
    kind = (declared or b"").split(b";", 1)[0].strip().lower()
    if kind != JSON_TYPE.encode():
        shown = declared.decode("latin-1")[:100] if declared is not None else "none"
        raise VdmError(
            415, f"request bodies must be sent as Content-Type: {JSON_TYPE} (got {shown})"
        )


def cors_headers(origin: bytes) -> list[tuple[bytes, bytes]]:
    """Added to every answer to an allowed origin."""
    return [
        (b"access-control-allow-origin", origin),
        (b"access-control-expose-headers", b"request-id, retry-after, x-should-retry"),
        (b"vary", b"Origin"),
    ]


def preflight_headers(origin: bytes, headers: Headers) -> list[tuple[bytes, bytes]]:
    """The answer to an allowed origin's CORS preflight (`OPTIONS`)."""
    asked = header(headers, b"access-control-request-headers") or b""
    return [
        *cors_headers(origin),
        (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
        (b"access-control-allow-headers", asked),
        (b"access-control-max-age", PREFLIGHT_MAX_AGE),
    ]
