"""Counting requests, errors, tokens, cost and latency per provider:model and per agent.

`UsageRecorder.record()` is called once per `/v1/messages` request when it ends (after the
stream's last byte); `snapshot()` gives a consistent copy for summaries. A request is priced
when it is recorded (`Price.cost`: its prompt size and time of day can change the rate), at
the price of the model it went to and at Anthropic's price of the Claude model the client
asked for. The recorder holds no I/O and no locks: the server runs on one event loop thread,
and a record is a few additions and two cached price lookups.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from vdm.usage.caller import NO_CALLER, Caller
from vdm.usage.prices import CACHE_1H, CACHE_5M, Price, PriceTable

#: Latency samples kept per provider:model for the p50 (the most recent ones).
MAX_SAMPLES = 10_000
#: Distinct session and subagent ids remembered (a long-running server sees unbounded ids;
#: beyond this many the counts go on, an id seen again after it was dropped counts twice).
MAX_IDS = 10_000

TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


@dataclass(frozen=True, slots=True)
class Request:
    """One finished request, as the server saw it."""

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


@dataclass(slots=True)
class Totals:
    """Requests, tokens and cost of a group of requests."""

    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_creation_5m_input_tokens: int = 0
    cache_creation_1h_input_tokens: int = 0
    #: Dollars of the priced requests; `unpriced` counts requests with tokens but no price.
    cost: float = 0.0
    priced: int = 0
    unpriced: int = 0
    #: The same at Anthropic's price of the Claude model each request asked for.
    claude_cost: float = 0.0
    claude_priced: int = 0
    claude_unpriced: int = 0

    def add(self, request: Request, cost: float | None, claude_cost: float | None) -> None:
        self.requests += 1
        if not request.ok:
            self.errors += 1
        usage = request.usage
        self.input_tokens += usage.get("input_tokens", 0)
        self.output_tokens += usage.get("output_tokens", 0)
        self.cache_read_input_tokens += usage.get("cache_read_input_tokens", 0)
        self.cache_creation_input_tokens += usage.get("cache_creation_input_tokens", 0)
        self.cache_creation_5m_input_tokens += usage.get(CACHE_5M, 0)
        self.cache_creation_1h_input_tokens += usage.get(CACHE_1H, 0)
        tokens = any(usage.get(k, 0) for k in TOKEN_FIELDS)
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


@dataclass(slots=True)
class ModelUsage(Totals):
    """Totals of one provider:model."""

    provider: str = ""
    model: str = ""
    total_time: float = 0.0
    ttfts: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))
    #: How often each name the client asked for was routed here.
    requested: Counter[str] = field(default_factory=Counter)

    @property
    def key(self) -> str:
        return f"{self.provider}:{self.model}" if self.provider else self.model

    @property
    def ttft_p50(self) -> float | None:
        return statistics.median(self.ttfts) if self.ttfts else None

    def add_timed(self, request: Request, cost: float | None, claude: float | None) -> None:
        self.add(request, cost, claude)
        self.total_time += request.duration
        if request.ttft is not None:
            self.ttfts.append(request.ttft)
        if request.requested:
            self.requested[request.requested] += 1

    def copy(self) -> ModelUsage:
        row = ModelUsage(provider=self.provider, model=self.model, total_time=self.total_time)
        for name in Totals.__slots__:
            setattr(row, name, getattr(self, name))
        row.ttfts = deque(self.ttfts, maxlen=MAX_SAMPLES)
        row.requested = Counter(self.requested)
        return row


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A consistent copy of the recorder's totals."""

    #: Per provider:model, most requested first.
    models: list[ModelUsage]
    #: `main` (the main agent, and requests of other clients) and `subagent`.
    agents: dict[str, Totals]
    #: Distinct Claude Code sessions and subagents seen.
    sessions: int
    subagents: int
    #: Requests per Claude Code request class (`x-claude-code-request-class`).
    request_classes: dict[str, int]


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


class UsageRecorder:
    """Totals since the server started, priced with `prices` (no cost without one)."""

    def __init__(self, prices: PriceTable | None = None) -> None:
        self.prices = prices
        self._models: dict[tuple[str, str], ModelUsage] = {}
        self._agents = {"main": Totals(), "subagent": Totals()}
        self._classes: Counter[str] = Counter()
        self._sessions = _Seen()
        self._subagents = _Seen()

    def record(self, request: Request) -> None:
        cost, claude = self._costs(request)
        key = (request.provider, request.model)
        totals = self._models.get(key)
        if totals is None:
            totals = self._models[key] = ModelUsage(provider=request.provider, model=request.model)
        totals.add_timed(request, cost, claude)
        caller = request.caller
        self._agents[caller.role].add(request, cost, claude)
        if caller.request_class is not None:
            self._classes[caller.request_class] += 1
        self._sessions.add(caller.session)
        if caller.subagent:
            self._subagents.add(caller.agent)

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
        return Snapshot(
            models=rows,
            agents={role: totals.copy_totals() for role, totals in self._agents.items()},
            sessions=self._sessions.count,
            subagents=self._subagents.count,
            request_classes=dict(self._classes),
        )
