"""What Claude Code should know about a routed model: its context window, the ids its model
discovery keeps, and the environment that tells it both (docs/models.md).

Context windows are one more column of the capability table (vdm/protocol/capabilities.py):
rules keyed by provider family and model name (without the `provider:` prefix, matched
case-insensitively, a vendor path such as `openai/` or `Qwen/` allowed), later matches win.
A window is the total a request may hold, prompt and output together, as each provider
publishes it; `None` where no rule knows the model.

Claude Code 2.1.330 (the Makefile's pin) and a model it does not know: it assumes a window of
1M tokens and says so on every run ("Claude Code doesn't recognize the model …, so it assumes
a context window of 1m tokens"). `CLAUDE_CODE_MAX_CONTEXT_TOKENS` sets that window and
silences the notice, but only for names it does not know (for its own Claude names it keeps
its catalog's window); `CLAUDE_CODE_AUTO_COMPACT_WINDOW` caps the auto-compact window for any
model. Its gateway model discovery keeps only ids containing `claude` or `anthropic`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

#: (family pattern or None for any provider, model pattern, window in tokens), in order; the
#: last matching rule wins. Sources are the providers' model pages unless said otherwise.
WINDOWS: tuple[tuple[str | None, str, int], ...] = (
    # OpenAI (developers.openai.com/api/docs/models/…): gpt-4o 128,000; gpt-4.1 1,047,576;
    # o3 / o4-mini 200,000; gpt-5, 5.1, 5.2 and their mini/nano/codex 400,000; the chat
    # variants 128,000; gpt-5.4, gpt-5.5 and the gpt-5.6 family (sol, terra, luna) 1,050,000.
    (None, r"(^|/)gpt-4o", 128_000),
    (None, r"(^|/)gpt-4\.1", 1_047_576),
    (None, r"(^|/)o[34](-mini)?(-|$)", 200_000),
    (None, r"(^|/)gpt-5", 400_000),
    (None, r"(^|/)gpt-5(\.\d+)?-chat", 128_000),
    (None, r"(^|/)gpt-5\.[45](-pro)?(-\d{4}-\d\d-\d\d)?$", 1_050_000),
    (None, r"(^|/)gpt-5\.6(-(sol|terra|luna))?(-fast)?(-\d{4}-\d\d-\d\d)?$", 1_050_000),
    (None, r"(^|/)gpt-oss-", 131_072),
    # Gemini 2.5 and 3.x, and the -latest aliases that serve them: 1,048,576 input tokens
    # (ai.google.dev/gemini-api/docs/models).
    (None, r"(^|/)gemini-(2\.5|3|flash-latest|flash-lite-latest|pro-latest)", 1_048_576),
    # DeepSeek V4 (and V4.1 as `deepseek-flash`): 1M (api-docs.deepseek.com pricing: "上下文
    # 长度 1M"; 1,048,576 on OpenRouter). deepseek-chat / -reasoner are V4 Flash on DeepSeek
    # itself only (elsewhere they are V3's 64K-164K).
    (None, r"(^|/)deepseek-v4", 1_048_576),
    ("^deepseek$", r"^deepseek-(flash|chat|reasoner)", 1_048_576),
    # Kimi (platform.kimi.ai): K2 0905 / thinking / K2.5-K2.7 262,144; K3 and K3.x 1,048,576.
    (None, r"(^|/)kimi-k2-(0905|turbo|thinking)|(^|/)kimi-k2\.\d", 262_144),
    (None, r"(^|/)kimi-k3", 1_048_576),
    # GLM (docs.z.ai): 4.5 / 4.5-air 128K, 4.6 / 4.7 200K (202,752), 5.2 / 5.3 1,048,576.
    (None, r"(^|/)glm-4\.5", 131_072),
    (None, r"(^|/)glm-4\.[67]", 202_752),
    (None, r"(^|/)glm-5\.[23]", 1_048_576),
    # Qwen3 Coder 480B: 262,144 native (huggingface.co/Qwen/Qwen3-Coder-480B-A35B-Instruct).
    (None, r"(^|/)qwen3-coder-480b", 262_144),
    # Mistral (docs.mistral.ai): Devstral 2 (devstral-2512, -latest, -medium-latest) and
    # Medium 3.5 262,144; Codestral 256,000.
    (None, r"(^|/)devstral-(2512|latest|medium-latest)", 262_144),
    (None, r"(^|/)mistral-medium-3\.5", 262_144),
    (None, r"(^|/)codestral", 256_000),
    # xAI (docs.x.ai/docs/models): grok-4 and grok-code-fast-1 256,000; grok-3-mini 131,072;
    # grok-4 fast 2,000,000.
    (None, r"(^|/)grok-(4|code-fast)", 256_000),
    (None, r"(^|/)grok-4(\.\d)?-fast", 2_000_000),
    (None, r"(^|/)grok-3-mini", 131_072),
    # Llama 3.1 / 3.3 (Groq, Together): 131,072.
    (None, r"(^|/)(meta-)?llama-3\.[13]-", 131_072),
    # Claude: 200,000; 1M for 4.6 and later (Claude Code 2.1.330's own catalog,
    # runtime.max_input_tokens).
    (None, r"(^|/)claude-", 200_000),
    (None, r"claude-(opus|sonnet)-4[-.][6-9]|claude-(opus|sonnet|haiku|fable|mythos)-5", 1_000_000),
)

_COMPILED = tuple(
    (None if family is None else re.compile(family), re.compile(model, re.IGNORECASE), window)
    for family, model, window in WINDOWS
)


@lru_cache(maxsize=1024)
def context_window(family: str, model: str) -> int | None:
    """The context window of `model` (a bare model name) on a provider of `family`
    (capabilities.family_of), or None when no rule knows it."""
    window: int | None = None
    for family_pattern, pattern, size in _COMPILED:
        if family_pattern is not None and not family_pattern.search(family):
            continue
        if pattern.search(model):
            window = size
    return window


def tokens_text(count: int) -> str:
    """`1050000` → `1.05M`, `262144` → `262k`: how a window is written in descriptions."""
    if count >= 1_000_000:
        return f"{count / 1_000_000:.3g}M"
    return f"{count / 1000:.3g}k"


# --- the ids Claude Code's model discovery keeps -------------------------------------------

#: Prefix of the discoverable id of a name that lacks `claude`/`anthropic`: vdm's router
#: takes `claude-vdm/fast` as `fast` and `claude-vdm/openai:gpt-5.6-terra` as the name after
#: the prefix (vdm/routing/resolve.py).
DISCOVERY_PREFIX = "claude-vdm/"
_DISCOVERABLE = re.compile(r"claude|anthropic", re.IGNORECASE)


def discoverable(model_id: str) -> bool:
    """Claude Code 2.1.330 keeps a discovered model only if this holds (`/(claude|anthropic)/i`
    on its id)."""
    return _DISCOVERABLE.search(model_id) is not None


def discoverable_id(name: str) -> str:
    """`name` itself when Claude Code's discovery keeps it, else `claude-vdm/<name>`."""
    return name if discoverable(name) else DISCOVERY_PREFIX + name


def without_discovery_prefix(name: str) -> str | None:
    """The name a discoverable id stands for (case-insensitive prefix), or None if `name`
    has no discovery prefix."""
    if name[: len(DISCOVERY_PREFIX)].lower() == DISCOVERY_PREFIX:
        return name[len(DISCOVERY_PREFIX) :]
    return None


# --- what Claude Code knows, and the environment that tells it the rest ---------------------

#: Claude Code's own names: its tier aliases, and any name containing one of its Claude model
#: ids (it finds `claude-sonnet-4-5` inside `anthropic/claude-sonnet-4.5` too). For these it
#: uses its catalog's window and ignores CLAUDE_CODE_MAX_CONTEXT_TOKENS.
_TIERS = frozenset({"default", "best", "opus", "sonnet", "haiku", "fable", "opusplan"})
_CLAUDE_ID = re.compile(
    r"claude-(opus|sonnet|haiku|fable|mythos)-\d|claude-3-([57]-)?(opus|sonnet|haiku)",
    re.IGNORECASE,
)

#: The window Claude Code 2.1.330 believes of its current models (its catalog), and assumes of
#: a model it does not know.
CLAUDE_WINDOW = 1_000_000

MAX_CONTEXT = "CLAUDE_CODE_MAX_CONTEXT_TOKENS"
AUTO_COMPACT = "CLAUDE_CODE_AUTO_COMPACT_WINDOW"
OPTION = "ANTHROPIC_CUSTOM_MODEL_OPTION"


def claude_code_knows(name: str) -> bool:
    """Whether Claude Code treats `name` (as given to `--model`) as one of its own models."""
    base = re.sub(r"\[[^\]]*\]$", "", name.strip()).lower()
    return base in _TIERS or _CLAUDE_ID.search(base) is not None


def describe(text: str, window: int | None) -> str:
    """`text` and the context window where known: a model picker's one-line description
    (Claude Code shows its first 100 characters)."""
    return f"{text} · {tokens_text(window)} context" if window else text


def claude_code_env(
    sent: str, target: str, window: int | None, environ: Mapping[str, str]
) -> dict[str, str]:
    """The variables that make Claude Code know the model it sends as `sent`, routed by vdm
    to `target` (`provider:model`) with a context window of `window`; nothing the user set
    in `environ` is replaced.

    * a name Claude Code does not know: `ANTHROPIC_CUSTOM_MODEL_OPTION` (+ `_NAME`,
      `_DESCRIPTION`) puts it in the /model picker, and `CLAUDE_CODE_MAX_CONTEXT_TOKENS`
      gives it its real window (which also ends the "doesn't recognize the model" notice);
    * one of Claude Code's own names routed to a model with a smaller window than the one
      Claude Code believes: `CLAUDE_CODE_AUTO_COMPACT_WINDOW` keeps compaction within it
      (Claude Code takes the smaller of the two). Never a larger one: it would replace the
      auto-compact window Claude Code picks for its own models.
    """
    env: dict[str, str] = {}
    known = claude_code_knows(sent)
    if not known and OPTION not in environ:
        env[OPTION] = sent
        env[f"{OPTION}_NAME"] = without_discovery_prefix(sent) or sent
        env[f"{OPTION}_DESCRIPTION"] = describe(f"vdm → {target}", window)
    if window is not None:
        if not known:
            env[MAX_CONTEXT] = str(window)
        elif window < CLAUDE_WINDOW and not _CLAUDE_ID.search(target):
            env[AUTO_COMPACT] = str(window)
    return {k: v for k, v in env.items() if k not in environ}
