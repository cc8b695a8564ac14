"""What the real Anthropic Messages API refuses, as one pure validator for `FakeAnthropic`.

A lenient fake proves nothing (STYLE.md): `check(body)` returns `(400, Anthropic error body)`
for a request the real API refuses, with its wording, else None. Modelled rules:

- `max_tokens` is required and within the model's ceiling (tests/fakes/model_limits.py).
- Thinking: `budget_tokens` >= 1024 and < `max_tokens`; no `temperature` other than 1 and no
  `top_k` with it; a budget is refused where only adaptive thinking exists (Opus 4.7+).
- With thinking on, the last assistant message, when it calls tools, must open with a
  thinking block (anomalyco/opencode#3077 quotes the reply).
- Thinking blocks must carry the signature the fake gave them (`sign`): anything else (a
  signature from another provider, or vdm's own packed reasoning) is "Invalid `signature`".
- tool_use ids match `^[a-zA-Z0-9_-]+$`; every tool_use is answered by a tool_result in the
  next message, and every tool_result answers a tool_use of the previous one.
- `output_config.effort` only on models that take it (Opus 4.5+), and `max` not without
  thinking (anthropics/claude-code#76997 quotes that reply).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, TypeAlias

from tests.fakes.model_limits import ANTHROPIC_LIMITS, limit_of

Rejection: TypeAlias = tuple[int, Any]

DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
_TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
#: Models that take `output_config.effort` (Opus 4.5 and later, Sonnet 4.6 and later).
_EFFORT_MODELS = re.compile(
    r"^claude-(opus-4-[5-9]|sonnet-4-[6-9]|(opus|sonnet|mythos|fable)-[5-9])"
)
#: Models that take adaptive thinking (Opus/Sonnet 4.6 and later, Mythos).
_ADAPTIVE = re.compile(
    r"^claude-(opus-4-[6-9]|sonnet-4-[6-9]|(opus|sonnet|mythos|fable)-[5-9]|mythos)"
)
#: Models that take only adaptive thinking (a budget or `disabled` is a 400).
_ADAPTIVE_ONLY = re.compile(r"^claude-(opus-4-[7-9]|(opus|sonnet|mythos|fable)-[5-9])")
_THINKING = ("thinking", "redacted_thinking")


def sign(thinking: str) -> str:
    """A deterministic stand-in for the opaque signature that seals a thinking block."""
    return "EqQBCkYIBxgCKkBf4ke" + hashlib.sha256(thinking.encode()).hexdigest()[:48]


def error(message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": "invalid_request_error", "message": message}}


def check(body: Any) -> Rejection | None:
    """The 400 the real API gives `body` (a `POST /v1/messages` JSON body), else None."""
    if not isinstance(body, dict):
        return None
    message = _max_tokens(body) or _thinking(body) or _effort(body) or _messages(body)
    return None if message is None else (400, error(message))


def _model(body: dict[str, Any]) -> str:
    return str(body.get("model") or "")


def _max_tokens(body: dict[str, Any]) -> str | None:
    value = body.get("max_tokens")
    if value is None:
        return "max_tokens: Field required"
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        return "max_tokens: Input should be greater than or equal to 1"
    ceiling = limit_of(ANTHROPIC_LIMITS, _model(body))
    if ceiling is not None and value > ceiling:
        return (
            f"max_tokens: {value} > {ceiling}, which is the maximum allowed number of output "
            f"tokens for {_model(body)}"
        )
    return None


def _thinking_on(body: dict[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def _thinking(body: dict[str, Any]) -> str | None:
    thinking = body.get("thinking")
    if not isinstance(thinking, dict):
        return None
    kind = thinking.get("type")
    if kind in ("enabled", "disabled") and _ADAPTIVE_ONLY.match(_model(body)):
        return (
            f"thinking.type.{kind} is not supported for this model. Use thinking.type.adaptive "
            "and output_config.effort to control thinking behavior."
        )
    if kind == "adaptive" and not _ADAPTIVE.match(_model(body)):
        # Wording as reported against Haiku 4.5 (pensarai/apex#890).
        return "adaptive thinking is not supported on this model"
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        if budget >= body.get("max_tokens", 0):
            return (
                "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
                f"documentation at {DOCS}#max-tokens-and-context-window-size"
            )
    if _thinking_on(body):
        temperature = body.get("temperature")
        if temperature is not None and temperature != 1:
            return (
                "`temperature` may only be set to 1 when thinking is enabled or in interleaved "
                f"thinking mode. Please consult our documentation at {DOCS}#feature-compatibility"
            )
        if body.get("top_k") is not None:
            return (
                "`top_k` is not available when thinking is enabled. Please consult our "
                f"documentation at {DOCS}#feature-compatibility"
            )
    return None


def _effort(body: dict[str, Any]) -> str | None:
    config = body.get("output_config")
    effort = config.get("effort") if isinstance(config, dict) else None
    if effort is None:
        return None
    if not _EFFORT_MODELS.match(_model(body)):
        # Wording approximated: the reply names the parameter (can1357/oh-my-pi#3497).
        return "This model does not support the effort parameter."
    if effort not in ("low", "medium", "high", "xhigh", "max"):
        return "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'"
    if effort == "max" and not _thinking_on(body):
        return (
            "output_config.effort 'max' is not supported when thinking is disabled on this "
            "model. Use effort 'high' or below, or enable thinking."
        )
    return None


def _blocks(message: Any) -> list[dict[str, Any]]:
    content = message.get("content") if isinstance(message, dict) else None
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _messages(body: dict[str, Any]) -> str | None:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return "messages: Field required"
    for i, message in enumerate(messages):
        for j, block in enumerate(_blocks(message)):
            kind = block.get("type")
            if kind == "thinking" and block.get("signature") != sign(str(block.get("thinking"))):
                return f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
            if kind == "tool_use" and not _TOOL_ID.match(str(block.get("id"))):
                return (
                    f"messages.{i}.content.{j}.tool_use.id: String should match pattern "
                    "'^[a-zA-Z0-9_-]+$'"
                )
        if problem := _answered(messages, i):
            return problem
    return _final_thinking(body, messages)


def _answered(messages: list[Any], i: int) -> str | None:
    """Every tool_use of message i answered in message i + 1, and every tool_result there
    answering one of them."""
    calls = [b.get("id") for b in _blocks(messages[i]) if b.get("type") == "tool_use"]
    results = [
        b.get("tool_use_id")
        for b in _blocks(messages[i + 1] if i + 1 < len(messages) else None)
        if b.get("type") == "tool_result"
    ]
    if calls and i + 1 < len(messages):
        missing = [c for c in calls if c not in results]
        if missing:
            return (
                f"messages.{i + 1}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(map(str, missing))}. Each `tool_use` block must "
                "have a corresponding `tool_result` block in the next message."
            )
    stray = [r for r in results if r not in calls]
    if stray:
        return (
            f"messages.{i + 1}.content.0: unexpected `tool_use_id` found in `tool_result` "
            f"blocks: {stray[0]}. Each `tool_result` block must have a corresponding `tool_use` "
            "block in the previous message."
        )
    return None


def _final_thinking(body: dict[str, Any], messages: list[Any]) -> str | None:
    if not _thinking_on(body):
        return None
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if isinstance(message, dict) and message.get("role") == "assistant":
            blocks = _blocks(message)
            if not any(b.get("type") == "tool_use" for b in blocks):
                return None
            first = blocks[0].get("type")
            if first in _THINKING:
                return None
            return (
                f"messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but "
                f"found `{first}`. When `thinking` is enabled, a final `assistant` message must "
                "start with a thinking block (preceeding the lastmost set of `tool_use` and "
                "`tool_result` blocks). We recommend you include thinking blocks from previous "
                "turns. To avoid this requirement, disable `thinking`. Please consult our "
                f"documentation at {DOCS}"
            )
    return None
