"""Per-model quirks of OpenAI-format models, as one declarative table.

Each rule matches a model name (without any `provider:` prefix, case-insensitive) and sets
fields of `ModelCaps`; later matching rules override earlier ones. Translators read the caps;
they never test model names themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class ModelCaps:
    """What an OpenAI-format model accepts."""

    #: The model reasons and takes `reasoning_effort`.
    reasoning: bool = False
    #: Which field carries the output limit.
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    #: Accepts `temperature` / `top_p` (reasoning models reject them).
    sampling: bool = True
    #: Accepts OpenAI's `prompt_cache_key` (other providers may reject unknown fields).
    prompt_cache_key: bool = False
    #: Highest `reasoning_effort` the model takes ("max" from a client is capped to it).
    max_effort: Literal["high", "xhigh"] = "high"


_REASONING: dict[str, Any] = {
    "reasoning": True,
    "max_tokens_field": "max_completion_tokens",
    "sampling": False,
}

#: (pattern, overrides), applied in order.
RULES: tuple[tuple[str, dict[str, Any]], ...] = (
    # OpenAI's own models: prompt caching keyed by prompt_cache_key, max_completion_tokens.
    (
        r"^(gpt-|chatgpt-|o\d)",
        {"prompt_cache_key": True, "max_tokens_field": "max_completion_tokens"},
    ),
    # o-series and gpt-5 reason: no temperature/top_p, effort instead.
    (r"^o\d(-|$)", _REASONING),
    (r"^gpt-5", _REASONING),
    # xhigh arrived with gpt-5.1-codex-max and gpt-5.2; gpt-5.1 stops at high.
    (r"^gpt-5\.([2-9]|\d\d)|^gpt-5\.1-codex-max", {"max_effort": "xhigh"}),
    # gpt-5 chat variants are not reasoning models.
    (r"^gpt-5(\.\d)?-chat", {"reasoning": False, "sampling": True}),
    # Other models whose OpenAI-compatible endpoints take low/medium/high `reasoning_effort`.
    # (Not grok-4, deepseek-reasoner or qwen3: their endpoints reject or ignore it.)
    (r"(^|/)(grok-3-mini|gpt-oss|gemini-2\.5|gemini-3)", {"reasoning": True}),
)

_COMPILED = tuple((re.compile(pattern, re.IGNORECASE), over) for pattern, over in RULES)


@lru_cache(maxsize=512)
def caps_for(model: str) -> ModelCaps:
    """The capabilities of `model` (a bare model name, e.g. `gpt-4o`)."""
    caps = ModelCaps()
    for pattern, overrides in _COMPILED:
        if pattern.search(model):
            caps = replace(caps, **overrides)
    return caps
