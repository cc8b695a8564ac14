"""How names compare in the configuration: providers, aliases, failover keys and the
targets of an alias, and how a provider's name becomes its variables' prefix."""

from __future__ import annotations


def provider_key(name: str) -> str:
    """Provider names compare case-insensitively with `-` and `_` equal: `My-Corp` → `my_corp`."""
    return name.strip().lower().replace("-", "_")


def normalize(name: str) -> str:
    """Alias names compare case-insensitively with `-` and `_` equal: `My_Fast` → `my-fast`."""
    return name.strip().lower().replace("_", "-")


def failover_key(name: str) -> str:
    """The key of a `[failover]` entry (an alias or a `provider:model`) as it compares: what a
    variable name can spell (`VDM_FAILOVER_OPENAI:GPT_4_1` is `openai:gpt-4.1`), so case,
    `-`, `_` and `.` are equal."""
    return name.strip().lower().replace("_", "-").replace(".", "-")


def split_targets(value: str) -> tuple[str, ...]:
    """`groq:a, openai:b` → ("groq:a", "openai:b"): a target and its failovers, in order."""
    return tuple(t for t in (part.strip() for part in value.split(",")) if t)


def looks_like_provider(prefix: str) -> bool:
    """Whether the part before `:` of a target reads as a provider name (`groq` in
    `groq:llama…`), rather than part of a model name (`llama3:8b` has a digit)."""
    return prefix.replace("-", "").replace("_", "").isalpha() and prefix.islower()


def env_prefix(provider: str) -> str:
    """A provider's variable prefix: `my-corp` → `MY_CORP` (`MY_CORP_API_KEY`)."""
    return provider.upper().replace("-", "_")
