"""The pure ASGI application: routing, error rendering, lifespan."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from vdm import __version__
from vdm.config.secrets import safe_url
from vdm.config.settings import NO_PROVIDER, Settings
from vdm.protocol.errors import VdmError
from vdm.server import messages
from vdm.server.asgi import (
    ClientDisconnected,
    Incoming,
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
    return Incoming(await read_body(receive), scope["headers"], key)


async def _messages(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    incoming = await _incoming(gateway, scope, receive)
    await messages.create_message(gateway, incoming, receive, send)


async def _count_tokens(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    incoming = await _incoming(gateway, scope, receive)
    body, headers = await messages.count_tokens(gateway, incoming)
    await send_bytes(send, 200, body, headers)


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
    await send_json(send, 200, health(gateway.settings))


async def _hello(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    # Claude Code probes this unless nonessential traffic is disabled: answer quietly.
    await send_bytes(send, 200, b"", [])


def health(settings: Settings) -> dict[str, object]:
    """Status without secrets: providers, their format and base URL, key counts."""
    providers = {
        name: {
            "base_url": safe_url(p.base_url),
            "api_format": p.api_format,
            "keys": p.masked_keys,
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


class App:
    """vdm's ASGI application."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.gateway = Gateway(settings)

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
        handler = ROUTES.get((scope["method"], path))
        try:
            if handler is None:
                if path in _PATHS:
                    raise VdmError(405, f"method {scope['method']} is not allowed on {path}")
                unserved = _not_served(scope["method"], path)
                if unserved is not None:
                    raise VdmError(501, unserved)
                raise VdmError(404, f"no such endpoint: {scope['method']} {path}")
            await handler(self.gateway, scope, receive, send)
        except VdmError as exc:
            await send_error(send, exc)
        except ClientDisconnected:
            return
        except Exception:
            log.exception("internal error on %s %s", scope["method"], path)
            await send_error(send, VdmError(500, "internal error in vdm; see the server log"))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.gateway.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return
