"""`vdm config show / validate / env` through typer's CliRunner, with settings built from a
temporary HOME and working directory and an environment emptied of the shell's variables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.harness import KEEP_ENV, REPO, Place
from vdm.cli.common import NO_PROVIDER
from vdm.cli.main import app
from vdm.config.secrets import mask
from vdm.config.sources import PROVIDER_KEYS, TOP_LEVEL

runner = CliRunner()

OPENAI_KEY = "sk-proj-abcdefghijklmnop1234"
GROQ_KEY = "gsk_zyxwvutsrqponmlk9876"
PROXY_KEY = "team-proxy-secret-42"


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Place:
    """An empty HOME and project directory; no variable of the shell (OPENAI_API_KEY, …)."""
    for name in list(os.environ):
        if name not in KEEP_ENV and not name.startswith("PYTEST_"):
            monkeypatch.delenv(name)
    place = Place.make(tmp_path)
    monkeypatch.setenv("HOME", str(place.home))
    monkeypatch.chdir(place.cwd)
    return place


def vdm(*args: str, **env: str) -> tuple[int, str]:
    result = runner.invoke(app, ["config", *args], env=env)
    return result.exit_code, result.output


@pytest.fixture
def example(place: Place) -> Place:
    """openai (key in .env) and groq (key in the user TOML), groq the default, an alias."""
    place.write(
        "vandamme-config.toml",
        'default-provider = "groq"\nrequest-timeout = 120\n\n'
        '[openai]\ntimeout = 60\n[openai.aliases]\nfast = "gpt-4o-mini"\n',
    )
    place.write("user", f'[groq]\napi-key = "{GROQ_KEY}"\n')
    place.write(".env", f"OPENAI_API_KEY={OPENAI_KEY}\nPROXY_API_KEY={PROXY_KEY}\n")
    return place


def _row(output: str, *words: str) -> str:
    """The one line holding every word."""
    lines = [line for line in output.splitlines() if all(w in line for w in words)]
    assert len(lines) == 1, (words, output)
    return lines[0]


# -- show -----------------------------------------------------------------------------------------


def test_show_lists_providers_default_first_with_the_source_of_each_value(
    example: Place,
) -> None:
    code, out = vdm("show")
    assert code == 0, out
    assert "Default provider: groq  (./vandamme-config.toml)" in out
    assert out.index("\n  groq\n") < out.index("\n  openai\n")
    groq, openai = out.split("\n  groq\n")[1].split("\n  openai\n")
    assert _row(groq, "keys", mask(GROQ_KEY)).endswith(
        "~/.config/vandamme-proxy/vandamme-config.toml"
    )
    assert _row(groq, "base URL", "https://api.groq.com/openai/v1").endswith("defaults.toml")
    assert _row(groq, "timeout", "120 s").endswith("./vandamme-config.toml")  # REQUEST_TIMEOUT
    assert _row(openai, "keys", mask(OPENAI_KEY)).endswith("./.env")
    assert _row(openai, "timeout", "60 s").endswith("./vandamme-config.toml")
    assert _row(openai, "max retries", "2").endswith("built-in")
    assert _row(openai, "alias", "fast → gpt-4o-mini").endswith("./vandamme-config.toml")
    assert _row(out, "proxy-api-key", mask(PROXY_KEY)).endswith("./.env")
    assert _row(out, "port", "8082").endswith("built-in")
    assert _row(out, "sonnet", "→ groq:openai/gpt-oss-120b").endswith("defaults.toml")
    assert _row(out, "openai:sonnet", "→ openai:gpt-5.6-terra")  # shadowed: reached only by prefix
    assert all(len(line) <= 80 for line in out.splitlines()), out


def test_show_never_prints_a_secret(place: Place) -> None:
    url_secret = "hunter2-very-secret"
    header_secret = "tok-abcdefghijklmnop"
    place.write(
        ".env",
        f"OPENAI_API_KEY={OPENAI_KEY} sk-second-key-0000\nPROXY_API_KEY={PROXY_KEY}\n"
        f"MYCORP_API_KEY={GROQ_KEY}\nMYCORP_BASE_URL=https://me:{url_secret}@llm.example/v1\n"
        f"CUSTOM_HEADER_AUTHORIZATION=Bearer {header_secret}\n",
    )
    secrets = (OPENAI_KEY, "sk-second-key-0000", PROXY_KEY, GROQ_KEY, url_secret, header_secret)
    for args in (["show"], ["show", "--json"], ["env"], ["show", "--resolve", "mycorp:x"]):
        code, out = vdm(*args)
        assert code == 0, out
        leaked = [s for s in secrets if s in out]
        assert not leaked, (args, leaked)
    _, out = vdm("show")
    assert f"{mask(OPENAI_KEY)}, {mask('sk-second-key-0000')} (2, round robin)" in out
    assert f"https://{mask('me:' + url_secret)}@llm.example/v1" in out


def test_show_and_env_say_when_the_client_key_is_passed_through(place: Place) -> None:
    _, out = vdm("show", OPENAI_API_KEY="!PASSTHRU")
    assert _row(out, "keys", "!PASSTHRU (the client's key)").endswith("env")
    _, out = vdm("env", "openai", OPENAI_API_KEY="!PASSTHRU")
    assert _row(out, "OPENAI_API_KEY", "!PASSTHRU").endswith("env")


def test_show_json_has_the_same_facts(example: Place) -> None:
    code, out = vdm("show", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["default_provider"] == "groq"
    assert [p["name"] for p in data["providers"]] == ["groq", "openai"]
    keys = {s["name"]: s for s in data["providers"][1]["settings"]}["keys"]
    assert keys == {"name": "keys", "value": mask(OPENAI_KEY), "source": "./.env"}
    assert {"layer": "user TOML", "exists": True}.items() <= data["sources"][3].items()


def test_show_lists_problems_and_warnings(place: Place) -> None:
    place.write(".env", "MYCORP_API_KEY=k-123456789\nGROQX_ALIAS_FAST=x\n")
    code, out = vdm("show")
    assert code == 0, out
    problems = out.split("Problems:")[1].split("Warnings:")[0]
    assert "MYCORP_BASE_URL is not" in problems
    assert NO_PROVIDER.split(":")[0] in problems
    assert "provider 'groqx' is not configured" in out.split("Warnings:")[1]


def test_show_resolve_explains_each_step(example: Place) -> None:
    code, out = vdm("show", "--resolve", "claude-sonnet-4-5-20250929")
    assert code == 0, out
    assert "contains 'sonnet': fallback alias (defaults.toml)" in out
    assert out.splitlines()[-1].startswith("claude-sonnet-4-5-20250929 → groq:openai/gpt-oss-120b")
    code, out = vdm("show", "--resolve", "my-fast-model")
    assert code == 0, out
    assert "contains alias 'fast' (./vandamme-config.toml (OPENAI_ALIAS_FAST))" in out
    assert "my-fast-model → openai:gpt-4o-mini" in out


def test_show_resolve_json(example: Place) -> None:
    code, out = vdm("show", "--resolve", "openai:fast", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert (data["provider"], data["upstream_model"]) == ("openai", "gpt-4o-mini")
    assert len(data["steps"]) == 2


def test_show_resolve_error_exits_1_with_the_reason(example: Place) -> None:
    code, out = vdm("show", "--resolve", "nope:gpt-4o")
    assert code == 1
    assert "unknown provider 'nope'" in out and "configured providers: groq, openai" in out


def test_show_resolve_without_a_provider_names_the_fix(place: Place) -> None:
    code, out = vdm("show", "--resolve", "sonnet")
    assert code == 1
    assert NO_PROVIDER in out


def test_show_stops_on_malformed_toml_naming_file_and_line(place: Place) -> None:
    path = place.write("vandamme-config.toml", "[openai]\ntimeout = = 3\n")
    code, out = vdm("show")
    assert code == 1
    assert str(path) in out and "line 2" in out


# -- validate -------------------------------------------------------------------------------------


def test_validate_ok(example: Place) -> None:
    code, out = vdm("validate")
    assert code == 0, out
    assert out.strip() == "ok: 2 providers (groq, openai); default provider: groq"


def test_validate_warnings_do_not_fail(place: Place) -> None:
    code, out = vdm("validate", OPENAI_API_KEY="sk-1", GROQX_ALIAS_FAST="x")
    assert code == 0, out
    assert out.startswith("ok: 1 provider (openai); default provider: openai")
    assert "Warnings:" in out and "GROQX_ALIAS_FAST" in out


def test_validate_warns_that_claude_names_reach_a_custom_provider_unchanged(
    place: Place,
) -> None:
    env = {"MYCORP_API_KEY": "sk-corp-123456", "MYCORP_BASE_URL": "https://llm.example/v1"}
    code, out = vdm("validate", **env)
    assert code == 0, out
    assert out.startswith("ok: 1 provider (mycorp); default provider: mycorp")
    warning = " ".join(out.split("Warnings:")[1].split())
    assert "Claude Code's model names (claude-haiku-…, claude-sonnet-…, claude-opus-…)" in warning
    assert "reach provider 'mycorp' unchanged" in warning
    assert "MYCORP_ALIAS_SONNET=<model>" in warning and "[mycorp.aliases]" in warning
    assert "SMALL_MODEL / MIDDLE_MODEL / BIG_MODEL" in warning
    # Mapped in the project's TOML: nothing to say.
    place.write(
        "vandamme-config.toml",
        '[mycorp.aliases]\nhaiku = "corp-s"\nsonnet = "corp-m"\nopus = "corp-l"\n',
    )
    code, out = vdm("validate", **env)
    assert (code, out.strip()) == (0, "ok: 1 provider (mycorp); default provider: mycorp")


def test_validate_warns_when_several_providers_have_no_chosen_default(place: Place) -> None:
    code, out = vdm("validate", OPENAI_API_KEY="sk-1", DEEPSEEK_API_KEY="sk-2")
    assert code == 0, out
    warning = " ".join(out.split("Warnings:")[1].split())
    assert "none is chosen as the default: 'openai'" in warning
    assert "set VDM_DEFAULT_PROVIDER=openai" in warning


def test_show_names_another_providers_fallbacks_with_their_prefix(place: Place) -> None:
    env = {"OPENAI_API_KEY": "sk-1", "DEEPSEEK_API_KEY": "sk-2", "VDM_DEFAULT_PROVIDER": "deepseek"}
    code, out = vdm("show", **env)
    assert code == 0, out
    assert _row(out, "sonnet", "→ deepseek:deepseek-v4-pro").startswith("  sonnet")
    assert _row(out, "openai:sonnet", "→ openai:gpt-5.6-terra")  # only with its prefix
    code, out = vdm("show", "--resolve", "claude-sonnet-4-5", **env)
    assert code == 0, out
    assert out.splitlines()[-1].startswith("claude-sonnet-4-5 → deepseek:deepseek-v4-pro")


def test_validate_without_a_provider_names_the_fix(place: Place) -> None:
    code, out = vdm("validate")
    assert code == 1
    assert " ".join(NO_PROVIDER.split()) in " ".join(out.split())


def test_validate_lists_every_problem_at_once(place: Place) -> None:
    user = place.write("user", "[openai]\napi-key = 'k'\nbase-url = = 3\n")
    place.write(".env", "PORT=abc\nREQUEST_TIMEOUT=0\nMYCORP_API_KEY=k-123456789\n")
    code, out = vdm("validate", MAX_RETRIES="many")
    assert code == 1
    flat = " ".join(out.split())
    assert f"{user}: invalid TOML" in flat and "line 3" in flat
    assert "PORT='abc'" in flat and "whole number" in flat
    assert "REQUEST_TIMEOUT='0'" in flat and "greater than 0" in flat
    assert "MAX_RETRIES='many' (env)" in flat
    assert "MYCORP_BASE_URL is not" in flat
    assert "no provider configured" in flat  # the malformed file's openai key does not count
    assert out.startswith("vdm config validate: 6 problems")


def test_validate_lists_an_unusable_price(place: Place) -> None:
    config = place.write(
        "vandamme-config.toml", '[prices]\n"house-model" = { input = 1, output = -2 }\n'
    )
    code, out = vdm("validate", OPENAI_API_KEY="sk-1")
    assert code == 1
    flat = " ".join(out.split())
    assert f"{config}: [prices] 'house-model': output must be a number" in flat


def test_validate_reports_an_alias_cycle_once_and_a_dangling_alias(place: Place) -> None:
    env = {"OPENAI_API_KEY": "sk-1", "OPENAI_ALIAS_A": "b", "OPENAI_ALIAS_B": "openai:a"}
    code, out = vdm("validate", **env, OPENAI_ALIAS_C="groq:llama")
    assert code == 1
    flat = " ".join(out.split())
    assert flat.count("alias cycle") == 1
    assert "points to 'groq:llama', but provider 'groq' is not configured" in flat


# -- env ------------------------------------------------------------------------------------------


def test_env_lists_every_variable_vdm_reads_with_value_and_source(example: Place) -> None:
    code, out = vdm("env", HOST="0.0.0.0")
    assert code == 0, out
    top = out.split("\n\n")[0]
    for var in TOP_LEVEL.values():
        assert _row(top, f"  {var} ")
    assert _row(top, "HOST", "0.0.0.0").endswith("env")
    assert _row(top, "PORT", "unset")
    assert _row(top, "VDM_DEFAULT_PROVIDER", "groq").endswith("./vandamme-config.toml")
    assert _row(top, "PROXY_API_KEY", mask(PROXY_KEY)).endswith("./.env")
    assert _row(top, "VDM_FALLBACK_{NAME}", "unset")
    openai = out.split("\nopenai: configured\n")[1].split("\n\n")[0]
    for suffix in PROVIDER_KEYS.values():
        assert _row(openai, f" OPENAI_{suffix} ")
    assert _row(openai, "OPENAI_API_KEY", mask(OPENAI_KEY)).endswith("./.env")
    assert _row(openai, "OPENAI_ALIAS_FAST", "gpt-4o-mini").endswith("./vandamme-config.toml")
    assert _row(openai, "OPENAI_ALIAS_SONNET", "gpt-5.6-terra").endswith("defaults.toml")
    assert "groq: configured (default)" in out
    gemini = out.split("\ngemini: preset, not configured (set GEMINI_API_KEY)\n")[1]
    assert _row(gemini, "GEMINI_API_KEY", "unset")
    assert OPENAI_KEY not in out and GROQ_KEY not in out and PROXY_KEY not in out


def test_env_for_some_providers_only(example: Place) -> None:
    code, out = vdm("env", "openai", "mycorp")
    assert code == 0, out
    assert out.startswith("openai: configured\n")
    assert "mycorp: not configured (set MYCORP_API_KEY)" in out
    assert _row(out, "MYCORP_BASE_URL", "unset")
    assert "VDM_DEFAULT_PROVIDER" not in out and "GROQ_API_KEY" not in out


def test_env_rejects_a_name_that_is_not_a_provider(place: Place) -> None:
    code, out = vdm("env", "my corp")
    assert code == 2
    assert "'my corp' is not a provider name" in out


def test_env_shows_a_provider_whose_key_is_set_but_cannot_be_used(place: Place) -> None:
    code, out = vdm("env", MYCORP_API_KEY="k-123456789")
    assert code == 0, out
    assert "mycorp: has a key but is not usable (see `vdm config validate`)" in out


def test_importing_the_config_commands_loads_no_configuration_code() -> None:
    """`vdm --help` stays fast: the commands import their machinery when they run."""
    code = (
        "import sys, vdm.cli.config_commands; "
        "print(sorted(m for m in sys.modules if m.startswith(('vdm.config', 'vdm.routing'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=30
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_validate_reports_a_middleware_it_cannot_load(place: Place) -> None:
    place.write("vandamme-config.toml", '[middleware]\nenabled = ["no-such-hook"]\n')
    code, out = vdm("validate", OPENAI_API_KEY="sk-1")
    assert code == 1, out
    assert "no-such-hook" in out
