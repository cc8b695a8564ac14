"""The pure ASGI application: the edge rules, routing, error rendering, the limit on
requests served at once, ending in-flight requests at shutdown, lifespan.

Every request gets a `Trace` (vdm/usage/trace.py) when it arrives: its id is the `request-id`
response header and is in every log line written while it runs, the response's head carries
the time vdm itself spent (`x-vdm-overhead-ms`), and when it ends the gateway accounts it and
writes its one log line (`Gateway.account`), however it ended.

The routes table and vdm's own handlers are in vdm/server/routes.py, the Bedrock and Vertex
paths in vdm/server/cloud_routes.py, the wrapper around the client's `send` and the answers
given without a handler in vdm/server/response.py."""

from __future__ import annotations

import asyncio
import errno
import logging

from vdm.config.settings import Settings
from vdm.protocol.errors import VdmError
from vdm.server.asgi import (
    ClientDisconnected,
    Receive,
    Scope,
    Send,
    drain_unread,
    send_bytes,
    send_error,
)
from vdm.server.edge import (
    EdgePolicy,
    check_header_values,
    check_host,
    check_json,
    check_origin,
    cors_headers,
    preflight_headers,
)
from vdm.server.response import (
    OPENAI_PATHS,
    OVERHEAD_HEADER,
    REQUEST_ID_HEADER,
    UPSTREAM_ID_HEADER,
    WEBSOCKET_REFUSAL,
    Response,
    out_of_descriptors,
    refuse_websocket,
    stream_frontend,
)
from vdm.server.routes import PATHS, ROUTES, TRACE, UNLIMITED, Handler, health, trace_of
from vdm.server.state import Gateway
from vdm.server.task_scope import TaskScope
from vdm.usage.trace import ACCOUNTED, REQUEST_ID, Trace, endpoint_of, new_request_id

#: The names this module had before the routes and the response wrapper moved out.
__all__ = [
    "DEFAULT_MAX_REQUESTS",
    "OPENAI_PATHS",
    "OVERHEAD_HEADER",
    "REQUEST_ID_HEADER",
    "ROUTES",
    "SHUTTING_DOWN",
    "TRACE",
    "UPSTREAM_ID_HEADER",
    "WEBSOCKET_REFUSAL",
    "App",
    "Handler",
    "health",
    "trace_of",
]

log = logging.getLogger(__name__)

#: The request limit's default, when the server does not set one (vdm/server/serve.py does).
DEFAULT_MAX_REQUESTS = 1000
SHUTTING_DOWN = "vdm is shutting down: the request was ended after the shutdown grace period"


class App:
    """vdm's ASGI application."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.gateway = Gateway(settings)
        self.policy = EdgePolicy(settings.allow_remote, frozenset(settings.allowed_origins))
        #: Requests served at once (except `UNLIMITED` paths); beyond, a 503.
        self.max_requests = settings.max_connections or DEFAULT_MAX_REQUESTS
        self.active = 0
        #: The cancel scopes of the requests running now, for `end_requests`.
        self._running: set[TaskScope] = set()
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
            await refuse_websocket(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]
        method = scope["method"]
        handler = ROUTES.get((method, path))
        endpoint = "preflight" if method == "OPTIONS" else endpoint_of(path)
        if handler is None and endpoint == "other":
            from vdm.server import bedrock_frontend as bedrock
            from vdm.server.cloud_routes import cloud_route

            cloud = cloud_route(method, path)
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
        response = Response(send, trace, self.settings.send_timeout)
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
                if path in PATHS:
                    # RFC 9110: a 405 names the methods the resource takes. A plain GET of
                    # /v1/responses lands here; its WebSocket upgrade is `refuse_websocket`.
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
            if not response.handling:  # refused before any handler read the body
                await drain_unread(receive, scope["headers"])
            await self._fail(response, exc)
        except ClientDisconnected:
            trace.fail("client disconnected", "client_closed")
            return
        except Exception as exc:
            if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
                # Out of descriptors (opening a module or a socket): a passing overload.
                log.warning("%s %s: out of file descriptors (%s)", method, path, exc.strerror)
                await self._fail(response, out_of_descriptors())
                return
            log.exception("internal error on %s %s", method, path)
            await self._fail(response, VdmError(500, "internal error in vdm; see the server log"))

    async def _serve(
        self, handler: Handler, path: str, scope: Scope, receive: Receive, response: Response
    ) -> None:
        """Run `handler` within the request limit, cancellable by `end_requests`."""
        limited = path not in UNLIMITED
        if limited and self.active >= self.max_requests:
            raise VdmError(
                503,
                f"vdm is serving its maximum of {self.max_requests} requests at once "
                "(MAX_CONNECTIONS); retry shortly",
                error_type="overloaded_error",
                headers={"retry-after": "1"},
            )
        self.active += limited
        response.handling = True
        with TaskScope(self.gateway.loop) as cancel:
            response.cancel = cancel
            self._running.add(cancel)
            try:
                await handler(self.gateway, scope, receive, response)
            finally:
                self._running.discard(cancel)
                self.active -= limited
        if cancel.cancelled_caught and not response.stalled:
            raise VdmError(503, SHUTTING_DOWN, error_type="overloaded_error")

    async def _fail(self, response: Response, error: VdmError) -> None:
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
            tail = stream_frontend(trace.path).stream_tail(error) if response.sse else b""
            await response({"type": "http.response.body", "body": tail, "more_body": False})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.gateway.loop = asyncio.get_running_loop()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.gateway.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return
