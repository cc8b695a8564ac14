"""`vdm wrap -- codex …` (vdm/cli/wrap_codex.py): the argv and environment a Codex child gets,
the model the pre-flight checks, and, through real subprocesses, a stand-in `codex` that
follows its `-c` overrides as Codex 0.169 does (the real CLI: tests/e2e/test_codex.py)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.harness import clean_env
from vdm.cli import wrap_codex
from vdm.cli.wrap import PLACEHOLDER_KEY, SESSION_HEADER, Session, _child, child_env
from vdm.config.settings import Settings

SESSION = Session("http://127.0.0.1:40123", "s3cret-" + "x" * 40)
VDM = [sys.executable, "-m", "vdm.cli"]


def _argv(command: list[str]) -> list[str]:
    return wrap_codex.child_argv(command, SESSION.url, SESSION_HEADER)


def _env(environ: dict[str, str]) -> dict[str, str]:
    return wrap_codex.child_env(environ, SESSION.url, SESSION.secret, PLACEHOLDER_KEY)


def _overrides(argv: list[str]) -> dict[str, object]:
    """The `-c key=value` pairs of `argv` read as Codex reads them: dotted keys, TOML values
    (one document, so a later key would clash rather than silently win)."""
    pairs = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-c"]
    return tomllib.loads("\n".join(pairs))


# --- pure ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["codex"], True),
        (["/home/u/.venv/node/node_modules/.bin/codex", "exec", "hi"], True),
        (["Codex"], True),
        (["claude", "-p", "hi"], False),
        (["codex-helper"], False),
        (["npx", "codex"], False),
        ([], False),
    ],
)
def test_a_codex_child_is_known_by_its_program_name(command: list[str], expected: bool) -> None:
    assert wrap_codex.is_codex(command) is expected


def test_the_overrides_define_vdms_provider_and_go_before_the_subcommand() -> None:
    argv = _argv(["codex", "-m", "fast", "exec", "--json", "say hi"])
    assert argv[0] == "codex"
    # The user's arguments follow, unchanged: a `-c` of theirs comes later and wins.
    assert argv[-5:] == ["-m", "fast", "exec", "--json", "say hi"]
    assert argv.index("exec") > max(i for i, arg in enumerate(argv) if arg == "-c")
    assert _overrides(argv) == {
        "model_provider": "vdm",
        "model_providers": {
            "vdm": {
                "name": "vdm",
                "base_url": "http://127.0.0.1:40123/v1",
                "wire_api": "responses",
                "env_key": "OPENAI_API_KEY",
                "env_http_headers": {SESSION_HEADER: wrap_codex.SECRET_ENV},
            }
        },
    }
    # The secret is in the environment only, never on the command line (`ps` shows it).
    assert all(SESSION.secret not in arg for arg in argv)


def test_an_ipv6_session_url_is_a_valid_toml_string() -> None:
    argv = wrap_codex.child_argv(["codex"], "http://[::1]:5000", SESSION_HEADER)
    providers = _overrides(argv)["model_providers"]
    assert isinstance(providers, dict)
    assert providers["vdm"]["base_url"] == "http://[::1]:5000/v1"


def test_the_environment_carries_the_secret_the_url_and_a_placeholder_key() -> None:
    user = {"PATH": "/bin", "ANTHROPIC_API_KEY": "sk-ant-mine"}
    env = _env(user)
    assert env[wrap_codex.SECRET_ENV] == SESSION.secret
    assert env["OPENAI_BASE_URL"] == "http://127.0.0.1:40123/v1"
    assert env["OPENAI_API_KEY"] == PLACEHOLDER_KEY
    # Nothing of Claude Code's: the user's own variables stay as they were.
    assert env["ANTHROPIC_API_KEY"] == "sk-ant-mine"
    assert not {"ANTHROPIC_BASE_URL", "ANTHROPIC_CUSTOM_HEADERS", "ANTHROPIC_AUTH_TOKEN"} & set(env)
    assert user == {"PATH": "/bin", "ANTHROPIC_API_KEY": "sk-ant-mine"}  # not modified


def test_the_users_openai_key_is_kept_and_an_empty_one_replaced() -> None:
    assert _env({"OPENAI_API_KEY": "sk-mine"})["OPENAI_API_KEY"] == ("sk-mine")
    assert _env({"OPENAI_API_KEY": ""})["OPENAI_API_KEY"] == (PLACEHOLDER_KEY)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-m", "fast", "exec", "hi"], "fast"),
        (["exec", "-m", "fast", "hi"], "fast"),
        (["exec", "--model", "openai:gpt-4o"], "openai:gpt-4o"),
        (["exec", "--model=glm"], "glm"),
        (["-m", "a", "exec", "-m", "b"], "b"),  # the last one, as clap takes it
        (["-c", 'model="from-c"', "exec"], "from-c"),
        (["-c", "model=raw-value", "exec"], "raw-value"),  # not TOML: taken raw
        (["--config=model='single'"], "single"),
        (["-c", 'model="from-c"', "-m", "flag"], "flag"),  # the flag wins
        (["-c", 'model_provider="x"', "exec"], None),
        (["exec", "--", "-m", "not-an-option"], None),
        (["exec", "say hi"], None),
    ],
)
def test_the_model_on_the_command_line(args: list[str], expected: str | None) -> None:
    assert wrap_codex.command_model(["codex", *args]) == expected


def test_without_one_the_model_comes_from_codexs_config_then_its_default(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert wrap_codex.wanted_models(["codex", "exec"], {"HOME": str(home)}) == [
        wrap_codex.CODEX_DEFAULT_MODEL
    ]
    (home / ".codex").mkdir(parents=True)
    (home / ".codex" / "config.toml").write_text('model = "house"\n[features]\nplugins = false\n')
    assert wrap_codex.wanted_models(["codex", "exec"], {"HOME": str(home)}) == ["house"]
    other = tmp_path / "codex-home"
    other.mkdir()
    (other / "config.toml").write_text('model = "elsewhere"\n')
    env = {"HOME": str(home), "CODEX_HOME": str(other)}
    assert wrap_codex.wanted_models(["codex", "exec"], env) == ["elsewhere"]
    assert wrap_codex.wanted_models(["codex", "-m", "given"], env) == ["given"]
    (other / "config.toml").write_text("model = [broken\n")
    assert wrap_codex.wanted_models(["codex"], env) == [wrap_codex.CODEX_DEFAULT_MODEL]


def test_other_children_get_exactly_what_they_got_before() -> None:
    settings = Settings.load(env={"OPENAI_API_KEY": "sk-x"}, cwd=Path("/"))
    environ = {"PATH": "/bin", "HOME": "/nonexistent"}
    command = ["claude", "-p", "hi", "--model", "openai:gpt-4o"]
    argv, env = _child(command, environ, SESSION, settings)
    assert argv == command
    assert env == child_env(environ, SESSION, settings, command)
    assert wrap_codex.SECRET_ENV not in env and "OPENAI_BASE_URL" not in env
    argv, env = _child(["codex", "exec", "hi"], environ, SESSION, settings)
    assert argv == _argv(["codex", "exec", "hi"])
    assert env == _env(environ)


# --- through `vdm wrap`, with a stand-in `codex` ----------------------------------------------

#: Reads its `-c` overrides as Codex does, sends one streamed `/v1/responses` request to the
#: chosen provider (key from `env_key`, headers from `env_http_headers`), then one without the
#: session header; prints what happened and exits 3. Writes a marker first: proof it started.
STAND_IN = """\
import json, os, sys, tomllib, httpx
open(os.path.join(os.path.dirname(sys.argv[0]), "started"), "w").close()
args = sys.argv[1:]
config = tomllib.loads("\\n".join(args[i + 1] for i, a in enumerate(args) if a == "-c"))
provider = config["model_providers"][config["model_provider"]]
headers = {"authorization": "Bearer " + os.environ[provider["env_key"]]}
headers.update({k: os.environ[v] for k, v in provider["env_http_headers"].items()})
body = {"model": args[args.index("-m") + 1], "input": "hi", "stream": True}
url = provider["base_url"] + "/responses"
answer = httpx.post(url, json=body, headers=headers, timeout=20)
print("STATUS", answer.status_code, "completed" if "response.completed" in answer.text else "")
print("BEARER", headers["authorization"])
refused = httpx.post(url, json=body, headers={"authorization": headers["authorization"]})
print("WITHOUT", refused.status_code)
print("ARGS", json.dumps(args[args.index("-m"):]))
sys.exit(3)
"""


def _stand_in(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    path = bin_dir / "codex"
    path.write_text(f"#!{sys.executable}\n{STAND_IN}")
    path.chmod(0o755)
    return path


def _run(tmp_path: Path, env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VDM, "wrap", "--", *command],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_codex_child_reaches_the_session_proxy_with_its_provider_config(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    codex = _stand_in(tmp_path)
    env = clean_env(HOME=str(tmp_path), OPENAI_API_KEY="sk-upstream", OPENAI_BASE_URL=fake.base_url)
    proc = _run(tmp_path, env, str(codex), "-m", "openai:gpt-4o", "exec", "say hi")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "STATUS 200 completed" in proc.stdout, proc.stdout + proc.stderr
    assert "WITHOUT 401" in proc.stdout, proc.stdout
    assert 'ARGS ["-m", "openai:gpt-4o", "exec", "say hi"]' in proc.stdout
    # Codex sends the user's OPENAI_API_KEY to vdm; the upstream gets vdm's configured key.
    assert "BEARER Bearer sk-upstream" in proc.stdout
    posts = [r for r in fake.requests if r.method == "POST"]
    assert len(posts) == 1 and posts[0].json["model"] == "gpt-4o"
    assert posts[0].headers["authorization"] == "Bearer sk-upstream"
    assert SESSION_HEADER not in posts[0].headers
    # The summary counts the `/v1/responses` request under the model it went to.
    assert "vdm: session usage" in proc.stderr and "openai:gpt-4o" in proc.stderr


def test_the_preflight_checks_the_model_codex_was_given(tmp_path: Path, fake: FakeOpenAI) -> None:
    codex = _stand_in(tmp_path)
    env = clean_env(HOME=str(tmp_path), OPENAI_API_KEY="sk-upstream", OPENAI_BASE_URL=fake.base_url)
    proc = _run(tmp_path, env, str(codex), "exec", "-m", "opnai:gpt-4o", "say hi")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "unknown provider 'opnai'" in proc.stderr and "nothing was started" in proc.stderr
    assert not (codex.parent / "started").exists()
    assert not [r for r in fake.requests if r.method == "POST"]


@pytest.mark.parametrize("proxy", ["HTTPS_PROXY", "http_proxy", "ALL_PROXY"])
def test_a_child_behind_a_proxy_reaches_vdm_directly(proxy: str) -> None:
    """Claude Code and Codex honour the proxy variables: vdm's loopback URL must bypass it,
    in both spellings of NO_PROXY, keeping what the user listed."""
    environ = {"HOME": "/nonexistent", proxy: "http://proxy.corp:3128", "NO_PROXY": "corp.lan"}
    for env in (child_env(environ, SESSION), _env(environ)):
        assert env["NO_PROXY"] == "corp.lan,127.0.0.1,localhost,::1"
        assert env["no_proxy"] == "127.0.0.1,localhost,::1"
    plain = child_env({"HOME": "/nonexistent"}, SESSION)
    assert "NO_PROXY" not in plain and "no_proxy" not in plain


def test_claude_code_in_bedrock_or_vertex_mode_is_pointed_at_vdm() -> None:
    """In these modes Claude Code ignores ANTHROPIC_BASE_URL (docs/clouds.md)."""
    bedrock = child_env({"HOME": "/x", "CLAUDE_CODE_USE_BEDROCK": "1"}, SESSION)
    assert bedrock["ANTHROPIC_BEDROCK_BASE_URL"] == SESSION.url
    assert bedrock["CLAUDE_CODE_SKIP_BEDROCK_AUTH"] == "1"
    vertex = child_env(
        {"HOME": "/x", "CLAUDE_CODE_USE_VERTEX": "true", "CLOUD_ML_REGION": "us-east5"}, SESSION
    )
    assert vertex["ANTHROPIC_VERTEX_BASE_URL"] == SESSION.url + "/v1"
    assert vertex["CLAUDE_CODE_SKIP_VERTEX_AUTH"] == "1"
    assert vertex["CLOUD_ML_REGION"] == "us-east5" and vertex["ANTHROPIC_VERTEX_PROJECT_ID"]
    plain = child_env({"HOME": "/x"}, SESSION)
    assert not any(k.startswith(("ANTHROPIC_BEDROCK", "ANTHROPIC_VERTEX")) for k in plain)
