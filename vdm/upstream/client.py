"""One pooled httpx client per provider, and the one place httpx errors become VdmErrors.

The upstream side uses plain httpx and JSON bytes (no SDK objects): the request body is
encoded once by the caller, a non-streaming answer is parsed once, and a stream is handed to
the caller as raw byte reads.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

from vdm.config.secrets import mask, redact, safe_url
from vdm.config.settings import ProviderConfig
from vdm.protocol.errors import UpstreamReply, VdmError, context_overflow, relayed_headers
from vdm.upstream.keys import AllKeysCooling, KeyPool, is_quota_error, parse_retry_after
from vdm.upstream.network import AsyncioStream
from vdm.upstream.pool import PooledTransport
from vdm.upstream.timing import CallTimer, retryable

log = logging.getLogger(__name__)

#: Upstream HTTP status -> the status the client sees (missing: 4xx -> 400, 5xx -> 502).
STATUS_MAP: dict[int, int] = {
    400: 400,
    401: 401,
    402: 402,
    403: 403,
    404: 404,
    408: 504,
    409: 409,
    413: 413,
    422: 400,
    429: 429,
    500: 500,
    502: 502,
    503: 529,
    504: 504,
    529: 529,
}

#: Statuses worth another attempt before anything reached the client (529: Anthropic's
#: "overloaded", which its own SDKs retry).
RETRY_STATUSES = frozenset({500, 502, 503, 504, 529})
#: Response headers passed on to the client with a translated error (a client of the
#: provider's own dialect gets all of `relayed_headers` with the upstream's answer).
_PASS_HEADERS = ("retry-after", "x-should-retry")


def error_from_response(
    provider: str,
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    secrets: Iterable[str] = (),
    *,
    dialect: str = "",
    own_account: bool = False,
) -> VdmError:
    """The VdmError for an upstream error response, keeping the upstream's own message (with
    any key in it masked), code and param; the error type follows from the mapped status.

    The upstream's whole answer travels with it (`VdmError.upstream`, its body masked too),
    for a client that speaks the provider's `dialect`; `own_account` says the client's own
    key made the call (its rate-limit headers may then be relayed)."""
    mapped = STATUS_MAP.get(status, 400 if status < 500 else 502)
    found, code, param = _error_fields(body)
    message = redact(found or f"HTTP {status}", secrets)
    passed = {k: headers[k] for k in _PASS_HEADERS if k in headers}
    text = f"{provider} returned HTTP {status}: {message}"
    relayed = relayed_headers(headers.items(), own_account=own_account)
    upstream = UpstreamReply(dialect, status, _redact_bytes(body, secrets), relayed)
    if 400 <= status < 500 and status != 429:
        # In Anthropic's words, so that Claude Code compacts the conversation.
        overflow = context_overflow(message, code)
        if overflow is not None:
            text = f"{overflow} [{provider} returned HTTP {status}]"
            return VdmError(400, text, headers=passed, code=code, param=param, upstream=upstream)
    return VdmError(mapped, text, headers=passed, code=code, param=param, upstream=upstream)


def _redact_bytes(body: bytes, secrets: Iterable[str]) -> bytes:
    """`body` with every key in it masked; the very same bytes when none is there."""
    found = [s for s in secrets if len(s) >= 4 and s.encode() in body]
    if not found:
        return body
    # surrogateescape keeps any byte that is not UTF-8 as it was.
    return redact(body.decode("utf-8", "surrogateescape"), found).encode("utf-8", "surrogateescape")


def _error_fields(body: bytes) -> tuple[str, str | None, str | None]:
    """(message, code, param) of an error body, parsed once: OpenAI's `{"error": {message,
    code, param}}`, Google's `{"error": {code: 400, message, status}}` (its `status` string
    is the code then), a list of either, or plain text."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:500], None, None
    if isinstance(data, list) and data:
        data = data[0]
    if not isinstance(data, dict):
        return json.dumps(data)[:500], None, None
    error = data.get("error", data)
    if isinstance(error, str):
        return error, None, None
    if not isinstance(error, dict):
        return json.dumps(data)[:500], None, None
    message = next((str(error[k]) for k in ("message", "detail", "msg") if error.get(k)), "")
    code = error.get("code")
    if not isinstance(code, str):
        code = error.get("status")
    param = error.get("param")
    return (
        message or json.dumps(data)[:500],
        code if isinstance(code, str) else None,
        param if isinstance(param, str) else None,
    )


def error_from_transport(
    provider: ProviderConfig, exc: Exception, timer: CallTimer | None = None
) -> VdmError:
    """The VdmError for an httpx transport failure (timeout, refused connection, ...). A
    timeout is a 504 naming which one fired and the setting to raise; `timer` is the call's
    clock, which tells them apart (vdm/upstream/timing.py)."""
    if isinstance(exc, httpx.TimeoutException):
        return (timer or CallTimer(provider)).timeout_error(exc)
    if isinstance(exc, httpx.ConnectError):
        return VdmError(
            502, f"cannot reach {provider.name} at {safe_url(provider.base_url)}: {exc}"
        )
    if isinstance(exc, httpx.RemoteProtocolError):
        return VdmError(502, f"{provider.name} closed the connection unexpectedly: {exc}")
    return VdmError(502, f"{provider.name} request failed: {type(exc).__name__}: {exc}")


@dataclass(slots=True)
class Call:
    """What one upstream call did, for the exchange that made it: the key it used last
    (masked), how many HTTP attempts it took (retries and key failover included) and the
    headers of the answer it got (a stream's before its body is read)."""

    key: str | None = None
    attempts: int = 0
    headers: httpx.Headers | None = None


class UpstreamClient:
    """A provider's pooled HTTP client: keep-alive connections, timeouts from config, its key
    pool (round robin, failover on rejected keys) and its auth scheme. It knows no dialect:
    paths, bodies and dialect headers come from the provider's backend."""

    def __init__(
        self,
        provider: ProviderConfig,
        *,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.provider = provider
        self.keys = KeyPool(provider.name, provider.api_keys)
        timeouts = provider.timeouts
        self._client = httpx.AsyncClient(
            base_url=provider.base_url,
            # What a request without a CallTimer's limits would get; `_send` gives each
            # attempt its own (first byte until the headers, then idle; vdm/upstream/timing.py).
            timeout=httpx.Timeout(
                connect=timeouts.connect,
                read=timeouts.first_byte,
                write=timeouts.first_byte,
                pool=timeouts.connect,
            ),
            transport=transport or PooledTransport(),
        )
        self._static_headers = {
            "content-type": "application/json",
            "accept": "application/json",
            # The dialect's own (the backend's), then the user's.
            **(headers or {}),
            **provider.custom_headers,
        }

    async def aclose(self) -> None:
        await self._client.aclose()

    def _headers(self, key: str, stream: bool, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = dict(self._static_headers)
        if extra:
            # The client's own headers (forwarded to a provider of its dialect) replace the
            # dialect's defaults, never what the user configured for the provider.
            custom = {name.lower() for name in self.provider.custom_headers}
            headers.update((k, v) for k, v in extra.items() if k.lower() not in custom)
        if key:
            auth = self.provider.auth
            if auth == "bearer":
                headers["authorization"] = f"Bearer {key}"
            else:
                headers[auth] = key
        if stream:
            headers["accept"] = "text/event-stream"
        return headers

    async def get_json(self, path: str, *, client_key: str | None = None) -> Any:
        """GET and return the parsed JSON answer (e.g. the models list)."""
        async with self._send(path, None, stream=False, client_key=client_key) as response:
            data = await response.aread()
        return self._json(data)

    async def post_json(
        self,
        path: str,
        body: bytes,
        *,
        client_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        call: Call | None = None,
    ) -> Any:
        """POST and return the parsed JSON answer; raises VdmError on any failure."""
        data, _ = await self.post_bytes(
            path, body, client_key=client_key, headers=headers, call=call
        )
        return self._json(data)

    async def post_bytes(
        self,
        path: str,
        body: bytes,
        *,
        client_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        call: Call | None = None,
    ) -> tuple[bytes, httpx.Headers]:
        """POST and return the answer's bytes untouched, with its headers."""
        async with self._send(
            path, body, stream=False, client_key=client_key, headers=headers, call=call
        ) as response:
            data = await response.aread()
        return data, response.headers

    def _json(self, data: bytes) -> Any:
        try:
            return json.loads(data)
        except ValueError:
            raise VdmError(502, f"{self.provider.name} answered with invalid JSON") from None

    @asynccontextmanager
    async def stream(
        self,
        path: str,
        body: bytes,
        *,
        client_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        on_idle: Callable[[], Awaitable[None]] | None = None,
        call: Call | None = None,
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """POST and yield the answer's byte reads; raises VdmError before yielding on a
        failed status, and while iterating on a broken stream.

        `on_idle` is awaited whenever the next read would wait for the network: everything
        that had arrived has been yielded. On vdm's own transport that is exactly when the
        socket has nothing more; on any other transport it is after every read.
        """
        timer = CallTimer(self.provider)
        async with self._send(
            path, body, stream=True, client_key=client_key, headers=headers, call=call, timer=timer
        ) as response:
            network = response.extensions.get("network_stream")
            if not isinstance(network, AsyncioStream):
                network = None
            if network is not None:
                network.on_idle = on_idle
            try:
                # vdm's transport ends a read at the call's deadline; another is checked.
                other = network is None
                yield self._reads(response, on_idle if other else None, timer, other)
            finally:
                if network is not None:
                    network.on_idle = None

    async def _reads(
        self,
        response: httpx.Response,
        after_each: Callable[[], Awaitable[None]] | None,
        timer: CallTimer,
        check_deadline: bool,
    ) -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_bytes():
                if check_deadline:
                    timer.check()
                yield chunk
                if after_each is not None:
                    await after_each()
        except httpx.HTTPError as exc:
            raise error_from_transport(self.provider, exc, timer) from None

    async def _send_once(self, request: httpx.Request) -> httpx.Response:
        """`AsyncClient.send` without its redirect, auth, cookie and event-hook layers, none of
        which an API call uses: a tenth of vdm's CPU per small request (`make bench`). The
        transport is still the client's choice for the URL, so proxy settings apply."""
        transport = self._client._transport_for_url(request.url)
        response = await transport.handle_async_request(request)
        response.request = request
        return response

    def _key(self, client_key: str | None, tried: list[str], last: VdmError | None) -> str:
        """The key for the next attempt: the client's own for a passthrough provider, else
        the pool's next usable key not yet tried in this call."""
        if self.provider.passthrough:
            if last is not None:
                raise last
            if not client_key:
                raise VdmError(
                    401,
                    f"provider {self.provider.name!r} uses the client's own key (!PASSTHRU), "
                    "but the request carries none: send it in x-api-key or "
                    "Authorization: Bearer (docs/keys.md)",
                )
            return client_key
        try:
            key = self.keys.acquire(exclude=tried)
        except AllKeysCooling as exc:
            if last is not None and len(self.keys) == 1:
                raise last from None
            reason = f" (last error: {last.message})" if last is not None else ""
            seconds = max(1, math.ceil(exc.retry_after))
            raise VdmError(429, f"{exc}{reason}", headers={"retry-after": str(seconds)}) from None
        if key is None:
            assert last is not None
            raise last
        return key

    @asynccontextmanager
    async def _send(
        self,
        path: str,
        body: bytes | None,
        *,
        stream: bool,
        client_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        call: Call | None = None,
        timer: CallTimer | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """Send with the next key. A key the upstream rejects (401/403/429, quota) cools down
        and the same call moves on to the next key; connection failures (connect timeouts
        included) and 5xx answers are retried up to `max_retries` times, other timeouts never.
        Nothing has reached the client when it does either. An answer the upstream marks
        `x-should-retry: false` is neither retried nor tried with another key: it goes to the
        client as it is. `timer` times the whole call (default: from now)."""
        attempt = 0
        tried: list[str] = []
        rejected: VdmError | None = None
        error: VdmError | None = None
        timer = timer or CallTimer(self.provider)
        while True:
            extensions = timer.attempt(error)  # the total timeout's error if nothing is left
            key = self._key(client_key, tried, rejected)
            if call is not None:
                call.attempts += 1
                call.key = mask(key) if key else None
            request = self._client.build_request(
                "GET" if body is None else "POST",
                path,
                content=body,
                headers=self._headers(key, stream, headers),
                extensions=extensions,
            )
            try:
                response = await self._send_once(request)
            except httpx.HTTPError as exc:
                error = error_from_transport(self.provider, exc, timer)
                again = retryable(exc) and not timer.expired()
            else:
                if response.status_code < 400:
                    timer.headers_in(request)
                    self.keys.succeeded(key)
                    if call is not None:
                        call.headers = response.headers
                    break
                try:
                    data = await response.aread()
                except httpx.HTTPError:
                    data = b""
                finally:
                    await response.aclose()
                status = response.status_code
                error = error_from_response(
                    self.provider.name,
                    status,
                    data,
                    response.headers,
                    self._redact(client_key),
                    dialect=self.provider.api_format,
                    own_account=self.provider.passthrough,
                )
                final = response.headers.get("x-should-retry", "").strip().lower() == "false"
                if key and not self.provider.passthrough and is_quota_error(status, data):
                    wait = parse_retry_after(response.headers.get("retry-after"))
                    self.keys.failed(key, status, wait)
                    if not final:
                        tried.append(key)
                        rejected = error
                        more = "; trying the next key" if len(self.keys) > 1 else ""
                        log.info("%s%s", error.message, more)
                        continue
                again = status in RETRY_STATUSES and not final
            if not again or attempt >= self.provider.max_retries:
                raise error
            attempt += 1
            log.info("%s; retry %d of %d", error.message, attempt, self.provider.max_retries)
            await anyio.sleep(_backoff(attempt))
        try:
            yield response
        except httpx.HTTPError as exc:  # reading a whole answer's body (post_bytes, get_json)
            raise error_from_transport(self.provider, exc, timer) from None
        finally:
            await response.aclose()

    def _redact(self, client_key: str | None) -> tuple[str, ...]:
        keys = self.provider.api_keys
        return (*keys, client_key) if client_key else keys


def _backoff(attempt: int) -> float:
    return float(min(0.25 * 2.0 ** (attempt - 1), 2.0))
