"""Per-model output ceilings and reasoning efforts, as the real APIs enforce them, for the
fake upstreams.

The fakes keep their own table, written from the providers' documentation and their error
replies, not vdm's capability table: a fake that reads vdm's table would agree with any
mistake in it. A model the table does not know takes any limit.

- OpenAI Chat Completions: "max_tokens is too large: 32000. This model supports at most
  16384 completion tokens, whereas you provided 32000." (`param` names the field sent;
  enexoch3712/ExtractThinker#346, openai/openai-python#687).
- DeepSeek: "Invalid max_tokens value, the valid range of max_tokens is [1, 8192]"
  (Gitlawb/openclaude#35, mnfst/llm-gateway#1177).
- Anthropic: "max_tokens: 64001 > 64000, which is the maximum allowed number of output tokens
  for claude-sonnet-4-5" (docs.claude.com models overview for the ceilings).
- OpenAI Chat Completions `reasoning_effort`: refused outright by models that do not reason
  ("Unrecognized request argument supplied: reasoning_effort" for gpt-4o and gpt-4o-mini:
  generative-computing/mellea#270, davidmigloz/langchain_dart#712), and outside each
  reasoning model's values ("Unsupported value: 'reasoning_effort' does not support null
  with this model. Supported values are: 'none', 'low', 'medium', and 'high'." for gpt-5.1:
  livekit/agents#3966; gpt-5 takes `minimal`, not `none`: developers.openai.com
  models/gpt-5, openai/openai-agents-python#2089).
"""

from __future__ import annotations

import re
from typing import Any

#: (model pattern, most output tokens), first match wins.
OPENAI_LIMITS: tuple[tuple[str, int], ...] = (
    (r"^gpt-4o", 16384),
    (r"^gpt-4\.1", 32768),
    (r"^gpt-5(\.\d+)?-chat", 16384),
    (r"^gpt-5", 128000),
    (r"^o[134]", 100000),
)
DEEPSEEK_LIMITS: tuple[tuple[str, int], ...] = (
    (r"^deepseek-chat", 8192),
    (r"^deepseek-reasoner", 65536),
)
ANTHROPIC_LIMITS: tuple[tuple[str, int], ...] = (
    (r"^claude-3-haiku", 4096),
    (r"^claude-3-5-", 8192),
    (r"^claude-opus-4-[6-9]|^claude-(opus|mythos|fable)-[5-9]", 128000),
    (r"^claude-opus-4(-[01])?($|-20)", 32000),
    (r"^claude-(3-7-sonnet|sonnet-4|haiku-4|opus-4-5)", 64000),
)

#: (model pattern, the `reasoning_effort` values it takes, or None for none at all), first
#: match wins; a model the table does not know takes any.
OPENAI_EFFORTS: tuple[tuple[str, tuple[str, ...] | None], ...] = (
    (r"^(gpt-4|gpt-3\.5|chatgpt-4o)", None),
    (r"^gpt-5(-mini|-nano)?($|-\d{4})", ("minimal", "low", "medium", "high")),
    (r"^gpt-5\.1($|-\d{4})", ("none", "low", "medium", "high")),
    (r"^gpt-5\.[2-5]($|-\d{4})", ("none", "low", "medium", "high", "xhigh")),
    (r"^o[134](-mini)?($|-\d{4})", ("low", "medium", "high")),
)


def limit_of(table: tuple[tuple[str, int], ...], model: str) -> int | None:
    return next((n for pattern, n in table if re.search(pattern, model)), None)


def _asked(body: dict[str, Any], *fields: str) -> tuple[str, int] | None:
    for name in fields:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return name, value
    return None


def openai_rejection(body: dict[str, Any]) -> tuple[int, Any] | None:
    """OpenAI's 400 for an output limit above the model's ceiling, else None."""
    model = str(body.get("model") or "")
    ceiling = limit_of(OPENAI_LIMITS, model)
    asked = _asked(body, "max_completion_tokens", "max_tokens")
    if ceiling is None or asked is None or asked[1] <= ceiling:
        return None
    name, value = asked
    message = (
        f"{name} is too large: {value}. This model supports at most {ceiling} completion "
        f"tokens, whereas you provided {value}."
    )
    error = {"message": message, "type": "invalid_request_error", "param": name, "code": None}
    return 400, {"error": error}


def deepseek_rejection(body: dict[str, Any]) -> tuple[int, Any] | None:
    """DeepSeek's 400 for an output limit outside [1, the model's ceiling], else None."""
    ceiling = limit_of(DEEPSEEK_LIMITS, str(body.get("model") or ""))
    asked = _asked(body, "max_tokens", "max_completion_tokens")
    if ceiling is None or asked is None or 1 <= asked[1] <= ceiling:
        return None
    message = f"Invalid max_tokens value, the valid range of max_tokens is [1, {ceiling}]"
    error = {
        "message": message,
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_request_error",
    }
    return 400, {"error": error}


def openai_effort_rejection(body: dict[str, Any]) -> tuple[int, Any] | None:
    """OpenAI's 400 for a `reasoning_effort` the model does not take, else None."""
    effort = body.get("reasoning_effort")
    model = str(body.get("model") or "")
    known = next((efforts for pattern, efforts in OPENAI_EFFORTS if re.search(pattern, model)), ())
    if effort is None or known == ():
        return None
    if known is None:
        message = "Unrecognized request argument supplied: reasoning_effort"
        return 400, {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        }
    if effort in known:
        return None
    listed = ", ".join(f"'{e}'" for e in known[:-1]) + f", and '{known[-1]}'"
    message = (
        f"Unsupported value: 'reasoning_effort' does not support {effort!r} with this model. "
        f"Supported values are: {listed}."
    )
    error = {
        "message": message,
        "type": "invalid_request_error",
        "param": "reasoning_effort",
        "code": "unsupported_value",
    }
    return 400, {"error": error}


def _openai(body: dict[str, Any]) -> tuple[int, Any] | None:
    return openai_rejection(body) or openai_effort_rejection(body)


#: Provider family (`tests.fakes.chat_rules`) -> its rule for limits and efforts.
CHAT_LIMITS = {"openai": _openai, "deepseek": deepseek_rejection}


def chat_rejection(family: str, body: Any) -> tuple[int, Any] | None:
    """The hook `FakeOpenAI` calls for chat requests under `rules=family`."""
    rule = CHAT_LIMITS.get(family)
    return rule(body) if rule is not None and isinstance(body, dict) else None
