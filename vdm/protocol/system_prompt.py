"""The client's system prompt as text, for the translating encoders (Chat, Responses, Gemini).

Another provider's system prompt is one string, where Anthropic's is a string or blocks; and
Claude Code's `role: "system"` entries inside `messages` are blocks too. Both flatten the same
way for every dialect, here.
"""

from __future__ import annotations

import logging
from typing import Any

from vdm.protocol.anthropic import SystemBlock, TextBlock

log = logging.getLogger(__name__)

#: Claude Code's first system block; it changes with every CLI version and would defeat
#: upstream prefix caching, and it is meaningless to other providers.
BILLING_HEADER_PREFIX = "x-anthropic-billing-header"


def system_text(system: str | list[SystemBlock] | None) -> str:
    """The system prompt as one string, without Claude Code's billing header block. Blocks
    other than text have no place in another provider's system prompt: left out."""
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    texts: list[str] = []
    for block in system:
        if not isinstance(block, TextBlock):
            log.debug("dropped a %s block from the system prompt", block.type)
        elif block.text and not block.text.startswith(BILLING_HEADER_PREFIX):
            texts.append(block.text)
    return "\n\n".join(texts)


def joined_text(blocks: list[Any], *, skip_empty: bool = False) -> str:
    """The text blocks of a `role: "system"` message as one string (other blocks left out);
    `skip_empty`: without the empty ones (Gemini), which would otherwise leave blank lines."""
    return "\n\n".join(
        b.text for b in blocks if isinstance(b, TextBlock) and (b.text or not skip_empty)
    )
