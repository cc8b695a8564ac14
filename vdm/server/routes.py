"""The routes table: (method, path) -> handler, and the handlers of vdm's own endpoints
(the model endpoints hand over to their frontends; health, catalog and metrics answer here).

A handler gets the gateway and the request's ASGI scope; the request's `Trace` is in the
scope under `TRACE` (vdm/server/app.py puts it there)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from vdm import __version__
from vdm.config.settings import NO_PROVIDER, Settings
from vdm.server import dashboard, messages, observe
from vdm.server.asgi import (
    Incoming,
    Receive,
    Scope,
    Send,
    disconnect_hook,
    read_body,
    send_bytes,
    send_json,
)
from vdm.server.auth import check_session, client_key, client_label
from vdm.server.catalog import alias_entries, openai_list
from vdm.server.dashboard import check_viewer
from vdm.server.state import Gateway
from vdm.usage.trace import Trace

Handler = Callable[[Gateway, Scope, Receive, Send], Awaitable[None]]

#: Where the request's `Trace` is in its ASGI scope.
TRACE = "vdm.trace"


def trace_of(scope: Scope) -> Trace:
    trace: Trace = scope[TRACE]
    return trace


def request_key(gateway: Gateway, scope: Scope) -> str | None:
    """Checks the proxy key (401 before anything else happens) and returns the client's own
    provider key, if any; names the client in the request's trace."""
    settings = gateway.settings
    check_session(scope["headers"], settings.session_secret)
    key = client_key(scope["headers"], settings.proxy_api_key)
    trace_of(scope).client = client_label(settings, key)
    return key


async def read_incoming(gateway: Gateway, scope: Scope, receive: Receive) -> Incoming:
    key = request_key(gateway, scope)
    body = await read_body(receive, scope["headers"], timeout=gateway.settings.body_timeout)
    trace = trace_of(scope)
    trace.bytes_in = len(body)
    if trace.response_body is not None:  # the request log keeps bodies
        trace.request_body = body
    return Incoming(body, scope["headers"], key, trace, disconnect_hook(scope))


async def _messages(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    incoming = await read_incoming(gateway, scope, receive)
    await messages.create_message(gateway, incoming, receive, send)


async def _chat_completions(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    from vdm.server.chat_frontend import chat_completions

    incoming = await read_incoming(gateway, scope, receive)
    await chat_completions(gateway, incoming, receive, send)


async def _responses(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    from vdm.server.responses_frontend import responses

    incoming = await read_incoming(gateway, scope, receive)
    await responses(gateway, incoming, receive, send)


async def _count_tokens(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    incoming = await read_incoming(gateway, scope, receive)
    # Cancelled when the client disconnects, as `/v1/messages` is (vdm/server/messages.py).
    await messages.count_tokens(gateway, incoming, receive, send)


async def _models(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    key = request_key(gateway, scope)
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
    request_key(gateway, scope)
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
PATHS = {path for _, path in ROUTES}
#: Paths served however busy vdm is: cheap, and what tells a monitor that it is busy.
UNLIMITED = frozenset(
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
