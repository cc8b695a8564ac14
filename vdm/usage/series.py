"""The recorder's small accumulators: latency histograms with fixed buckets (what Prometheus
scrapes), recent samples for exact percentiles, and a ring of time buckets for charts.

All are plain Python on the request path: a bisect and a few additions per request.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

#: Bucket upper bounds (seconds) of the latency histograms: time to first token and request
#: duration (an agent's turn takes from a few hundred milliseconds to minutes).
LATENCY_BUCKETS = (
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    20.0,
    40.0,
    60.0,
    120.0,
    300.0,
)
#: Bucket upper bounds (seconds) of vdm's own overhead per request.
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
#: Samples kept for percentiles (the most recent ones).
MAX_SAMPLES = 10_000


@dataclass(slots=True)
class Histogram:
    """Counts per bucket (not cumulative), their sum and count; the last bucket is +Inf."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or below it), ending with (+Inf, count)."""
        out: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out

    def copy(self) -> Histogram:
        return Histogram(self.bounds, list(self.counts), self.total, self.count)


class Samples:
    """The most recent values, for exact percentiles of what happened lately."""

    __slots__ = ("values",)

    def __init__(self, values: Iterable[float] = ()) -> None:
        self.values: deque[float] = deque(values, maxlen=MAX_SAMPLES)

    def add(self, value: float) -> None:
        self.values.append(value)

    def summary(self, q: float = 0.95) -> tuple[float | None, float | None]:
        """The median (the mean of the middle two of an even count) and the `q` quantile by
        the nearest-rank method, from one sort; None without samples."""
        if not self.values:
            return None, None
        ordered = sorted(self.values)
        n = len(ordered)
        middle = n // 2
        median = ordered[middle] if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2
        return median, ordered[max(math.ceil(q * n) - 1, 0)]


#: The figures each time bucket adds up.
POINT_FIELDS = ("requests", "errors", "input_tokens", "output_tokens", "cost_usd")


class TimeSeries:
    """Totals per `bucket` seconds over the last `span` seconds (for the dashboard's charts).
    Buckets with no request are not stored; `points` fills them in."""

    __slots__ = ("bucket", "span", "_points")

    def __init__(self, bucket: int = 10, span: int = 3600) -> None:
        self.bucket = bucket
        self.span = span
        self._points: deque[list[float]] = deque(maxlen=span // bucket + 1)

    def add(self, at: float, ok: bool, input_tokens: int, output_tokens: int, cost: float) -> None:
        start = float(int(at // self.bucket) * self.bucket)
        points = self._points
        if not points or points[-1][0] < start:
            points.append([start, 0, 0, 0, 0, 0.0])
        point = points[-1] if points[-1][0] <= start else self._find(start)
        point[1] += 1
        point[2] += not ok
        point[3] += input_tokens
        point[4] += output_tokens
        point[5] += cost

    def _find(self, start: float) -> list[float]:
        """The bucket of an earlier time (a request recorded late, after a newer one)."""
        for point in reversed(self._points):
            if point[0] == start:
                return point
            if point[0] < start:
                break
        return [start, 0, 0, 0, 0, 0.0]  # too old or between buckets: dropped

    def points(self, now: float) -> list[dict[str, float]]:
        """Every bucket of the last `span` seconds up to `now`, oldest first."""
        last = int(now // self.bucket) * self.bucket
        first = last - self.span + self.bucket
        stored = {int(p[0]): p for p in self._points if p[0] >= first}
        out: list[dict[str, float]] = []
        for start in range(first, last + 1, self.bucket):
            p = stored.get(start)
            values = p[1:] if p is not None else [0, 0, 0, 0, 0.0]
            out.append({"t": start, **dict(zip(POINT_FIELDS, values, strict=True))})
        for point in out:
            point["cost_usd"] = round(point["cost_usd"], 6)
        return out
