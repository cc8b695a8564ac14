"""Counting requests, errors, tokens and latency per provider:model.

`UsageRecorder.record()` is called once per `/v1/messages` request when it ends (after the
stream's last byte); `snapshot()` gives a consistent copy for summaries. The recorder holds
no I/O and no locks: the server runs on one event loop thread, and a record is a few
integer additions.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

#: Latency samples kept per provider:model for the p50 (the most recent ones).
MAX_SAMPLES = 10_000

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
    #: Anthropic usage fields (`input_tokens` excludes cache reads), missing ones are 0.
    usage: Mapping[str, int]
    #: Seconds from the request's arrival to the first upstream data (the whole answer when
    #: not streaming); None when nothing came back.
    ttft: float | None
    duration: float


@dataclass(slots=True)
class ModelUsage:
    """Totals of one provider:model."""

    provider: str
    model: str
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    total_time: float = 0.0
    ttfts: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))

    @property
    def key(self) -> str:
        return f"{self.provider}:{self.model}" if self.provider else self.model

    @property
    def ttft_p50(self) -> float | None:
        return statistics.median(self.ttfts) if self.ttfts else None

    def add(self, request: Request) -> None:
        self.requests += 1
        if not request.ok:
            self.errors += 1
        usage = request.usage
        self.input_tokens += usage.get("input_tokens", 0)
        self.output_tokens += usage.get("output_tokens", 0)
        self.cache_read_input_tokens += usage.get("cache_read_input_tokens", 0)
        self.cache_creation_input_tokens += usage.get("cache_creation_input_tokens", 0)
        self.total_time += request.duration
        if request.ttft is not None:
            self.ttfts.append(request.ttft)

    def copy(self) -> ModelUsage:
        return ModelUsage(
            self.provider,
            self.model,
            self.requests,
            self.errors,
            self.input_tokens,
            self.output_tokens,
            self.cache_read_input_tokens,
            self.cache_creation_input_tokens,
            self.total_time,
            deque(self.ttfts, maxlen=MAX_SAMPLES),
        )


class UsageRecorder:
    """Totals per provider:model since the server started."""

    def __init__(self) -> None:
        self._models: dict[tuple[str, str], ModelUsage] = {}

    def record(self, request: Request) -> None:
        key = (request.provider, request.model)
        totals = self._models.get(key)
        if totals is None:
            totals = self._models[key] = ModelUsage(request.provider, request.model)
        totals.add(request)

    def snapshot(self) -> list[ModelUsage]:
        """A copy of the totals, most requested first."""
        rows = [m.copy() for m in self._models.values()]
        rows.sort(key=lambda m: (-m.requests, m.key))
        return rows
