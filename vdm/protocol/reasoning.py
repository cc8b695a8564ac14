"""Reasoning tokens as each dialect reports them, for accounting only.

Anthropic's usage has no such field (thinking is billed as output), so the count never goes
to the client: the providers that say how much of the output was reasoning report it here,
within their output tokens. OpenAI Chat: `usage.completion_tokens_details.reasoning_tokens`;
Responses: `usage.output_tokens_details.reasoning_tokens`; Gemini:
`usageMetadata.thoughtsTokenCount`.
"""

from __future__ import annotations

from typing import Any


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _member(data: Any, *path: str) -> Any:
    for name in path:
        if not isinstance(data, dict):
            return None
        data = data.get(name)
    return data


def from_chat_usage(usage: Any) -> int:
    return _int(_member(usage, "completion_tokens_details", "reasoning_tokens"))


def from_responses_usage(usage: Any) -> int:
    return _int(_member(usage, "output_tokens_details", "reasoning_tokens"))


def from_gemini_usage(metadata: Any) -> int:
    return _int(_member(metadata, "thoughtsTokenCount"))


def reasoning_tokens(dialect: str, answer: Any) -> int:
    """The reasoning tokens of a whole (non-streamed) answer in `dialect`; 0 when it does not
    say (or the dialect has no such count)."""
    if dialect == "openai":
        return from_chat_usage(_member(answer, "usage"))
    if dialect == "responses":
        return from_responses_usage(_member(answer, "usage"))
    if dialect == "gemini":
        return from_gemini_usage(_member(answer, "usageMetadata"))
    return 0
