"""One HTTP request as accounting sees it: a `Trace`, created when the request arrives (every
path, errors at the edge included) and filled in as it goes by whoever serves it.

Its id (`req_vdm_…`) is the `request-id` response header and is in every log line written
while the request runs (the `REQUEST_ID` context variable, read by the log formatters). The
upstream's own id, when one answered, is kept beside it. When the request ends its trace
becomes the recorder's `Request` (vdm/usage/recorder.py) and its log line.

Overhead: the time vdm itself spent, excluding the upstream. `upstream` is a callable that
says how long the request has waited for upstreams so far (the exchange's calls, retries and
their waits included); the overhead is what is left of the time elapsed. It is taken when the
response's head is sent (`x-vdm-overhead-ms`), so for a stream it covers the work before the
first byte.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

from vdm.protocol.ids import random_hex
from vdm.usage.caller import NO_CALLER, Caller

#: The id of the request being served in this context (None outside a request).
REQUEST_ID: ContextVar[str | None] = ContextVar("vdm_request_id", default=None)

ID_PREFIX = "req_vdm_"

#: The endpoint names requests are counted under (a bounded label set).
ENDPOINTS: dict[str, str] = {
    "/v1/messages": "messages",
    "/v1/messages/count_tokens": "count_tokens",
    "/v1/chat/completions": "chat_completions",
    "/v1/responses": "responses",
    "/v1/models": "models",
    "/v1/aliases": "aliases",
    "/health": "health",
    "/metrics": "metrics",
    "/metrics/running-totals": "metrics",
    "/metrics/active-requests": "metrics",
}
#: Endpoints whose requests are the gateway's work (accounted); the others (health checks,
#: metric scrapes, the dashboard) only get a request id.
ACCOUNTED = frozenset(
    {"messages", "chat_completions", "responses", "count_tokens", "models", "aliases", "other"}
)
#: Endpoints that ask a model for an answer, in each client dialect: counted per model (tokens,
#: cost, time to first token), the others only per endpoint.
GENERATION = frozenset({"messages", "chat_completions", "responses"})


def new_request_id() -> str:
    # Distinct, not secret (vdm/protocol/ids.py): nothing is granted by knowing an id.
    return ID_PREFIX + random_hex()


def endpoint_of(path: str) -> str:
    """The endpoint name of `path` (without a trailing slash)."""
    found = ENDPOINTS.get(path)
    if found is not None:
        return found
    if path == "/dashboard" or path.startswith("/dashboard/"):
        return "dashboard"
    return "other"


@dataclass(slots=True, eq=False)
class Trace:
    """What one request did, as far as it got."""

    request_id: str
    method: str
    path: str
    endpoint: str
    #: `time.perf_counter()` and unix time at arrival.
    started: float = field(default_factory=time.perf_counter)
    at: float = field(default_factory=time.time)
    #: Who called: "session" (a `vdm wrap` child), "key:<hash>" (the proxy key's), "anonymous".
    client: str = "anonymous"
    bytes_in: int = 0
    bytes_out: int = 0
    #: The HTTP status sent (0: none was).
    status: int = 0
    stream: bool = False
    #: The model name the client asked for, and where it was routed.
    requested: str = ""
    provider: str = ""
    model: str = ""
    #: The provider key used last (masked).
    key: str | None = None
    #: "ok", or what went wrong ("error 502 mid-stream", "client disconnected", ...).
    outcome: str = "ok"
    #: The error's type (an Anthropic error type, or `client_closed`) and vdm's message.
    error_type: str | None = None
    error: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    reasoning_tokens: int = 0
    #: `perf_counter()` when the first upstream data arrived (the whole answer when not
    #: streaming), for the time to first token.
    first_data: float | None = None
    #: `perf_counter()` when the route that serves started (after a failover, later than
    #: `started`): a model's own time to first token is counted from there.
    route_started: float | None = None
    upstream_request_id: str | None = None
    retries: int = 0
    failovers: int = 0
    #: The routes that failed before the one that served: "groq:x failed (429)".
    hops: list[str] = field(default_factory=list)
    #: The routes failed over from: (provider, model, error type).
    left: list[tuple[str, str, str]] = field(default_factory=list)
    #: Words for the log line ("via responses", "degraded=no_tools").
    notes: list[str] = field(default_factory=list)
    caller: Caller = NO_CALLER
    #: The `[[routing.rules]]` entry that chose the route (its label), if one did.
    rule: str | None = None
    #: Seconds spent waiting for upstreams so far (see the module docstring).
    upstream: Callable[[], float] | None = None
    #: Seconds vdm spent before the response's head (None until it is sent).
    overhead: float | None = None
    #: The request's and the response's bytes, kept only when the request log wants bodies.
    request_body: bytes | None = None
    response_body: list[bytes] | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def ttft(self) -> float | None:
        """Seconds from the request's arrival to the first upstream data (what the client
        waited)."""
        return None if self.first_data is None else self.first_data - self.started

    @property
    def model_ttft(self) -> float | None:
        """Seconds from the serving route's start to its first data (what the model took)."""
        if self.first_data is None:
            return None
        return self.first_data - (self.route_started or self.started)

    def take_overhead(self) -> float:
        """The overhead now (the response's head is being sent); remembered."""
        elapsed = time.perf_counter() - self.started
        waited = self.upstream() if self.upstream is not None else 0.0
        self.overhead = max(elapsed - waited, 0.0)
        return self.overhead

    def fail(self, outcome: str, error_type: str | None, error: str | None = None) -> None:
        """Record what went wrong (the first failure wins)."""
        if self.outcome == "ok":
            self.outcome = outcome
            self.error_type = error_type
            self.error = error
