"""One request, one object: the exchange owns the lifecycle of a generation request
(`/v1/messages`, `/v1/chat/completions`, `/v1/responses`: its `Frontend` is the client's
dialect, vdm/server/frontend.py).

It holds the request's head (the model asked for, whether it streams), the route, the
backend and the codecs' view of the destination (`Target`), the validated request when it is
translated, the upstream call's key and attempts, the time of the first upstream data, the
usage and the outcome. It writes what it learns to the request's trace (vdm/usage/trace.py),
which accounting and the request's log line read when the request ends (`finish`),
whatever way it ended: answered, refused before any upstream was called (an
unknown provider, a body the translator cannot take), failed before or after the stream
started, cut by the client, or cancelled by a shutdown.

Middleware attach here too (docs/middleware.md): each route has its chain, bound to the
request's read-only `Context` (`hooks`; None when no middleware applies: then nothing of it
runs). `prepare` runs the request and upstream-header hooks before each route's
call: on a translated route over the canonical request (`request`), on the Anthropic
pass-through over the client's body parsed (re-encoded, `rewritten`, only when a hook changed
it); `reported` runs the error hooks on what the client is about to get.

Failover also lives here: when the route's provider fails before anything reached the client
(`responded`), with an error worth another provider (`failover_worthy`: a rate limit with no
key left, a 5xx, a timeout before the first byte), the next route of `Route.failover` takes
over, its backend selected again (it may speak another dialect); a prompt too long for the
model's context window goes to `Route.long_context` instead. The route that answered is the
one accounted, logged and named in `x-vdm-served-by`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from vdm.config.secrets import redact
from vdm.middleware import Answer, Context, Hooks, chain_for
from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.anthropic_head import Head, validated
from vdm.protocol.codec import Target
from vdm.protocol.errors import VdmError, failover_worthy, is_context_overflow
from vdm.routing.resolve import Route, resolve
from vdm.routing.rules import BACKGROUND_CLASSES, Facts, facts_from_body
from vdm.server.asgi import Incoming
from vdm.server.frontend import AnthropicFrontend, Frontend
from vdm.server.state import Gateway
from vdm.upstream.backends import Backend, select
from vdm.upstream.client import Call, UpstreamClient
from vdm.usage.caller import caller_of

log = logging.getLogger("vdm.requests")


class Exchange:
    """The lifecycle of one generation request."""

    __slots__ = (
        "gateway",
        "frontend",
        "incoming",
        "head",
        "requested_model",
        "stream",
        "canonical",
        "request",
        "hooks",
        "rewritten",
        "upstream_headers",
        "started",
        "route",
        "backend",
        "target",
        "client",
        "call",
        "usage",
        "first_data",
        "outcome",
        "detail",
        "delivered",
        "responded",
        "primary",
        "pending_failover",
        "hops",
        "tried",
        "failovers",
        "error",
        "waited",
        "attempts",
        "reasoning_tokens",
    )

    route: Route
    backend: Backend
    target: Target
    client: UpstreamClient

    def __init__(
        self, gateway: Gateway, incoming: Incoming, head: Head, frontend: Frontend | None = None
    ) -> None:
        self.gateway = gateway
        #: The client's dialect (Anthropic when not given).
        self.frontend: Frontend = frontend if frontend is not None else AnthropicFrontend(head.data)
        self.incoming = incoming
        self.head = head
        #: The model the client asked for (an alias, `provider:model`, a Claude name, ...).
        self.requested_model = head.model
        self.stream = head.stream
        #: The validated canonical request, as the client sent it: made when a route
        #: translates it, or when middleware must read a forwarded one.
        self.canonical: MessagesRequest | None = None
        #: The canonical request the current route sends (after the request hooks): only when
        #: it is translated; a provider that speaks the client's dialect (`forwarded`) gets
        #: the client's body as it is.
        self.request: MessagesRequest | None = None
        #: The current route's middleware, bound to what its hooks see (None: none applies).
        self.hooks: Hooks | None = None
        #: The client's Anthropic body as the request hooks changed it, for the
        #: pass-through (None: unchanged, the client's bytes go).
        self.rewritten: dict[str, Any] | None = None
        #: The extra upstream headers as the header hooks left them (None: no hooks ran).
        self.upstream_headers: dict[str, str] | None = None
        self.started = time.perf_counter()
        #: The upstream call: which key it used, how many attempts it took.
        self.call = Call()
        #: Anthropic usage fields (`input_tokens` excludes cache reads).
        self.usage: dict[str, int] = {}
        #: When the first upstream data arrived (perf_counter), for time to first token.
        self.first_data: float | None = None
        #: "ok", or what went wrong ("error 502 mid-stream", "client disconnected", ...).
        self.outcome = "ok"
        #: vdm's own words for a failure before any upstream was called (for the log line).
        self.detail: str | None = None
        #: The client received the whole answer (a stream up to its `message_stop`): the
        #: request succeeded even if the client leaves before the upstream's body ends.
        self.delivered = False
        #: The response has started (its status line is sent): failing over is too late.
        self.responded = False
        #: The route the name resolved to (its failover chain and long-context target).
        self.primary: Route | None = None
        #: Failover routes not tried yet, in order.
        self.pending_failover: list[Route] = []
        #: The routes that failed before the one serving now: "groq:x failed (429)".
        self.hops: list[str] = []
        #: `provider:model` of the routes that failed (never tried again).
        self.tried: set[str] = set()
        #: How many times this request moved to another route.
        self.failovers = 0
        #: The error that ended the request, if one did.
        self.error: VdmError | None = None
        #: Seconds the calls of routes that failed waited for their upstreams, and their
        #: HTTP attempts.
        self.waited = 0.0
        self.attempts = 0
        #: Reasoning tokens the provider counted (within the output tokens), when it says.
        self.reasoning_tokens = 0
        trace = incoming.trace
        trace.requested = head.model
        trace.stream = head.stream
        trace.upstream = self.upstream_seconds
        trace.caller = caller_of(incoming.headers, incoming.body)

    def upstream_seconds(self) -> float:
        """Seconds this request has waited for upstreams (retries and their waits included)."""
        return self.waited + self.call.waited

    @property
    def routed(self) -> bool:
        return hasattr(self, "route")

    def resolve(self) -> None:
        """Route the requested model and pick the backend; validate the request when it is
        to be translated (VdmError(400) if it cannot be routed or translated)."""
        gateway = self.gateway
        settings = gateway.settings
        if settings.rules:
            route = resolve(self.requested_model, settings, self._facts())
        else:  # the common case: no rules, the route depends on the name alone
            route = gateway.route(self.requested_model)
        if route.rule is not None:
            self.incoming.trace.rule = route.rule
            self.incoming.trace.notes.append(f"rule={route.rule}")
        self.primary = route
        self.pending_failover = list(route.failover)
        self._use(route)

    def _facts(self) -> Facts:
        """What the routing rules test (vdm/routing/rules.py): the body's facts in the
        client's dialect, Claude Code's hint headers, and the input tokens, counted only when
        a long-context rule asks (of the validated canonical request; a body that does not
        validate is estimated from its size, its 400 left to the route that translates it)."""
        facts = facts_from_body(self.frontend.dialect, self.head.data, self.requested_model)
        caller = self.incoming.trace.caller
        if caller.request_class is not None:
            facts.background = caller.request_class in BACKGROUND_CLASSES
        facts.subagent = caller.subagent
        facts.count = self._count_tokens
        return facts

    def _count_tokens(self) -> int:
        from vdm.protocol.tokens import count_tokens

        try:
            return count_tokens(self._canonical())
        except VdmError:
            return len(self.incoming.body) // 4

    def _use(self, route: Route) -> None:
        """Make `route` the one this exchange calls: its backend, target and client."""
        gateway = self.gateway
        backend, target = select(
            route.provider,
            route.model,
            self.requested_model,
            max_tokens_limit=gateway.settings.max_tokens_limit,
            reasoning_cache=gateway.reasoning,
            web_search=self.frontend.dialect == "anthropic" and _web_search(self.head.data),
        )
        if gateway.degraded:
            target.degraded.update(gateway.degradations(route.provider.name, route.model))
        if self.frontend.dialect == "anthropic":
            target.betas = _betas(self.incoming.headers)
        self.backend, self.target = backend, target
        self.client = gateway.client(route.provider)
        self.route = route  # routed: a body the translator refuses is logged with its route
        trace = self.incoming.trace
        trace.provider, trace.model = route.provider.name, route.model
        self.request = self.rewritten = self.upstream_headers = None
        if not self.forwarded:
            self.request = self._canonical()
            # Every route's target: a failover target is made afresh.
            target.max_tokens_default = self.frontend.max_tokens_default
        if gateway.settings.middleware:  # the common case is none: nothing more to do
            self._middleware(route)

    def _canonical(self) -> MessagesRequest:
        """The client's request validated in canonical form (once per request)."""
        if self.canonical is None:
            canonical = self.frontend.canonical()
            head = self.head
            if canonical is not head.data:
                head = Head(head.model, head.stream, canonical)
            self.canonical = validated(MessagesRequest, head)
        return self.canonical

    def _middleware(self, route: Route) -> None:
        """The hooks of `route`: its chain and the context it sees (the request's `scratch`
        kept across failovers)."""
        previous = self.hooks
        self.hooks = None
        found = chain_for(
            self.gateway.settings, route.provider.name, self.requested_model, route.alias
        )
        if found is None:
            return
        chain, alias = found
        context = Context(
            provider=route.provider.name,
            model=route.model,
            alias=alias,
            requested_model=self.requested_model,
            dialect=self.frontend.dialect,
            api_format=self.backend.name,
            request_id=self.incoming.trace.request_id,
            stream=self.stream,
            forwarded=self.forwarded,
            scratch=previous.context.scratch if previous is not None else {},
        )
        self.hooks = Hooks(chain, context)

    async def prepare(self, headers: dict[str, str]) -> Answer | None:
        """Run the current route's request and upstream-header hooks (only when it has a
        chain): the request to send, or the answer a hook gave instead (then no provider is
        called). The OpenAI dialects' forwarded bodies are not canonical: only their header
        hooks run, over `headers` (the extra headers the call would carry)."""
        hooks = self.hooks
        assert hooks is not None
        anthropic = self.frontend.dialect == "anthropic"
        if hooks.requests and (anthropic or not self.forwarded):
            done = await hooks.on_request(self._canonical())
            if done.answer is not None:
                self.incoming.trace.notes.append(f"answered by middleware {done.by}")
                return done.answer
            if not self.forwarded:
                self.request = done.request
            elif done.changed:
                self.rewritten = done.request.model_dump(
                    mode="json", exclude_unset=True, by_alias=True
                )
        if hooks.headers:
            await hooks.on_upstream_headers(headers)
            self.upstream_headers = headers
        return None

    async def reported(self, exc: VdmError) -> VdmError:
        """`exc` as the client gets it: through the error hooks, secrets masked."""
        hooks = self.hooks
        if hooks is None or not hooks.errors:
            return exc
        return self.redacted(await hooks.on_error(exc))

    @property
    def forwarded(self) -> bool:
        """The current route's provider speaks the client's dialect: the client's body is
        forwarded (only its model renamed), not translated."""
        return self.backend.name == self.frontend.dialect

    @property
    def secrets(self) -> tuple[str, ...]:
        """What no answer or log line of this exchange may show: every configured secret
        (whichever route failed last) and the client's own key."""
        key = self.incoming.client_key
        configured = self.gateway.settings.secrets
        return (*configured, key) if key else configured

    def redacted(self, exc: VdmError) -> VdmError:
        """`exc` with the secrets masked in its message: an error's text may quote an
        upstream's (a body that is not JSON, an event that is not), and that may quote the
        credentials it was sent."""
        message = redact(exc.message, self.secrets)
        if message != exc.message:
            exc.message = message
            exc.args = (message,)
        return exc

    @property
    def served_by(self) -> str:
        """`provider:model` of the route calling or answering now."""
        return self.route.label

    def fail_over(self, error: VdmError) -> bool:
        """Whether the request moves to another route after `error`, which the current one
        raised before the response started: a prompt too long for the context window goes
        to the long-context route (once), an error worth another provider to the next
        route of the chain. A route the request cannot be translated for is passed over."""
        if self.responded or self.primary is None:
            return False
        candidates: list[Route]
        if is_context_overflow(error):
            long_context = self.primary.long_context
            candidates = [long_context] if long_context is not None else []
        elif failover_worthy(error):
            candidates = self.pending_failover
        else:
            return False
        failed_label = self.served_by
        failed_route = self.route
        failed = f"{failed_label} failed ({error.status})"
        while candidates:
            route = candidates.pop(0)
            if route.label == self.served_by or route.label in self.tried:
                continue
            try:
                self._use(route)
            except VdmError as exc:
                log.info("failover to %s skipped: %s", route.label, exc.message)
                continue
            self.tried.add(failed_label)
            self.hops.append(failed)
            # The route that failed is counted too (its provider's health, "why was it slow").
            self.incoming.trace.left.append(
                (failed_route.provider.name, failed_route.model, error.error_type)
            )
            self.failovers += 1
            self.waited += self.call.waited
            self.attempts += self.call.attempts
            self.call = Call()
            self.first_data = None
            trace = self.incoming.trace
            trace.first_data = trace.upstream_request_id = None
            trace.route_started = time.perf_counter()
            self.usage = {}
            log.info("%s; failing over to %s", failed, route.label)
            return True
        return False

    @property
    def translated(self) -> MessagesRequest:
        """The validated request of a translated exchange (after `resolve`)."""
        assert self.request is not None, "only a translated exchange has a validated request"
        return self.request

    def recover(self, error: VdmError) -> bool:
        """Whether a rejected upstream call is worth one more try with less in it: the backend
        names the degradation (`Backend.recover`) its encoder then honours. Each degradation
        is tried once per request; a lasting one is remembered for the provider (or the model)."""
        degradation = self.backend.recover(error, self.target)
        if degradation is None or degradation in self.target.degraded:
            return False
        self.target.degraded.add(degradation)
        if not self.route.provider.passthrough:
            # With !PASSTHRU every client brings its own key (and organization): what one
            # refused says nothing of the others.
            self.gateway.degrade(self.route.provider.name, self.route.model, degradation)
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
            self.incoming.trace.first_data = self.first_data
            self.answered()

    def answered(self) -> None:
        """The upstream's headers are in: its own request id goes on the response's head."""
        self.incoming.trace.upstream_request_id = self.call.request_id

    def fail(self, outcome: str, detail: str | None = None, error: VdmError | None = None) -> None:
        """Record what went wrong (the first failure wins)."""
        if self.outcome == "ok":
            self.outcome = outcome
            self.detail = detail
            self.error = error

    def finish(self) -> None:
        """Write what the request did to its trace, which the app accounts and logs once the
        response has ended (a request refused before it was routed too: it shows in
        `vdm wrap --log-file` with vdm's reason)."""
        trace = self.incoming.trace
        # The trace no longer asks this exchange for its upstream time: the reference would
        # make a cycle (exchange → incoming → trace → exchange) that keeps a request's body
        # and validated copy alive until the cyclic garbage collector runs.
        trace.upstream = None
        trace.usage = self.usage
        trace.reasoning_tokens = self.reasoning_tokens
        trace.first_data = self.first_data
        trace.retries = max(self.attempts + self.call.attempts - 1 - self.failovers, 0)
        trace.failovers = self.failovers
        trace.hops = self.hops
        trace.key = self.call.key
        if not trace.upstream_request_id:
            trace.upstream_request_id = self.call.request_id
        if self.routed:
            trace.provider, trace.model = self.route.provider.name, self.route.model
            if self.backend.name != self.route.provider.api_format:
                trace.notes.append(f"via {self.backend.name}")
            degraded = self.target.degraded
            if degraded:
                trace.notes.append(f"degraded={','.join(sorted(degraded))}")
        if self.outcome != "ok":
            error = self.error
            if error is not None:
                trace.fail(self.outcome, error.error_type, self.detail or error.message)
            elif self.outcome == "client disconnected":
                trace.fail(self.outcome, "client_closed")
            else:
                trace.fail(self.outcome, "api_error", self.detail)


def _betas(headers: list[tuple[bytes, bytes]]) -> tuple[str, ...]:
    """The betas of every `anthropic-beta` header, in order."""
    found: list[str] = []
    for name, value in headers:
        if name.lower() == b"anthropic-beta":
            found += (b.strip() for b in value.decode("latin-1").split(",") if b.strip())
    return tuple(found)


def _web_search(data: dict[str, Any]) -> bool:
    """The Anthropic request carries the web search server tool (`web_search_…`)."""
    tools = data.get("tools")
    return isinstance(tools, list) and any(
        isinstance(t, dict) and str(t.get("type", "")).startswith("web_search_") for t in tools
    )
