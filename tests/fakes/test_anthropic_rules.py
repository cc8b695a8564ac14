"""The strict fake Anthropic refuses what the real API refuses, in its words, and takes a
valid request: each rule is checked on both sides, through the fake server too."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fakes.anthropic_rules import check, sign
from tests.fakes.anthropic_upstream import FakeAnthropic

USE = {"type": "tool_use", "id": "toolu_01A", "name": "ls", "input": {}}
RESULT = {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "a.txt"}
THOUGHT = {"type": "thinking", "thinking": "List it.", "signature": sign("List it.")}


def body(**fields: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "hi"}],
        **fields,
    }


def loop(*assistant: dict[str, Any], **fields: Any) -> dict[str, Any]:
    messages = [
        {"role": "user", "content": "ls"},
        {"role": "assistant", "content": list(assistant)},
        {"role": "user", "content": [RESULT]},
    ]
    return body(messages=messages, **fields)


def message(payload: Any) -> str:
    rejection = check(payload)
    assert rejection is not None
    status, error = rejection
    assert status == 400 and error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    return str(error["error"]["message"])


ON = {"type": "enabled", "budget_tokens": 2048}


def test_a_valid_request_passes() -> None:
    assert check(body()) is None
    assert check(loop(THOUGHT, USE, thinking=ON)) is None
    assert check(loop(USE)) is None  # no thinking: no thinking block needed


def test_max_tokens_required_and_within_the_models_ceiling() -> None:
    payload = body()
    del payload["max_tokens"]
    assert message(payload) == "max_tokens: Field required"
    assert message(body(max_tokens=64001)) == (
        "max_tokens: 64001 > 64000, which is the maximum allowed number of output tokens for "
        "claude-sonnet-4-5"
    )
    assert check(body(model="unknown-model", max_tokens=10**6)) is None


def test_thinking_budget_bounds() -> None:
    low = message(body(thinking={"type": "enabled", "budget_tokens": 1000}))
    assert low == "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
    high = message(body(max_tokens=2048, thinking=ON))
    assert high.startswith("`max_tokens` must be greater than `thinking.budget_tokens`")


def test_the_final_assistant_message_must_open_with_thinking() -> None:
    text = message(loop(USE, thinking=ON))
    assert "Expected `thinking` or `redacted_thinking`, but found `tool_use`" in text
    assert "a final `assistant` message must start with a thinking block" in text
    redacted = {"type": "redacted_thinking", "data": "EmwK"}
    assert check(loop(redacted, USE, thinking=ON)) is None


def test_signatures_must_verify() -> None:
    forged = {**THOUGHT, "signature": "vdm-rs1:eyJpZCI6InJzXzEifQ"}
    assert message(loop(forged, USE, thinking=ON)) == (
        "messages.1.content.0: Invalid `signature` in `thinking` block"
    )


def test_tool_ids_and_results() -> None:
    bad_id = {**USE, "id": "call.1"}
    answer = {**RESULT, "tool_use_id": "call.1"}
    messages = [
        {"role": "user", "content": "ls"},
        {"role": "assistant", "content": [bad_id]},
        {"role": "user", "content": [answer]},
    ]
    assert "String should match pattern '^[a-zA-Z0-9_-]+$'" in message(body(messages=messages))
    unanswered = [
        {"role": "user", "content": "ls"},
        {"role": "assistant", "content": [USE]},
        {"role": "user", "content": "go on"},
    ]
    assert "`tool_use` ids were found without `tool_result` blocks" in message(
        body(messages=unanswered)
    )
    stray = [{"role": "user", "content": "ls"}, {"role": "user", "content": [RESULT]}]
    assert "unexpected `tool_use_id` found in `tool_result` blocks" in message(body(messages=stray))


@pytest.mark.parametrize("sampling", [{"temperature": 0.2}, {"top_k": 5}])
def test_sampling_is_refused_with_thinking(sampling: dict[str, Any]) -> None:
    assert "when thinking is enabled" in message(body(thinking=ON, **sampling))
    assert check(body(**sampling)) is None


def test_effort_only_where_the_model_takes_it() -> None:
    assert "effort" in message(body(output_config={"effort": "high"}))
    opus = body(model="claude-opus-4-6", output_config={"effort": "max"})
    assert "'max' is not supported when thinking is disabled" in message(opus)
    assert check({**opus, "thinking": {"type": "adaptive"}}) is None
    assert "not supported for this model" in message(body(model="claude-opus-4-7", thinking=ON))


def test_the_fake_server_answers_with_the_rule_and_can_opt_out() -> None:
    bad = loop(USE, thinking=ON)
    with FakeAnthropic() as fake, httpx.Client(base_url=fake.url, timeout=5) as http:
        resp = http.post("/v1/messages", json=bad)
        assert resp.status_code == 400
        assert "must start with a thinking block" in resp.json()["error"]["message"]
    with FakeAnthropic(strict=False) as fake, httpx.Client(base_url=fake.url, timeout=5) as http:
        assert http.post("/v1/messages", json=bad).status_code == 200
