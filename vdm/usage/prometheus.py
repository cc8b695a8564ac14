"""`GET /metrics`: the recorder's figures in Prometheus' text format (prometheus-client).

Nothing is counted twice: a collector reads the recorder's snapshot when Prometheus scrapes,
so the request path pays for no metric objects or locks. Label sets are bounded: `endpoint`
is one of a fixed few, `provider` one of the configured providers (empty for a request
refused before routing), `model` at most `MAX_MODELS` rows per endpoint (the rest is
`(other)`), `type` an Anthropic error type or `other`. Session ids, clients and keys are
never labels (they are in the JSON views); nothing here is a secret.

    vdm_requests_total{endpoint, provider, model}
    vdm_request_errors_total{endpoint, provider, model, type}
    vdm_requests_cancelled_total{endpoint, provider, model}   the client left first
    vdm_tokens_total{provider, model, kind}        kind: input, output, cache_read,
                                                   cache_write, reasoning
    vdm_cost_usd_total{provider, model}
    vdm_upstream_retries_total{provider, model}, vdm_failovers_total{provider, model}
    vdm_failed_over_total{provider, model, type}   the route a failover left, and why
    vdm_bytes_total{endpoint, direction}           direction: in, out
    vdm_time_to_first_token_seconds{provider, model}   histogram
    vdm_request_duration_seconds{endpoint, provider, model}   histogram
    vdm_overhead_seconds                           histogram of vdm's own time per request
    vdm_active_requests{endpoint}, vdm_keys_cooling{provider}
    vdm_key_requests_total{provider, key}          key: masked (`sk-…1234`), at most 200
    vdm_client_requests_total{client}              `wrap`, `proxy`, `key:<hash>`, `anonymous`
    vdm_agent_requests_total{role}, vdm_sessions_total, vdm_build_info{version}
    process_*                                      prometheus-client's process collector
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from vdm.usage.recorder import ModelUsage, Snapshot
from vdm.usage.series import Histogram

#: The content type of the text format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Error types that are labels as they are; any other counts as `other`.
ERROR_TYPES = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "request_too_large",
        "rate_limit_error",
        "api_error",
        "overloaded_error",
        "timeout_error",
        "billing_error",
    }
)
_TOKEN_KINDS = (
    ("input", "input_tokens"),
    ("output", "output_tokens"),
    ("cache_read", "cache_read_input_tokens"),
    ("cache_write", "cache_creation_input_tokens"),
    ("reasoning", "reasoning_tokens"),
)


def _buckets(histogram: Histogram) -> list[tuple[str, float]]:
    return [
        ("+Inf" if bound == float("inf") else repr(bound), float(n))
        for bound, n in histogram.cumulative()
    ]


def _rows(snapshot: Snapshot) -> Iterator[tuple[str, ModelUsage]]:
    for row in snapshot.models:
        yield "messages", row
    yield from snapshot.others


class VdmCollector(Collector):
    """Reads the gateway's figures at every scrape."""

    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        active: Callable[[], Mapping[str, int]],
        cooling: Callable[[], Mapping[str, int]],
        version: str,
    ) -> None:
        self.snapshot = snapshot
        self.active = active
        self.cooling = cooling
        self.version = version

    def collect(self) -> Iterable[Metric]:
        snap = self.snapshot()
        requests = CounterMetricFamily(
            "vdm_requests", "Requests served", labels=["endpoint", "provider", "model"]
        )
        errors = CounterMetricFamily(
            "vdm_request_errors",
            "Requests that failed, by error type",
            labels=["endpoint", "provider", "model", "type"],
        )
        cancelled = CounterMetricFamily(
            "vdm_requests_cancelled",
            "Requests the client gave up on before the answer was complete",
            labels=["endpoint", "provider", "model"],
        )
        tokens = CounterMetricFamily(
            "vdm_tokens", "Tokens by kind", labels=["provider", "model", "kind"]
        )
        cost = CounterMetricFamily(
            "vdm_cost_usd", "Cost in US dollars (priced requests)", labels=["provider", "model"]
        )
        retries = CounterMetricFamily(
            "vdm_upstream_retries",
            "Upstream attempts beyond the first",
            labels=["provider", "model"],
        )
        failovers = CounterMetricFamily(
            "vdm_failovers", "Requests served after failing over", labels=["provider", "model"]
        )
        left = CounterMetricFamily(
            "vdm_failed_over",
            "Requests that left this route for the next of their failover chain",
            labels=["provider", "model", "type"],
        )
        ttft = HistogramMetricFamily(
            "vdm_time_to_first_token_seconds",
            "Seconds from a request's arrival to the first upstream data",
            labels=["provider", "model"],
        )
        duration = HistogramMetricFamily(
            "vdm_request_duration_seconds",
            "Seconds from a request's arrival to the end of its response",
            labels=["endpoint", "provider", "model"],
        )
        for endpoint, row in _rows(snap):
            labels = [endpoint, row.provider, row.model]
            requests.add_metric(labels, row.requests)
            if row.cancelled:
                cancelled.add_metric(labels, row.cancelled)
            for kind, n in row.errors_by_type.items():
                errors.add_metric([*labels, kind if kind in ERROR_TYPES else "other"], n)
            duration.add_metric(
                labels,
                _buckets(row.duration_histogram),
                row.duration_histogram.total,
            )
            if endpoint != "messages":
                continue
            pair = [row.provider, row.model]
            for kind, name in _TOKEN_KINDS:
                tokens.add_metric([*pair, kind], getattr(row, name))
            if row.priced:
                cost.add_metric(pair, row.cost)
            retries.add_metric(pair, row.retries)
            failovers.add_metric(pair, row.failovers)
            for kind, n in row.failed_over.items():
                left.add_metric([*pair, kind if kind in ERROR_TYPES else "other"], n)
            ttft.add_metric(pair, _buckets(row.ttft_histogram), row.ttft_histogram.total)
        yield from (
            requests,
            errors,
            cancelled,
            tokens,
            cost,
            retries,
            failovers,
            left,
            ttft,
            duration,
        )
        yield from self._others(snap)

    def _others(self, snap: Snapshot) -> Iterator[Metric]:
        transferred = CounterMetricFamily(
            "vdm_bytes", "Bytes of request and response bodies", labels=["endpoint", "direction"]
        )
        for endpoint, totals in sorted(snap.endpoints.items()):
            transferred.add_metric([endpoint, "in"], totals.bytes_in)
            transferred.add_metric([endpoint, "out"], totals.bytes_out)
        yield transferred
        overhead = HistogramMetricFamily(
            "vdm_overhead_seconds", "Seconds vdm itself spent on a request, excluding upstreams"
        )
        overhead.add_metric([], _buckets(snap.overhead), snap.overhead.total)
        yield overhead
        active = GaugeMetricFamily(
            "vdm_active_requests", "Requests being served now", labels=["endpoint"]
        )
        for endpoint, n in sorted(self.active().items()):
            active.add_metric([endpoint], n)
        yield active
        cooling = GaugeMetricFamily(
            "vdm_keys_cooling", "Provider keys cooling down now", labels=["provider"]
        )
        for provider, n in sorted(self.cooling().items()):
            cooling.add_metric([provider], n)
        yield cooling
        keys = CounterMetricFamily(
            "vdm_key_requests",
            "Requests served with each provider key (masked; the last key a request used)",
            labels=["provider", "key"],
        )
        for (provider, key), totals in sorted(snap.keys.items()):
            keys.add_metric([provider, key], totals.requests)
        yield keys
        clients = CounterMetricFamily(
            "vdm_client_requests",
            "Requests per client (a label, never a credential)",
            labels=["client"],
        )
        for client, totals in sorted(snap.clients.items()):
            clients.add_metric([client], totals.requests)
        yield clients
        agents = CounterMetricFamily(
            "vdm_agent_requests", "Generation requests by Claude Code agent role", labels=["role"]
        )
        for role, totals in sorted(snap.agents.items()):
            agents.add_metric([role], totals.requests)
        yield agents
        yield CounterMetricFamily(
            "vdm_sessions", "Distinct Claude Code sessions seen", value=snap.sessions
        )
        info = GaugeMetricFamily("vdm_build_info", "vdm's version", labels=["version"])
        info.add_metric([self.version], 1)
        yield info


def registry(collector: VdmCollector) -> CollectorRegistry:
    """A registry of vdm's figures and the process's (memory, CPU, descriptors)."""
    found = CollectorRegistry(auto_describe=False)
    found.register(collector)
    ProcessCollector(registry=found)
    return found


def exposition(found: CollectorRegistry) -> bytes:
    """The registry in the text format."""
    return generate_latest(found)
