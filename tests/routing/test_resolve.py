"""Model resolution, in DESIGN.md's order: `provider:model`, aliases, fallbacks, default."""

from __future__ import annotations

import pytest

from vdm.config.settings import Settings
from vdm.protocol.errors import VdmError
from vdm.routing.resolve import resolve

BASE = {
    "OPENAI_API_KEY": "a",
    "OLLAMA_BASE_URL": "http://127.0.0.1:11434/v1",
    "POE_API_KEY": "p",
}
SETTINGS = Settings.from_mapping(
    {
        **BASE,
        "OPENAI_ALIAS_FAST": "gpt-4o-mini",
        "OPENAI_ALIAS_GPT": "gpt-4o",
        "OPENAI_ALIAS_CHAINED": "fast",  # → another alias of the same provider
        "OPENAI_ALIAS_ELSEWHERE": "poe:claude-sonnet-4.5",  # → another provider
        "OPENAI_ALIAS_TO_POE_ALIAS": "poe:docs",  # → an alias of another provider
        "OPENAI_ALIAS_IDENTITY": "identity",  # names the model itself
        "POE_ALIAS_DOCS": "ds",
        "POE_ALIAS_DS": "deepseek-v3.2",
        "POE_ALIAS_FAST": "grok-fast",  # same name as openai's: the default provider wins
        "POE_ALIAS_FASTER_STILL": "grok-4-fast",
        "OLLAMA_ALIAS_LOCAL": "llama3:8b",
        "OLLAMA_ALIAS_MY_SONNET": "qwen3-coder",
    }
)


@pytest.mark.parametrize(
    ("requested", "provider", "model"),
    [
        # 1. provider:model, case-insensitive prefix; a colon in the model needs the prefix
        ("openai:gpt-4o", "openai", "gpt-4o"),
        ("OLLAMA:llama3", "ollama", "llama3"),
        ("ollama:llama3:8b", "ollama", "llama3:8b"),
        ("poe:docs", "poe", "deepseek-v3.2"),  # an alias of that provider, chain followed
        ("openai:haiku", "openai", "gpt-5.6-luna"),  # a packaged fallback alias, by prefix
        # 2. aliases: exact, case-insensitive, - and _ equal
        ("fast", "openai", "gpt-4o-mini"),  # openai (default provider) beats poe on a tie
        ("FAST", "openai", "gpt-4o-mini"),
        ("Faster_Still", "poe", "grok-4-fast"),
        ("faster-still", "poe", "grok-4-fast"),
        ("local", "ollama", "llama3:8b"),
        ("chained", "openai", "gpt-4o-mini"),
        ("elsewhere", "poe", "claude-sonnet-4.5"),
        ("to-poe-alias", "poe", "deepseek-v3.2"),
        ("identity", "openai", "identity"),
        # 2. then the longest alias contained in the name
        ("my-faster-still-model", "poe", "grok-4-fast"),  # faster-still (12) beats fast (4)
        ("super-fast-model", "openai", "gpt-4o-mini"),
        ("claude-my-sonnet-4-5", "ollama", "qwen3-coder"),  # user alias before the fallback
        ("gpt-4o-2024", "openai", "gpt-4o"),  # contains `gpt`
        # 3. fallback aliases of the default provider
        ("claude-sonnet-4-5-20250929", "openai", "gpt-5.6-terra"),
        ("claude-3-5-haiku-20241022", "openai", "gpt-5.6-luna"),
        ("claude-opus-4-1", "openai", "gpt-5.6-sol"),
        # 4. the default provider, name unchanged
        ("o3-mini", "openai", "o3-mini"),
        ("some-model", "openai", "some-model"),
    ],
)
def test_resolution_order(requested: str, provider: str, model: str) -> None:
    route = resolve(requested, SETTINGS)
    assert (route.provider.name, route.model) == (provider, model)


@pytest.mark.parametrize(
    ("env", "requested", "expected"),
    [
        # [fallback] / VDM_FALLBACK_* beat the legacy variables, which beat packaged ones
        ({"VDM_FALLBACK_SONNET": "poe:gpt-5", "MIDDLE_MODEL": "gpt-4.1"}, "x-sonnet", "poe:gpt-5"),
        ({"MIDDLE_MODEL": "gpt-4.1"}, "claude-sonnet-4", "openai:gpt-4.1"),
        ({"BIG_MODEL": "poe:o3"}, "claude-opus-4", "poe:o3"),
        ({"SMALL_MODEL": "gpt-4.1-nano"}, "claude-haiku-4", "openai:gpt-4.1-nano"),
        ({}, "claude-opus-4", "openai:gpt-5.6-sol"),
        # the default provider has no fallback: another provider's packaged one is not used
        ({"VDM_DEFAULT_PROVIDER": "ollama"}, "claude-sonnet-4", "ollama:claude-sonnet-4"),
        # ... but your alias of another provider is (step 2)
        (
            {"VDM_DEFAULT_PROVIDER": "ollama", "POE_ALIAS_SONNET": "claude-sonnet-4.5"},
            "claude-sonnet-4",
            "poe:claude-sonnet-4.5",
        ),
        # a packaged alias redefined by the user is the user's (step 2)
        ({"OPENAI_ALIAS_SONNET": "gpt-4.1"}, "claude-sonnet-4", "openai:gpt-4.1"),
    ],
)
def test_fallback_precedence(env: dict[str, str], requested: str, expected: str) -> None:
    route = resolve(requested, Settings.from_mapping({**BASE, **env}))
    assert f"{route.provider.name}:{route.model}" == expected


def test_contained_aliases_of_equal_length_go_to_the_default_provider_then_by_name() -> None:
    env = {**BASE, "POE_ALIAS_ABC": "poe-abc", "OPENAI_ALIAS_XYZ": "oa-xyz"}
    assert resolve("abc-xyz", Settings.from_mapping(env)).model == "oa-xyz"
    env = {**BASE, "POE_ALIAS_ABC": "poe-abc", "POE_ALIAS_XYZ": "poe-xyz"}
    assert resolve("xyz-abc", Settings.from_mapping(env)).model == "poe-abc"


def test_packaged_fallbacks_apply_only_to_configured_providers() -> None:
    settings = Settings.from_mapping({"MYCORP_API_KEY": "k", "MYCORP_BASE_URL": "http://m/v1"})
    assert {a.provider for a in settings.fallbacks} == set()
    route = resolve("claude-sonnet-4-5", settings)
    assert (route.provider.name, route.model) == ("mycorp", "claude-sonnet-4-5")


def test_an_alias_cycle_is_a_400_that_shows_it() -> None:
    env = {**BASE, "OPENAI_ALIAS_A": "b", "OPENAI_ALIAS_B": "openai:a"}
    with pytest.raises(VdmError) as caught:
        resolve("a", Settings.from_mapping(env))
    assert caught.value.status == 400
    assert "cycle" in caught.value.message and "openai:a → openai:b → openai:a" in (
        caught.value.message
    )


def test_an_alias_to_an_unconfigured_provider_says_so() -> None:
    env = {**BASE, "OPENAI_ALIAS_QUICK": "groq:llama-3.1-8b-instant"}
    with pytest.raises(VdmError, match="provider 'groq' is not configured"):
        resolve("quick", Settings.from_mapping(env))


def test_resolution_explains_itself() -> None:
    steps = resolve("chained", SETTINGS).steps
    assert steps[0].startswith("'chained' matches alias 'chained'")
    assert any("alias 'fast'" in step for step in steps)


def test_unknown_prefix_names_it_and_lists_providers() -> None:
    with pytest.raises(VdmError) as caught:
        resolve("nope:gpt-4o", SETTINGS)
    assert caught.value.status == 400
    assert "'nope'" in caught.value.message
    assert "openai" in caught.value.message and "ollama" in caught.value.message


def test_prefix_without_model() -> None:
    with pytest.raises(VdmError, match="no model"):
        resolve("openai:", SETTINGS)


def test_no_provider_names_the_variable() -> None:
    with pytest.raises(VdmError) as caught:
        resolve("gpt-4o", Settings.from_mapping({}))
    assert caught.value.status == 400
    assert "OPENAI_API_KEY" in caught.value.message
