"""How a thinking budget and an output limit share `max_tokens`, in one place.

Anthropic counts thinking within `max_tokens` and requires 1024 <= `budget_tokens` <
`max_tokens`. A budget of `max_tokens - 1` is accepted, but leaves one token for the answer:
the model thinks, then stops with `max_tokens` before it says anything. So wherever vdm picks
or lowers a budget (the OpenAI request decoders, the Anthropic backend's clamp), it keeps
`MIN_ANSWER_TOKENS` for the answer, and where that leaves less than Anthropic's minimum
budget, thinking is switched off instead: an answer without reasoning beats reasoning
without an answer.

The other way round, a client's budget read as an effort (`budget_effort`) serves every
encoder whose provider sizes thinking by effort or level (OpenAI, Gemini 3).
"""

from __future__ import annotations

#: Anthropic's smallest `budget_tokens` (`thinking_config_enabled_param.py`).
MIN_THINKING_BUDGET = 1024
#: The least room vdm leaves for the answer after the thinking budget.
MIN_ANSWER_TOKENS = 1024
#: A client's reasoning effort as an Anthropic thinking budget, where a model takes budgets
#: rather than efforts (dialects.md C1 **Rec**; 31999 is Claude Code's own top budget).
THINKING_BUDGETS = dict(minimal=1024, low=2048, medium=8192, high=16384, xhigh=31999, max=31999)
#: A client's thinking budget -> the effort it asks for: below 4096 low, below 16384 medium,
#: else high (dialects.md A1: Claude Code's budgets, as OpenAI efforts and Gemini 3 levels).
_BUDGET_EFFORTS = ((4096, "low"), (16384, "medium"))


def fit_budget(budget: int, max_tokens: int) -> int | None:
    """`budget` lowered so that `max_tokens` keeps `MIN_ANSWER_TOKENS` for the answer; None
    (thinking off) when what is left is below `MIN_THINKING_BUDGET`."""
    fitted = min(budget, max_tokens - MIN_ANSWER_TOKENS)
    return fitted if fitted >= MIN_THINKING_BUDGET else None


def budget_effort(budget: int) -> str:
    """The effort (`low`, `medium` or `high`) a client's thinking budget asks for, before it
    is fitted to what the model takes (`ModelCaps.effort`)."""
    return next((effort for limit, effort in _BUDGET_EFFORTS if budget < limit), "high")
