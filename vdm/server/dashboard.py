"""The live dashboard at `/dashboard/`: its static assets, its JSON and SSE feeds, and who may
see them.

The page is three files shipped in the package (`vdm/server/dashboard/`: no CDN, no build
step, so it works offline and from a wheel). It reads one payload,
`vdm.server.observe.dashboard_state`, first from `/dashboard/api/state`, then pushed every
second over SSE (`/dashboard/api/events`).

**Who may look.** Model names, costs and session ids are the user's business: when the server
is protected (`PROXY_API_KEY`, or a `vdm wrap` session's secret), the feeds and `/metrics*`
require a viewer credential (`check_viewer`): the proxy key, the session header, the
`vdm wrap --dashboard` token, or the login cookie. A browser cannot send headers when it
opens a URL, so the page itself is served to anyone (it holds no data): without a credential
its feeds answer 401 and it shows a key form, which posts the key to `/dashboard/login` once.
The cookie set then is an HMAC of the key under a random salt made when the process starts:
it is worth nothing after a restart, and a stolen cookie does not reveal the key (which would
also spend the user's providers on /v1). The wrap token opens the dashboard only: /v1 never
accepts it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from vdm.config.settings import Settings
from vdm.protocol.errors import VdmError
from vdm.server.asgi import (
    Receive,
    Scope,
    Send,
    read_body,
    send_bytes,
    send_json,
)
from vdm.server.auth import SESSION_HEADER
from vdm.server.edge import header
from vdm.server.observe import dashboard_state, live_feed
from vdm.server.state import Gateway

#: Where the page's files are, and the only names served from it, with their types.
ASSET_DIR = Path(__file__).with_name("dashboard")
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
}
#: Seconds between two `state` events on the SSE feed.
INTERVAL_S = 1.0
#: The page runs only its own files: a model name a client made up cannot become a script
#: even if it escaped escaping, and no other site may frame the page.
PAGE_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
#: Made once per process: cookies from an earlier run stop working when vdm restarts.
_SALT = secrets.token_bytes(32)
COOKIE_PREFIX = "vdm_dashboard"
NEEDS_VIEWER = (
    "this vdm's dashboard and metrics need a credential: its proxy key (x-api-key or "
    "Authorization: Bearer), its session header, or the dashboard's login cookie; open "
    "/dashboard/ and enter PROXY_API_KEY"
)
WRONG_KEY = (
    "wrong key: the dashboard takes PROXY_API_KEY or the token `vdm wrap --dashboard` printed"
)


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: bytes


@cache
def asset(name: str) -> Asset:
    """A shipped file, read once; its ETag is a hash of its bytes."""
    body = (ASSET_DIR / name).read_bytes()
    digest = hashlib.sha256(body).hexdigest()[:20]
    return Asset(body, ASSETS[name], f'"{digest}"'.encode())


# --- who may look -------------------------------------------------------------------------


def protected(settings: Settings) -> bool:
    """Whether viewing needs a credential: a proxy key or a wrap session is set."""
    return bool(settings.proxy_api_key or settings.session_secret)


def _credentials(settings: Settings) -> list[str]:
    """What opens the dashboard: the proxy key, the wrap session's secret, its token."""
    found = (settings.proxy_api_key, settings.session_secret, settings.dashboard_token)
    return [c for c in found if c]


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _text(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str:
    value = header(headers, name)
    return value.decode("latin-1").strip() if value is not None else ""


def _presented(headers: list[tuple[bytes, bytes]]) -> list[str]:
    """The keys a request carries: x-api-key, a Bearer token, the session header."""
    scheme, _, token = _text(headers, b"authorization").partition(" ")
    bearer = token.strip() if scheme.lower() == "bearer" else ""
    sent = (_text(headers, b"x-api-key"), bearer, _text(headers, SESSION_HEADER))
    return [s for s in sent if s]


def cookie_value(credential: str) -> str:
    """The login cookie for `credential`: keyed by this process's salt, never the key."""
    return hmac.new(_SALT, credential.encode(), hashlib.sha256).hexdigest()


def cookie_name(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """Cookies belong to a host, not a port: two vdm sessions on 127.0.0.1 would overwrite
    each other's under one name, so the name carries the port the browser used."""
    host = _text(headers, b"host")
    port = host.rsplit(":", 1)[1] if ":" in host and not host.endswith("]") else ""
    return f"{COOKIE_PREFIX}_{port}" if port.isdigit() else COOKIE_PREFIX


def _cookie(headers: list[tuple[bytes, bytes]], name: str) -> str:
    for key, value in headers:
        if key != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            found, _, content = part.strip().partition("=")
            if found == name:
                return content.strip()
    return ""


def check_viewer(gateway: Gateway, headers: Iterable[tuple[bytes, bytes]]) -> None:
    """Raises VdmError(401) unless the request may see the dashboard and metrics: the
    server is not protected, or the request carries the proxy key, the session header, the
    dashboard token or a valid login cookie."""
    settings = gateway.settings
    if not protected(settings):
        return
    headers = list(headers)
    credentials = _credentials(settings)
    for sent in _presented(headers):
        if any(_same(sent, c) for c in credentials):
            return
    cookie = _cookie(headers, cookie_name(headers))
    if cookie and any(_same(cookie, cookie_value(c)) for c in credentials):
        return
    raise VdmError(401, NEEDS_VIEWER)


# --- handlers -------------------------------------------------------------------------------


async def page(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    """`/dashboard/` is the page; `/dashboard` redirects there (the page's relative URLs
    need the slash). The app strips a trailing slash before routing: the raw path tells."""
    if not scope["path"].endswith("/"):
        query = scope.get("query_string", b"")
        location = b"/dashboard/" + (b"?" + query if query else b"")
        await send_bytes(send, 308, b"", [(b"location", location)])
        return
    await _send_asset(scope, send, "index.html")


Handler = Callable[[Gateway, Scope, Receive, Send], Awaitable[None]]


def _asset_handler(name: str) -> Handler:
    async def serve_asset(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
        await _send_asset(scope, send, name)

    return serve_asset


async def _send_asset(scope: Scope, send: Send, name: str) -> None:
    """A shipped file, revalidated on every load (`no-cache` + ETag): a vdm upgrade is seen
    at once, and an unchanged file costs a 304."""
    found = asset(name)
    headers = [
        (b"content-type", found.content_type.encode()),
        (b"cache-control", b"no-cache"),
        (b"etag", found.etag),
        *PAGE_HEADERS,
    ]
    matches = header(scope["headers"], b"if-none-match")
    if matches is not None and found.etag in [m.strip() for m in matches.split(b",")]:
        await send_bytes(send, 304, b"", headers)
        return
    body = b"" if scope["method"] == "HEAD" else found.body
    await send_bytes(send, 200, body, headers)


async def state(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    check_viewer(gateway, scope["headers"])
    await _send_json(send, dashboard_state(gateway))


async def _send_json(send: Send, data: object) -> None:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
    await send_bytes(send, 200, body, headers)


async def login(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    """Trade a key (x-api-key or Bearer) for the cookie: HttpOnly (page scripts never see
    it), SameSite=Strict (other sites' requests never carry it), for the whole server."""
    headers = scope["headers"]
    await read_body(receive, headers, timeout=gateway.settings.body_timeout)
    settings = gateway.settings
    if not protected(settings):
        await send_json(send, 200, {"ok": True, "protected": False})
        return
    credentials = _credentials(settings)
    key = next(
        (c for sent in _presented(headers) for c in credentials if _same(sent, c)),
        None,
    )
    if key is None:
        raise VdmError(401, WRONG_KEY)
    cookie = f"{cookie_name(headers)}={cookie_value(key)}; HttpOnly; SameSite=Strict; Path=/"
    body = b'{"ok":true,"protected":true}'
    extra = [
        (b"content-type", b"application/json"),
        (b"cache-control", b"no-store"),
        (b"set-cookie", cookie.encode()),
    ]
    await send_bytes(send, 200, body, extra)


async def events(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    """The SSE feed: a `state` event at once, then every `INTERVAL_S`; it ends when the
    client leaves or the server stops (vdm/server/observe.py `live_feed`)."""
    check_viewer(gateway, scope["headers"])
    await live_feed(gateway, receive, send, "state", lambda: dashboard_state(gateway), INTERVAL_S)


#: The dashboard's routes, merged into vdm/server/app.py's ROUTES. `/dashboard/` reaches
#: `page` as `/dashboard` (the app strips a trailing slash).
ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", "/dashboard"): page,
    ("HEAD", "/dashboard"): page,
    **{("GET", f"/dashboard/{name}"): _asset_handler(name) for name in ASSETS},
    ("GET", "/dashboard/api/state"): state,
    ("GET", "/dashboard/api/events"): events,
    ("POST", "/dashboard/login"): login,
}
