"""Claude Code's own model names follow the user's choice of default provider (docs/routing.md):
with several providers configured they resolve on the default provider's mappings, adding a
provider's key never moves them, your aliases keep their precedence, and where nothing maps
them the configuration says so (`vdm config validate`, `vdm wrap`)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import anthropic
import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.responses_upstream import FakeResponses
from tests.harness import clean_env, running_vdm
from vdm.config.settings import Settings
from vdm.routing.resolve import resolve

PRESETS = tomllib.loads(
    resources.files("vdm.config").joinpath("defaults.toml").read_text(encoding="utf-8")
)
#: Names Claude Code sends (its aliases, dated ids, the current default), with their family.
CLAUDE_NAMES = {
    "sonnet": "sonnet",
    "opus": "opus",
    "haiku": "haiku",
    "claude-sonnet-4-5-20250929": "sonnet",
    "claude-opus-4-6": "opus",
    "claude-haiku-4-5": "haiku",
    "claude-opus-5-5": "opus",
    "claude-3-5-haiku-20241022": "haiku",
}
TWO = {"OPENAI_API_KEY": "sk-openai", "DEEPSEEK_API_KEY": "sk-deepseek"}
CUSTOM = {"MYCORP_API_KEY": "sk-corp", "MYCORP_BASE_URL": "http://127.0.0.1:9/v1"}


def _routes(settings: Settings) -> dict[str, str]:
    found = {}
    for name in CLAUDE_NAMES:
        route = resolve(name, settings)
        found[name] = f"{route.provider.name}:{route.model}"
    return found


# -- resolution -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "default"),
    [
        (TWO, "openai"),  # openai is the default when configured
        ({**TWO, "VDM_DEFAULT_PROVIDER": "deepseek"}, "deepseek"),
        ({**TWO, "VDM_DEFAULT_PROVIDER": "DeepSeek"}, "deepseek"),
    ],
)
def test_with_two_providers_claude_names_go_to_the_default_providers_mapping(
    env: dict[str, str], default: str
) -> None:
    settings = Settings.from_mapping(env)
    assert settings.default_provider == default
    mapping = PRESETS[default]["aliases"]
    assert _routes(settings) == {
        name: f"{default}:{mapping[family]}" for name, family in CLAUDE_NAMES.items()
    }


ADDED = [
    {f"{name.upper()}_API_KEY": f"sk-{name}"}
    for name, preset in PRESETS.items()
    if "base-url" in preset and preset.get("key-required", True)
] + [{"OTHERCORP_API_KEY": "sk-other", "OTHERCORP_BASE_URL": "http://127.0.0.1:9/v1"}]


@pytest.mark.parametrize(
    "base",
    [
        {"OPENAI_API_KEY": "sk-openai"},
        {"DEEPSEEK_API_KEY": "sk-deepseek", "VDM_DEFAULT_PROVIDER": "deepseek"},
        {"GROQ_API_KEY": "sk-groq", "VDM_DEFAULT_PROVIDER": "groq"},
        # No mapping on the default: the names go there unchanged, whatever else has one.
        {"ANTHROPIC_API_KEY": "sk-ant", "VDM_DEFAULT_PROVIDER": "anthropic"},
        {**CUSTOM, "VDM_DEFAULT_PROVIDER": "mycorp"},
        {"OLLAMA_BASE_URL": "http://127.0.0.1:11434/v1", "VDM_DEFAULT_PROVIDER": "ollama"},
    ],
    ids=["openai", "deepseek", "groq", "anthropic", "mycorp", "ollama"],
)
@pytest.mark.parametrize("added", ADDED, ids=lambda env: next(iter(env)))
def test_adding_a_providers_key_never_moves_claude_names(
    base: dict[str, str], added: dict[str, str]
) -> None:
    before = _routes(Settings.from_mapping(base))
    after = _routes(Settings.from_mapping({**base, **added}))
    assert after == before


def test_claude_names_reach_a_default_without_mapping_unchanged() -> None:
    """Before: the first configured provider with a packaged `sonnet` took them."""
    settings = Settings.from_mapping(
        {**TWO, "VDM_DEFAULT_PROVIDER": "anthropic", "ANTHROPIC_API_KEY": "k"}
    )
    route = resolve("claude-sonnet-4-5-20250929", settings)
    assert (route.provider.name, route.model) == ("anthropic", "claude-sonnet-4-5-20250929")
    # Another provider's packaged fallback stays reachable with its prefix.
    route = resolve("deepseek:sonnet", settings)
    assert (route.provider.name, route.model) == (
        "deepseek",
        PRESETS["deepseek"]["aliases"]["sonnet"],
    )


def test_the_resolution_says_why_another_providers_fallback_is_not_used() -> None:
    settings = Settings.from_mapping({**CUSTOM, **TWO, "VDM_DEFAULT_PROVIDER": "mycorp"})
    route = resolve("claude-opus-4-6", settings)
    assert (route.provider.name, route.model) == ("mycorp", "claude-opus-4-6")
    assert route.steps == (
        "'claude-opus-4-6' is no alias: default provider 'mycorp', name unchanged "
        "(deepseek's fallback 'opus' applies only to `deepseek:opus`)",
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        # your alias of another provider is step 2: it beats the default's packaged fallback
        ({"DEEPSEEK_ALIAS_SONNET": "deepseek-v4-pro"}, {"sonnet": "deepseek:deepseek-v4-pro"}),
        # an exact alias of each provider: the default provider's wins the tie
        (
            {"DEEPSEEK_ALIAS_OPUS": "deepseek-v4-pro", "OPENAI_ALIAS_OPUS": "gpt-4.1"},
            {"opus": "openai:gpt-4.1"},
        ),
        # the legacy variables and [fallback] map onto the default provider
        ({"BIG_MODEL": "deepseek:deepseek-v4-pro"}, {"opus": "deepseek:deepseek-v4-pro"}),
        ({"VDM_FALLBACK_HAIKU": "gpt-4.1-nano"}, {"haiku": "openai:gpt-4.1-nano"}),
    ],
)
def test_your_aliases_keep_their_precedence(env: dict[str, str], expected: dict[str, str]) -> None:
    settings = Settings.from_mapping({**TWO, **env})
    routes = _routes(settings)
    openai = PRESETS["openai"]["aliases"]
    for name, family in CLAUDE_NAMES.items():
        assert routes[name] == expected.get(family, f"openai:{openai[family]}"), name


# -- warnings -------------------------------------------------------------------------------


def _claude_warnings(env: dict[str, str]) -> list[str]:
    return [w for w in Settings.from_mapping(env).warnings if "Claude Code's model names" in w]


def test_a_custom_provider_alone_warns_that_claude_names_reach_it_unchanged() -> None:
    [warning] = _claude_warnings(CUSTOM)
    assert "claude-haiku-…, claude-sonnet-…, claude-opus-…" in warning
    assert "reach provider 'mycorp' unchanged" in warning
    for fix in (
        "MYCORP_ALIAS_HAIKU=<model>",
        "MYCORP_ALIAS_SONNET=<model>",
        "MYCORP_ALIAS_OPUS=<model>",
        "[mycorp.aliases]",
        "SMALL_MODEL / MIDDLE_MODEL / BIG_MODEL",
    ):
        assert fix in warning


@pytest.mark.parametrize(
    ("env", "unmapped"),
    [
        ({"MYCORP_ALIAS_SONNET": "corp-large"}, ["haiku", "opus"]),
        ({"MIDDLE_MODEL": "corp-large", "BIG_MODEL": "corp-huge"}, ["haiku"]),
        ({"VDM_FALLBACK_OPUS": "corp-huge"}, ["haiku", "sonnet"]),
        ({"MYCORP_ALIAS_CLAUDE": "corp-large"}, []),  # contained in every Claude name
        ({"SMALL_MODEL": "a", "MIDDLE_MODEL": "b", "BIG_MODEL": "c"}, []),
    ],
)
def test_the_warning_names_only_what_is_unmapped(env: dict[str, str], unmapped: list[str]) -> None:
    found = _claude_warnings({**CUSTOM, **env})
    if not unmapped:
        assert found == []
        return
    [warning] = found
    families = {"haiku", "sonnet", "opus"}
    for family in unmapped:
        assert f"claude-{family}-…" in warning and f"MYCORP_ALIAS_{family.upper()}" in warning
    for family in families - set(unmapped):
        assert (
            f"claude-{family}-…" not in warning and f"MYCORP_ALIAS_{family.upper()}" not in warning
        )


@pytest.mark.parametrize(
    ("env", "warned"),
    [
        ({"OPENAI_API_KEY": "k"}, False),  # packaged fallbacks
        ({"ANTHROPIC_API_KEY": "k"}, False),  # Anthropic knows Claude's names
        ({**CUSTOM, "MYCORP_API_FORMAT": "anthropic", "MYCORP_BASE_URL": "http://x"}, False),
        ({"OLLAMA_BASE_URL": "http://127.0.0.1:11434/v1"}, True),  # a preset without any
        ({"AZURE_API_KEY": "k", "AZURE_BASE_URL": "https://r.openai.azure.com"}, True),
        ({**TWO, "VDM_DEFAULT_PROVIDER": "deepseek"}, False),
        ({**CUSTOM, **TWO, "VDM_DEFAULT_PROVIDER": "mycorp"}, True),
        ({**CUSTOM, **TWO}, False),  # openai is the default
    ],
)
def test_only_an_unmapped_default_provider_warns(env: dict[str, str], warned: bool) -> None:
    assert bool(_claude_warnings(env)) is warned


def test_several_providers_and_no_chosen_default_is_a_warning_naming_the_fix() -> None:
    [warning] = [w for w in Settings.from_mapping(TWO).warnings if "VDM_DEFAULT_PROVIDER" in w]
    assert warning.startswith("2 providers are configured (deepseek, openai)")
    assert "'openai' (openai is configured)" in warning
    assert "set VDM_DEFAULT_PROVIDER=openai" in warning and 'default-provider = "openai"' in warning
    other = {"GROQ_API_KEY": "k", "DEEPSEEK_API_KEY": "k"}
    [warning] = [w for w in Settings.from_mapping(other).warnings if "VDM_DEFAULT_PROVIDER" in w]
    assert "'deepseek' (first by name)" in warning
    chosen = {**TWO, "VDM_DEFAULT_PROVIDER": "deepseek"}
    assert not [w for w in Settings.from_mapping(chosen).warnings if "none is chosen" in w]
    one = {"DEEPSEEK_API_KEY": "k"}
    assert Settings.from_mapping(one).warnings == ()


# -- through the gateway --------------------------------------------------------------------


@pytest.fixture
def openai_fake() -> Iterator[FakeResponses]:
    """OpenAI: the packaged gpt-5.6 models are called on /v1/responses."""
    with FakeResponses() as upstream:
        yield upstream


@pytest.mark.parametrize("default", ["openai", "deepseek"])
def test_claude_code_names_reach_the_default_provider_through_the_gateway(
    default: str, openai_fake: FakeResponses, other: FakeOpenAI
) -> None:
    env = {
        "OPENAI_API_KEY": "sk-openai",
        "OPENAI_BASE_URL": openai_fake.base_url,
        "DEEPSEEK_API_KEY": "sk-deepseek",
        "DEEPSEEK_BASE_URL": other.base_url,
        "MAX_RETRIES": "0",
    }
    if default == "deepseek":
        env["VDM_DEFAULT_PROVIDER"] = "deepseek"
    fakes = {"openai": openai_fake, "deepseek": other}
    sent = ["claude-sonnet-4-5-20250929", "claude-opus-4-6", "claude-haiku-4-5"]
    with (
        running_vdm(env) as vdm,
        anthropic.Anthropic(base_url=vdm.url, api_key="sk-client", max_retries=0) as client,
    ):
        for model in sent:
            message = client.messages.create(
                model=model, max_tokens=50, messages=[{"role": "user", "content": "hi"}]
            )
            assert message.content, model
        aliases = httpx.get(f"{vdm.url}/v1/aliases", timeout=10).json()
    mapping = PRESETS[default]["aliases"]
    received = [r.json["model"] for r in fakes[default].requests if r.method == "POST"]
    assert received == [mapping["sonnet"], mapping["opus"], mapping["haiku"]]
    idle = next(f for name, f in fakes.items() if name != default)
    assert idle.requests == []
    # The alias table agrees: only the default provider's fallbacks are active.
    active = {(e["provider"], e["name"]) for e in aliases["aliases"] if e["active"]}
    assert active == {(default, family) for family in ("haiku", "sonnet", "opus")}


def test_vdm_wrap_prints_the_warning_before_the_child_starts(tmp_path: Path) -> None:
    with FakeOpenAI() as corp:
        env = clean_env(
            HOME=str(tmp_path),
            MYCORP_API_KEY="sk-corp",
            MYCORP_BASE_URL=corp.base_url,
        )
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "vdm.cli",
                "wrap",
                "--quiet",
                "--",
                "sh",
                "-c",
                "echo child >&2",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    warned = [i for i, line in enumerate(lines) if "Claude Code's model names" in line]
    assert warned and lines[warned[0]].startswith("vdm wrap: warning: "), done.stderr
    assert "MYCORP_ALIAS_SONNET=<model>" in lines[warned[0]]
    assert warned[0] < lines.index("child"), done.stderr
