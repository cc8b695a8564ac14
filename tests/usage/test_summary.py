"""The recorder's totals (per model, per agent, sessions) and the summary built from them."""

from __future__ import annotations

import pytest

from vdm.usage.caller import Caller
from vdm.usage.prices import CACHE_1H, PriceTable
from vdm.usage.recorder import MAX_IDS, Request, UsageRecorder
from vdm.usage.summary import summary_dict, summary_text

PRICES = PriceTable.with_user({})
USAGE = {"input_tokens": 100, "output_tokens": 10, "cache_read_input_tokens": 50}
MAIN = Caller(session="s1", request_class="main")


def _record(
    recorder: UsageRecorder,
    model: str,
    ok: bool = True,
    ttft: float = 0.1,
    requested: str = "",
    caller: Caller = MAIN,
    provider: str = "openai",
    usage: dict[str, int] | None = None,
) -> None:
    recorder.record(
        Request(
            provider,
            model,
            ok,
            (usage or USAGE) if ok else {},
            ttft if ok else None,
            0.5,
            requested=requested,
            caller=caller,
        )
    )


def _sub(agent: str, session: str = "s1") -> Caller:
    return Caller(session=session, agent=agent, request_class="subagent", agent_type="Explore")


def test_totals_per_model_with_errors_and_median_ttft() -> None:
    recorder = UsageRecorder(PRICES)
    for ttft in (0.1, 0.3, 0.2):
        _record(recorder, "gpt-4o", ttft=ttft)
    _record(recorder, "gpt-4o", ok=False)
    _record(recorder, "house-model")
    first, second = recorder.snapshot().models
    assert (first.key, first.requests, first.errors) == ("openai:gpt-4o", 4, 1)
    assert (first.input_tokens, first.output_tokens, first.cache_read_input_tokens) == (
        300,
        30,
        150,
    )
    assert first.ttft_p50 == 0.2 and first.total_time == 2.0
    assert second.key == "openai:house-model"


def test_snapshot_is_a_copy() -> None:
    recorder = UsageRecorder(PRICES)
    _record(recorder, "gpt-4o")
    (row,) = recorder.snapshot().models
    _record(recorder, "gpt-4o")
    assert row.requests == 1 and recorder.snapshot().models[0].requests == 2


def test_unpriced_models_are_marked_and_the_total_says_so() -> None:
    recorder = UsageRecorder(PRICES)
    _record(recorder, "gpt-4o")
    _record(recorder, "house-model")
    data = summary_dict(recorder.snapshot(), exit_code=0)
    priced, unpriced = data["models"]
    assert priced["cost_usd"] > 0 and unpriced["cost_usd"] is None
    assert data["total"]["cost_usd"] == priced["cost_usd"]
    assert data["total"]["cost_complete"] is False
    text = summary_text(data)
    total = next(line for line in text.splitlines() if line.strip().startswith("total"))
    assert total.rstrip().endswith("+")  # at least this much
    assert "add one under [prices]" in text


def test_a_failed_request_without_tokens_leaves_the_cost_complete() -> None:
    """An alias that could not be resolved is counted under its name, with no price; it used
    no tokens, so the session's cost is still the whole cost."""
    recorder = UsageRecorder(PRICES)
    _record(recorder, "gpt-4o")
    recorder.record(Request("", "my-typo", False, {}, None, 0.01, requested="my-typo"))
    data = summary_dict(recorder.snapshot())
    assert data["total"]["cost_complete"] is True
    assert sorted((m["model"], m["errors"]) for m in data["models"]) == [
        ("gpt-4o", 0),
        ("my-typo", 1),
    ]
    assert "add one under [prices]" not in summary_text(data)


def test_the_json_keeps_its_keys_and_adds_the_agent_split() -> None:
    recorder = UsageRecorder(PRICES)
    _record(recorder, "gpt-4o")
    data = summary_dict(recorder.snapshot(), exit_code=0, duration_s=1.5)
    (model,) = data["models"]
    # The keys of earlier versions, unchanged.
    assert {
        "provider",
        "model",
        "requests",
        "errors",
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "ttft_p50_ms",
        "total_time_s",
        "cost_usd",
    } <= set(model)
    assert {
        "requests",
        "errors",
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "total_time_s",
        "cost_usd",
        "cost_complete",
    } <= set(data["total"])
    assert (data["exit_code"], data["duration_s"]) == (0, 1.5)
    assert set(data["agents"]) == {"main", "subagent"}
    assert data["sessions"] == 1


def test_main_agent_and_subagents_are_split_with_their_costs() -> None:
    recorder = UsageRecorder(PRICES)
    sonnet = "claude-sonnet-4-5-20250929"
    for _ in range(3):
        _record(recorder, "gpt-5.6-terra", requested=sonnet)
    _record(recorder, "gpt-5.6-luna", requested="claude-haiku-4-5", caller=_sub("a1"))
    _record(recorder, "gpt-5.6-luna", requested="claude-haiku-4-5", caller=_sub("a1"))
    _record(recorder, "gpt-5.6-luna", requested="claude-haiku-4-5", caller=_sub("a2"))
    _record(recorder, "gpt-5.6-luna", ok=False, requested="claude-haiku-4-5", caller=_sub("a2"))
    data = summary_dict(recorder.snapshot())
    main, sub = data["agents"]["main"], data["agents"]["subagent"]
    assert (main["requests"], main["errors"], main["input_tokens"]) == (3, 0, 300)
    assert (sub["requests"], sub["errors"], sub["input_tokens"], sub["agents"]) == (4, 1, 300, 2)
    # Each group priced at its own model: terra for the main agent, luna for the subagents.
    assert main["cost_usd"] == pytest.approx(3 * (100 * 2.0 + 10 * 12.0 + 50 * 0.2) / 1e6)
    assert sub["cost_usd"] == pytest.approx(3 * (100 * 0.2 + 10 * 1.2 + 50 * 0.02) / 1e6)
    assert main["cost_usd"] + sub["cost_usd"] == pytest.approx(data["total"]["cost_usd"])
    # What the same tokens would have cost on the Claude models asked for.
    assert main["claude_cost_usd"] == pytest.approx(3 * (100 * 3 + 10 * 15 + 50 * 0.3) / 1e6)
    assert sub["claude_cost_usd"] == pytest.approx(3 * (100 * 1 + 10 * 5 + 50 * 0.1) / 1e6)
    assert data["total"]["claude_cost_complete"] is True
    assert (data["sessions"], data["total"]["subagents"]) == (1, 2)
    assert data["request_classes"] == {"main": 3, "subagent": 4}
    assert data["models"][0]["requested"] == {"claude-haiku-4-5": 4}

    text = summary_text(data)
    assert "main agent" in text and "subagents (2)" in text
    assert "Claude Code: 1 session, 2 subagents" in text
    assert "claude-haiku-4-5, claude-sonnet-4-5-20250929" in text


def test_without_subagents_the_text_has_no_split() -> None:
    recorder = UsageRecorder(PRICES)
    _record(recorder, "gpt-4o")
    text = summary_text(summary_dict(recorder.snapshot()))
    assert "subagents" not in text and "main agent" not in text


def test_one_hour_cache_writes_are_kept_and_priced_as_such() -> None:
    recorder = UsageRecorder(PRICES)
    usage = {
        "input_tokens": 10,
        "output_tokens": 0,
        "cache_creation_input_tokens": 1_000_000,
        CACHE_1H: 1_000_000,
    }
    _record(recorder, "claude-sonnet-4-5", provider="anthropic", usage=usage)
    data = summary_dict(recorder.snapshot())
    (model,) = data["models"]
    assert model["cache_creation_1h_input_tokens"] == 1_000_000
    assert model["cost_usd"] == pytest.approx(6.0 + 10 * 3 / 1e6)


def test_sessions_and_subagents_are_counted_once_and_bounded() -> None:
    recorder = UsageRecorder(PRICES)
    for session in ("s1", "s2", "s1"):
        _record(recorder, "gpt-4o", caller=Caller(session=session))
    _record(recorder, "gpt-4o", caller=_sub("a1"))
    _record(recorder, "gpt-4o", caller=_sub("a1"))
    snapshot = recorder.snapshot()
    assert (snapshot.sessions, snapshot.subagents) == (2, 1)
    for i in range(MAX_IDS + 5):
        _record(recorder, "gpt-4o", caller=Caller(session=f"x{i}"))
    assert recorder.snapshot().sessions == 2 + MAX_IDS + 5
    assert len(recorder._sessions._ids) <= MAX_IDS  # memory stays bounded


def test_an_idle_session_says_so() -> None:
    data = summary_dict(UsageRecorder(PRICES).snapshot())
    assert summary_text(data) == "vdm: no requests went through the session proxy"


def test_without_prices_nothing_is_priced() -> None:
    recorder = UsageRecorder()
    _record(recorder, "gpt-4o")
    data = summary_dict(recorder.snapshot())
    assert data["total"]["cost_usd"] is None and data["models"][0]["cost_usd"] is None
