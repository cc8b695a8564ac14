"""One pooled httpx client per provider, and the one place httpx errors become VdmErrors.

The upstream side uses plain httpx and JSON bytes (no SDK objects): the request body is
encoded once by the caller, a non-streaming answer is parsed once, and a stream is handed to
the caller as raw byte reads.

Retries happen only here, before the first byte of an answer has reached the client (`_open`
returns the response once its headers are in): connection failures, 408, 409, 429, 5xx and
529, with exponential backoff and full jitter, the upstream's `Retry-After` honoured up to
`RETRY_AFTER_CAP` (a longer one is relayed at once), at most `MAX_RETRIES` times, never past
the call's total deadline, never when the upstream says `x-should-retry: false`. A key the
upstream throttles or refuses moves the call to the provider's next key (vdm/upstream/keys.py:
cooldowns per key and model); that is not a retry.

A non-streamed answer is read incrementally up to `MAX_RESPONSE_BYTES`, within the call's
total deadline; whatever goes wrong while reading it is a 502 or 504 naming the provider.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from types import TracebackType
from typing import Any

import anyio
import httpx

from vdm.config.secrets import mask, redact
from vdm.config.settings import ProviderConfig
from vdm.protocol import jsonio
from vdm.protocol.errors import VdmError
from vdm.protocol.sse import quote_start
from vdm.upstream.call import UPSTREAM_ID_HEADERS as UPSTREAM_ID_HEADERS
from vdm.upstream.call import Call as Call
from vdm.upstream.call import backoff as backoff
from vdm.upstream.failures import error_from_response, error_from_transport
from vdm.upstream.h1 import H1Body, body_reader, close
from vdm.upstream.keys import (
    AllKeysCooling,
    KeyPool,
    is_quota_error,
    parse_retry_after,
)
from vdm.upstream.network import ReadHooks
from vdm.upstream.pool import PooledTransport, log_route, proxy_mounts
from vdm.upstream.request_templates import RequestTemplates
from vdm.upstream.timing import CallTimer, retryable

log = logging.getLogger(__name__)

#: Statuses worth another attempt before anything reached the client, besides every 5xx
#: (529: Anthropic's "overloaded", which its own SDKs retry): a request timeout, a conflict
#: (Anthropic's SDKs retry both) and a rate limit (when no other key can take the call).
RETRY_STATUSES = frozenset({408, 409, 429, 529})
#: How much of an error answer is read: error bodies are small, and one that is not must
#: not hold the call (what is read is relayed).
_MAX_ERROR_BODY = 1024 * 1024
#: How much of a request body a DEBUG line shows (images would fill the log).
_DEBUG_BODY = 64 * 1024


class UpstreamClient(RequestTemplates):
    """A provider's pooled HTTP client: keep-alive connections, timeouts from config, its key
    pool (round robin, cooldowns per key and model) and its auth scheme. It knows no dialect:
    paths, bodies and dialect headers come from the provider's backend.

    Every call takes the routed `model`: a key cools for the model the upstream throttled,
    not for the provider's others."""

    #: Signs each attempt's final request in place (SigV4: vdm/upstream/aws_auth.py), after
    #: every header is set; set by `vdm.upstream.backends.client_for` for a `sigv4` provider.
    signer: Callable[[httpx.Request], Awaitable[None]] | None = None
    #: Told when the provider answers 401: a signer whose token it refused gets a new one
    #: (`vdm.upstream.gcp_auth.GoogleAuthorizer.refused`).
    unauthorized: Callable[[], None] | None = None

    def __init__(
        self,
        provider: ProviderConfig,
        *,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        wrap: Callable[[httpx.AsyncBaseTransport], httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        """`transport` replaces vdm's own (tests); `wrap` wraps each of vdm's own, the proxy
        routes included (`vdm health upstream` watches what its probe got)."""
        self.provider = provider
        self.keys = KeyPool(
            provider.name, provider.api_keys, retry_after_cap=provider.retry_after_cap
        )
        timeouts = provider.timeouts
        if transport is None:
            # httpx reads proxy variables only when it makes the transport itself (see
            # vdm/upstream/pool.py); here they become mounts beside vdm's pool, sharing one
            # TLS context (SSL_CERT_FILE and SSL_CERT_DIR read once).
            context = httpx.create_ssl_context()
            transport, mounts = PooledTransport(ssl_context=context), proxy_mounts(context)
            if wrap is not None:
                transport = wrap(transport)
                mounts = {k: None if t is None else wrap(t) for k, t in mounts.items()}
        else:
            mounts = None  # an injected transport (tests) carries every request itself
        self._client = httpx.AsyncClient(
            base_url=provider.base_url,
            # What a request without a CallTimer's limits would get; `_open` gives each
            # attempt its own (first byte until the headers, then idle; vdm/upstream/timing.py).
            timeout=httpx.Timeout(
                connect=timeouts.connect,
                read=timeouts.first_byte,
                write=timeouts.first_byte,
                pool=timeouts.connect,
            ),
            transport=transport,
            mounts=mounts,
        )
        if mounts:
            log_route(provider.name, self._client)
        self._static_headers = {
            "content-type": "application/json",
            "accept": "application/json",
            # The dialect's own (the backend's), then the user's.
            **(headers or {}),
            **provider.custom_headers,
        }
        #: Path -> its absolute URL: httpx merging it with the base URL parses both anew,
        #: ~30 µs a request; a provider has only a few paths.
        self._urls: dict[str, httpx.URL] = {}
        #: (method, path, key, stream, forwarded headers) -> a request to copy (`_request`).
        self._templates: dict[tuple[Any, ...], tuple[httpx.Request, int | None]] = {}
        #: The transport of every request when no proxy mount applies to any (the usual
        #: case): `_transport_for_url` matches each URL against the mounts anew.
        self._direct = None if mounts else self._client._transport
        #: Key -> its masked form (`Call.key`), made once per key.
        self._masked: dict[str, str] = {}

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get_json(self, path: str, *, client_key: str | None = None, model: str = "") -> Any:
        """GET and return the parsed JSON answer (e.g. the models list)."""
        return self._json(*await self._whole(path, None, client_key, None, None, model))

    async def post_json(
        self,
        path: str,
        body: bytes,
        *,
        client_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        call: Call | None = None,
        model: str = "",
    ) -> Any:
        """POST and return the parsed JSON answer; raises VdmError on any failure."""
        return self._json(*await self._whole(path, body, client_key, headers, call, model))

    async def post_bytes(
        self,
        path: str,
        body: bytes,
        *,
        client_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        call: Call | None = None,
        model: str = "",
    ) -> tuple[bytes, httpx.Headers]:
        """POST and return the answer's bytes untouched (decoded from any content-encoding),
        with its headers."""
        data, response = await self._whole(path, body, client_key, headers, call, model)
        return data, response.headers

    async def _whole(
        self,
        path: str,
        body: bytes | None,
        client_key: str | None,
        headers: Mapping[str, str] | None,
        call: Call | None,
        model: str,
    ) -> tuple[bytes, httpx.Response]:
        """One call (GET without a body) and its whole non-streamed answer."""
        timer = CallTimer(self.provider)
        began = time.perf_counter()
        try:
            response = await self._open(
                path,
                body,
                stream=False,
                client_key=client_key,
                headers=headers,
                call=call,
                timer=timer,
                model=model,
            )
            try:
                data = await self._read(response, timer)
            except httpx.HTTPError as exc:  # reading the body
                raise error_from_transport(self.provider, exc, timer) from None
            finally:
                await close(response)
        finally:
            if call is not None:
                call.waited += time.perf_counter() - began
        return data, response

    async def _read(self, response: httpx.Response, timer: CallTimer) -> bytes:
        """A whole non-streamed answer, read incrementally: never more than
        `max_response_bytes` of it held (a 502 naming the setting beyond), and not past the
        call's deadline (vdm's transport stops a read there; another is checked between
        reads). Transport failures propagate to the caller, which names the provider."""
        limit = self.provider.max_response_bytes
        stream = response.stream
        if isinstance(stream, H1Body):  # vdm's transport: it has the header at hand
            declared = stream.content_length
        else:
            declared = response.headers.get("content-length", "")
        check = not isinstance(response.extensions.get("network_stream"), ReadHooks)
        if declared.isdigit() and int(declared) > limit:
            raise self._too_large(limit)
        chunks: list[bytes] = []
        size = 0
        read = body_reader(response)
        while chunk := await read():
            size += len(chunk)
            if size > limit:
                raise self._too_large(limit)
            chunks.append(chunk)
            if check:
                timer.check()
        return b"".join(chunks)

    def _too_large(self, limit: int) -> VdmError:
        prefix = self.provider.name.upper().replace("-", "_")
        return VdmError(
            502,
            f"{self.provider.name} sent an answer larger than {limit} bytes, the limit "
            f"(MAX_RESPONSE_BYTES, or {prefix}_MAX_RESPONSE_BYTES for this provider)",
            unavailable=True,
        )

    def _json(self, data: bytes, response: httpx.Response) -> Any:
        try:
            return jsonio.loads(data)
        except ValueError:
            kind = response.headers.get("content-type", "no content-type")
            text = redact(data[:4096].decode("utf-8", "replace"), self.provider.secrets)
            start = quote_start(text, 80)
            raise VdmError(
                502,
                f"{self.provider.name} answered HTTP {response.status_code} ({kind}) with a "
                f"body that is not valid JSON: {start!r}",
                unavailable=True,
            ) from None

    def stream(
        self,
        path: str,
        body: bytes,
        *,
        client_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        on_idle: Callable[[], Awaitable[None]] | None = None,
        call: Call | None = None,
        model: str = "",
    ) -> _Stream:
        """An async context manager: POST and give the answer's byte reads; raises VdmError
        on entering on a failed status, and while iterating on a broken stream.

        `on_idle` is awaited whenever the next read would wait for the network: everything
        that had arrived has been yielded. On vdm's own transport that is exactly when the
        socket has nothing more; on any other transport it is after every read.
        """
        return _Stream(self, path, body, client_key, headers, on_idle, call, model)

    async def _reads(
        self,
        response: httpx.Response,
        after_each: Callable[[], Awaitable[None]] | None,
        timer: CallTimer,
        check_deadline: bool,
    ) -> AsyncIterator[bytes]:
        try:
            read = body_reader(response)
            while chunk := await read():
                if check_deadline:
                    timer.check()
                yield chunk
                if after_each is not None:
                    await after_each()
            await close(response)  # the connection back to the pool at the body's end
        except httpx.HTTPError as exc:
            raise error_from_transport(self.provider, exc, timer) from None

    def _key(self, client_key: str | None, model: str, tried: list[str]) -> str | None:
        """The key for the next attempt: the client's own for a passthrough provider, else
        the pool's next key usable for `model` not yet tried in this call (None: every
        usable key was tried). Raises AllKeysCooling when none is usable for `model`."""
        if self.provider.passthrough:
            if not client_key:
                raise VdmError(
                    401,
                    f"provider {self.provider.name!r} uses the client's own key (!PASSTHRU), "
                    "but the request carries none: send it in x-api-key or "
                    "Authorization: Bearer (docs/keys.md)",
                )
            return None if tried else client_key
        return self.keys.acquire(model, exclude=tried)

    def _wait(self, retries: int, retry_after: float | None, timer: CallTimer) -> float | None:
        """Seconds to wait before retry number `retries + 1`, or None when there is none to
        make: `MAX_RETRIES` used up, a Retry-After above the cap (relayed to the client at
        once), or a wait that would end past the call's deadline."""
        if retries >= self.provider.max_retries:
            return None
        if retry_after is not None and retry_after > self.provider.retry_after_cap:
            return None
        wait = backoff(retries + 1) if retry_after is None else retry_after
        left = timer.left()
        if left is not None and wait >= left:
            return None
        return wait

    async def _open(
        self,
        path: str,
        body: bytes | None,
        *,
        stream: bool,
        client_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        call: Call | None = None,
        timer: CallTimer | None = None,
        model: str = "",
    ) -> httpx.Response:
        """Send with the next key usable for `model`, and return the response once its
        headers are in (so nothing has reached the client before, and a retry is safe); the
        caller closes it. A plain coroutine, not a context manager: one of those costs
        more per call than the rest of this bookkeeping.

        A key the upstream refuses (401/402/403), throttles (429) or reports out of quota
        cools down (for `model`, or for every model when refused) and the call moves on to
        the next key; with one key there is none, and the error goes to the retry rules.
        Retried (`_wait`): connection failures (connect timeouts included; other timeouts
        never, the upstream may be generating), 408, 409, 429, 5xx; a call whose every key
        was throttled waits for the first to come back, under the same rules. An answer the
        upstream marks `x-should-retry: false` is neither retried nor tried with another
        key. `timer` times the whole call (default: from now)."""
        if body is not None and log.isEnabledFor(logging.DEBUG):  # the translated request
            text = body[:_DEBUG_BODY].decode("utf-8", "replace")
            cut = f" … ({len(body)} bytes)" if len(body) > _DEBUG_BODY else ""
            log.debug(
                "to %s %s: %s%s",
                self.provider.name,
                path,
                redact(text, self._redact(client_key)),
                cut,
            )
        retries = 0
        tried: list[str] = []
        rejected: VdmError | None = None  # the upstream's answer to the last key tried
        error: VdmError | None = None
        timer = timer or CallTimer(self.provider)
        while True:
            extensions = timer.attempt(error)  # the total timeout's error if nothing is left
            try:
                key = self._key(client_key, model, tried)
            except AllKeysCooling as exc:
                if rejected is None:
                    # Cooling keys steer calls to the others; with none left the call goes
                    # upstream anyway, on the key back first: a cooldown never refuses a
                    # request locally, and the upstream's own answer is what the client sees.
                    key = self.keys.soonest(model)
                else:
                    # This call throttled every key: wait for the first to come back.
                    wait = self._wait(retries, exc.retry_after, timer)
                    if rejected.status != 429 or wait is None:
                        raise rejected from None  # the upstream's own answer, as it was
                    retries += 1
                    log.info("%s; waiting %.1f s for a key (retry %d)", exc, wait, retries)
                    await anyio.sleep(wait)
                    tried.clear()
                    continue
            if key is None:
                assert rejected is not None
                raise rejected
            if call is not None:
                call.attempts += 1
                call.key = self._mask(key) if key else None
            request = self._request(path, body, key, stream, headers, extensions)
            if self.signer is not None:  # every attempt anew: the signature dates it
                await self.signer(request)
            retry_after: float | None = None
            try:
                # `AsyncClient.send` without its redirect, auth, cookie and event-hook layers,
                # none of which an API call uses: a tenth of vdm's CPU per small request
                # (`make bench`). The transport is still the client's choice for the URL: the
                # mounts `__init__` made from the proxy variables apply (httpx would not read
                # them itself, vdm/upstream/pool.py).
                transport = self._direct or self._client._transport_for_url(request.url)
                response = await transport.handle_async_request(request)
                response.request = request
            except httpx.HTTPError as exc:
                error = error_from_transport(self.provider, exc, timer)
                again = retryable(exc) and not timer.expired()
            else:
                status = response.status_code
                if status < 400:
                    timer.headers_in(request)
                    self.keys.succeeded(key, model)
                    if call is not None:
                        call.headers = response.headers
                    break
                if call is not None:
                    call.headers = response.headers  # the upstream's id of its refusal
                if status == 401 and self.unauthorized is not None:
                    self.unauthorized()
                data = await self._error_body(response)
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
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                if key and not self.provider.passthrough and is_quota_error(status, data):
                    # A single key is not cooled (vdm/upstream/keys.py), only counted.
                    self.keys.failed(key, model, status, retry_after)
                    if not final and len(self.keys) > 1:
                        tried.append(key)
                        rejected = error
                        log.info("%s; trying the next key", error.message)
                        continue
                    log.info("%s", error.message)
                again = (status in RETRY_STATUSES or status >= 500) and not final
            wait = self._wait(retries, retry_after, timer) if again else None
            if wait is None:
                raise error
            retries += 1
            log.info(
                "%s; retry %d of %d in %.1f s",
                error.message,
                retries,
                self.provider.max_retries,
                wait,
            )
            await anyio.sleep(wait)
            tried.clear()
        return response

    async def _error_body(self, response: httpx.Response) -> bytes:
        """The start of an error answer's body (at most `_MAX_ERROR_BODY`); b"" when it
        cannot be read. The response is closed."""
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in response.aiter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size >= _MAX_ERROR_BODY:
                    break
        except httpx.HTTPError:
            pass
        finally:
            await response.aclose()
        return b"".join(chunks)[:_MAX_ERROR_BODY]

    def _mask(self, key: str) -> str:
        masked = self._masked.get(key)
        if masked is None:
            if len(self._masked) >= 256:  # passthrough: one per client key
                self._masked.clear()
            masked = self._masked[key] = mask(key)
        return masked

    def _redact(self, client_key: str | None) -> tuple[str, ...]:
        """What to mask in an upstream's answer: the provider's keys, its credential custom
        headers' values, and the client's own key."""
        secrets = self.provider.secrets
        return (*secrets, client_key) if client_key else secrets


async def _read_rest(
    reads: AsyncIterator[bytes], response: httpx.Response | None, seconds: float
) -> None:
    try:
        async with asyncio.timeout(seconds):
            async for _ in reads:
                pass
    except (TimeoutError, VdmError) as exc:  # the answer was delivered: only the connection
        log.debug("the rest of an answer's body was not read: %s", exc)
    finally:
        if response is not None:
            await close(response)


class _Stream:
    """`UpstreamClient.stream`'s context manager: a class, not `@asynccontextmanager`,
    whose generator, helper and `athrow` cost more per stream than the rest of it."""

    __slots__ = (
        "_args",
        "_client",
        "_network",
        "_on_idle",
        "_response",
        "_timer",
        "call",
    )

    def __init__(
        self,
        client: UpstreamClient,
        path: str,
        body: bytes,
        client_key: str | None,
        headers: Mapping[str, str] | None,
        on_idle: Callable[[], Awaitable[None]] | None,
        call: Call | None,
        model: str,
    ) -> None:
        self._client = client
        self._args = (path, body, client_key, headers, model)
        self._on_idle = on_idle
        self.call = call
        self._timer = CallTimer(client.provider)
        self._response: httpx.Response | None = None
        self._network: ReadHooks | None = None

    async def __aenter__(self) -> AsyncIterator[bytes]:
        path, body, client_key, headers, model = self._args
        call, timer, on_idle = self.call, self._timer, self._on_idle
        began = time.perf_counter()
        try:
            response = await self._client._open(
                path,
                body,
                stream=True,
                client_key=client_key,
                headers=headers,
                call=call,
                timer=timer,
                model=model,
            )
        finally:
            if call is not None:  # until the headers (or the failure): the rest is the stream's
                call.waited += time.perf_counter() - began
        self._response = response
        network = response.extensions.get("network_stream")
        if isinstance(network, ReadHooks):
            self._network = network
            network.on_idle = on_idle
            # vdm's transport ends a read at the call's deadline.
            return self._client._reads(response, None, timer, False)
        # Another transport: `on_idle` after every read, the deadline checked between them.
        return self._client._reads(response, on_idle, timer, True)

    def arrived(self) -> bool:
        """Whether all of the answer's body has arrived, so that reading the rest will not
        wait (vdm's own transport; False with another, which may still wait)."""
        response = self._response
        return (
            response is not None and isinstance(response.stream, H1Body) and response.stream.arrived
        )

    def rest(self, reads: AsyncIterator[bytes], seconds: float) -> Coroutine[Any, Any, None]:
        """The rest of the body, handed over: the returned coroutine reads it to its end
        within `seconds` (its connection then goes back to the pool, else it is closed),
        in a task of the caller's; leaving the context no longer closes the answer. For an
        answer complete before its body is (a late `[DONE]`), read after the request."""
        response, self._response = self._response, None
        if self._network is not None:
            self._network.on_idle = None  # nothing to flush to the client any more
        return _read_rest(reads, response, seconds)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        response = self._response
        if response is None:
            return
        self._response = None
        try:
            if self._network is not None:
                self._network.on_idle = None
            if isinstance(exc, httpx.HTTPError):
                client = self._client
                raise error_from_transport(client.provider, exc, self._timer) from None
        finally:
            await close(response)
