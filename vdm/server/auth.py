"""Who may use the gateway, and which key a `!PASSTHRU` provider gets.

A client sends credentials in `x-api-key` (Anthropic SDKs, Claude Code's ANTHROPIC_API_KEY)
and/or `Authorization: Bearer` (OpenAI SDKs, Claude Code's ANTHROPIC_AUTH_TOKEN).

- Without `PROXY_API_KEY` anyone on the network path may call; the client's key (x-api-key,
  else the Bearer token) is what passthrough providers receive.
- With `PROXY_API_KEY` one of the two headers must hold it (compared in constant time); the
  *other* header, if any, is the client's own provider key for passthrough providers.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from functools import lru_cache

from vdm.config.settings import Settings
from vdm.protocol.errors import VdmError

MISSING_PROXY_KEY = (
    "this vdm requires its proxy key: send the value of PROXY_API_KEY in x-api-key or "
    "Authorization: Bearer"
)
WRONG_PROXY_KEY = "invalid proxy key: the key in x-api-key / Authorization is not PROXY_API_KEY"


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1").strip()
    return ""


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def client_key(headers: Iterable[tuple[bytes, bytes]], proxy_api_key: str | None) -> str | None:
    """The client's own provider key (or None), after checking the proxy key when one is set.

    Raises VdmError(401, authentication_error) when the proxy key is required and missing or
    wrong; nothing is sent upstream then.
    """
    headers = list(headers)
    x_api_key = _header(headers, b"x-api-key")
    authorization = _header(headers, b"authorization")
    scheme, _, token = authorization.partition(" ")
    bearer = token.strip() if scheme.lower() == "bearer" else ""
    if not proxy_api_key:
        return x_api_key or bearer or None
    x_is_proxy = bool(x_api_key) and _same(x_api_key, proxy_api_key)
    bearer_is_proxy = bool(bearer) and _same(bearer, proxy_api_key)
    if x_is_proxy:
        return None if bearer_is_proxy else bearer or None
    if bearer_is_proxy:
        return x_api_key or None
    raise VdmError(401, WRONG_PROXY_KEY if (x_api_key or bearer) else MISSING_PROXY_KEY)


def client_label(settings: Settings, own_key: str | None) -> str:
    """Who called, for accounting and logs, never a credential: `wrap` (a `vdm wrap`
    session's child), `key:<hash>` (a client that brought its own provider key: such
    clients are told apart), `proxy` (a client of the proxy key), or `anonymous`."""
    if settings.session_secret:
        return "wrap"
    if own_key:
        return "key:" + _fingerprint(own_key)
    if settings.proxy_api_key:
        return "proxy"  # one key for every client: its hash would tell nothing apart
    return "anonymous"


@lru_cache(maxsize=1024)  # a client sends the same key with every request
def _fingerprint(secret: str) -> str:
    """A short, stable, one-way name for `secret` (the first 8 hex digits of its SHA-256)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


SESSION_HEADER = b"x-vdm-session"
WRONG_SESSION = (
    "this vdm serves one `vdm wrap` session: requests must carry its session header "
    "(vdm wrap hands it to its child in ANTHROPIC_CUSTOM_HEADERS)"
)


def check_session(headers: Iterable[tuple[bytes, bytes]], secret: str | None) -> None:
    """Raises VdmError(401) unless the request carries the session secret (when there is one)."""
    if secret is None:
        return
    sent = _header(headers, SESSION_HEADER)
    if not (sent and _same(sent, secret)):
        raise VdmError(401, WRONG_SESSION)
