"""What each (provider, model) pair accepts and needs, as one declarative table.

The same model behaves differently on OpenAI, OpenRouter, Groq or Azure, so every rule
matches a provider *family* and a model name (without any `provider:` prefix,
case-insensitive) and sets fields of `ModelCaps`; later matching rules override earlier ones.
Codecs read the caps; they never test provider or model names themselves.

A provider's family is its preset name (`openai`, `deepseek`, `groq`, ...) or, for a provider
the user named themselves, the family of its base URL's host (`family_of`): `MYCORP_BASE_URL=
https://api.deepseek.com/v1` behaves as DeepSeek.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import urlsplit

Effort = Literal["minimal", "low", "medium", "high", "xhigh", "max"]
#: Client efforts from least to most.
EFFORT_ORDER: tuple[str, ...] = ("minimal", "low", "medium", "high", "xhigh", "max")


@dataclass(frozen=True, slots=True)
class ModelCaps:
    """What a model on a provider accepts and needs."""

    #: The model reasons and takes an effort setting.
    reasoning: bool = False
    #: Which field carries the output limit (Chat Completions).
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    #: Accepts `temperature` / `top_p` (reasoning models reject them).
    sampling: bool = True
    #: Accepts OpenAI's `prompt_cache_key` (other providers may reject unknown fields).
    prompt_cache_key: bool = False
    #: The effort values the provider accepts, least to most; a client's effort maps to the
    #: nearest one at or above it, else the highest.
    efforts: tuple[str, ...] = ("low", "medium", "high")
    #: OpenAI-format providers: which endpoint the model needs. `responses` for models whose
    #: Chat Completions endpoint rejects function tools with reasoning (gpt-5.4+, gpt-6).
    wire: Literal["chat", "responses"] = "chat"
    #: Thinking is switched with `thinking: {"type": "enabled" | "disabled"}` (DeepSeek V4).
    thinking_switch: bool = False
    #: Assistant turns with tool calls must carry their `reasoning_content` back in every
    #: later request (DeepSeek V4 thinking, Kimi K2 thinking).
    reasoning_echo: bool = False
    #: Fields the provider refuses (top level, and on messages): never sent.
    rejects: frozenset[str] = frozenset()
    #: Tool call id format the provider requires: `alnum9` is Mistral's `[A-Za-z0-9]{9}`.
    tool_id: Literal["any", "alnum9"] = "any"
    #: Tool calls carry `extra_content.google.thought_signature`, to be replayed (Gemini 3
    #: on its OpenAI-compatible endpoint).
    thought_signatures: bool = False
    #: Tool schemas must be cut down to the subset Gemini's compat layer compiles.
    gemini_schema: bool = False
    #: Accepts image and file content parts; where not, they become a text note (DeepSeek
    #: answers 400 "unknown variant `image_url`, expected `text`", which would break every
    #: later turn of a session that once read a screenshot).
    images: bool = True
    #: Native Gemini: how thinking is sized (`budget` on 2.5, `level` on 3.x).
    thinking_config: Literal["none", "budget", "level"] = "none"
    #: Chat Completions: how `output_config.format` (structured outputs) is asked for:
    #: `json_schema` (`response_format` with the schema), or `json_object` (JSON mode, the
    #: schema in the system prompt) where the provider refuses schemas.
    structured_output: Literal["json_schema", "json_object"] = "json_schema"
    #: The most output tokens the model writes (its documented ceiling; a larger limit is a
    #: 400), None where the table does not know it. A request that set no limit is sent
    #: without one (the provider's default), one above it is lowered to it.
    max_output_tokens: int | None = None
    #: OpenAI reasoning models that take `reasoning_effort: "none"` (gpt-5.1 and later):
    #: where a client switches thinking off, the model's default effort would not.
    effort_none: bool = False
    #: Claude models (Anthropic Messages): how thinking is switched on. `budget`: only
    #: `{"type": "enabled", "budget_tokens": n}`; `adaptive`: `{"type": "adaptive"}` too
    #: (Opus/Sonnet 4.6, where budgets are deprecated); `adaptive_only`: a budget or
    #: `disabled` is a 400 (Opus 4.7 and later).
    claude_thinking: Literal["budget", "adaptive", "adaptive_only"] = "budget"
    #: Claude models that take `output_config.effort` (Opus 4.5 and later); older ones
    #: refuse it.
    claude_effort: bool = False
    #: The provider's own web search, which Anthropic's `web_search` server tool maps to
    #: (vdm/protocol/web_search.py): `responses` the Responses API's `web_search` tool,
    #: `gemini` native Gemini's `google_search` grounding, `openrouter` OpenRouter's `web`
    #: plugin; `none`: the model cannot search, and a call is answered with an error result.
    web_search: Literal["none", "responses", "gemini", "openrouter"] = "none"

    @property
    def max_effort(self) -> str:
        return self.efforts[-1] if self.efforts else "high"

    def effort(self, wanted: str) -> str | None:
        """The accepted effort nearest to `wanted` (at or above it, else the highest).
        `none` (reasoning off) is `none` where the model takes it, else its least effort:
        gpt-5 refuses `none` but takes `minimal`, and its default (`medium`) is the
        furthest from what the client asked for."""
        if not self.efforts:
            return None
        if wanted == "none":
            return "none" if self.effort_none else self.efforts[0]
        if wanted in self.efforts:
            return wanted
        rank = EFFORT_ORDER.index(wanted) if wanted in EFFORT_ORDER else 2
        for effort in self.efforts:
            if effort in EFFORT_ORDER and EFFORT_ORDER.index(effort) >= rank:
                return effort
        return self.efforts[-1]


_REASONING: dict[str, Any] = {
    "reasoning": True,
    "max_tokens_field": "max_completion_tokens",
    "sampling": False,
}
_GROQ_REJECTS = frozenset(
    {"reasoning_content", "prompt_cache_key", "cache_control", "store", "verbosity"}
)

#: (family pattern or None for any provider, model pattern, overrides), applied in order.
RULES: tuple[tuple[str | None, str, dict[str, Any]], ...] = (
    # OpenAI's own models, wherever they are served: max_completion_tokens.
    (None, r"^(gpt-|chatgpt-|o\d)", {"max_tokens_field": "max_completion_tokens"}),
    # o-series and gpt-5 reason: no temperature/top_p, effort instead.
    (None, r"^o\d(-|$)", _REASONING),
    (None, r"^gpt-5", _REASONING),
    # gpt-5, -mini and -nano (and their dated snapshots) take `minimal`, not `none`; their
    # successors the other way round ("Unsupported value: 'minimal' is not supported with
    # the 'gpt-5.1' model. Supported values are: 'none', 'low', 'medium', and 'high'.",
    # openai/openai-agents-python#2089; developers.openai.com models/gpt-5).
    (
        None,
        r"^gpt-5(-mini|-nano)?($|-\d{4})",
        {"efforts": ("minimal", "low", "medium", "high")},
    ),
    # xhigh arrived with gpt-5.1-codex-max and gpt-5.2; gpt-5.1 stops at high.
    (
        None,
        r"^gpt-5\.([2-9]|\d\d)|^gpt-5\.1-codex-max|^gpt-[6-9]",
        {"efforts": ("low", "medium", "high", "xhigh")},
    ),
    # gpt-5.6 (sol, terra, luna) takes `max` too.
    (
        None,
        r"^gpt-5\.([6-9]|\d\d)|^gpt-[6-9]",
        {"efforts": ("low", "medium", "high", "xhigh", "max")},
    ),
    (None, r"^gpt-[6-9]", _REASONING),
    # gpt-5 chat variants are not reasoning models.
    (None, r"^gpt-5(\.\d+)?-chat", {"reasoning": False, "sampling": True}),
    # On OpenAI (and Azure's v1 API) prompt caching is keyed by prompt_cache_key, and the
    # reasoning models need the Responses API: Chat Completions rejects function tools with
    # reasoning on gpt-5.4+, and reasoning summaries exist only there.
    ("^(openai|azure)$", r"^(gpt-|chatgpt-|o\d)", {"prompt_cache_key": True}),
    (
        "^(openai|azure)$",
        r"^(o\d|gpt-5(?!(\.\d+)?-chat)|gpt-([6-9]|\d\d))|codex",
        {"wire": "responses"},
    ),
    # Other models whose OpenAI-compatible endpoints take low/medium/high `reasoning_effort`.
    # (Not grok-4, deepseek-reasoner or qwen3: their endpoints reject or ignore it.)
    (None, r"(^|/)(grok-3-mini|gpt-oss|gemini-2\.5|gemini-3)", {"reasoning": True}),
    # DeepSeek V4: thinking on by default, switched by `thinking`, sized by effort (low, high,
    # max; api-docs.deepseek.com/guides/thinking_mode); its reasoning_content must travel back
    # on tool-call turns. deepseek-reasoner is V4 Flash in thinking mode, not switchable.
    (
        "^deepseek$",
        r"^deepseek-v4",
        {
            "reasoning": True,
            "thinking_switch": True,
            "reasoning_echo": True,
            "efforts": ("low", "high", "max"),
        },
    ),
    ("^deepseek$", r"^deepseek-reasoner", {"reasoning_echo": True}),
    # DeepSeek's API takes text only, V4 included: "Failed to deserialize the JSON body into
    # the target type: messages[1]: unknown variant `image_url`, expected `text`"
    # (rikkahub/rikkahub#1433, vercel/ai#9179).
    ("^deepseek$", r"", {"images": False}),
    # DeepSeek has JSON mode only: "This response_format type is unavailable now" for a
    # `json_schema` (api-docs.deepseek.com: `text` and `json_object`; llm-exe/llm-exe#662).
    ("^deepseek$", r"", {"structured_output": "json_object"}),
    # Kimi thinking models on Moonshot: reasoning_content must travel back ("thinking is
    # enabled but reasoning_content is missing in assistant tool call message").
    # kimi-k2.5/k2.6 think by default and switch with `thinking`; kimi-k2-thinking and
    # kimi-k2.7-code always think (their `thinking` refuses "disabled"); kimi-k3 always
    # reasons, sized by `reasoning_effort` low/high/max (platform.kimi.ai use-thinking-effort).
    ("^moonshot$", r"^kimi-(k2-thinking|k2\.\d|k3)", {"reasoning_echo": True}),
    ("^moonshot$", r"^kimi-k2\.[56]", {"thinking_switch": True}),
    ("^moonshot$", r"^kimi-k3", {"reasoning": True, "efforts": ("low", "high", "max")}),
    # Gemini's OpenAI-compatible endpoint: schema subset, `none|low|medium|high` efforts, and
    # on Gemini 3 (which the `-latest` aliases now serve) thought signatures on tool calls.
    ("^gemini$", r"", {"gemini_schema": True}),
    (
        "^gemini$",
        r"(^|/)gemini-(3|flash-latest|flash-lite-latest|pro-latest)",
        {"thought_signatures": True},
    ),
    ("^gemini$", r"^gemini-2\.5", {"thinking_config": "budget"}),
    # Native API: thinking sized by level on Gemini 3 (and the `-latest` aliases); Gemini 3
    # Pro takes low and high only ("Thinking level MEDIUM is not supported for this model.").
    (
        "^gemini$",
        r"^gemini-(3|flash-latest|flash-lite-latest|pro-latest)",
        {"thinking_config": "level"},
    ),
    ("^gemini$", r"^gemini-3-pro", {"efforts": ("low", "high")}),
    # Output ceilings ("max_tokens is too large: 32000. This model supports at most 16384
    # completion tokens"; DeepSeek: "Invalid max_tokens value, the valid range of max_tokens
    # is [1, 8192]"): platform.openai.com/docs/models, api-docs.deepseek.com/quick_start/pricing.
    (None, r"^gpt-4o", {"max_output_tokens": 16384}),
    (None, r"^gpt-4\.1", {"max_output_tokens": 32768}),
    (None, r"^(gpt-5|o[134])", {"max_output_tokens": 100000}),
    (None, r"^gpt-5", {"max_output_tokens": 128000}),
    (None, r"^gpt-5(\.\d+)?-chat", {"max_output_tokens": 16384}),
    ("^deepseek$", r"^deepseek-chat", {"max_output_tokens": 8192}),
    ("^deepseek$", r"^deepseek-reasoner", {"max_output_tokens": 65536}),
    # gpt-5.1 and later take `reasoning_effort: "none"` (their default); gpt-5 does not.
    (None, r"^gpt-5\.([1-9]|\d\d)(?!(\.\d+)?-chat)|^gpt-[6-9]", {"effort_none": True}),
    # Claude, wherever it is served (Anthropic, Bedrock, OpenRouter): output ceilings from
    # docs.claude.com models overview; effort from Opus 4.5 on, adaptive thinking from 4.6
    # on, and only adaptive thinking from Opus 4.7 on (AWS Bedrock adaptive-thinking guide:
    # a budget or `disabled` "will return a 400 error").
    (None, r"^claude-3-haiku", {"max_output_tokens": 4096}),
    (None, r"^claude-3-5-haiku|^claude-3-5-sonnet", {"max_output_tokens": 8192}),
    (None, r"^claude-(3-7-sonnet|sonnet-4|haiku-4|opus-4-5)", {"max_output_tokens": 64000}),
    (None, r"^claude-opus-4(-[01])?($|-20)", {"max_output_tokens": 32000}),
    (None, r"^claude-opus-4-([5-9])", {"claude_effort": True}),
    (
        None,
        r"^claude-(opus|sonnet)-4-6",
        {
            "max_output_tokens": 128000,
            "claude_effort": True,
            "claude_thinking": "adaptive",
            "efforts": ("low", "medium", "high", "max"),
        },
    ),
    (None, r"^claude-sonnet-4-6", {"max_output_tokens": 64000}),
    (
        None,
        r"^claude-opus-4-([7-9])|^claude-(opus|sonnet|mythos|fable)-[5-9]",
        {
            "max_output_tokens": 128000,
            "claude_effort": True,
            "claude_thinking": "adaptive_only",
            "efforts": ("low", "medium", "high", "xhigh", "max"),
        },
    ),
    # Web search (docs/protocol.md, "Web search"): OpenAI's Responses `web_search` tool
    # (developers.openai.com/api/docs/guides/tools-web-search; not on gpt-4.1-nano),
    # Gemini's `google_search` grounding on the native API (2.0 and later), and OpenRouter's
    # `web` plugin, which serves any model (openrouter.ai/docs/features/web-search).
    (
        "^openai$",
        r"^(gpt-4o|gpt-4\.1(?!-nano)|gpt-5(?!(\.\d+)?-chat)|gpt-[6-9]|o3|o4)",
        {"web_search": "responses"},
    ),
    ("^gemini$", r"(^|/)gemini-([2-9]|flash-|pro-)", {"web_search": "gemini"}),
    ("^openrouter$", r"", {"web_search": "openrouter"}),
    # Groq refuses fields it does not know.
    ("^groq$", r"", {"rejects": _GROQ_REJECTS}),
    # xAI reasoning models refuse penalties and stop sequences ("Model grok-4 does not support
    # parameter presencePenalty."); grok-3-mini takes `reasoning_effort` low or high only.
    (
        "^xai$",
        r"^grok-(3-mini|4|code)",
        {"rejects": frozenset({"presence_penalty", "frequency_penalty", "stop"})},
    ),
    ("^xai$", r"^grok-3-mini", {"efforts": ("low", "high")}),
    # Mistral: tool call ids are exactly 9 letters or digits, and unknown fields are a 422
    # (`extra_forbidden`): usage arrives in the last chunk without `stream_options`.
    (
        "^mistral$",
        r"",
        {
            "tool_id": "alnum9",
            "rejects": frozenset({"stream_options", "user", "prompt_cache_key"}),
        },
    ),
)

_COMPILED = tuple(
    (None if family is None else re.compile(family), re.compile(model, re.IGNORECASE), over)
    for family, model, over in RULES
)

#: Base URL host suffix -> provider family, for providers the user named themselves.
HOST_FAMILIES: tuple[tuple[str, str], ...] = (
    ("api.openai.com", "openai"),
    ("openai.azure.com", "azure"),
    ("generativelanguage.googleapis.com", "gemini"),
    ("api.deepseek.com", "deepseek"),
    ("api.mistral.ai", "mistral"),
    ("api.groq.com", "groq"),
    ("api.x.ai", "xai"),
    ("api.moonshot.ai", "moonshot"),
    ("api.moonshot.cn", "moonshot"),
    ("openrouter.ai", "openrouter"),
    ("api.anthropic.com", "anthropic"),
    ("api.z.ai", "zai"),
)
#: Families with rules or presets of their own.
KNOWN_FAMILIES = frozenset(
    {family for _, family in HOST_FAMILIES} | {"poe", "together", "fireworks", "ollama", "azure"}
)


def family_of(provider: str, base_url: str = "") -> str:
    """A provider's family: its own name when it is a known one, else its host's family,
    else its name."""
    name = provider.lower().replace("-", "_")
    if name in KNOWN_FAMILIES:
        return name
    host = (urlsplit(base_url).hostname or "").lower()
    for suffix, family in HOST_FAMILIES:
        if host == suffix or host.endswith("." + suffix):
            return family
    return name


@lru_cache(maxsize=1024)
def caps_for(family: str, model: str) -> ModelCaps:
    """The capabilities of `model` (a bare model name, e.g. `gpt-4o`) on a provider of
    `family` (see `family_of`)."""
    caps = ModelCaps()
    for family_pattern, pattern, overrides in _COMPILED:
        if family_pattern is not None and not family_pattern.search(family):
            continue
        if pattern.search(model):
            caps = replace(caps, **overrides)
    return caps
