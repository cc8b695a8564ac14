"""The gateway's long-lived state: settings, one pooled upstream client per provider, the
accounting (the recorder, the requests running now, the request log)."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from collections.abc import Coroutine
from typing import Any

from vdm import __version__
from vdm.config.settings import ProviderConfig, Settings
from vdm.middleware.registry import middlewares
from vdm.protocol.codec import DEGRADATIONS, MODEL_DEGRADATIONS, ReasoningCache
from vdm.routing.resolve import Route, resolve
from vdm.server.catalog import ModelCatalog
from vdm.server.logs import RequestLog
from vdm.upstream.backends import client_for
from vdm.upstream.client import UpstreamClient
from vdm.upstream.keys import Cooldown
from vdm.usage.lines import request_fields, request_line
from vdm.usage.prices import PriceTable, user_prices
from vdm.usage.recorder import Request, UsageRecorder
from vdm.usage.trace import Trace

log = logging.getLogger("vdm.requests")
#: Model names are counted cut to this length (they come from clients, and are metric labels).
MAX_NAME = 128


#: Providers and (provider, model) pairs with lasting degradations kept, at most.
MAX_DEGRADED = 1000
#: Requested names whose route is kept (names come from clients: the memo is bounded).
MAX_ROUTES = 1024


def model_key(provider: str, model: str) -> str:
    """`degraded`'s key for one model of a provider (a provider name has no `\n`)."""
    return f"{provider}\n{model}"


class Gateway:
    """Shared by every request of one server; created at startup, closed at shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # A middleware that cannot be loaded or configured stops the start (ConfigError),
        # rather than failing every request that reaches it.
        middlewares(settings)
        self._clients: dict[str, UpstreamClient] = {}
        #: Routes by requested name, for the settings they were resolved with (see `route`).
        self._routes: dict[str, Route] = {}
        self._routes_for = settings
        self.catalog = ModelCatalog(settings, self.client)
        prices, self.price_problems = user_prices(settings.prices)
        self.prices = PriceTable.with_user(prices)
        #: Priced as each request is recorded (its prompt size and time can change the rate).
        self.usage = UsageRecorder(self.prices)
        #: Reasoning text by tool call id, for clients that drop thinking blocks.
        self.reasoning = ReasoningCache()
        #: Provider name -> the lasting degradations it needed (codec.DEGRADATIONS), so its
        #: later requests go without what it refused straight away.
        self.degraded: dict[str, set[str]] = {}
        #: Set when the server starts stopping (vdm/server/serve.py): live feeds (the
        #: dashboard's SSE) end at their next tick instead of holding up the shutdown.
        self.stopping = False
        #: The event loop serving, once the server has started (lifespan): asyncio's lookup of
        #: the running loop checks the process id, a system call, on every call.
        self.loop: asyncio.AbstractEventLoop | None = None
        #: Work that outlives its request (the rest of an upstream body), ended at shutdown.
        self._background: set[asyncio.Task[None]] = set()
        #: The requests being served now, by request id (their traces fill in as they go).
        self.active: dict[str, Trace] = {}
        #: The dashboard's last state and when it was built (vdm/server/observe.py).
        self.dashboard_cache: tuple[float, dict[str, Any]] | None = None
        #: What `GET /metrics` exposes (read from the recorder at each scrape).
        self.request_log = (
            RequestLog(
                settings.request_log,
                bodies=settings.request_log_bodies,
                secrets=settings.secrets,
            )
            if settings.request_log
            else None
        )

    @functools.cached_property
    def metrics(self) -> Any:
        from vdm.usage.prometheus import VdmCollector, registry

        return registry(
            VdmCollector(
                self.usage.snapshot, self._active_counts, self._cooling_counts, __version__
            )
        )

    def _active_counts(self) -> Counter[str]:
        return Counter(t.endpoint for t in self.active.values())

    def _cooling_counts(self) -> dict[str, int]:
        found = self.cooling()
        return {name: len(found.get(name, [])) for name in self.settings.providers}

    def account(self, trace: Trace) -> None:
        """Record a finished request, write its log line and its request-log entry."""
        duration = time.perf_counter() - trace.started
        cost = self.usage.record(
            Request(
                trace.provider,
                (trace.model or trace.requested)[:MAX_NAME],
                trace.ok,
                trace.usage,
                trace.model_ttft,
                duration,
                requested=trace.requested[:MAX_NAME],
                caller=trace.caller,
                at=trace.at,
                endpoint=trace.endpoint,
                status=trace.status,
                error_type=trace.error_type,
                error=trace.error,
                reasoning_tokens=trace.reasoning_tokens,
                bytes_in=trace.bytes_in,
                bytes_out=trace.bytes_out,
                retries=trace.retries,
                failovers=trace.failovers,
                request_id=trace.request_id,
                overhead=trace.overhead,
                key=trace.key,
                client=trace.client,
                left=tuple((p, m[:MAX_NAME], t) for p, m, t in trace.left) if trace.left else (),
                rule=trace.rule,
            )
        )
        logged = log.isEnabledFor(logging.INFO)
        if not logged and self.request_log is None:
            return
        fields = request_fields(trace, duration, cost)
        if logged:
            log.info(request_line(fields, trace.notes), extra={"vdm_request": fields})
        if self.request_log is not None:
            response = trace.response_body
            self.request_log.write(
                fields, trace.request_body, None if response is None else b"".join(response)
            )

    def degrade(self, provider: str, model: str, degradation: str) -> None:
        """Remember a lasting degradation of `provider`, or of `model` on it (until the server
        restarts)."""
        if DEGRADATIONS.get(degradation):
            self.degraded.setdefault(provider, set()).add(degradation)
        elif degradation.startswith(MODEL_DEGRADATIONS):
            key = model_key(provider, model)
            if key in self.degraded or len(self.degraded) < MAX_DEGRADED:
                self.degraded.setdefault(key, set()).add(degradation)

    def degradations(self, provider: str, model: str) -> set[str]:
        """What `model` on `provider` is known to refuse."""
        degraded = self.degraded
        if not degraded:  # the common case: nothing refused since the server started
            return set()
        return degraded.get(provider, set()) | degraded.get(model_key(provider, model), set())

    def route(self, requested: str) -> Route:
        """The route of `requested` without routing rules (`vdm.routing.resolve`), resolved
        once per name: a route depends only on the settings, which do not change while the
        server runs (a restart reads them again); were they replaced, the memo starts over.
        A name that cannot be routed raises its VdmError(400) each time."""
        routes = self._routes
        if self._routes_for is not self.settings:
            routes.clear()
            self._routes_for = self.settings
        route = routes.get(requested)
        if route is None:
            route = resolve(requested, self.settings)
            if len(routes) >= MAX_ROUTES:
                routes.clear()
            routes[requested] = route
        return route

    def client(self, provider: ProviderConfig) -> UpstreamClient:
        client = self._clients.get(provider.name)
        if client is None:
            client = self._clients[provider.name] = client_for(provider)
        return client

    def cooling(self) -> dict[str, list[Cooldown]]:
        """Provider name -> its keys' running cooldowns (masked), for the providers that
        have been called since the server started (the others have none)."""
        return {
            name: found
            for name, client in self._clients.items()
            if (found := client.keys.cooling())
        }

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` after its request, in a task of the gateway's (ended at shutdown)."""
        task = (self.loop or asyncio.get_running_loop()).create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def aclose(self) -> None:
        background = list(self._background)
        for task in background:
            task.cancel()
        if background:
            await asyncio.gather(*background, return_exceptions=True)
        if self.request_log is not None:
            self.request_log.close()
        await self.catalog.aclose()
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
