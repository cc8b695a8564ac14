"""Google credentials for a provider that authenticates with them (`{P}_AUTH=google`): a
fresh OAuth token on each request the upstream client is about to send.

google-auth (`pip install 'vandamme-proxy[gcp]'`, imported on first use) loads the
credentials: the file `{P}_CREDENTIALS` / `GOOGLE_APPLICATION_CREDENTIALS` names (a
service-account key, an external account), else Application Default Credentials
(`google.auth.default`: the gcloud ADC file, then the GCE / Cloud Run metadata server).
Refreshing them is a blocking HTTP call, so it runs in a worker thread (`anyio.to_thread`),
under a lock so that concurrent requests wait for one refresh rather than each making their
own, and only when the token is not FRESH any more (google-auth calls it stale 3 min 45 s
before it expires, providers.md 3b). The anthropic SDK's Vertex client does the same.

The refresh goes through `HttpxRequest`, a small `google.auth.transport.Request` over a
synchronous httpx client, so neither `requests` nor google-auth's own transports are needed.
`creds.apply(headers)` then sets `authorization` (and `x-goog-user-project` for a quota
project). Nothing here logs or quotes a token; an error names the provider and the fix.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx

from vdm.config.gcp import EXTRA, SCOPES, GcpConfig
from vdm.protocol.errors import VdmError

log = logging.getLogger(__name__)

#: Seconds a token refresh may take (google-auth passes its own timeout, 120 s by default).
REFRESH_TIMEOUT = 30.0


@dataclass(slots=True)
class _Response:
    """What google-auth reads of an HTTP answer (`google.auth.transport.Response`)."""

    status: int
    headers: Mapping[str, str]
    data: bytes = field(repr=False)


class HttpxRequest:
    """`google.auth.transport.Request` over httpx: `__call__(url, method, body, headers,
    timeout)` returns the answer, and wraps a transport failure in google-auth's
    `TransportError` (which its refresh code expects)."""

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> _Response:
        from google.auth.exceptions import TransportError

        wait = min(timeout or REFRESH_TIMEOUT, REFRESH_TIMEOUT)
        try:
            # A client per call: a refresh comes about once an hour, and nothing is left open
            # (proxy variables are honoured, as httpx reads them for a client it makes).
            with httpx.Client(timeout=wait) as client:
                response = client.request(method, url, content=body, headers=dict(headers or {}))
        except httpx.HTTPError as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc  # type: ignore[no-untyped-call]
        return _Response(response.status_code, dict(response.headers), response.content)


class GoogleAuthorizer:
    """Adds a fresh token to the requests of one provider (`authorize`, awaited by the
    upstream client as its `signer`)."""

    def __init__(self, provider: str, gcp: GcpConfig, request: HttpxRequest | None = None) -> None:
        self.provider = provider
        self.gcp = gcp
        self._request = request
        self._credentials: Any = None  # google-auth's Credentials, loaded on first use
        self._lock = anyio.Lock()
        #: Vertex refused the token (a 401): refresh before the next request, FRESH or not
        #: (revoked, or the clock of this machine is off).
        self._refused = False

    async def authorize(self, request: httpx.Request) -> None:
        """Set `authorization` (and google-auth's other headers) on `request`."""
        credentials = await self.credentials()
        headers: dict[str, str] = {}
        credentials.apply(headers)
        request.headers.update(headers)

    async def credentials(self) -> Any:
        """The credentials with a FRESH token: loaded and refreshed in a worker thread, one
        refresh at a time whatever the number of requests waiting for it."""
        found = self._credentials
        if found is not None and _fresh(found) and not self._refused:
            return found
        async with self._lock:
            if self._credentials is None:
                self._credentials = await anyio.to_thread.run_sync(self._load)
            if self._refused or not _fresh(self._credentials):
                self._refused = False
                await anyio.to_thread.run_sync(self._refresh)
            return self._credentials

    def refused(self) -> None:
        """The provider answered 401 to a request this token authorized: the next request
        gets a new one."""
        log.debug(
            "%s: the Google token was refused: refreshed before the next request", self.provider
        )
        self._refused = True

    def _load(self) -> Any:
        try:
            import google.auth
        except ImportError:
            raise self._error(
                f"google-auth is not installed: `{EXTRA}`, or set its API key to an access "
                "token (`gcloud auth print-access-token`)"
            ) from None
        from google.auth.exceptions import GoogleAuthError

        try:
            if self.gcp.credentials_file:
                found = _from_file(self.gcp.credentials_file)
            else:
                found, _ = google.auth.default(scopes=list(SCOPES))
        except (GoogleAuthError, OSError, ValueError) as exc:
            raise self._error(
                f"Google credentials could not be loaded: {_reason(exc)}; run `gcloud auth "
                "application-default login` or set GOOGLE_APPLICATION_CREDENTIALS to a key file"
            ) from None
        log.debug("%s: Google credentials %s", self.provider, type(found).__name__)
        return found

    def _refresh(self) -> None:
        from google.auth.exceptions import GoogleAuthError

        if self._request is None:
            self._request = HttpxRequest()
        try:
            self._credentials.refresh(self._request)
        except GoogleAuthError as exc:  # a refused key, a revoked login, no network
            raise self._error(f"the Google token could not be refreshed: {_reason(exc)}") from None

    def _error(self, text: str) -> VdmError:
        # vdm's configuration, not the client's request: another provider may answer.
        return VdmError(
            500,
            f"provider {self.provider!r} authenticates with Google credentials but {text}",
            unavailable=True,
        )


def _from_file(path: str) -> Any:
    """The credentials of a key file the configuration names (the operator's own, so
    trusted): a service account's or a user's by their own classes, any other kind
    (external account, impersonation) by google-auth's generic loader, whose warning about
    files from untrusted sources does not apply."""
    info = json.loads(Path(path).expanduser().read_text())
    kind = info.get("type") if isinstance(info, dict) else None
    if kind == "service_account":
        from google.oauth2 import service_account

        return service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=list(SCOPES)
        )
    if kind == "authorized_user":
        from google.oauth2 import credentials

        return credentials.Credentials.from_authorized_user_info(  # type: ignore[no-untyped-call]
            info, scopes=list(SCOPES)
        )
    import google.auth

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        found, _ = google.auth.load_credentials_from_file(path, scopes=list(SCOPES))  # type: ignore[no-untyped-call]
    return found


def _fresh(credentials: Any) -> bool:
    from google.auth.credentials import TokenState

    return bool(credentials.token_state == TokenState.FRESH)


def _reason(exc: Exception) -> str:
    """An exception's type and its first line (google-auth's never hold a token, but an
    OAuth error body may follow on later lines)."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def authorizer_for(provider: str, gcp: GcpConfig | None) -> GoogleAuthorizer | None:
    """The authorizer of a provider whose token google-auth gives, else None."""
    return GoogleAuthorizer(provider, gcp) if gcp is not None and gcp.adc else None
