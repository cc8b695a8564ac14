"""The recorder stays bounded whatever names clients send: rows, names asked for, request
classes, sessions; and a client's leaving is counted as cancelled, not as an error."""

from __future__ import annotations

from vdm.usage.caller import Caller
from vdm.usage.recorder import (
    CLIENT_CLOSED,
    MAX_MODELS,
    MAX_NAMES,
    MAX_SESSIONS,
    OTHER,
    Request,
    UsageRecorder,
)
from vdm.usage.series import TimeSeries

USAGE = {"input_tokens": 10, "output_tokens": 2}


def _request(model: str, **extra: object) -> Request:
    return Request("openai", model, True, USAGE, 0.1, 0.2, **extra)  # type: ignore[arg-type]


def test_models_beyond_the_limit_count_as_other() -> None:
    recorder = UsageRecorder()
    for i in range(MAX_MODELS + 50):
        recorder.record(_request(f"model-{i}"))
    rows = recorder.snapshot().models
    assert len(rows) == MAX_MODELS + 1
    other = [r for r in rows if r.model == OTHER]
    assert len(other) == 1 and other[0].requests == 50
    assert sum(r.requests for r in rows) == MAX_MODELS + 50


def test_names_asked_for_and_request_classes_are_bounded() -> None:
    recorder = UsageRecorder()
    for i in range(MAX_NAMES + 10):
        caller = Caller(session="s", request_class=f"class-{i}")
        recorder.record(_request("gpt-4o", requested=f"claude-{i}", caller=caller))
    snap = recorder.snapshot()
    (row,) = snap.models
    assert len(row.requested) == MAX_NAMES + 1 and row.requested[OTHER] == 10
    assert len(snap.request_classes) == MAX_NAMES + 1 and snap.request_classes[OTHER] == 10


def test_sessions_keep_the_most_recent() -> None:
    recorder = UsageRecorder()
    for i in range(MAX_SESSIONS + 5):
        recorder.record(_request("gpt-4o", caller=Caller(session=f"s{i}")))
    snap = recorder.snapshot()
    assert len(snap.session_rows) == MAX_SESSIONS
    assert snap.session_rows[0].session == f"s{MAX_SESSIONS + 4}"  # the latest first
    assert snap.sessions == MAX_SESSIONS + 5  # still counted


def test_a_client_leaving_is_cancelled_not_an_error() -> None:
    recorder = UsageRecorder()
    recorder.record(
        Request("openai", "gpt-4o", False, USAGE, 0.1, 0.2, error_type=CLIENT_CLOSED, status=200)
    )
    recorder.record(Request("openai", "gpt-4o", False, {}, None, 0.2, error_type="api_error"))
    snap = recorder.snapshot()
    (row,) = snap.models
    assert (row.requests, row.errors, row.cancelled) == (2, 1, 1)
    assert dict(row.errors_by_type) == {"api_error": 1}
    assert [e.type for e in snap.errors] == ["api_error"]


def test_time_series_fills_empty_buckets() -> None:
    series = TimeSeries(bucket=10, span=60)
    series.add(1000.0, True, 5, 1, 0.5)
    series.add(1003.0, False, 5, 1, 0.25)
    series.add(1031.0, True, 1, 1, 0.0)
    points = series.points(1035.0)
    assert [p["t"] for p in points] == [980, 990, 1000, 1010, 1020, 1030]
    assert points[2] == {
        "t": 1000,
        "requests": 2,
        "errors": 1,
        "input_tokens": 10,
        "output_tokens": 2,
        "cost_usd": 0.75,
    }
    assert points[3]["requests"] == 0 and points[5]["requests"] == 1
