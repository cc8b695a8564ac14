"""`Target`s for codec tests: a model on a provider family, as `select` would build it."""

from __future__ import annotations

from vdm.protocol.capabilities import caps_for
from vdm.protocol.codec import ReasoningCache, Target


def target(
    model: str,
    family: str = "openai",
    *,
    requested: str | None = None,
    max_tokens_limit: int | None = None,
    cache: ReasoningCache | None = None,
    max_tokens_default: bool = False,
) -> Target:
    return Target(
        family=family,
        model=model,
        caps=caps_for(family, model),
        requested=requested or model,
        max_tokens_limit=max_tokens_limit,
        reasoning_cache=cache,
        max_tokens_default=max_tokens_default,
    )
