"""Accounting after scripted traffic: `/metrics` (parsed with prometheus-client's own parser),
`/metrics/running-totals` (and its filters), `/metrics/active-requests` (JSON and SSE), the
`request-id` and `x-vdm-overhead-ms` headers, and no secret anywhere in them.

vdm runs on real Hypercorn in front of fake upstreams that are real HTTP servers; the
official anthropic SDK and httpx are the clients.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.fakes.anthropic_upstream import (
    AnthropicSseReply,
    FakeAnthropic,
    anthropic_stream_events,
)
from tests.fakes.openai_upstream import FakeOpenAI, JsonReply, SseReply, completion, stream_chunks
from tests.harness import RunningVdm, running_vdm

OPENAI_KEY = "sk-openai-metrics-secret-1111"
ANT_KEY = "sk-ant-metrics-secret-2222"
#: How vdm names a client that sends `x-api-key: unused` (and no proxy key is set).
CLIENT = "key:" + hashlib.sha256(b"unused").hexdigest()[:8]
SESSION = "3f0c2a5e-5b2c-4c8e-9a57-metrics-test"


@pytest.fixture
def vdm(fake: FakeOpenAI, ant: FakeAnthropic) -> Iterator[RunningVdm]:
    env = {
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": fake.base_url,
        "ANTHROPIC_API_KEY": ANT_KEY,
        "ANTHROPIC_BASE_URL": ant.base_url,
        "VDM_DEFAULT_PROVIDER": "openai",
        "OPENAI_ALIAS_FAST": "gpt-4o-mini",
        "MAX_RETRIES": "2",
        # Priced, so cost shows in the metrics.
        "OPENAI_ALIAS_SMART": "gpt-4o",
    }
    with running_vdm(env) as server:
        yield server


def _client(vdm: RunningVdm, session: str | None = SESSION) -> anthropic.Anthropic:
    headers = {"x-claude-code-session-id": session} if session else {}
    return anthropic.Anthropic(
        base_url=vdm.url, api_key="unused", max_retries=0, default_headers=headers
    )


def _hello(model: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }


def _samples(vdm: RunningVdm) -> list[Sample]:
    response = httpx.get(f"{vdm.url}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return [s for family in text_string_to_metric_families(response.text) for s in family.samples]


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and labels.items() <= s.labels.items()]
    assert found, f"no sample {name} {labels}"
    return sum(found)


def _scripted_traffic(vdm: RunningVdm, fake: FakeOpenAI, ant: FakeAnthropic) -> None:
    """A JSON answer with cached and reasoning tokens, a stream, a retried 503, an upstream
    error, an Anthropic-format stream, count_tokens, a models list, and an unroutable name."""
    fake.enqueue(
        JsonReply(
            completion(
                "Hi",
                prompt_tokens=1200,
                cached_tokens=1000,
                completion_tokens=30,
                reasoning_tokens=20,
            )
        )
    )
    fake.enqueue(SseReply(stream_chunks("Hello there", prompt_tokens=50, completion_tokens=7)))
    fake.enqueue(JsonReply({"error": {"message": "busy", "type": "server_error"}}, status=503))
    fake.enqueue(JsonReply(completion("After a retry", prompt_tokens=10, completion_tokens=4)))
    fake.enqueue(
        JsonReply({"error": {"message": "nope", "type": "invalid_request_error"}}, status=400)
    )
    ant.enqueue(
        AnthropicSseReply(
            anthropic_stream_events("From Claude", input_tokens=21, output_tokens=5, cache_read=300)
        )
    )
    with _client(vdm) as client:
        client.messages.create(**_hello("smart"))
        with client.messages.stream(**_hello("fast")) as stream:
            stream.until_done()
        client.messages.create(**_hello("fast"))
        with pytest.raises(anthropic.BadRequestError):
            client.messages.create(**_hello("fast"))
        with client.messages.stream(**_hello("anthropic:claude-haiku-4-5")) as stream:
            stream.until_done()
        client.messages.count_tokens(model="fast", messages=[{"role": "user", "content": "hi"}])
        client.models.list()
        with pytest.raises(anthropic.BadRequestError):
            client.messages.create(**_hello("nowhere:model"))


def _totals_now(
    vdm: RunningVdm, count: int, headers: dict[str, str] | None = None, **query: str
) -> dict[str, Any]:
    """The running totals once `count` requests are accounted (a stream is accounted just
    after its client has read the end)."""
    deadline = time.monotonic() + 5
    while True:
        url = f"{vdm.url}/metrics/running-totals"
        data = httpx.get(url, params=query, headers=headers, timeout=5).json()
        done = sum(e["requests"] for e in data["endpoints"].values())
        if done >= count or time.monotonic() > deadline:
            return data  # type: ignore[no-any-return]
        time.sleep(0.02)


def test_counters_and_histograms_after_scripted_traffic(
    vdm: RunningVdm, fake: FakeOpenAI, ant: FakeAnthropic
) -> None:
    _scripted_traffic(vdm, fake, ant)
    _totals_now(vdm, 8)
    samples = _samples(vdm)
    requests = "vdm_requests_total"
    assert _value(samples, requests, endpoint="messages", provider="openai", model="gpt-4o") == 1
    assert _value(samples, requests, endpoint="messages", model="gpt-4o-mini") == 3
    assert _value(samples, requests, endpoint="messages", provider="anthropic") == 1
    assert _value(samples, requests, endpoint="count_tokens") == 1
    assert _value(samples, requests, endpoint="models") == 1
    # Refused before routing: no provider, the name asked for.
    assert _value(samples, requests, endpoint="messages", provider="", model="nowhere:model") == 1
    errors = "vdm_request_errors_total"
    assert _value(samples, errors, model="gpt-4o-mini", type="invalid_request_error") == 1
    assert _value(samples, errors, model="nowhere:model", type="invalid_request_error") == 1
    tokens = "vdm_tokens_total"
    assert _value(samples, tokens, model="gpt-4o", kind="cache_read") == 1000
    assert _value(samples, tokens, model="gpt-4o", kind="input") == 200
    assert _value(samples, tokens, model="gpt-4o", kind="reasoning") == 20
    assert _value(samples, tokens, model="gpt-4o-mini", kind="output") == 11
    assert _value(samples, tokens, provider="anthropic", kind="cache_read") == 300
    assert _value(samples, "vdm_upstream_retries_total", model="gpt-4o-mini") == 1
    assert _value(samples, "vdm_cost_usd_total", model="gpt-4o") > 0
    # Histograms: every generation request observed once, first-token times only with data.
    count = _value(
        samples, "vdm_request_duration_seconds_count", endpoint="messages", model="gpt-4o-mini"
    )
    assert count == 3
    assert _value(samples, "vdm_time_to_first_token_seconds_count", model="gpt-4o-mini") == 2
    inf = _value(
        samples,
        "vdm_request_duration_seconds_bucket",
        endpoint="messages",
        model="gpt-4o-mini",
        le="+Inf",
    )
    assert inf == count
    assert _value(samples, "vdm_overhead_seconds_count") >= 8
    assert _value(samples, "vdm_bytes_total", endpoint="messages", direction="out") > 0
    assert _value(samples, "vdm_agent_requests_total", role="main") == 6
    assert _value(samples, "vdm_sessions_total") == 1
    assert _value(samples, "vdm_key_requests_total", provider="openai", key="sk-…1111") == 4
    assert _value(samples, "vdm_client_requests_total", client=CLIENT) == 8
    assert any(s.name == "process_resident_memory_bytes" for s in samples)
    # Metric scrapes and health checks are not the gateway's work: not counted.
    assert not [
        s
        for s in samples
        if s.labels.get("endpoint") in ("metrics", "health") and s.name == requests
    ]


def test_running_totals_with_filters(vdm: RunningVdm, fake: FakeOpenAI, ant: FakeAnthropic) -> None:
    _scripted_traffic(vdm, fake, ant)
    data = _totals_now(vdm, 8)
    models = {f"{m['provider']}:{m['model']}": m for m in data["models"]}
    smart = models["openai:gpt-4o"]
    assert (smart["input_tokens"], smart["cache_read_input_tokens"]) == (200, 1000)
    assert smart["reasoning_tokens"] == 20 and smart["requested"] == {"smart": 1}
    assert smart["cost_usd"] > 0 and smart["ttft_p50_ms"] is not None
    mini = models["openai:gpt-4o-mini"]
    assert (mini["requests"], mini["errors"], mini["retries"]) == (3, 1, 1)
    assert mini["errors_by_type"] == {"invalid_request_error": 1}
    assert mini["latency_p95_ms"] >= mini["latency_p50_ms"] > 0
    assert data["endpoints"]["count_tokens"]["requests"] == 1
    assert data["sessions"] == 1
    keys = {(k["provider"], k["key"]): k for k in data["keys"]}
    assert keys[("openai", "sk-…1111")]["requests"] == 4  # the upstream calls made with it
    assert keys[("anthropic", "sk-…2222")]["requests"] >= 1
    # No proxy key: the key the client sent names it (a one-way hash, never the key).
    assert [c["client"] for c in data["clients"]] == [CLIENT]
    only = _totals_now(vdm, 8, provider="anthropic")
    assert [m["provider"] for m in only["models"]] == ["anthropic"]
    assert only["total"]["cache_read_input_tokens"] == 300
    assert only["filter"]["provider"] == "anthropic"
    one = _totals_now(vdm, 8, model="gpt-4o")
    assert [m["model"] for m in one["models"]] == ["gpt-4o"]
    by_session = _totals_now(vdm, 8, session=SESSION)
    assert by_session["total"]["requests"] == 6  # generation requests of that session
    assert _totals_now(vdm, 8, session="another")["models"] == []


def test_every_response_has_ids_and_overhead(
    vdm: RunningVdm, fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vdm.requests")
    fake.enqueue(JsonReply(completion("Hi"), headers={"x-request-id": "req_upstream_abc123"}))
    body = json.dumps(_hello("fast")).encode()
    headers = {"content-type": "application/json"}
    ok = httpx.post(f"{vdm.url}/v1/messages", content=body, headers=headers, timeout=5)
    missing = httpx.get(f"{vdm.url}/no/such/path", timeout=5)
    health = httpx.get(f"{vdm.url}/health", timeout=5)
    ids = [r.headers["request-id"] for r in (ok, missing, health)]
    assert all(i.startswith("req_vdm_") and len(i) == 32 for i in ids)
    assert len(set(ids)) == 3
    assert ok.headers["x-vdm-upstream-request-id"] == "req_upstream_abc123"
    overhead = float(ok.headers["x-vdm-overhead-ms"])
    total = ok.elapsed.total_seconds() * 1000
    assert 0 <= overhead < total
    deadline = time.monotonic() + 5
    lines: list[logging.LogRecord] = []
    while len(lines) < 2 and time.monotonic() < deadline:
        lines = [r for r in caplog.records if r.name == "vdm.requests"]
        time.sleep(0.01)
    texts = [r.getMessage() for r in lines]
    assert any(t.startswith(ids[0]) and "upstream_id=req_upstream_abc123" in t for t in texts)
    assert any(t.startswith(ids[1]) and "error 404" in t for t in texts)
    fields = [r.vdm_request for r in lines if r.getMessage().startswith(ids[0])][0]  # type: ignore[attr-defined]
    assert fields["request_id"] == ids[0] and fields["model"] == "gpt-4o-mini"
    assert fields["overhead_ms"] == pytest.approx(overhead, abs=0.01)


def test_active_requests_show_a_running_stream(vdm: RunningVdm, fake: FakeOpenAI) -> None:
    fake.enqueue(SseReply(stream_chunks("slow answer", pieces=4), delay=0.3))
    done = threading.Event()

    def run() -> None:
        with _client(vdm) as client, client.messages.stream(**_hello("fast")) as stream:
            stream.until_done()
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    active: list[dict[str, Any]] = []
    # Listed from its arrival; its model once its body is read and routed: wait for that.
    while not (active and active[0]["model"]) and time.monotonic() < deadline:
        active = httpx.get(f"{vdm.url}/metrics/active-requests", timeout=5).json()["active"]
        time.sleep(0.02)
    assert len(active) == 1
    (running,) = active
    assert running["requested"] == "fast" and running["model"] == "gpt-4o-mini"
    assert running["stream"] is True and running["session"] == SESSION
    assert running["request_id"].startswith("req_vdm_") and running["elapsed_ms"] >= 0
    # The live feed: SSE `active` events, ended by the client.
    with httpx.stream(
        "GET",
        f"{vdm.url}/metrics/active-requests",
        headers={"accept": "text/event-stream"},
        timeout=5,
    ) as feed:
        assert feed.headers["content-type"].startswith("text/event-stream")
        for line in feed.iter_lines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                assert "active" in event and "count" in event
                break
    thread.join(5)
    assert done.is_set()
    final = httpx.get(f"{vdm.url}/metrics/active-requests", timeout=5).json()
    assert final == {"count": 0, "active": []}


def test_no_secret_in_metrics_logs_or_dashboard(
    vdm: RunningVdm, fake: FakeOpenAI, ant: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _scripted_traffic(vdm, fake, ant)
    _totals_now(vdm, 8)
    texts = [
        httpx.get(f"{vdm.url}{path}", timeout=5).text
        for path in (
            "/metrics",
            "/metrics/running-totals",
            "/metrics/active-requests",
            "/dashboard/api/state",
            "/health",
        )
    ]
    texts.append("\n".join(r.getMessage() for r in caplog.records))
    texts.append(json.dumps([getattr(r, "vdm_request", None) for r in caplog.records]))
    for text in texts:
        for secret in (OPENAI_KEY, ANT_KEY, OPENAI_KEY[-12:], ANT_KEY[-12:]):
            assert secret not in text


def test_metrics_need_the_proxy_key_when_one_is_set(fake: FakeOpenAI) -> None:
    env = {
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": fake.base_url,
        "PROXY_API_KEY": "proxy-key-for-metrics",
    }
    with running_vdm(env) as vdm:
        for path in ("/metrics", "/metrics/running-totals", "/metrics/active-requests"):
            refused = httpx.get(f"{vdm.url}{path}", timeout=5)
            assert refused.status_code == 401, path
            bearer = {"authorization": "Bearer proxy-key-for-metrics"}
            assert httpx.get(f"{vdm.url}{path}", headers=bearer, timeout=5).status_code == 200


def test_overhead_excludes_the_upstreams_time(
    vdm: RunningVdm, fake: FakeOpenAI, ant: FakeAnthropic
) -> None:
    """An upstream that takes 300 ms: what vdm reports as its own time stays far below it,
    on the translated JSON and stream paths, a retried call and Anthropic's count_tokens."""
    slow = 0.3
    fake.enqueue(JsonReply(completion("Hi"), delay=slow))
    fake.enqueue(SseReply(stream_chunks("Hi there"), pauses={0: slow}))
    fake.enqueue(JsonReply({"error": {"message": "busy", "type": "server_error"}}, status=503))
    fake.enqueue(JsonReply(completion("Hi"), delay=slow))
    ant.enqueue(JsonReply({"input_tokens": 7}, delay=slow))
    headers = {"content-type": "application/json"}
    calls = [
        ("/v1/messages", _hello("fast")),
        ("/v1/messages", _hello("fast", stream=True)),
        ("/v1/messages", _hello("fast")),
        ("/v1/messages/count_tokens", {"model": "anthropic:claude-haiku-4-5", **_hello("x")}),
    ]
    for path, body in calls:
        if path.endswith("count_tokens"):
            body = {**body, "model": "anthropic:claude-haiku-4-5"}
            body.pop("max_tokens")
        response = httpx.post(f"{vdm.url}{path}", json=body, headers=headers, timeout=10)
        assert response.status_code == 200, (path, response.text)
        overhead = float(response.headers["x-vdm-overhead-ms"])
        assert overhead < 150, (path, overhead)  # the upstream alone took 300 ms


def test_every_log_line_of_a_request_carries_its_id(vdm: RunningVdm, fake: FakeOpenAI) -> None:
    """The upstream's 503 is retried: the retry's log line, written deep in the upstream
    client, carries the id of the response the client got."""
    from vdm.server.logs import TextFormatter

    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))  # formatted where the record is made

    handler = Collect()
    handler.setFormatter(TextFormatter())
    root = logging.getLogger("vdm")
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        fake.enqueue(JsonReply({"error": {"message": "busy", "type": "server_error"}}, status=503))
        fake.enqueue(JsonReply(completion("Hi")))
        response = httpx.post(f"{vdm.url}/v1/messages", json=_hello("fast"), timeout=10)
        assert response.status_code == 200
        request_id = response.headers["request-id"]
        deadline = time.monotonic() + 5
        while not any(request_id + " " in line for line in lines):
            assert time.monotonic() < deadline, lines
            time.sleep(0.01)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    (retry,) = [line for line in lines if "retry 1 of 2" in line]
    assert f"[{request_id}]" in retry
    assert any(line.split(": ", 1)[1].startswith(request_id) for line in lines)


def test_failovers_and_cancelled_requests_are_counted(fake: FakeOpenAI, other: FakeOpenAI) -> None:
    env = {
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": fake.base_url,
        "OTHER_API_KEY": "sk-other-metrics-3333",
        "OTHER_BASE_URL": other.base_url,
        "OPENAI_ALIAS_FAST": "model-a, other:model-b",
        "MAX_RETRIES": "0",
    }
    with running_vdm(env) as vdm:
        fake.enqueue(JsonReply({"error": {"message": "slow down", "type": "rate"}}, status=429))
        other.enqueue(JsonReply(completion("from b")))
        response = httpx.post(f"{vdm.url}/v1/messages", json=_hello("fast"), timeout=10)
        assert response.headers["x-vdm-served-by"] == "other:model-b"
        # A client that leaves mid-stream: cancelled, not an error.
        other.enqueue(SseReply(stream_chunks("a long answer", pieces=5), delay=0.5))
        with httpx.stream(
            "POST", f"{vdm.url}/v1/messages", json=_hello("other:model-b", stream=True), timeout=10
        ) as stream:
            next(stream.iter_raw())
        data = _totals_now(vdm, 2)
        deadline = time.monotonic() + 5
        while data["total"]["requests"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
            data = _totals_now(vdm, 2)
        row = {m["model"]: m for m in data["models"]}["model-b"]
        assert (row["requests"], row["failovers"], row["errors"], row["cancelled"]) == (2, 1, 0, 1)
        samples = _samples(vdm)
        assert _value(samples, "vdm_failovers_total", provider="other", model="model-b") == 1
        left = "vdm_failed_over_total"
        assert (
            _value(samples, left, provider="openai", model="model-a", type="rate_limit_error") == 1
        )
        model_a = {m["model"]: m for m in data["models"]}["model-a"]
        assert model_a["requests"] == 0 and model_a["failed_over"] == {"rate_limit_error": 1}
        cancelled = "vdm_requests_cancelled_total"
        assert _value(samples, cancelled, provider="other", model="model-b") == 1
        state = httpx.get(f"{vdm.url}/dashboard/api/state", timeout=5).json()
        assert state["recent_errors"] == []  # neither the failover nor the client's leaving


def test_no_proxy_key_session_or_client_key_leaks(fake: FakeOpenAI, ant: FakeAnthropic) -> None:
    proxy, client_key = "proxy-secret-metrics-4444", "sk-ant-client-own-metrics-5555"
    env = {
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": fake.base_url,
        "ANTHROPIC_API_KEY": "!PASSTHRU",
        "ANTHROPIC_BASE_URL": ant.base_url,
        "PROXY_API_KEY": proxy,
    }
    auth = {"authorization": f"Bearer {proxy}"}
    with running_vdm(env) as vdm:
        ant.enqueue(AnthropicSseReply(anthropic_stream_events("Hi")))
        headers = {**auth, "x-api-key": client_key}
        body = _hello("anthropic:claude-haiku-4-5", stream=True)
        with httpx.stream(
            "POST", f"{vdm.url}/v1/messages", json=body, headers=headers, timeout=10
        ) as r:
            r.read()
        httpx.post(f"{vdm.url}/v1/messages", json=_hello("fast"), headers=auth, timeout=10)
        data = _totals_now(vdm, 2, auth)
        clients = {c["client"] for c in data["clients"]}
        assert clients == {"proxy", "key:" + hashlib.sha256(client_key.encode()).hexdigest()[:8]}
        texts = [
            httpx.get(f"{vdm.url}{path}", headers=auth, timeout=5).text
            for path in ("/metrics", "/metrics/running-totals", "/dashboard/api/state")
        ]
        for text in texts:
            for secret in (proxy, client_key, client_key[-12:], proxy[-12:]):
                assert secret not in text


def test_a_cors_preflight_has_an_id_and_is_not_counted(fake: FakeOpenAI) -> None:
    origin = "http://localhost:5173"
    env = {"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": fake.base_url}
    with running_vdm(env, allowed_origins=(origin,)) as vdm:
        response = httpx.options(
            f"{vdm.url}/v1/messages",
            headers={"origin": origin, "access-control-request-method": "POST"},
            timeout=5,
        )
        assert response.status_code == 204
        assert response.headers["request-id"].startswith("req_vdm_")
        data = httpx.get(f"{vdm.url}/metrics/running-totals", timeout=5).json()
        assert data["endpoints"] == {} and data["models"] == []


def test_long_model_names_are_cut_in_the_figures(vdm: RunningVdm, fake: FakeOpenAI) -> None:
    name = "gpt-" + "x" * 2000
    response = httpx.post(f"{vdm.url}/v1/messages", json=_hello(f"openai:{name}"), timeout=10)
    assert response.status_code == 200
    data = _totals_now(vdm, 1)
    (row,) = data["models"]
    assert row["model"] == name[:128] and list(row["requested"]) == [f"openai:{name}"[:128]]
    assert name not in httpx.get(f"{vdm.url}/metrics", timeout=5).text
