"""One pooled httpx client per provider, and the one place httpx errors become VdmErrors.

The upstream side uses plain httpx and JSON bytes (no SDK objects): the request body is
encoded once by the caller, a non-streaming answer is parsed once, and a stream is handed to
the caller as raw byte reads.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx

from vdm.config.settings import ProviderConfig
from vdm.protocol.errors import VdmError
from vdm.upstream.network import AsyncioStream
from vdm.upstream.pool import PooledTransport

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

#: Statuses worth another attempt before anything reached the client.
RETRY_STATUSES = frozenset({500, 502, 503, 504})
#: Response headers passed on to the client with an error.
_PASS_HEADERS = ("retry-after",)


def error_from_response(
    provider: str, status: int, body: bytes, headers: Mapping[str, str]
) -> VdmError:
    """The VdmError for an upstream error response, keeping the upstream's own message."""
    mapped = STATUS_MAP.get(status, 400 if status < 500 else 502)
    message = _error_message(body) or f"HTTP {status}"
    passed = {k: headers[k] for k in _PASS_HEADERS if k in headers}
    return VdmError(mapped, f"{provider} returned HTTP {status}: {message}", headers=passed)


def _error_message(body: bytes) -> str:
    try:
        data: Any = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:500]
    if isinstance(data, list) and data:
        data = data[0]
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            for key in ("message", "detail", "msg"):
                if error.get(key):
                    return str(error[key])
        elif isinstance(error, str):
            return error
    return json.dumps(data)[:500]


def error_from_transport(provider: ProviderConfig, exc: Exception) -> VdmError:
    """The VdmError for an httpx transport failure (timeout, refused connection, ...)."""
    if isinstance(exc, httpx.TimeoutException):
        return VdmError(504, f"{provider.name} did not answer within {provider.timeout:g} s")
    if isinstance(exc, httpx.ConnectError):
        return VdmError(502, f"cannot reach {provider.name} at {provider.base_url}: {exc}")
    if isinstance(exc, httpx.RemoteProtocolError):
        return VdmError(502, f"{provider.name} closed the connection unexpectedly: {exc}")
    return VdmError(502, f"{provider.name} request failed: {type(exc).__name__}: {exc}")


class UpstreamClient:
    """A provider's pooled HTTP client: keep-alive connections, timeouts from config."""

    def __init__(
        self, provider: ProviderConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.provider = provider
        self._keys = itertools.cycle(provider.api_keys or ("",))
        self._client = httpx.AsyncClient(
            base_url=provider.base_url,
            timeout=httpx.Timeout(provider.timeout, connect=min(provider.timeout, 10.0)),
            transport=transport or PooledTransport(),
        )
        self._static_headers = {
            "content-type": "application/json",
            "accept": "application/json",
            **provider.custom_headers,
        }

    async def aclose(self) -> None:
        await self._client.aclose()

    def _headers(self, stream: bool) -> dict[str, str]:
        headers = dict(self._static_headers)
        key = next(self._keys)
        if key:
            headers["authorization"] = f"Bearer {key}"
        if stream:
            headers["accept"] = "text/event-stream"
        return headers

    async def post_json(self, path: str, body: bytes) -> Any:
        """POST and return the parsed JSON answer; raises VdmError on any failure."""
        async with self._send(path, body, stream=False) as response:
            data = await response.aread()
        try:
            return json.loads(data)
        except ValueError:
            raise VdmError(502, f"{self.provider.name} answered with invalid JSON") from None

    @asynccontextmanager
    async def stream(
        self, path: str, body: bytes, *, on_idle: Callable[[], Awaitable[None]] | None = None
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """POST and yield the answer's byte reads; raises VdmError before yielding on a
        failed status, and while iterating on a broken stream.

        `on_idle` is awaited whenever the next read would wait for the network: everything
        that had arrived has been yielded. On vdm's own transport that is exactly when the
        socket has nothing more; on any other transport it is after every read.
        """
        async with self._send(path, body, stream=True) as response:
            network = response.extensions.get("network_stream")
            if not isinstance(network, AsyncioStream):
                network = None
            if network is not None:
                network.on_idle = on_idle
            try:
                yield self._reads(response, None if network is not None else on_idle)
            finally:
                if network is not None:
                    network.on_idle = None

    async def _reads(
        self, response: httpx.Response, after_each: Callable[[], Awaitable[None]] | None
    ) -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_bytes():
                yield chunk
                if after_each is not None:
                    await after_each()
        except httpx.HTTPError as exc:
            raise error_from_transport(self.provider, exc) from None

    async def _send_once(self, request: httpx.Request) -> httpx.Response:
        """`AsyncClient.send` without its redirect, auth, cookie and event-hook layers, none of
        which an API call uses: a tenth of vdm's CPU per small request (`make bench`). The
        transport is still the client's choice for the URL, so proxy settings apply."""
        transport = self._client._transport_for_url(request.url)
        response = await transport.handle_async_request(request)
        response.request = request
        return response

    @asynccontextmanager
    async def _send(self, path: str, body: bytes, *, stream: bool) -> AsyncIterator[httpx.Response]:
        """Send, retrying connection failures and 5xx answers (never timeouts) up to
        `max_retries` times; nothing has reached the client yet when it retries."""
        attempt = 0
        while True:
            request = self._client.build_request(
                "POST", path, content=body, headers=self._headers(stream)
            )
            try:
                response = await self._send_once(request)
            except httpx.HTTPError as exc:
                error = error_from_transport(self.provider, exc)
                retryable = not isinstance(exc, httpx.TimeoutException)
            else:
                if response.status_code < 400:
                    break
                try:
                    data = await response.aread()
                except httpx.HTTPError:
                    data = b""
                finally:
                    await response.aclose()
                error = error_from_response(
                    self.provider.name, response.status_code, data, response.headers
                )
                retryable = response.status_code in RETRY_STATUSES
            if not retryable or attempt >= self.provider.max_retries:
                raise error
            attempt += 1
            log.info("%s; retry %d of %d", error.message, attempt, self.provider.max_retries)
            await anyio.sleep(_backoff(attempt))
        try:
            yield response
        finally:
            await response.aclose()


def _backoff(attempt: int) -> float:
    return float(min(0.25 * 2.0 ** (attempt - 1), 2.0))
