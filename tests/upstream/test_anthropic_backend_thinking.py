"""The Anthropic backend's output limit, effort and thinking for translated requests (OpenAI
clients reaching an Anthropic-format provider): every body it encodes is checked against
the strict fake's rules (tests/fakes/anthropic_rules.py), which word their refusals as the
real API does."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fakes.anthropic_rules import check, sign
from tests.protocol.targets import target
from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.anthropic_request_from_chat import messages_request_from_chat
from vdm.protocol.anthropic_request_from_responses import messages_request_from_responses
from vdm.protocol.codec import Target
from vdm.protocol.signatures import pack_reasoning
from vdm.upstream.backends.anthropic import BACKEND, DEFAULT_MAX_TOKENS

USER = [{"role": "user", "content": "hi"}]
CALL = {"id": "call_1", "type": "function", "function": {"name": "ls", "arguments": "{}"}}
TOOLS = [{"type": "function", "function": {"name": "ls", "parameters": {"type": "object"}}}]


def tgt(model: str, **kw: Any) -> Target:
    return target(model, "anthropic", **kw)


def encode(body: dict[str, Any], model: str, *, accepted: bool = True, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(
        BACKEND.encode(MessagesRequest.model_validate(body), tgt(model, **kw))
    )
    if accepted:
        assert check(out) is None, check(out)
    return out


def chat(**fields: Any) -> dict[str, Any]:
    return messages_request_from_chat({"model": "m", "messages": USER, **fields})


def test_no_client_limit_gets_a_default_within_the_models_ceiling() -> None:
    assert encode(chat(), "claude-sonnet-4-5", max_tokens_default=True)["max_tokens"] == (
        DEFAULT_MAX_TOKENS
    )
    haiku = encode(
        chat(reasoning_effort="high"), "claude-3-haiku-20240307", max_tokens_default=True
    )
    assert haiku["max_tokens"] == 4096
    assert haiku["thinking"] == {"type": "enabled", "budget_tokens": 4096 - 1024}
    # A Codex request (no max_output_tokens) to Opus 4.1, whose ceiling is 32000.
    codex = messages_request_from_responses({"model": "m", "input": "hi", "reasoning": {}})[0]
    assert encode(codex, "claude-opus-4-1", max_tokens_default=True)["max_tokens"] == 32000


def test_a_clients_limit_above_the_ceiling_is_lowered_with_its_budget() -> None:
    body = {"model": "m", "max_tokens": 64000, "messages": USER}
    thinking = {"type": "enabled", "budget_tokens": 40000}
    out = encode({**body, "thinking": thinking}, "claude-opus-4-1")
    assert out["max_tokens"] == 32000
    assert out["thinking"]["budget_tokens"] == 32000 - 1024
    # Unchanged where it fits: the client's own budget is the client's business.
    kept = encode({**body, "thinking": thinking}, "claude-sonnet-4-5")
    assert kept["max_tokens"] == 64000 and kept["thinking"]["budget_tokens"] == 40000


def test_effort_goes_only_where_the_model_takes_it() -> None:
    req = chat(reasoning_effort="xhigh")
    sonnet = encode(req, "claude-sonnet-4-5")
    assert "output_config" not in sonnet and sonnet["thinking"]["type"] == "enabled"
    # The refusal the backend avoids:
    assert check({**sonnet, "output_config": {"effort": "high"}}) is not None
    opus45 = encode(req, "claude-opus-4-5")
    assert opus45["output_config"] == {"effort": "high"}
    assert opus45["thinking"]["type"] == "enabled"
    # Opus 4.6: budgets are deprecated; with an effort, adaptive thinking.
    opus46 = encode(req, "claude-opus-4-6")
    assert opus46["output_config"] == {"effort": "max"}
    assert opus46["thinking"] == {"type": "adaptive"}


def test_adaptive_only_models_never_get_a_budget_or_disabled() -> None:
    on = encode(chat(reasoning_effort="low", max_tokens=4000), "claude-opus-4-7")
    assert on["thinking"] == {"type": "adaptive"} and on["output_config"] == {"effort": "low"}
    off = encode(chat(reasoning_effort="none"), "claude-opus-4-7")
    assert "thinking" not in off
    # A disabled switch stays where the model takes it.
    assert encode(chat(reasoning_effort="none"), "claude-sonnet-4-5")["thinking"] == {
        "type": "disabled"
    }


def _tool_loop(signature: str) -> dict[str, Any]:
    """A Chat client's tool loop whose last call turn carries a thinking block."""
    assistant = {
        "role": "assistant",
        "content": None,
        "tool_calls": [CALL],
        "thinking_blocks": [{"type": "thinking", "thinking": "List it.", "signature": signature}],
    }
    tool = {"role": "tool", "tool_call_id": "call_1", "content": "a.txt"}
    return chat(
        messages=[*USER, assistant, tool],
        tools=TOOLS,
        reasoning_effort="max",
        max_tokens=40000,
    )


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "claude-opus-4-6"])
def test_foreign_thinking_dropped_from_the_last_call_turn_turns_thinking_off(model: str) -> None:
    req = _tool_loop(pack_reasoning("rs_1", "gAAAA-encrypted"))  # reasoning from OpenAI
    assert req["thinking"]["type"] == "enabled"  # the decoder saw a signed block
    req["context_management"] = {"edits": [{"type": "clear_thinking_20251015"}]}
    out = encode(req, model)
    assert "thinking" not in out and "context_management" not in out
    assert out["messages"][1]["content"][0]["type"] == "tool_use"
    if model == "claude-opus-4-6":
        # `max` needs thinking on this model.
        assert out["output_config"] == {"effort": "high"}
    # What Anthropic answered before the fix:
    refused = check({**out, "thinking": {"type": "enabled", "budget_tokens": 1024}})
    assert refused is not None
    assert "a final `assistant` message must start with a thinking block" in str(refused[1])


def test_anthropic_signed_thinking_keeps_thinking_on() -> None:
    out = encode(_tool_loop(sign("List it.")), "claude-sonnet-4-5")
    assert out["thinking"]["type"] == "enabled"
    assert out["messages"][1]["content"][0]["type"] == "thinking"
