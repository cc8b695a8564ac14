"""The pure ASGI application: the edge rules, routing, error rendering, the limit on
requests served at once, ending in-flight requests at shutdown, lifespan."""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

import anyio

from vdm import __version__
from vdm.config.secrets import safe_url
from vdm.config.settings import NO_PROVIDER, Settings
from vdm.protocol.errors import VdmError, anthropic_error_event
from vdm.server import messages
from vdm.server.asgi import (
    ClientDisconnected,
    Incoming,
    Message,
    Receive,
    Scope,
    Send,
    read_body,
    send_bytes,
    send_error,
    send_json,
)
from vdm.server.auth import check_session, client_key
from vdm.server.catalog import alias_entries
from vdm.server.edge import (
    EdgePolicy,
    check_header_values,
    check_host,
    check_json,
    check_origin,
    cors_headers,
    preflight_headers,
)
from vdm.server.state import Gateway

log = logging.getLogger(__name__)

Handler = Callable[[Gateway, Scope, Receive, Send], Awaitable[None]]


def _client_key(gateway: Gateway, scope: Scope) -> str | None:
    """Checks the proxy key (401 before anything else happens) and returns the client's own
    provider key, if any."""
    check_session(scope["headers"], gateway.settings.session_secret)
    return client_key(scope["headers"], gateway.settings.proxy_api_key)


async def _incoming(gateway: Gateway, scope: Scope, receive: Receive) -> Incoming:
    key = _client_key(gateway, scope)
    body = await read_body(receive, scope["headers"], timeout=gateway.settings.body_timeout)
    return Incoming(body, scope["headers"], key)


async def _messages(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    incoming = await _incoming(gateway, scope, receive)
    await messages.create_message(gateway, incoming, receive, send)


async def _count_tokens(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    incoming = await _incoming(gateway, scope, receive)
    # Cancelled when the client disconnects, as `/v1/messages` is (vdm/server/messages.py).
    await messages.count_tokens(gateway, incoming, receive, send)


async def _models(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    key = _client_key(gateway, scope)
    query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
    await send_json(send, 200, await gateway.catalog.models(query, key))


async def _aliases(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    _client_key(gateway, scope)
    body = {
        "default_provider": gateway.settings.default_provider,
        "aliases": alias_entries(gateway.settings),
    }
    await send_json(send, 200, body)


async def _health(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    await send_json(send, 200, health(gateway.settings, gateway))


async def _hello(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    # Claude Code probes this unless nonessential traffic is disabled: answer quietly.
    await send_bytes(send, 200, b"", [])


def health(settings: Settings, gateway: Gateway | None = None) -> dict[str, object]:
    """Status without secrets: providers, their format and base URL, key counts, and what is
    cooling down (a key, for one model or all, until when) in the running `gateway`."""
    cooling = gateway.cooling() if gateway is not None else {}
    providers = {
        name: {
            "base_url": safe_url(p.base_url),
            "api_format": p.api_format,
            "keys": p.masked_keys,
            "cooling": [
                {
                    "key": c.key,
                    "model": c.model,
                    "until": round(c.until, 3),
                    "seconds_left": round(c.seconds_left, 3),
                    "status": c.status,
                }
                for c in cooling.get(name, [])
            ],
        }
        for name, p in settings.providers.items()
    }
    status = "ok" if providers else "unconfigured"
    body: dict[str, object] = {
        "status": status,
        "version": __version__,
        "default_provider": settings.default_provider,
        "providers": providers,
    }
    if not providers:
        body["message"] = NO_PROVIDER
    if settings.problems:
        body["problems"] = list(settings.problems)
    return body


#: (method, path) -> handler. Claude Code adds `?beta=true`; routing uses the path only.
ROUTES: dict[tuple[str, str], Handler] = {
    ("POST", "/v1/messages"): _messages,
    ("POST", "/v1/messages/count_tokens"): _count_tokens,
    ("GET", "/v1/models"): _models,
    ("GET", "/v1/aliases"): _aliases,
    ("GET", "/health"): _health,
    ("HEAD", "/health"): _health,
    ("HEAD", "/api/hello"): _hello,
    ("GET", "/api/hello"): _hello,
}
_PATHS = {path for _, path in ROUTES}
#: Paths served however busy vdm is: cheap, and what tells a monitor that it is busy.
_UNLIMITED = frozenset({"/health", "/api/hello"})
#: The request limit's default, when the server does not set one (vdm/server/serve.py does).
DEFAULT_MAX_REQUESTS = 1000
SHUTTING_DOWN = "vdm is shutting down: the request was ended after the shutdown grace period"


def _not_served(method: str, path: str) -> str | None:
    """What vdm does not serve yet at `path`, in words for a 501; None if it is not one of
    those. Claude Code speaks these APIs when told to use Bedrock or Vertex."""
    if path.startswith("/model/") or path == "/inference-profiles":
        api, switch = "the Amazon Bedrock runtime API", "CLAUDE_CODE_USE_BEDROCK"
    elif path.endswith((":rawPredict", ":streamRawPredict")):
        api, switch = "the Google Vertex AI rawPredict API", "CLAUDE_CODE_USE_VERTEX"
    else:
        return None
    return (
        f"vdm does not serve {api} ({method} {path}) yet; a later vdm will. Until then unset "
        f"{switch} and point Claude Code at vdm with ANTHROPIC_BASE_URL (the Anthropic "
        "Messages API)"
    )


class _Response:
    """The client's `send`, remembering how far the response got (so that a request ended
    at shutdown is ended properly) and adding the CORS headers an allowed origin needs.

    A stream's write that waits longer than `timeout` for the client to read (a client that
    stopped reading) ends the request: its cancel scope is cancelled, which cancels the
    upstream call, and every later write is dropped."""

    __slots__ = ("send", "extra", "started", "finished", "sse", "timeout", "cancel", "stalled")

    def __init__(self, send: Send, timeout: float | None = None) -> None:
        self.send = send
        self.extra: list[tuple[bytes, bytes]] = []
        self.started = False
        self.finished = False
        self.sse = False
        self.timeout = timeout
        #: The request's cancel scope, once it runs (`App._serve`).
        self.cancel: anyio.CancelScope | None = None
        self.stalled = False

    async def __call__(self, message: Message) -> None:
        if self.stalled:
            return
        kind = message["type"]
        if kind == "http.response.start":
            self.started = True
            headers = message.get("headers", [])
            self.sse = any(
                k == b"content-type" and v.startswith(b"text/event-stream") for k, v in headers
            )
            if self.extra:
                message = {**message, "headers": [*headers, *self.extra]}
        elif kind == "http.response.body" and not message.get("more_body", False):
            self.finished = True
        if kind != "http.response.body" or not message.get("more_body", False):
            # A head, or a whole answer's (last) write: the socket's buffers take it.
            await self.send(message)
            return
        # A stream's write: waits while the client does not read.
        with anyio.move_on_after(self.timeout) as waiting:
            await self.send(message)
        if waiting.cancelled_caught:
            self.stalled = True
            log.warning(
                "the client read nothing for %g s (SEND_TIMEOUT): request ended", self.timeout
            )
            if self.cancel is not None:
                self.cancel.cancel()


def _out_of_descriptors() -> VdmError:
    return VdmError(
        503,
        "vdm is out of file descriptors (too many connections at once); retry shortly",
        headers={"retry-after": "1"},
    )


class App:
    """vdm's ASGI application."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.gateway = Gateway(settings)
        self.policy = EdgePolicy(settings.allow_remote, frozenset(settings.allowed_origins))
        #: Requests served at once (except `_UNLIMITED` paths); beyond, a 503.
        self.max_requests = settings.max_connections or DEFAULT_MAX_REQUESTS
        self.active = 0
        #: The cancel scopes of the requests running now, for `end_requests`.
        self._running: set[anyio.CancelScope] = set()
        #: The signal that stopped the server (vdm/server/serve.py), if one did.
        self.stopped_by: int | None = None

    def end_requests(self) -> int:
        """End every request still running (at shutdown, after the grace period): a stream
        ends with an `error` event, a request not answered yet gets a 503. Returns how many."""
        running = list(self._running)
        for scope in running:
            scope.cancel()
        return len(running)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]
        method = scope["method"]
        handler = ROUTES.get((method, path))
        response = _Response(send, self.settings.send_timeout)
        try:
            headers = scope["headers"]
            check_header_values(headers)
            check_host(headers, self.policy)
            origin = check_origin(headers, self.policy)
            if origin is not None:
                if method == "OPTIONS":
                    await send_bytes(send, 204, b"", preflight_headers(origin, headers))
                    return
                response.extra = cors_headers(origin)
            if handler is None:
                if path in _PATHS:
                    raise VdmError(405, f"method {method} is not allowed on {path}")
                unserved = _not_served(method, path)
                if unserved is not None:
                    raise VdmError(501, unserved)
                raise VdmError(404, f"no such endpoint: {method} {path}")
            if method == "POST":
                check_json(headers)
            await self._serve(handler, path, scope, receive, response)
        except VdmError as exc:
            await self._fail(response, exc)
        except ClientDisconnected:
            return
        except Exception as exc:
            if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
                # Out of descriptors (opening a module or a socket): a passing overload.
                log.warning("%s %s: out of file descriptors (%s)", method, path, exc.strerror)
                await self._fail(response, _out_of_descriptors())
                return
            log.exception("internal error on %s %s", method, path)
            await self._fail(response, VdmError(500, "internal error in vdm; see the server log"))

    async def _serve(
        self, handler: Handler, path: str, scope: Scope, receive: Receive, response: _Response
    ) -> None:
        """Run `handler` within the request limit, cancellable by `end_requests`."""
        limited = path not in _UNLIMITED
        if limited and self.active >= self.max_requests:
            raise VdmError(
                503,
                f"vdm is serving its maximum of {self.max_requests} requests at once "
                "(MAX_CONNECTIONS); retry shortly",
                error_type="overloaded_error",
                headers={"retry-after": "1"},
            )
        self.active += limited
        with anyio.CancelScope() as cancel:
            response.cancel = cancel
            self._running.add(cancel)
            try:
                await handler(self.gateway, scope, receive, response)
            finally:
                self._running.discard(cancel)
                self.active -= limited
        if cancel.cancelled_caught and not response.stalled:
            raise VdmError(503, SHUTTING_DOWN, error_type="overloaded_error")

    async def _fail(self, response: _Response, error: VdmError) -> None:
        """Report `error`: an error response, or, once the response has started, an SSE
        `error` event that ends the stream (unless it has ended already)."""
        if not response.started:
            await send_error(response, error)
        elif not response.finished:
            tail = anthropic_error_event(error) if response.sse else b""
            await response({"type": "http.response.body", "body": tail, "more_body": False})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.gateway.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return
