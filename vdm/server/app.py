"""The pure ASGI application: the edge rules, routing, error rendering, the limit on
requests served at once, ending in-flight requests at shutdown, lifespan.

Every request gets a `Trace` (vdm/usage/trace.py) when it arrives: its id is the `request-id`
response header and is in every log line written while it runs, the response's head carries
the time vdm itself spent (`x-vdm-overhead-ms`), and when it ends the gateway accounts it and
writes its one log line (`Gateway.account`), however it ended."""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

import anyio

from vdm import __version__
from vdm.config.settings import NO_PROVIDER, Settings
from vdm.protocol.errors import VdmError
from vdm.server import bedrock_frontend as bedrock
from vdm.server import dashboard, messages, observe
from vdm.server import vertex_frontend as vertex
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
from vdm.server.auth import check_session, client_key, client_label
from vdm.server.catalog import alias_entries, openai_list
from vdm.server.dashboard import check_viewer
from vdm.server.edge import (
    EdgePolicy,
    check_header_values,
    check_host,
    check_json,
    check_origin,
    cors_headers,
    preflight_headers,
)
from vdm.server.frontend import AnthropicFrontend, Frontend
from vdm.server.logs import MAX_BODY
from vdm.server.passthrough import header_value
from vdm.server.state import Gateway
from vdm.usage.trace import ACCOUNTED, REQUEST_ID, Trace, endpoint_of, new_request_id

log = logging.getLogger(__name__)

Handler = Callable[[Gateway, Scope, Receive, Send], Awaitable[None]]


#: The paths of OpenAI clients: their errors are in OpenAI's shape.
OPENAI_PATHS = frozenset({"/v1/chat/completions", "/v1/responses"})
#: Where the request's `Trace` is in its ASGI scope.
TRACE = "vdm.trace"
#: The response headers naming the request: vdm's id, the upstream's, vdm's own time.
REQUEST_ID_HEADER = b"request-id"
UPSTREAM_ID_HEADER = b"x-vdm-upstream-request-id"
OVERHEAD_HEADER = b"x-vdm-overhead-ms"


def trace_of(scope: Scope) -> Trace:
    trace: Trace = scope[TRACE]
    return trace


def _client_key(gateway: Gateway, scope: Scope) -> str | None:
    """Checks the proxy key (401 before anything else happens) and returns the client's own
    provider key, if any; names the client in the request's trace."""
    settings = gateway.settings
    check_session(scope["headers"], settings.session_secret)
    key = client_key(scope["headers"], settings.proxy_api_key)
    trace_of(scope).client = client_label(settings, key)
    return key


async def _incoming(gateway: Gateway, scope: Scope, receive: Receive) -> Incoming:
    key = _client_key(gateway, scope)
    body = await read_body(receive, scope["headers"], timeout=gateway.settings.body_timeout)
    trace = trace_of(scope)
    trace.bytes_in = len(body)
    if trace.response_body is not None:  # the request log keeps bodies
        trace.request_body = body
    return Incoming(body, scope["headers"], key, trace)


async def _messages(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    incoming = await _incoming(gateway, scope, receive)
    await messages.create_message(gateway, incoming, receive, send)


async def _chat_completions(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    from vdm.server.chat_frontend import chat_completions

    incoming = await _incoming(gateway, scope, receive)
    await chat_completions(gateway, incoming, receive, send)


async def _responses(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    from vdm.server.responses_frontend import responses

    incoming = await _incoming(gateway, scope, receive)
    await responses(gateway, incoming, receive, send)


async def _count_tokens(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    incoming = await _incoming(gateway, scope, receive)
    # Cancelled when the client disconnects, as `/v1/messages` is (vdm/server/messages.py).
    await messages.count_tokens(gateway, incoming, receive, send)


async def _bedrock(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    """Claude Code in Bedrock mode: `POST /model/{id}/invoke`, `/invoke-with-response-stream`
    and `/count-tokens` (vdm/server/bedrock_frontend.py; `App._http` re-frames the answer)."""
    path = scope["path"].rstrip("/")
    operation = bedrock.operation_of(path)
    assert operation is not None  # `_cloud_route` chose this handler by it
    model = bedrock.model_id(scope.get("raw_path") or path.encode(), operation)
    incoming = await _incoming(gateway, scope, receive)
    await bedrock.serve_operation(gateway, incoming, model, operation, receive, send)


async def _inference_profiles(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    _client_key(gateway, scope)
    await bedrock.inference_profiles(send)


async def _vertex(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    """Claude Code in Vertex mode (vdm/server/vertex_frontend.py)."""
    call = vertex.call_of(scope.get("raw_path") or scope["path"].rstrip("/").encode())
    incoming = await _incoming(gateway, scope, receive)
    await vertex.predict(gateway, incoming, call, receive, send)


def _cloud_route(method: str, path: str) -> tuple[Handler, str] | None:
    """The handler and endpoint name (for accounting) of the paths Claude Code calls in
    Bedrock or Vertex mode, which carry the model in the path; None for any other path."""
    operation = bedrock.operation_of(path)
    if operation is not None and method == "POST":
        return _bedrock, "count_tokens" if operation == bedrock.COUNT_TOKENS else "messages"
    if bedrock.is_profiles(path) and method == "GET":
        return _inference_profiles, "other"
    if vertex.is_predict(path) and method == "POST":
        return _vertex, "count_tokens" if vertex.is_count(path) else "messages"
    return None


async def _models(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    key = _client_key(gateway, scope)
    query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
    # The catalog asks providers for their lists (once, then cached): its time is counted as
    # upstream time, not vdm's overhead.
    trace = trace_of(scope)
    began = time.perf_counter()
    answer = await gateway.catalog.models(query, key)
    waited = time.perf_counter() - began
    trace.upstream = lambda: waited
    await send_json(send, 200, openai_list(answer) if _openai_client(scope) else answer)


def _openai_client(scope: Scope) -> bool:
    """An OpenAI SDK client: `Authorization: Bearer` and no `anthropic-version` (which every
    Anthropic SDK and Claude Code send)."""
    bearer = anthropic = False
    for name, value in scope["headers"]:
        if name == b"anthropic-version":
            anthropic = True
        elif name == b"authorization" and value[:7].lower() == b"bearer ":
            bearer = True
    return bearer and not anthropic


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


async def _metrics(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    check_viewer(gateway, scope["headers"])
    await observe.send_prometheus(gateway, send)


async def _running_totals(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    check_viewer(gateway, scope["headers"])
    query = observe.query_of(scope)
    if observe.wants_stream(scope):
        await observe.live_feed(
            gateway, receive, send, "totals", lambda: observe.running_totals(gateway, query)
        )
        return
    await observe.send_json_payload(send, observe.running_totals(gateway, query))


async def _active_requests(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    check_viewer(gateway, scope["headers"])
    if observe.wants_stream(scope):
        await observe.live_feed(
            gateway, receive, send, "active", lambda: observe.active_requests(gateway)
        )
        return
    await observe.send_json_payload(send, observe.active_requests(gateway))


def health(settings: Settings, gateway: Gateway | None = None) -> dict[str, object]:
    """Status without secrets: providers, their format and base URL, key counts, and what is
    cooling down (a key, for one model or all, until when) in the running `gateway`."""
    providers = observe.providers(settings, gateway)
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
    ("POST", "/v1/chat/completions"): _chat_completions,
    ("POST", "/v1/responses"): _responses,
    ("GET", "/v1/models"): _models,
    ("GET", "/v1/aliases"): _aliases,
    ("GET", "/health"): _health,
    ("HEAD", "/health"): _health,
    ("HEAD", "/api/hello"): _hello,
    ("GET", "/api/hello"): _hello,
    ("GET", "/metrics"): _metrics,
    ("GET", "/metrics/running-totals"): _running_totals,
    ("GET", "/metrics/active-requests"): _active_requests,
    **dashboard.ROUTES,
}
_PATHS = {path for _, path in ROUTES}
#: Paths served however busy vdm is: cheap, and what tells a monitor that it is busy.
_UNLIMITED = frozenset(
    {
        "/health",
        "/api/hello",
        # Observing (live feeds stay open): never counted against the request limit.
        "/metrics",
        "/metrics/running-totals",
        "/metrics/active-requests",
        "/dashboard/api/state",
        "/dashboard/api/events",
    }
)
#: The request limit's default, when the server does not set one (vdm/server/serve.py does).
DEFAULT_MAX_REQUESTS = 1000
SHUTTING_DOWN = "vdm is shutting down: the request was ended after the shutdown grace period"


class _Response:
    """The client's `send`, remembering how far the response got (so that a request ended
    at shutdown is ended properly) and adding the CORS headers an allowed origin needs.

    A stream's write that waits longer than `timeout` for the client to read (a client that
    stopped reading) ends the request: its cancel scope is cancelled, which cancels the
    upstream call, and every later write is dropped."""

    __slots__ = (
        "send",
        "trace",
        "extra",
        "started",
        "finished",
        "sse",
        "timeout",
        "cancel",
        "stalled",
        "openai",
    )

    def __init__(self, send: Send, trace: Trace, timeout: float | None = None) -> None:
        self.send = send
        self.trace = trace
        #: An OpenAI client's endpoint: errors in OpenAI's shape.
        self.openai = trace.path in OPENAI_PATHS
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
            message = {**message, "headers": self._head(message)}
        elif kind == "http.response.body":
            body = message.get("body", b"")
            trace = self.trace
            trace.bytes_out += len(body)
            if trace.response_body is not None and trace.bytes_out - len(body) <= MAX_BODY:
                trace.response_body.append(body)  # the request log keeps at most this much
            if not message.get("more_body", False):
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

    def _head(self, message: Message) -> list[tuple[bytes, bytes]]:
        """The response's headers with the request's ids and vdm's overhead: an upstream's
        own `request-id` (relayed by the Anthropic-format path) moves to
        `x-vdm-upstream-request-id`, vdm's id takes its place."""
        trace = self.trace
        trace.status = message["status"]
        headers: list[tuple[bytes, bytes]] = []
        for name, value in message.get("headers", ()):
            if name == REQUEST_ID_HEADER:
                trace.upstream_request_id = value.decode("latin-1")
                continue
            if name == b"content-type" and value.startswith(b"text/event-stream"):
                self.sse = True
            headers.append((name, value))
        if trace.upstream_request_id:
            headers.append((UPSTREAM_ID_HEADER, header_value(trace.upstream_request_id)))
        overhead = trace.take_overhead() * 1000
        headers.append((REQUEST_ID_HEADER, trace.request_id.encode()))
        headers.append((OVERHEAD_HEADER, f"{overhead:.2f}".encode()))
        headers.extend(self.extra)
        return headers


def _out_of_descriptors() -> VdmError:
    return VdmError(
        503,
        "vdm is out of file descriptors (too many connections at once); retry shortly",
        headers={"retry-after": "1"},
    )


#: What a WebSocket upgrade is answered: Codex tries `GET /v1/responses` over a WebSocket
#: first and falls back to `POST /v1/responses` on a 404 (a 500 or a hang would cost it
#: retries), in the OpenAI error shape Codex reads.
WEBSOCKET_REFUSAL = (
    b'{"error":{"message":"vdm does not serve WebSockets: send POST %s over HTTP",'
    b'"type":"invalid_request_error","param":null,"code":"websocket_not_supported"}}'
)


async def _refuse_websocket(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer a WebSocket upgrade at once with a plain HTTP 404 (ASGI's denial response, when
    the server has it; else the handshake is closed, which the client sees as a 403)."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    path = header_value(scope.get("path", "/"))
    body = WEBSOCKET_REFUSAL % path
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (REQUEST_ID_HEADER, new_request_id().encode()),
    ]
    await send({"type": "websocket.http.response.start", "status": 404, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body, "more_body": False})


def _frontend(path: str) -> type[Frontend]:
    """The frontend of the client dialect spoken at `path`, which knows how that dialect's
    stream ends with an error (`Frontend.stream_tail`): Anthropic's but at the OpenAI
    clients' paths (a live feed's stream too)."""
    from vdm.server.chat_frontend import CHAT_PATH, ChatFrontend
    from vdm.server.responses_frontend import RESPONSES_PATH, ResponsesFrontend

    frontends: dict[str, type[Frontend]] = {
        CHAT_PATH: ChatFrontend,
        RESPONSES_PATH: ResponsesFrontend,
    }
    return frontends.get(path, AnthropicFrontend)


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
        elif kind == "websocket":
            await _refuse_websocket(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]
        method = scope["method"]
        handler = ROUTES.get((method, path))
        endpoint = "preflight" if method == "OPTIONS" else endpoint_of(path)
        if handler is None and endpoint == "other":
            cloud = _cloud_route(method, path)
            if cloud is not None:
                handler, endpoint = cloud
            if bedrock.is_bedrock(path):
                # Bedrock-mode clients read answers in Bedrock's shape, errors included.
                send = bedrock.BedrockSend(send, counting=endpoint == "count_tokens")
        trace = Trace(new_request_id(), method, path, endpoint)
        scope[TRACE] = trace
        token = REQUEST_ID.set(trace.request_id)
        accounted = endpoint in ACCOUNTED
        request_log = self.gateway.request_log
        if accounted and request_log is not None and request_log.bodies:
            trace.response_body = []  # not for live feeds: they never end
        if accounted:
            self.gateway.active[trace.request_id] = trace
        try:
            await self._respond(handler, method, path, scope, receive, send, trace)
        finally:
            try:
                if accounted:
                    del self.gateway.active[trace.request_id]
                    self.gateway.account(trace)
            except Exception:
                log.exception("accounting failed for %s %s", method, path)
            finally:
                REQUEST_ID.reset(token)

    async def _respond(
        self,
        handler: Handler | None,
        method: str,
        path: str,
        scope: Scope,
        receive: Receive,
        send: Send,
        trace: Trace,
    ) -> None:
        response = _Response(send, trace, self.settings.send_timeout)
        try:
            headers = scope["headers"]
            check_header_values(headers)
            check_host(headers, self.policy)
            origin = check_origin(headers, self.policy)
            if origin is not None:
                if method == "OPTIONS":
                    await send_bytes(response, 204, b"", preflight_headers(origin, headers))
                    return
                response.extra = cors_headers(origin)
            if handler is None:
                if path in _PATHS:
                    # RFC 9110: a 405 names the methods the resource takes. A plain GET of
                    # /v1/responses lands here; its WebSocket upgrade is `_refuse_websocket`.
                    allowed = ", ".join(sorted(m for m, p in ROUTES if p == path))
                    raise VdmError(
                        405,
                        f"method {method} is not allowed on {path}; use {allowed}",
                        headers={"allow": allowed},
                    )
                raise VdmError(404, f"no such endpoint: {method} {path}")
            if method == "POST":
                check_json(headers)
            await self._serve(handler, path, scope, receive, response)
        except VdmError as exc:
            await self._fail(response, exc)
        except ClientDisconnected:
            trace.fail("client disconnected", "client_closed")
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
        trace = response.trace
        trace.fail(f"error {error.status}", error.error_type, error.message)
        if not response.started:
            if response.openai:
                from vdm.server.chat_frontend import send_openai_error

                await send_openai_error(response, error)
            else:
                await send_error(response, error)
        elif not response.finished:
            tail = _frontend(trace.path).stream_tail(error) if response.sse else b""
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
