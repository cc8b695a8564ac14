"""One request, one object: the exchange owns the lifecycle of a `/v1/messages` call.

It holds the route, the backend and the codecs' view of the destination (`Target`), the
upstream call's key and attempts, the time of the first upstream data, the usage and the
outcome. Accounting and the request log line read it when the request ends (`finish`),
whatever way it ended: answered, failed before or after the stream started, cut by the
client, or cancelled by a shutdown. Later middleware hooks attach here too.
"""

from __future__ import annotations

import logging
import time

from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.codec import Target
from vdm.protocol.errors import VdmError
from vdm.routing.resolve import Route, resolve
from vdm.server.asgi import Incoming
from vdm.server.state import Gateway
from vdm.upstream.backends import Backend, select
from vdm.upstream.client import Call, UpstreamClient
from vdm.usage.recorder import Request

log = logging.getLogger("vdm.requests")


class Exchange:
    """The lifecycle of one `/v1/messages` request."""

    __slots__ = (
        "gateway",
        "incoming",
        "request",
        "started",
        "route",
        "backend",
        "target",
        "client",
        "call",
        "usage",
        "first_data",
        "outcome",
    )

    route: Route
    backend: Backend
    target: Target
    client: UpstreamClient

    def __init__(self, gateway: Gateway, incoming: Incoming, request: MessagesRequest) -> None:
        self.gateway = gateway
        self.incoming = incoming
        self.request = request
        self.started = time.perf_counter()
        #: The upstream call: which key it used, how many attempts it took.
        self.call = Call()
        #: Anthropic usage fields (`input_tokens` excludes cache reads).
        self.usage: dict[str, int] = {}
        #: When the first upstream data arrived (perf_counter), for time to first token.
        self.first_data: float | None = None
        #: "ok", or what went wrong ("error 502 mid-stream", "client disconnected", ...).
        self.outcome = "ok"

    @property
    def routed(self) -> bool:
        return hasattr(self, "route")

    def resolve(self) -> None:
        """Route the requested model and pick the backend (VdmError(400) if it cannot be)."""
        gateway, request = self.gateway, self.request
        route = resolve(request.model, gateway.settings)
        self.backend, self.target = select(
            route.provider,
            route.model,
            request.model,
            max_tokens_limit=gateway.settings.max_tokens_limit,
            reasoning_cache=gateway.reasoning,
        )
        self.target.degraded.update(gateway.degraded.get(route.provider.name, ()))
        self.client = gateway.client(route.provider)
        self.route = route

    def recover(self, error: VdmError) -> bool:
        """Whether a rejected upstream call is worth one more try with less in it: the backend
        names the degradation (`Backend.recover`) its encoder then honours. Each degradation
        is tried once per request; a lasting one is remembered for the provider."""
        degradation = self.backend.recover(error, self.target)
        if degradation is None or degradation in self.target.degraded:
            return False
        self.target.degraded.add(degradation)
        if not self.route.provider.passthrough:
            # With !PASSTHRU every client brings its own key (and organization): what one
            # refused says nothing of the others.
            self.gateway.degrade(self.route.provider.name, degradation)
        self.first_data = None  # the retry's answer is the one timed
        log.info(
            "%s refused the request (%s); retrying with %s",
            self.route.provider.name,
            error.message,
            degradation,
        )
        return True

    def data_arrived(self) -> None:
        if self.first_data is None:
            self.first_data = time.perf_counter()

    def fail(self, outcome: str) -> None:
        """Record what went wrong (the first failure wins)."""
        if self.outcome == "ok":
            self.outcome = outcome

    def finish(self) -> None:
        """Account the request and write its log line."""
        duration = time.perf_counter() - self.started
        request = self.request
        routed = self.routed
        provider = self.route.provider.name if routed else ""
        model = self.route.model if routed else request.model
        self.gateway.usage.record(
            Request(
                provider,
                model,
                self.outcome == "ok",
                self.usage,
                None if self.first_data is None else self.first_data - self.started,
                duration,
            )
        )
        if not routed:
            return
        degraded = self.target.degraded
        log.info(
            "%s -> %s:%s %s%s%s %.0f ms%s%s",
            request.model,
            provider,
            model,
            ""
            if self.backend.name == self.route.provider.api_format
            else f"({self.backend.name}) ",
            "stream " if request.stream else "",
            self.outcome,
            duration * 1000,
            "".join(f" {k.removesuffix('_tokens')}={v}" for k, v in self.usage.items() if v),
            f" degraded={','.join(sorted(degraded))}" if degraded else "",
        )
