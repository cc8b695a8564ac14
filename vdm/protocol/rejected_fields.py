"""The fields a provider refuses (`ModelCaps.rejects`), left out of an OpenAI body in one place.

A body reaches an OpenAI-dialect provider two ways: vdm encodes it from the canonical request
(`openai_from_anthropic`), or forwards the client's own (`forward_clean`). Either way the
provider refuses the same names, at the top level and on Chat messages (Groq:
`reasoning_content`, `prompt_cache_key`; xAI reasoning models: penalties and `stop`; Mistral:
`stream_options`), so both drop them here, alike.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def drop_rejected(body: dict[str, Any], rejects: frozenset[str], *, messages: bool = True) -> None:
    """Remove from `body`, in place, its fields in `rejects`, and with `messages` (a Chat body)
    the same properties from each of its `messages`. A message that loses one is replaced by a
    copy, in a new list: the messages may be the client's, which a failover may still need as
    they came. A Responses body (`messages=False`) has `input` items, left as they are."""
    for key in sorted(rejects.intersection(body)):
        del body[key]
        log.debug("dropped %r: %s refuses it", key, body.get("model"))
    listed = body.get("messages") if messages else None
    if not isinstance(listed, list):
        return
    kept = [_without(message, rejects) for message in listed]
    if any(new is not old for new, old in zip(kept, listed, strict=True)):
        body["messages"] = kept


def _without(message: Any, rejects: frozenset[str]) -> Any:
    """`message` without the properties in `rejects`; the very same object when it has none."""
    if not isinstance(message, dict) or not (gone := rejects.intersection(message)):
        return message
    for key in sorted(gone):
        log.debug("dropped %r from a %s message", key, message.get("role"))
    return {k: v for k, v in message.items() if k not in gone}
