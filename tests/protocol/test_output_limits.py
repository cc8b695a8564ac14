"""Output limits and effort across the translating encoders: a client that set no limit
gets the provider's default (never vdm's stand-in), a limit above a model's ceiling is
lowered to it, and the client's effort survives to providers that take one."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.model_limits import deepseek_rejection, openai_rejection
from tests.protocol.targets import target
from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.anthropic_request_from_chat import messages_request_from_chat
from vdm.protocol.anthropic_request_from_responses import (
    DEFAULT_MAX_OUTPUT_TOKENS,
    gave_no_limit,
    messages_request_from_responses,
)
from vdm.protocol.gemini_from_anthropic import gemini_request_from_messages
from vdm.protocol.openai_from_anthropic import chat_request_from_messages
from vdm.protocol.responses_from_anthropic import responses_request_from_messages
from vdm.protocol.thinking_budget import MIN_ANSWER_TOKENS, fit_budget

USER = [{"role": "user", "content": "hi"}]


def _codex(**fields: Any) -> MessagesRequest:
    """A Codex-like Responses request (no `max_output_tokens`), canonical."""
    body = {"model": "m", "input": "hi", "reasoning": {"summary": "auto"}, **fields}
    return MessagesRequest.model_validate(messages_request_from_responses(body)[0])


def _chat(**fields: Any) -> MessagesRequest:
    return MessagesRequest.model_validate(
        messages_request_from_chat({"model": "m", "messages": USER, **fields})
    )


def test_fit_budget_leaves_room_for_the_answer_or_switches_thinking_off() -> None:
    assert fit_budget(16384, 32000) == 16384
    assert fit_budget(31999, 32000) == 32000 - MIN_ANSWER_TOKENS
    assert fit_budget(16384, 4096) == 4096 - MIN_ANSWER_TOKENS
    assert fit_budget(16384, 2048) == 1024
    assert fit_budget(16384, 2047) is None


def test_the_stand_in_default_no_longer_reaches_gpt_4o_or_deepseek_chat() -> None:
    req = _codex()
    assert req.max_tokens == DEFAULT_MAX_OUTPUT_TOKENS  # Anthropic's schema needs one
    gpt = chat_request_from_messages(req, target("gpt-4o", max_tokens_default=True))
    assert "max_completion_tokens" not in gpt and "max_tokens" not in gpt
    assert openai_rejection(gpt) is None
    ds = chat_request_from_messages(
        req, target("deepseek-chat", "deepseek", max_tokens_default=True)
    )
    assert "max_tokens" not in ds
    assert deepseek_rejection(ds) is None
    # What vdm sent before: the fakes refuse it as the real APIs do.
    old = chat_request_from_messages(req, target("some-model"))
    assert openai_rejection({**old, "model": "gpt-4o", "max_completion_tokens": 32000}) is not None
    assert deepseek_rejection({**old, "model": "deepseek-chat"}) is not None


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-5.6-terra"])
def test_responses_and_gemini_leave_the_limit_to_the_provider(model: str) -> None:
    req = _codex()
    body = responses_request_from_messages(req, target(model, max_tokens_default=True))
    assert "max_output_tokens" not in body
    gem = gemini_request_from_messages(
        req, target("gemini-2.5-pro", "gemini", max_tokens_default=True)
    )
    assert "maxOutputTokens" not in gem.get("generationConfig", {})


def test_max_tokens_limit_still_clamps_a_default_within_the_models_ceiling() -> None:
    req = _codex()
    limited = target("gpt-4o", max_tokens_limit=50000, max_tokens_default=True)
    assert chat_request_from_messages(req, limited)["max_completion_tokens"] == 16384
    low = target("gpt-4o", max_tokens_limit=4000, max_tokens_default=True)
    assert chat_request_from_messages(req, low)["max_completion_tokens"] == 4000
    assert responses_request_from_messages(req, low)["max_output_tokens"] == 4000


def test_a_clients_own_limit_is_kept_below_the_ceiling_and_lowered_above_it() -> None:
    assert (
        chat_request_from_messages(_chat(max_tokens=500), target("gpt-4o"))["max_completion_tokens"]
        == 500
    )
    big = _chat(max_completion_tokens=100000)
    assert chat_request_from_messages(big, target("gpt-4o"))["max_completion_tokens"] == 16384
    ds = chat_request_from_messages(big, target("deepseek-chat", "deepseek"))
    assert ds["max_tokens"] == 8192 and deepseek_rejection(ds) is None


def test_gave_no_limit_reads_the_clients_body() -> None:
    assert gave_no_limit({"input": "hi"})
    assert not gave_no_limit({"input": "hi", "max_output_tokens": 100})


@pytest.mark.parametrize(
    ("effort", "terra", "gpt5"),
    [
        ("minimal", "low", "minimal"),
        ("low", "low", "low"),
        ("high", "high", "high"),
        ("xhigh", "xhigh", "high"),
        ("max", "max", "high"),
    ],
)
def test_a_chat_clients_effort_survives_to_a_responses_provider(
    effort: str, terra: str, gpt5: str
) -> None:
    req = _chat(reasoning_effort=effort)
    assert (
        responses_request_from_messages(req, target("gpt-5.6-terra"))["reasoning"]["effort"]
        == terra
    )
    assert responses_request_from_messages(req, target("gpt-5"))["reasoning"]["effort"] == gpt5
    assert chat_request_from_messages(req, target("gpt-5.6-terra"))["reasoning_effort"] == terra


def test_effort_none_switches_reasoning_off_everywhere() -> None:
    req = _chat(reasoning_effort="none")
    assert req.thinking is not None and req.thinking.type == "disabled"
    terra = responses_request_from_messages(req, target("gpt-5.6-terra"))
    assert terra["reasoning"] == {"effort": "none"} and "include" not in terra
    assert chat_request_from_messages(req, target("gpt-5.6-terra"))["reasoning_effort"] == "none"
    ds = chat_request_from_messages(req, target("deepseek-v4-pro", "deepseek"))
    assert ds["thinking"] == {"type": "disabled"}
    gem = gemini_request_from_messages(req, target("gemini-2.5-flash", "gemini"))
    assert "includeThoughts" not in gem["generationConfig"].get("thinkingConfig", {})


def test_a_responses_clients_effort_reaches_gemini_levels() -> None:
    req = _codex(reasoning={"effort": "xhigh"})
    gem = gemini_request_from_messages(req, target("gemini-3-flash-preview", "gemini"))
    assert gem["generationConfig"]["thinkingConfig"]["thinkingLevel"] == "high"
    low = gemini_request_from_messages(
        _codex(reasoning={"effort": "minimal"}), target("gemini-3-flash-preview", "gemini")
    )
    assert low["generationConfig"]["thinkingConfig"]["thinkingLevel"] == "low"
