"""The recorder's totals and the summary built from them."""

from __future__ import annotations

from vdm.usage.prices import PriceTable
from vdm.usage.recorder import Request, UsageRecorder
from vdm.usage.summary import summary_dict, summary_text


def _record(recorder: UsageRecorder, model: str, ok: bool = True, ttft: float = 0.1) -> None:
    usage = {"input_tokens": 100, "output_tokens": 10, "cache_read_input_tokens": 50}
    recorder.record(Request("openai", model, ok, usage if ok else {}, ttft if ok else None, 0.5))


def test_totals_per_model_with_errors_and_median_ttft() -> None:
    recorder = UsageRecorder()
    for ttft in (0.1, 0.3, 0.2):
        _record(recorder, "gpt-4o", ttft=ttft)
    _record(recorder, "gpt-4o", ok=False)
    _record(recorder, "house-model")
    first, second = recorder.snapshot()
    assert (first.key, first.requests, first.errors) == ("openai:gpt-4o", 4, 1)
    assert (first.input_tokens, first.output_tokens, first.cache_read_input_tokens) == (
        300,
        30,
        150,
    )
    assert first.ttft_p50 == 0.2 and first.total_time == 2.0
    assert second.key == "openai:house-model"


def test_snapshot_is_a_copy() -> None:
    recorder = UsageRecorder()
    _record(recorder, "gpt-4o")
    (row,) = recorder.snapshot()
    _record(recorder, "gpt-4o")
    assert row.requests == 1 and recorder.snapshot()[0].requests == 2


def test_unpriced_models_are_marked_and_the_total_says_so() -> None:
    recorder = UsageRecorder()
    _record(recorder, "gpt-4o")
    _record(recorder, "house-model")
    data = summary_dict(recorder.snapshot(), PriceTable.with_user({}), exit_code=0)
    priced, unpriced = data["models"]
    assert priced["cost_usd"] > 0 and unpriced["cost_usd"] is None
    assert data["total"]["cost_usd"] == priced["cost_usd"]
    assert data["total"]["cost_complete"] is False
    text = summary_text(data)
    total = next(line for line in text.splitlines() if line.strip().startswith("total"))
    assert total.rstrip().endswith("+")  # at least this much
    assert "add one under [prices]" in text


def test_an_idle_session_says_so() -> None:
    data = summary_dict([], PriceTable.with_user({}))
    assert summary_text(data) == "vdm: no requests went through the session proxy"
