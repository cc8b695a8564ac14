"""Which middleware run where: TOML scopes (global < provider < alias), options merged,
layers merged, names checked, plugins loaded by entry point, with errors that name them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import Place
from tests.middleware.helpers import settings_with
from tests.middleware.plugins import register
from vdm.config.settings import ConfigError, Settings
from vdm.config.sources import flatten_toml
from vdm.middleware import MiddlewareError, Middlewares, middlewares
from vdm.middleware.system_prompt import SystemPrompt

ENV = {
    "OPENAI_API_KEY": "sk-a",
    "GROQ_API_KEY": "gsk-b",
    "OPENAI_ALIAS_FAST": "gpt-4o-mini",
    "OPENAI_ALIAS_SLOW": "gpt-4o",
}
SCOPED = """
[middleware]
enabled = ["system-prompt"]
[middleware.system-prompt]
append = "global"
replacements = [{ find = "a", replace = "b" }]

[groq.middleware]
enabled = ["tool-schema", "system-prompt"]
[groq.middleware.system-prompt]
append = "groq"

[middleware.aliases.Fast]
enabled = ["system-prompt"]
[middleware.aliases.fast.system-prompt]
append = "fast"

[middleware.aliases.slow]
enabled = []
"""


def _chain(settings: Settings, provider: str, alias: str | None) -> list[str]:
    found = Middlewares(settings).chain(provider, alias)
    return [] if found is None else list(found.names)


def test_the_most_specific_enabled_list_decides_and_options_merge() -> None:
    settings = settings_with(ENV, SCOPED)
    made = Middlewares(settings)
    openai = made.chain("openai", None)
    assert openai is not None and openai.names == ("system-prompt",)
    groq = made.chain("groq", None)
    assert groq is not None and groq.names == ("tool-schema", "system-prompt")
    prompt = groq.requests[1][1].__self__
    assert isinstance(prompt, SystemPrompt)
    # The provider's append over the global one; the global replacements kept.
    assert prompt.append == "groq" and prompt.replacements == (("a", "b"),)
    fast = made.chain("groq", "fast")
    assert fast is not None and fast.names == ("system-prompt",)
    assert fast.requests[0][1].__self__.append == "fast"
    # An alias scope may turn everything off; an alias without a scope gets the provider's.
    assert made.chain("openai", "slow") is None
    assert _chain(settings, "openai", "other") == ["system-prompt"]


def test_alias_of_reads_the_name_as_aliases_compare() -> None:
    made = Middlewares(settings_with(ENV, SCOPED))
    assert made.alias_of("fast") == "fast"
    assert made.alias_of("FAST") == "fast"
    assert made.alias_of("openai:fast") == "fast"
    assert made.alias_of("claude-vdm/fast") == "fast"
    assert made.alias_of("gpt-4o") is None
    assert made.alias_of("my-fast-model") is None  # only an alias named exactly


def test_nothing_configured_costs_nothing() -> None:
    assert middlewares(Settings.from_mapping(ENV)) is None
    off = settings_with(ENV, "[middleware]\nenabled = []\n")
    made = middlewares(off)
    assert made is not None and made.chain("openai", None) is None
    assert middlewares(off) is made  # made once per settings


def test_layers_merge_enabled_whole_and_options_key_by_key(tmp_path: Path) -> None:
    place = Place.make(tmp_path)
    place.write(
        "user",
        '[middleware]\nenabled = ["tool-schema"]\n[middleware.system-prompt]\nappend = "user"\n'
        'replacements = [{find = "x", replace = "y"}]\n',
    )
    place.write(
        "vandamme-config.toml",
        '[middleware]\nenabled = ["system-prompt"]\n'
        '[middleware.system-prompt]\nappend = "project"\n'
        '[openai]\napi-key = "sk-x"\n[openai.middleware]\nenabled = ["system-prompt"]\n',
    )
    settings = place.load()
    table, source = settings.middleware[""]
    assert table["enabled"] == ["system-prompt"]
    assert table["system-prompt"] == {
        "append": "project",
        "replacements": [{"find": "x", "replace": "y"}],
    }
    assert source.endswith("vandamme-config.toml")
    assert settings.middleware["provider:openai"][0] == {"enabled": ["system-prompt"]}
    assert not any("middleware" in w for w in settings.warnings)


def test_a_section_with_only_middleware_does_not_configure_a_provider() -> None:
    layer = flatten_toml({"Gemini": {"middleware": {"enabled": []}}}, "x.toml")
    assert layer.middleware == {"provider:gemini": ({"enabled": []}, "x.toml")}
    assert layer.sections == set() and layer.warnings == []


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[middleware]\nenabled = ["sytem-prompt"]\n', "unknown middleware 'sytem-prompt'"),
        ('[middleware]\nenabled = "system-prompt"\n', "`enabled` must be a list"),
        (
            '[middleware]\nenabled = ["tool-schema", "tool-schema"]\n',
            "tool-schema listed twice",
        ),
        ("[middleware]\nappend = 'x'\n", "'append' is neither `enabled` nor"),
        (
            '[openai.middleware]\nenabled = ["system-prompt"]\n',
            "[openai.middleware] (layer0.toml): middleware 'system-prompt' refused its options"
            ": ValueError: set `replacements` or `append`",
        ),
        (
            '[middleware.aliases.fast]\nenabled = ["tool-schema"]\n'
            '[middleware.aliases.fast.tool-schema]\nstrip = "format"\n',
            "[middleware.aliases.fast] (layer0.toml): middleware 'tool-schema' refused its "
            "options: ValueError: strip must be a list of strings",
        ),
    ],
)
def test_configuration_errors_name_the_place_and_the_fix(toml: str, expected: str) -> None:
    with pytest.raises(MiddlewareError) as caught:
        Middlewares(settings_with(ENV, toml))
    assert expected in str(caught.value)
    assert isinstance(caught.value, ConfigError)  # the CLI's "configuration error: …"


def test_unknown_name_lists_builtins_and_installed_plugins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(tmp_path, monkeypatch)
    with pytest.raises(MiddlewareError) as caught:
        Middlewares(settings_with(ENV, '[middleware]\nenabled = ["nope"]\n'))
    message = str(caught.value)
    assert "built-ins: system-prompt, tool-schema" in message
    assert "upper" in message and "'vdm.middleware' group" in message


def test_plugins_load_by_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    register(tmp_path, monkeypatch)
    toml = (
        '[middleware]\nenabled = ["upper", "team-header"]\n[middleware.team-header]\nteam = "t"\n'
    )
    chain = Middlewares(settings_with(ENV, toml)).chain("openai", None)
    assert chain is not None and chain.names == ("upper", "team-header")
    # Only the hooks each one defines are called.
    assert [n for n, _ in chain.events] == ["upper"]
    assert [n for n, _ in chain.headers] == ["team-header"]
    assert chain.requests == () and chain.errors == ()


def test_a_broken_plugin_is_named_with_its_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(tmp_path, monkeypatch)
    with pytest.raises(MiddlewareError) as caught:
        Middlewares(settings_with(ENV, '[middleware]\nenabled = ["broken"]\n'))
    message = str(caught.value)
    assert message.startswith("[middleware] (layer0.toml): middleware plugin 'broken'")
    assert "tests.middleware.no_such_module:Nothing in vdm-test-plugins 1.0" in message
    assert "ModuleNotFoundError" in message


def test_a_plugin_with_a_sync_hook_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(tmp_path, monkeypatch)
    with pytest.raises(MiddlewareError, match="'sync-hook': on_request must be `async def`"):
        Middlewares(settings_with(ENV, '[middleware]\nenabled = ["sync-hook"]\n'))


def test_options_a_plugin_refuses_stop_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    register(tmp_path, monkeypatch)
    with pytest.raises(MiddlewareError, match="'team-header' refused its options: ValueError"):
        Middlewares(settings_with(ENV, '[middleware]\nenabled = ["team-header"]\n'))


def test_scopes_nothing_uses_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    toml = (
        '[mistral.middleware]\nenabled = ["tool-schema"]\n'
        '[middleware.aliases.nothing]\nenabled = ["tool-schema"]\n'
    )
    Middlewares(settings_with(ENV, toml))
    assert "[mistral.middleware] (layer0.toml): provider is not configured" in caplog.text
    assert "[middleware.aliases.nothing] (layer0.toml): no alias of that name" in caplog.text
