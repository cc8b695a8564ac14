"""Failover chains in the configuration and in model resolution (docs/routing.md).

A list alias (`fast = ["groq:a", "openai:b"]` in TOML, `OPENAI_ALIAS_FAST=groq:a,openai:b` in
the environment), a `[failover]` table keyed by alias or `provider:model`, and a long-context
target (for every model or per key) all end up on the resolved `Route`: the primary keeps
resolving as before, its `failover` routes follow in order, distinct, with targets of
unconfigured providers skipped (and warned about at load).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.harness import KEEP_ENV, Place
from vdm.cli.main import app
from vdm.config.settings import Settings
from vdm.routing.resolve import resolve

TOML = """
default-provider = "openai"

[openai]
api-key = "sk-openai-1111"

[groq]
api-key = "gsk-2222"

[groq.aliases]
fast = ["llama-3.3-70b", "openai:gpt-4o-mini", "nosuch:model"]

[failover]
"openai:gpt-4.1" = ["groq:llama-3.1-8b", "openai:gpt-4o"]
long-context = "openai:gpt-4.1"
fast = { targets = ["openai:o3", "groq:llama-3.3-70b"], long-context = "openai:gpt-5" }
"""


@pytest.fixture
def place(tmp_path: Path) -> Place:
    place = Place.make(tmp_path)
    place.write("vandamme-config.toml", TOML)
    return place


def test_toml_lists_and_the_failover_table_become_variables(place: Place) -> None:
    settings = place.load()
    values = {k: v.value for k, v in settings.values.items()}
    assert values["GROQ_ALIAS_FAST"] == "llama-3.3-70b,openai:gpt-4o-mini,nosuch:model"
    assert values["VDM_FAILOVER_OPENAI:GPT_4_1"] == "groq:llama-3.1-8b,openai:gpt-4o"
    assert values["VDM_FAILOVER_FAST"] == "openai:o3,groq:llama-3.3-70b"
    assert values["VDM_LONG_CONTEXT"] == "openai:gpt-4.1"
    assert values["VDM_LONG_CONTEXT_FAST"] == "openai:gpt-5"
    [fast] = [a for a in settings.aliases if a.name == "fast"]
    assert (fast.provider, fast.target) == ("groq", "llama-3.3-70b")
    assert fast.failover == ("openai:gpt-4o-mini", "nosuch:model")
    assert settings.failover["openai:gpt-4-1"] == ("groq:llama-3.1-8b", "openai:gpt-4o")
    assert settings.long_context == {"": "openai:gpt-4.1", "fast": "openai:gpt-5"}


def test_a_target_of_an_unconfigured_provider_is_a_warning_not_a_crash(place: Place) -> None:
    settings = place.load()
    [warning] = [w for w in settings.warnings if "nosuch" in w]
    assert "alias 'fast'" in warning and "provider 'nosuch', which is not configured" in warning
    route = resolve("fast", settings)  # still resolves, the unknown target skipped
    assert "failover target 'nosuch:model' skipped" in "\n".join(route.steps)


def test_the_chain_is_the_alias_list_then_the_table_in_order_and_distinct(place: Place) -> None:
    route = resolve("fast", place.load())
    assert route.label == "groq:llama-3.3-70b"
    # The alias's own list, then [failover] fast (its groq:llama-3.3-70b is the primary: left out).
    assert [r.label for r in route.failover] == ["openai:gpt-4o-mini", "openai:o3"]
    assert route.long_context is not None and route.long_context.label == "openai:gpt-5"


def test_a_provider_model_key_and_the_global_long_context_target(place: Place) -> None:
    route = resolve("openai:gpt-4.1", place.load())
    assert [r.label for r in route.failover] == ["groq:llama-3.1-8b", "openai:gpt-4o"]
    assert route.long_context is None  # it is the long-context model: nowhere longer to go
    other = resolve("openai:gpt-4o", place.load())
    assert other.failover == ()
    assert other.long_context is not None and other.long_context.label == "openai:gpt-4.1"


def test_environment_lists_are_comma_separated() -> None:
    settings = Settings.from_mapping(
        {
            "OPENAI_API_KEY": "a",
            "GROQ_API_KEY": "b",
            "VDM_DEFAULT_PROVIDER": "openai",
            "OPENAI_ALIAS_FAST": "gpt-4o-mini, groq:llama-3.3-70b ,gpt-4o",
        }
    )
    route = resolve("fast", settings)
    assert route.label == "openai:gpt-4o-mini"
    # A target without a prefix is on the alias's provider.
    assert [r.label for r in route.failover] == ["groq:llama-3.3-70b", "openai:gpt-4o"]


def test_failover_targets_that_are_aliases_are_followed_but_not_their_chains() -> None:
    settings = Settings.from_mapping(
        {
            "OPENAI_API_KEY": "a",
            "GROQ_API_KEY": "b",
            "VDM_DEFAULT_PROVIDER": "openai",
            "OPENAI_ALIAS_FAST": "gpt-4o-mini,groq:quick",
            "GROQ_ALIAS_QUICK": "llama-3.1-8b,openai:gpt-4o-mini,openai:never",
        }
    )
    route = resolve("fast", settings)
    assert [r.label for r in route.failover] == ["groq:llama-3.1-8b"]
    assert route.failover[0].failover == ()


def test_no_chain_configured_leaves_the_route_alone() -> None:
    route = resolve("gpt-4o", Settings.from_mapping({"OPENAI_API_KEY": "a"}))
    assert (route.failover, route.long_context) == ((), None)


def test_config_show_resolve_shows_the_chain(place: Place, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name not in KEEP_ENV and not name.startswith("PYTEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(place.home))
    monkeypatch.chdir(place.cwd)
    runner = CliRunner()
    result = runner.invoke(app, ["config", "show", "--resolve", "fast"])
    assert result.exit_code == 0, result.output
    assert "fast → groq:llama-3.3-70b" in result.output
    assert "failover: openai:gpt-4o-mini → openai:o3" in result.output
    assert "long context: openai:gpt-5" in result.output
    result = runner.invoke(app, ["config", "show", "--resolve", "fast", "--json"])
    data = json.loads(result.output)
    assert data["failover"] == ["openai:gpt-4o-mini", "openai:o3"]
    assert data["long_context"] == ["openai:gpt-5"]
