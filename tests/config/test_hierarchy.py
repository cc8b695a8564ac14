"""The configuration hierarchy with real files: a temporary HOME and working directory.

defaults.toml < ~/.config/vandamme-proxy/vandamme-config.toml < ./vandamme-config.toml < ./.env
< the environment. Every test passes its own `env` and `cwd`, so neither the real environment
nor the real ~/.config is ever read.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest

from tests.harness import Place
from vdm.config.secrets import mask, redact
from vdm.config.settings import ConfigError, Settings

PRESETS = tomllib.loads(
    resources.files("vdm.config").joinpath("defaults.toml").read_text(encoding="utf-8")
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def place(tmp_path: Path) -> Place:
    return Place.make(tmp_path)


# -- 1. precedence ------------------------------------------------------------------------------

LAYERS = ("user", "project", "dotenv", "env")
#: Enough providers for VDM_DEFAULT_PROVIDER to pick a different one in each layer.
KEYS = {f"{p}_API_KEY": f"key-{p.lower()}" for p in ("OPENAI", "GROQ", "GEMINI", "MISTRAL", "XAI")}


@dataclass(frozen=True)
class Setting:
    """One setting, spelled for TOML and for the environment, and how to read it back."""

    var: str
    toml: str  # with {v} for the value
    values: dict[str, str]  # layer -> value
    read: Callable[[Settings], object]
    unset: object  # what `read` gives when no layer but the defaults sets it


SETTINGS = {
    "timeout": Setting(
        "OPENAI_TIMEOUT",
        "[openai]\ntimeout = {v}\n",
        {"user": "11", "project": "12", "dotenv": "13", "env": "14"},
        lambda s: s.providers["openai"].timeout,
        600.0,
    ),
    "default-provider": Setting(
        "VDM_DEFAULT_PROVIDER",
        'default-provider = "{v}"\n',
        {"user": "groq", "project": "gemini", "dotenv": "mistral", "env": "xai"},
        lambda s: s.default_provider,
        "openai",
    ),
    "alias": Setting(
        "OPENAI_ALIAS_FAST",
        '[openai.aliases]\nfast = "{v}"\n',
        {"user": "m-user", "project": "m-project", "dotenv": "m-dotenv", "env": "m-env"},
        lambda s: {a.name: a.target for a in s.aliases}.get("fast"),
        None,
    ),
    "base-url": Setting(
        "OPENAI_BASE_URL",
        '[openai]\nbase-url = "{v}"\n',
        {
            "user": "https://user.example/v1",
            "project": "https://project.example/v1",
            "dotenv": "https://dotenv.example/v1",
            "env": "https://env.example/v1",
        },
        lambda s: s.providers["openai"].base_url,
        "https://api.openai.com/v1",
    ),
}


@pytest.mark.parametrize("top", ["defaults", *LAYERS])
@pytest.mark.parametrize("name", list(SETTINGS))
def test_the_highest_layer_that_sets_a_value_wins(place: Place, name: str, top: str) -> None:
    setting = SETTINGS[name]
    below = LAYERS[: LAYERS.index(top) + 1] if top != "defaults" else ()
    env = dict(KEYS)
    for layer in below:  # every layer up to `top` sets it, each to its own value
        value = setting.values[layer]
        if layer == "user":
            write(place.user_toml, setting.toml.format(v=value))
        elif layer == "project":
            write(place.project_toml, setting.toml.format(v=value))
        elif layer == "dotenv":
            write(place.dotenv, f"{setting.var}={value}\n")
        else:
            env[setting.var] = value
    settings = place.load(**env)

    if top == "defaults":
        assert setting.read(settings) == setting.unset
        found = settings.values.get(setting.var)
        assert found is None or found.source == "defaults.toml"
        return
    expected = setting.values[top]
    assert str(setting.read(settings)) == str(float(expected) if name == "timeout" else expected)
    sources = {
        "user": str(place.user_toml),
        "project": str(place.project_toml),
        "dotenv": str(place.dotenv),
        "env": "env",
    }
    assert settings.values[setting.var].source == sources[top]


def test_xdg_config_home_replaces_home_dot_config(place: Place, tmp_path: Path) -> None:
    write(place.user_toml, "[openai]\ntimeout = 22\n")
    xdg = write(
        tmp_path / "xdg" / "vandamme-proxy" / "vandamme-config.toml", "[openai]\ntimeout = 21\n"
    )
    settings = place.load(OPENAI_API_KEY="k", XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    assert settings.providers["openai"].timeout == 21.0
    assert settings.values["OPENAI_TIMEOUT"].source == str(xdg)


def test_home_dot_config_is_read_without_xdg(place: Place) -> None:
    write(place.user_toml, '[groq]\napi-key = "gsk-from-home"\n')
    assert place.load().providers["groq"].api_keys == ("gsk-from-home",)


# -- 2. TOML mirrors the variables --------------------------------------------------------------

FULL_TOML = """\
default-provider = "mycorp"
proxy-api-key = "proxy-secret-9876"

[fallback]
sonnet = "openai:gpt-4.1"

[openai]
base-url = "https://gateway.example/v1"
api-format = "openai"
timeout = 30
max-retries = 5
api-key = "sk-one-aaaa"

[openai.aliases]
fast = "gpt-4o-mini"
My-Big = "gpt-5"

[openai.custom-headers]
X-Org-Id = "org-7"

[azure]
api-key = "az-key-1234"
base-url = "https://res.openai.azure.com"
api-version = "2025-01-01"

[mycorp]
api-key = "mc-key-5678"
base-url = "https://llm.mycorp.example"
api-format = "anthropic"
"""

FULL_ENV = {
    "VDM_DEFAULT_PROVIDER": "mycorp",
    "PROXY_API_KEY": "proxy-secret-9876",
    "VDM_FALLBACK_SONNET": "openai:gpt-4.1",
    "OPENAI_BASE_URL": "https://gateway.example/v1",
    "OPENAI_API_FORMAT": "openai",
    "OPENAI_TIMEOUT": "30",
    "OPENAI_MAX_RETRIES": "5",
    "OPENAI_API_KEY": "sk-one-aaaa",
    "OPENAI_ALIAS_FAST": "gpt-4o-mini",
    "OPENAI_ALIAS_MY_BIG": "gpt-5",
    "OPENAI_CUSTOM_HEADER_X_ORG_ID": "org-7",
    "AZURE_API_KEY": "az-key-1234",
    "AZURE_BASE_URL": "https://res.openai.azure.com",
    "AZURE_API_VERSION": "2025-01-01",
    "MYCORP_API_KEY": "mc-key-5678",
    "MYCORP_BASE_URL": "https://llm.mycorp.example",
    "MYCORP_API_FORMAT": "anthropic",
}


def test_toml_keys_set_the_same_variables_as_the_environment(place: Place) -> None:
    write(place.project_toml, FULL_TOML)
    from_toml = place.load()
    from_env = Settings.from_mapping(FULL_ENV)
    for var, value in FULL_ENV.items():
        assert from_toml.values[var].value == value, var
    assert from_toml.providers == from_env.providers
    assert from_toml.default_provider == from_env.default_provider == "mycorp"
    assert from_toml.proxy_api_key == from_env.proxy_api_key == "proxy-secret-9876"
    assert [(a.name, a.provider, a.target) for a in from_toml.aliases] == [
        (a.name, a.provider, a.target) for a in from_env.aliases
    ]
    assert [(a.name, a.provider, a.target) for a in from_toml.fallbacks] == [
        (a.name, a.provider, a.target) for a in from_env.fallbacks
    ]
    assert from_toml.problems == from_env.problems == ()


def test_provider_section_keys(place: Place) -> None:
    write(place.project_toml, FULL_TOML)
    settings = place.load()
    openai, azure, mycorp = (settings.providers[n] for n in ("openai", "azure", "mycorp"))
    assert (openai.base_url, openai.api_format, openai.timeout, openai.max_retries) == (
        "https://gateway.example/v1",
        "openai",
        30.0,
        5,
    )
    assert (azure.auth, azure.api_version) == ("api-key", "2025-01-01")
    assert (mycorp.api_format, mycorp.auth, mycorp.base_url) == (
        "anthropic",
        "x-api-key",
        "https://llm.mycorp.example",
    )


@pytest.mark.parametrize(
    ("toml_value", "keys"),
    [
        ('"sk-only-1111"', ("sk-only-1111",)),
        (
            '["sk-one-1111", "sk-two-2222", "sk-three-3333"]',
            ("sk-one-1111", "sk-two-2222", "sk-three-3333"),
        ),
    ],
    ids=["string", "list"],
)
def test_api_key_string_or_list(place: Place, toml_value: str, keys: tuple[str, ...]) -> None:
    write(place.project_toml, f"[openai]\napi-key = {toml_value}\n")
    assert place.load().providers["openai"].api_keys == keys


def test_aliases_and_fallbacks_from_toml(place: Place) -> None:
    write(place.project_toml, FULL_TOML)
    settings = place.load()
    assert {(a.name, a.provider, a.target) for a in settings.aliases} == {
        ("fast", "openai", "gpt-4o-mini"),
        ("my-big", "openai", "gpt-5"),
    }
    first = settings.fallbacks[0]  # [fallback] comes before the packaged aliases
    assert (first.name, first.provider, first.target, first.kind) == (
        "sonnet",
        "mycorp",
        "openai:gpt-4.1",
        "fallback",
    )
    assert str(place.project_toml) in first.source


def test_custom_headers_from_toml(place: Place) -> None:
    write(
        place.project_toml,
        '[custom-headers]\nX-Team = "core"\n\n'
        '[openai]\napi-key = "a"\n[openai.custom-headers]\nX-Org-Id = "org-7"\n\n'
        '[groq]\napi-key = "b"\n',
    )
    settings = place.load()
    assert settings.providers["openai"].custom_headers == {"X-TEAM": "core", "X-ORG-ID": "org-7"}
    assert settings.providers["groq"].custom_headers == {"X-TEAM": "core"}


def test_custom_headers_from_env_per_provider_wins(place: Place) -> None:
    settings = place.load(
        OPENAI_API_KEY="a",
        GROQ_API_KEY="b",
        CUSTOM_HEADER_X_SHARED="global",
        OPENAI_CUSTOM_HEADER_X_SHARED="openai-only",
        GROQ_CUSTOM_HEADER_X_GROQ_ONLY="g",
    )
    assert settings.providers["openai"].custom_headers == {"X-SHARED": "openai-only"}
    assert settings.providers["groq"].custom_headers == {"X-SHARED": "global", "X-GROQ-ONLY": "g"}


def test_per_provider_header_wins_over_a_global_one_from_a_higher_layer(place: Place) -> None:
    write(place.user_toml, '[openai.custom-headers]\nX-Shared = "from-user-toml"\n')
    settings = place.load(OPENAI_API_KEY="a", CUSTOM_HEADER_X_SHARED="from-env")
    assert settings.providers["openai"].custom_headers == {"X-SHARED": "from-user-toml"}


# -- 3. malformed files and unknown keys --------------------------------------------------------


@pytest.mark.parametrize("which", ["user", "project"])
def test_malformed_toml_names_the_file_and_line(place: Place, which: str) -> None:
    path = place.user_toml if which == "user" else place.project_toml
    write(path, '[openai]\napi-key = "k"\nbase-url = \n')
    with pytest.raises(ConfigError) as raised:
        place.load()
    message = str(raised.value)
    assert str(path) in message
    assert "line 3" in message


@pytest.mark.parametrize("which", ["user", "project"])
def test_unknown_keys_are_warnings_and_loading_goes_on(place: Place, which: str) -> None:
    path = place.user_toml if which == "user" else place.project_toml
    write(path, 'colour = "blue"\n\n[openai]\napi-key = "sk-k"\nbase_url = "https://x/v1"\n')
    settings = place.load()
    assert settings.providers["openai"].api_keys == ("sk-k",)
    assert settings.providers["openai"].base_url == "https://api.openai.com/v1"  # typo ignored
    top = [w for w in settings.warnings if "'colour'" in w]
    inner = [w for w in settings.warnings if "'base_url'" in w and "[openai]" in w]
    assert len(top) == 1 and str(path) in top[0]
    assert len(inner) == 1 and str(path) in inner[0]


# -- 4. fresh install ---------------------------------------------------------------------------


def test_fresh_install_has_nothing_configured_and_no_problems(place: Place) -> None:
    settings = place.load()
    assert settings.providers == {}
    assert settings.fallbacks == ()
    assert settings.aliases == ()
    assert settings.default_provider is None
    assert settings.problems == ()
    assert settings.warnings == ()


def test_packaged_fallbacks_only_for_configured_providers(place: Place) -> None:
    settings = place.load(GROQ_API_KEY="gsk-1")
    assert list(settings.providers) == ["groq"]
    assert settings.default_provider == "groq"
    assert {(a.name, a.provider, a.kind, a.source) for a in settings.fallbacks} == {
        (family, "groq", "fallback", "defaults.toml") for family in ("haiku", "sonnet", "opus")
    }
    targets = {a.name: a.target for a in settings.fallbacks}
    assert targets == PRESETS["groq"]["aliases"]


def test_a_redefined_packaged_alias_is_yours_not_a_fallback(place: Place) -> None:
    write(place.project_toml, '[groq.aliases]\nsonnet = "my-sonnet"\n')
    settings = place.load(GROQ_API_KEY="gsk-1")
    assert [(a.name, a.target, a.kind) for a in settings.aliases] == [
        ("sonnet", "my-sonnet", "alias")
    ]
    assert "sonnet" not in {a.name for a in settings.fallbacks}


# -- 5. presets ---------------------------------------------------------------------------------

KEYED_PRESETS = [
    "openai",
    "anthropic",
    "gemini",
    "openrouter",
    "poe",
    "deepseek",
    "groq",
    "mistral",
    "xai",
    "together",
    "fireworks",
    "moonshot",
    "zai",
]


@pytest.mark.parametrize("name", KEYED_PRESETS)
def test_a_key_alone_configures_a_preset(place: Place, name: str) -> None:
    settings = place.load(**{f"{name.upper()}_API_KEY": f"key-{name}-0000"})
    provider = settings.providers[name]
    assert provider.api_keys == (f"key-{name}-0000",)
    assert provider.base_url.startswith("https://")
    assert provider.base_url == PRESETS[name]["base-url"]
    assert settings.values[f"{name.upper()}_BASE_URL"].source == "defaults.toml"
    assert settings.default_provider == name
    assert settings.problems == ()


def test_anthropic_preset_speaks_anthropic(place: Place) -> None:
    anthropic = place.load(ANTHROPIC_API_KEY="sk-ant-1").providers["anthropic"]
    assert (anthropic.api_format, anthropic.auth) == ("anthropic", "x-api-key")
    assert anthropic.base_url == "https://api.anthropic.com"  # no /v1: the path adds it


def test_azure_without_base_url_is_a_problem(place: Place) -> None:
    settings = place.load(AZURE_API_KEY="az-1")
    assert "azure" not in settings.providers
    assert any("AZURE_BASE_URL" in p for p in settings.problems)


def test_azure_with_base_url_uses_api_key_auth_and_a_version(place: Place) -> None:
    settings = place.load(AZURE_API_KEY="az-1", AZURE_BASE_URL="https://res.openai.azure.com/")
    azure = settings.providers["azure"]
    assert azure.base_url == "https://res.openai.azure.com"
    assert azure.auth == "api-key"
    assert azure.api_version == PRESETS["azure"]["api-version"]


def test_ollama_by_base_url_alone(place: Place) -> None:
    settings = place.load(OLLAMA_BASE_URL="http://gpu-box:11434/v1")
    ollama = settings.providers["ollama"]
    assert ollama.api_keys == ()
    assert ollama.base_url == "http://gpu-box:11434/v1"
    assert settings.problems == ()


@pytest.mark.parametrize(
    "section", ["[ollama]\ntimeout = 300\n", "[ollama]\n"], ids=["keys", "empty"]
)
def test_ollama_by_a_project_section(place: Place, section: str) -> None:
    write(place.project_toml, section)
    ollama = place.load().providers["ollama"]
    assert ollama.base_url == PRESETS["ollama"]["base-url"]
    assert ollama.api_keys == ()


def test_ollama_not_configured_by_the_ollama_servers_own_variables(place: Place) -> None:
    # OLLAMA_HOST, OLLAMA_MODELS, … configure the Ollama server, not vdm.
    settings = place.load(OLLAMA_HOST="0.0.0.0:11434", OLLAMA_MODELS="/srv/models")
    assert "ollama" not in settings.providers


def test_ollama_not_configured_on_a_fresh_install(place: Place) -> None:
    assert "ollama" not in place.load(OPENAI_API_KEY="k").providers


def test_unknown_provider_needs_a_base_url(place: Place) -> None:
    settings = place.load(MYCORP_API_KEY="mc-1")
    assert "mycorp" not in settings.providers
    assert any("MYCORP_BASE_URL" in p for p in settings.problems)


def test_anthropic_format_switches_to_the_presets_anthropic_url(place: Place) -> None:
    settings = place.load(DEEPSEEK_API_KEY="ds-1", DEEPSEEK_API_FORMAT="anthropic")
    deepseek = settings.providers["deepseek"]
    assert deepseek.base_url == "https://api.deepseek.com/anthropic"
    assert (deepseek.api_format, deepseek.auth) == ("anthropic", "x-api-key")


def test_a_header_named_api_key_is_not_a_provider(place: Place) -> None:
    settings = place.load(
        OPENAI_API_KEY="k",
        CUSTOM_HEADER_X_API_KEY="gateway-secret",
        OPENAI_CUSTOM_HEADER_X_API_KEY="other-secret",
    )
    assert list(settings.providers) == ["openai"]
    assert settings.problems == ()
    assert settings.providers["openai"].custom_headers == {"X-API-KEY": "other-secret"}


# -- 6. !PASSTHRU -------------------------------------------------------------------------------


def test_passthru_provider_has_no_keys_and_mixes_with_static_ones(place: Place) -> None:
    write(place.dotenv, "OPENAI_API_KEY=!PASSTHRU\n")
    settings = place.load(ANTHROPIC_API_KEY="sk-ant-static-1234")
    openai, anthropic = settings.providers["openai"], settings.providers["anthropic"]
    assert (openai.passthrough, openai.api_keys) == (True, ())
    assert openai.masked_keys == ["!PASSTHRU"]
    assert (anthropic.passthrough, anthropic.api_keys) == (False, ("sk-ant-static-1234",))
    assert settings.secrets == ("sk-ant-static-1234",)


# -- 7. secrets ---------------------------------------------------------------------------------

SECRET = "sk-secret-value-1234"


def test_keys_never_in_reprs(place: Place) -> None:
    write(
        place.project_toml, f'proxy-api-key = "proxy-secret-5678"\n[openai]\napi-key = "{SECRET}"\n'
    )
    settings = place.load()
    shown = repr(settings) + repr(settings.providers["openai"]) + str(settings.providers)
    assert "openai" in shown
    assert SECRET not in shown
    assert "proxy-secret-5678" not in shown


def test_masked_keys_and_redaction(place: Place) -> None:
    settings = place.load(
        OPENAI_API_KEY=f"{SECRET} sk-other-value-9999", PROXY_API_KEY="px-abcdef-4321"
    )
    assert settings.providers["openai"].masked_keys == [mask(SECRET), mask("sk-other-value-9999")]
    assert settings.providers["openai"].masked_keys == ["sk-…1234", "sk-…9999"]
    text = redact(f"upstream said: bad key {SECRET} (proxy px-abcdef-4321)", settings.secrets)
    assert SECRET not in text and "px-abcdef-4321" not in text
    assert "sk-…1234" in text


# -- 8. aliases of unconfigured providers -------------------------------------------------------


def test_alias_for_an_unconfigured_provider_is_a_warning(place: Place) -> None:
    write(place.project_toml, '[openai.aliases]\nfast = "gpt-4o-mini"\n')
    settings = place.load(GROQX_ALIAS_FAST="llama", OPENAI_API_KEY="k")
    warned = [w for w in settings.warnings if "GROQX_ALIAS_FAST" in w]
    assert len(warned) == 1 and "env" in warned[0]
    assert not any("OPENAI_ALIAS_FAST" in w for w in settings.warnings)
    assert [a.name for a in settings.aliases] == ["fast"]
