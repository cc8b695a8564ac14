"""Counting requests, errors, tokens, cost and latency per provider:model, per agent, per
Claude Code session and per endpoint: the one accounting component (the `vdm wrap` summary,
`/metrics/*`, Prometheus and the dashboard all read it).

`UsageRecorder.record()` is called once per request when it ends (a stream after its last
byte), whatever path served it: `/v1/messages` (translated or Anthropic-format),
count_tokens, the models and aliases lists, and requests refused before any routing (their
`provider` is empty). `snapshot()` gives a consistent copy. A request is priced
when it is recorded (`Price.cost`: its prompt size and time of day can change the rate), at
the price of the model it went to and at Anthropic's price of the Claude model the client
asked for. The recorder holds no I/O and no locks: the server runs on one event loop thread,
and a record is a few additions and two cached price lookups.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vdm.usage.caller import NO_CALLER, Caller
from vdm.usage.prices import CACHE_1H, CACHE_5M, Price, PriceTable
from vdm.usage.series import LATENCY_BUCKETS, OVERHEAD_BUCKETS, Histogram, Samples, TimeSeries
from vdm.usage.trace import GENERATION

#: Distinct session and subagent ids remembered (a long-running server sees unbounded ids;
#: beyond this many the counts go on, an id seen again after it was dropped counts twice).
MAX_IDS = 10_000
#: Distinct provider:model rows kept; beyond, requests count under `OTHER` (model names come
#: from clients, and metric label sets must stay bounded).
MAX_MODELS = 200
OTHER = "(other)"
#: Distinct names counted in one row's `requested`, and distinct request classes.
MAX_NAMES = 50
#: The error type of a request the client gave up on (Claude Code's Esc): counted as
#: cancelled, not as an error.
CLIENT_CLOSED = "client_closed"
#: Claude Code sessions whose own totals are kept (the most recently seen).
MAX_SESSIONS = 200
#: Recent errors kept for the dashboard.
MAX_ERRORS = 50
#: Distinct provider keys and clients counted apart (beyond, they are not itemised).
MAX_LABELS = 200

TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


# Not frozen: one is made per request and read once, and a frozen dataclass's `__init__`
# sets each of its 24 fields through `object.__setattr__` (2.5x the cost).
@dataclass(slots=True)
class Request:
    """One finished request, as the server saw it (the recorder only reads it)."""

    provider: str
    model: str
    ok: bool
    #: Anthropic usage fields (`input_tokens` excludes cache reads), missing ones are 0; the
    #: cache writes' lifetimes, when the provider said, as `ephemeral_5m_input_tokens` /
    #: `ephemeral_1h_input_tokens`.
    usage: Mapping[str, int]
    #: Seconds from the request's arrival to the first upstream data (the whole answer when
    #: not streaming); None when nothing came back.
    ttft: float | None
    duration: float
    #: The model name the client asked for (before aliases and routing).
    requested: str = ""
    caller: Caller = NO_CALLER
    #: When it happened (unix time), for time-of-day prices; None: now.
    at: float | None = None
    #: `messages`, `count_tokens`, `models`, `aliases` or `other` (vdm/usage/trace.py).
    endpoint: str = "messages"
    #: The HTTP status answered, and the error's type when it failed.
    status: int = 200
    error_type: str | None = None
    error: str | None = None
    reasoning_tokens: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    retries: int = 0
    failovers: int = 0
    request_id: str = ""
    #: Seconds vdm itself spent (None: not measured).
    overhead: float | None = None
    #: The provider key used (masked) and who called (a label: vdm/server/auth.py).
    key: str | None = None
    client: str = ""
    #: The routes failed over from before the one that served: (provider, model, error type).
    left: tuple[tuple[str, str, str], ...] = ()
    #: The `[[routing.rules]]` entry that chose the route (its label), if one did.
    rule: str | None = None


#: What one request adds to each of its rows: (failed, the six token counts, reasoning tokens,
#: bytes in and out, retries, failovers, whether it has tokens); `failed` is 0, or one of
#: `_CANCELLED` / `_ERROR`.
Amounts = tuple[int, int, int, int, int, int, int, int, int, int, int, int, bool]
_CANCELLED = 1
_ERROR = 2


def _amounts(request: Request) -> Amounts:
    """`request`'s figures, read once: a request is added to up to six rows."""
    get = request.usage.get
    failed = 0 if request.ok else _CANCELLED if request.error_type == CLIENT_CLOSED else _ERROR
    input_tokens = get("input_tokens", 0)
    output_tokens = get("output_tokens", 0)
    cache_read = get("cache_read_input_tokens", 0)
    cache_creation = get("cache_creation_input_tokens", 0)
    return (
        failed,
        input_tokens,
        output_tokens,
        cache_read,
        cache_creation,
        get(CACHE_5M, 0),
        get(CACHE_1H, 0),
        request.reasoning_tokens,
        request.bytes_in,
        request.bytes_out,
        request.retries,
        request.failovers,
        bool(input_tokens or output_tokens or cache_read or cache_creation),
    )


@dataclass(slots=True)
class Totals:
    """Requests, tokens and cost of a group of requests."""

    requests: int = 0
    errors: int = 0
    #: Requests the client gave up on before the answer was complete.
    cancelled: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_creation_5m_input_tokens: int = 0
    cache_creation_1h_input_tokens: int = 0
    reasoning_tokens: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    retries: int = 0
    failovers: int = 0
    #: Dollars of the priced requests; `unpriced` counts requests with tokens but no price.
    cost: float = 0.0
    priced: int = 0
    unpriced: int = 0
    #: The same at Anthropic's price of the Claude model each request asked for.
    claude_cost: float = 0.0
    claude_priced: int = 0
    claude_unpriced: int = 0

    def add(self, request: Request, cost: float | None, claude_cost: float | None) -> None:
        self.add_amounts(_amounts(request), cost, claude_cost)

    def add_amounts(self, amounts: Amounts, cost: float | None, claude_cost: float | None) -> None:
        """Add one request's `amounts` (`_amounts`: read once, added to each of its rows)."""
        (
            failed,
            input_tokens,
            output_tokens,
            cache_read,
            cache_creation,
            cache_5m,
            cache_1h,
            reasoning,
            bytes_in,
            bytes_out,
            retries,
            failovers,
            tokens,
        ) = amounts
        self.requests += 1
        if failed:
            if failed == _CANCELLED:
                self.cancelled += 1
            else:
                self.errors += 1
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.cache_read_input_tokens += cache_read
        self.cache_creation_input_tokens += cache_creation
        self.cache_creation_5m_input_tokens += cache_5m
        self.cache_creation_1h_input_tokens += cache_1h
        self.reasoning_tokens += reasoning
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out
        self.retries += retries
        self.failovers += failovers
        if cost is not None:
            self.cost += cost
            self.priced += 1
        elif tokens:
            self.unpriced += 1
        if claude_cost is not None:
            self.claude_cost += claude_cost
            self.claude_priced += 1
        elif tokens:
            self.claude_unpriced += 1

    def copy_totals(self) -> Totals:
        return Totals(*(getattr(self, name) for name in Totals.__slots__))

    def merge(self, other: Totals) -> None:
        """Add `other`'s figures to these."""
        for name in Totals.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(slots=True)
class ModelUsage(Totals):
    """Totals of one provider:model, with its latencies."""

    provider: str = ""
    model: str = ""
    total_time: float = 0.0
    ttfts: Samples = field(default_factory=Samples)
    durations: Samples = field(default_factory=Samples)
    ttft_histogram: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))
    duration_histogram: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))
    #: How often each name the client asked for was routed here.
    requested: Counter[str] = field(default_factory=Counter)
    #: Failed requests by error type.
    errors_by_type: Counter[str] = field(default_factory=Counter)
    #: Times a request left this route for the next of its failover chain, by error type
    #: (those requests are counted where they were served).
    failed_over: Counter[str] = field(default_factory=Counter)

    @property
    def key(self) -> str:
        return f"{self.provider}:{self.model}" if self.provider else self.model

    @property
    def ttft_p50(self) -> float | None:
        return self.ttfts.summary()[0]

    def add_timed(
        self,
        request: Request,
        cost: float | None,
        claude: float | None,
        amounts: Amounts | None = None,
    ) -> None:
        self.add_amounts(_amounts(request) if amounts is None else amounts, cost, claude)
        self.total_time += request.duration
        self.durations.add(request.duration)
        self.duration_histogram.observe(request.duration)
        if request.ttft is not None:
            self.ttfts.add(request.ttft)
            self.ttft_histogram.observe(request.ttft)
        if request.requested:
            _count(self.requested, request.requested)
        if not request.ok and request.error_type != CLIENT_CLOSED:
            self.errors_by_type[request.error_type or "api_error"] += 1

    def copy(self) -> ModelUsage:
        """A copy of the figures. The latency samples are shared, not copied (up to 10,000
        each): a snapshot is read at once, on the event loop that records."""
        row = ModelUsage(provider=self.provider, model=self.model, total_time=self.total_time)
        for name in Totals.__slots__:
            setattr(row, name, getattr(self, name))
        row.ttfts = self.ttfts
        row.durations = self.durations
        row.ttft_histogram = self.ttft_histogram.copy()
        row.duration_histogram = self.duration_histogram.copy()
        row.requested = Counter(self.requested)
        row.errors_by_type = Counter(self.errors_by_type)
        row.failed_over = Counter(self.failed_over)
        return row


@dataclass(slots=True)
class SessionUsage(Totals):
    """Totals of one Claude Code session, per provider:model too."""

    session: str = ""
    first_seen: float = 0.0
    last_seen: float = 0.0
    agents: set[str] = field(default_factory=set)
    models: dict[tuple[str, str], ModelUsage] = field(default_factory=dict)

    def copy(self) -> SessionUsage:
        row = SessionUsage(session=self.session, first_seen=self.first_seen)
        for name in Totals.__slots__:
            setattr(row, name, getattr(self, name))
        row.last_seen = self.last_seen
        row.agents = set(self.agents)
        row.models = {k: m.copy() for k, m in self.models.items()}
        return row


@dataclass(frozen=True, slots=True)
class ErrorEntry:
    """A failed request, for the dashboard's list of recent errors."""

    at: float
    request_id: str
    endpoint: str
    requested: str
    provider: str
    model: str
    status: int
    type: str
    message: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A consistent copy of the recorder's totals."""

    #: Per provider:model of generation requests (`/v1/messages`), most requested first.
    models: list[ModelUsage]
    #: `main` (the main agent, and requests of other clients) and `subagent`.
    agents: dict[str, Totals]
    #: Distinct Claude Code sessions and subagents seen.
    sessions: int
    subagents: int
    #: Requests per Claude Code request class (`x-claude-code-request-class`).
    request_classes: dict[str, int]
    #: Generation requests per routing rule that chose their route (`[[routing.rules]]`).
    rules: dict[str, int] = field(default_factory=dict)
    #: Requests and errors per endpoint, every endpoint included.
    endpoints: dict[str, Totals] = field(default_factory=dict)
    #: Per endpoint and provider:model, for the metrics (generation requests are in `models`).
    others: list[tuple[str, ModelUsage]] = field(default_factory=list)
    #: The most recently seen sessions first.
    session_rows: list[SessionUsage] = field(default_factory=list)
    errors: list[ErrorEntry] = field(default_factory=list)
    overhead: Histogram = field(default_factory=lambda: Histogram(OVERHEAD_BUCKETS))
    started_at: float = 0.0
    #: Per (provider, masked key) and per client label.
    keys: dict[tuple[str, str], Totals] = field(default_factory=dict)
    clients: dict[str, Totals] = field(default_factory=dict)


class _Seen:
    """Distinct ids, remembering at most MAX_IDS of them."""

    def __init__(self) -> None:
        self.count = 0
        self._ids: dict[str, None] = {}

    def add(self, value: str | None) -> None:
        if value is None or value in self._ids:
            return
        self.count += 1
        self._ids[value] = None
        if len(self._ids) > MAX_IDS:
            del self._ids[next(iter(self._ids))]


def _count(counter: Counter[str], name: str) -> None:
    """Count `name`, or OTHER once MAX_NAMES names are counted (names come from clients)."""
    if name not in counter and len(counter) >= MAX_NAMES:
        name = OTHER
    counter[name] += 1


def _row(rows: dict[tuple[str, str], ModelUsage], provider: str, model: str) -> ModelUsage:
    """The row of provider:model, created unless there are MAX_MODELS already (then OTHER's)."""
    key = (provider, model)
    row = rows.get(key)
    if row is None:
        if len(rows) >= MAX_MODELS:
            key = (provider, OTHER) if (provider, OTHER) in rows or provider else ("", OTHER)
            row = rows.get(key)
            if row is not None:
                return row
        row = rows[key] = ModelUsage(provider=key[0], model=key[1])
    return row


def _tally(
    rows: dict[Any, Totals], key: Any, amounts: Amounts, cost: float | None, claude: float | None
) -> None:
    row = rows.get(key)
    if row is None:
        if len(rows) >= MAX_LABELS:
            return
        row = rows[key] = Totals()
    row.add_amounts(amounts, cost, claude)


class UsageRecorder:
    """Totals since the server started, priced with `prices` (no cost without one)."""

    def __init__(self, prices: PriceTable | None = None) -> None:
        self.prices = prices
        self.started_at = time.time()
        self._models: dict[tuple[str, str], ModelUsage] = {}
        self._others: dict[str, dict[tuple[str, str], ModelUsage]] = {}
        self._endpoints: dict[str, Totals] = {}
        self._agents = {"main": Totals(), "subagent": Totals()}
        self._classes: Counter[str] = Counter()
        self._rules: Counter[str] = Counter()
        self._sessions = _Seen()
        self._subagents = _Seen()
        self._session_rows: OrderedDict[str, SessionUsage] = OrderedDict()
        self._errors: deque[ErrorEntry] = deque(maxlen=MAX_ERRORS)
        self._overhead = Histogram(OVERHEAD_BUCKETS)
        self._keys: dict[tuple[str, str], Totals] = {}
        self._clients: dict[str, Totals] = {}
        self.series = TimeSeries()

    def record(self, request: Request) -> float | None:
        """Account `request`; returns its cost (None: no price known)."""
        cost, claude = self._costs(request)
        amounts = _amounts(request)
        endpoint = request.endpoint
        totals = self._endpoints.get(endpoint)
        if totals is None:
            totals = self._endpoints[endpoint] = Totals()
        totals.add_amounts(amounts, cost, claude)
        if request.key:
            _tally(self._keys, (request.provider, request.key), amounts, cost, claude)
        if request.client:
            _tally(self._clients, request.client, amounts, cost, claude)
        if request.overhead is not None:
            self._overhead.observe(request.overhead)
        now = time.time()
        if not request.ok and request.error_type != CLIENT_CLOSED:
            self._errors.appendleft(
                ErrorEntry(
                    request.at if request.at is not None else now,
                    request.request_id,
                    endpoint,
                    request.requested,
                    request.provider,
                    request.model,
                    request.status,
                    request.error_type or "api_error",
                    request.error or "",
                )
            )
        if endpoint not in GENERATION:
            rows = self._others.setdefault(endpoint, {})
            _row(rows, request.provider, request.model).add_timed(request, cost, claude, amounts)
            return cost
        usage = request.usage
        # The charts show generation requests, as the totals beside them do.
        self.series.add(
            now,
            request.ok,
            usage.get("input_tokens", 0) + usage.get("cache_read_input_tokens", 0),
            usage.get("output_tokens", 0),
            cost or 0.0,
        )
        _row(self._models, request.provider, request.model).add_timed(
            request, cost, claude, amounts
        )
        for provider, model, kind in request.left:
            _count(_row(self._models, provider, model).failed_over, kind)
        caller = request.caller
        self._agents[caller.role].add_amounts(amounts, cost, claude)
        if caller.request_class is not None:
            _count(self._classes, caller.request_class)
        if request.rule is not None:
            _count(self._rules, request.rule)
        self._sessions.add(caller.session)
        if caller.subagent:
            self._subagents.add(caller.agent)
        if caller.session is not None:
            self._add_session(caller, request, amounts, cost, claude, now)
        return cost

    def _add_session(
        self,
        caller: Caller,
        request: Request,
        amounts: Amounts,
        cost: float | None,
        claude: float | None,
        now: float,
    ) -> None:
        assert caller.session is not None
        rows = self._session_rows
        row = rows.get(caller.session)
        if row is None:
            row = rows[caller.session] = SessionUsage(session=caller.session, first_seen=now)
            if len(rows) > MAX_SESSIONS:
                rows.popitem(last=False)
        else:
            rows.move_to_end(caller.session)
        row.last_seen = now
        row.add_amounts(amounts, cost, claude)
        if caller.subagent and caller.agent:
            row.agents.add(caller.agent)
        _row(row.models, request.provider, request.model).add_timed(request, cost, claude, amounts)

    def _costs(self, request: Request) -> tuple[float | None, float | None]:
        if self.prices is None:
            return None, None
        at = time.time() if request.at is None else request.at
        price: Price | None = self.prices.lookup(request.provider, request.model)
        claude = self.prices.claude(request.requested) if request.requested else None
        return (
            None if price is None else price.cost(request.usage, at),
            None if claude is None else claude.cost(request.usage, at),
        )

    def snapshot(self) -> Snapshot:
        """A copy of the totals."""
        rows = [m.copy() for m in self._models.values()]
        rows.sort(key=lambda m: (-m.requests, m.key))
        others = [
            (endpoint, m.copy()) for endpoint, found in self._others.items() for m in found.values()
        ]
        return Snapshot(
            models=rows,
            agents={role: totals.copy_totals() for role, totals in self._agents.items()},
            sessions=self._sessions.count,
            subagents=self._subagents.count,
            request_classes=dict(self._classes),
            rules=dict(self._rules.most_common()),
            endpoints={name: t.copy_totals() for name, t in self._endpoints.items()},
            others=others,
            session_rows=[row.copy() for row in reversed(self._session_rows.values())],
            errors=list(self._errors),
            overhead=self._overhead.copy(),
            started_at=self.started_at,
            keys={k: t.copy_totals() for k, t in self._keys.items()},
            clients={k: t.copy_totals() for k, t in self._clients.items()},
        )
