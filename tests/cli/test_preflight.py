"""`vdm wrap`'s pre-flight, a busy port, `claude.vdm --help` and the built distribution.

The refusals run `vdm wrap` as a real subprocess around a child that would write a marker
file: a refusal must leave no marker (the child never started) and exit 1 with the fix named.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI, JsonReply, Recorded, Reply
from tests.harness import REPO, clean_env, running_vdm
from vdm import __version__
from vdm.cli import preflight
from vdm.cli.preflight import Cache, cache_key, command_model, wanted_models
from vdm.config.settings import ProviderConfig

VDM = [sys.executable, "-m", "vdm.cli"]
RIGHT_KEY = "sk-right-0123456789abcdef"
WRONG_KEY = "sk-wrong-0123456789abcdef"


def _openai_error(message: str, code: str | None, type_: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


class KeyedOpenAI(FakeOpenAI):
    """OpenAI that accepts one key, and answers anything else as api.openai.com does."""

    def __init__(self, api_key: str = RIGHT_KEY) -> None:
        super().__init__()
        self.api_key = api_key
        #: What GET /models answers instead of the list (e.g. a 503), when set.
        self.models_reply: Reply | None = None

    def _route(self, request: Recorded) -> Reply:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return JsonReply(
                _openai_error(
                    "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer "
                    "YOUR_KEY), or as the password field (i.e. Bearer: YOUR_KEY). You can "
                    "obtain an API key from https://platform.openai.com/account/api-keys.",
                    None,
                    "invalid_request_error",
                ),
                status=401,
            )
        key = auth.removeprefix("Bearer ")
        if key != self.api_key:
            shown = key[:8] + "*" * max(0, len(key) - 12) + key[-4:]  # OpenAI masks the key
            return JsonReply(
                _openai_error(
                    f"Incorrect API key provided: {shown}. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    "invalid_api_key",
                    "invalid_request_error",
                ),
                status=401,
            )
        if request.method == "GET" and request.path.endswith("/models") and self.models_reply:
            return self.models_reply
        return super()._route(request)

    @property
    def model_lists(self) -> int:
        return sum(r.method == "GET" and r.path.endswith("/models") for r in self.requests)


@pytest.fixture
def keyed() -> Any:
    with KeyedOpenAI() as upstream:
        yield upstream


def _marker_child(tmp_path: Path) -> tuple[Path, str]:
    marker = tmp_path / "ran"
    child = tmp_path / "child.py"
    child.write_text(f"open({str(marker)!r}, 'w').close()\n")
    return marker, str(child)


def _env(tmp_path: Path, base_url: str, key: str = RIGHT_KEY, **extra: str) -> dict[str, str]:
    return clean_env(HOME=str(tmp_path), OPENAI_API_KEY=key, OPENAI_BASE_URL=base_url, **extra)


def _wrap(
    tmp_path: Path, env: dict[str, str], *child_args: str, options: tuple[str, ...] = ()
) -> tuple[subprocess.CompletedProcess[str], bool]:
    """`vdm wrap [options] -- python child.py child_args…`; and whether the child ran."""
    marker, child = _marker_child(tmp_path)
    marker.unlink(missing_ok=True)
    proc = subprocess.run(
        [*VDM, "wrap", "--quiet", *options, "--", sys.executable, child, *child_args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc, marker.exists()


# --- the refusals: nothing starts -------------------------------------------------------------


def test_an_unknown_provider_prefix_stops_before_the_child(
    tmp_path: Path, keyed: KeyedOpenAI
) -> None:
    proc, ran = _wrap(tmp_path, _env(tmp_path, keyed.base_url), "--model", "opnai:gpt-4o")
    assert proc.returncode == 1 and not ran, proc.stderr
    assert "unknown provider 'opnai'" in proc.stderr
    assert "configured providers: openai" in proc.stderr
    assert "--no-check" in proc.stderr and "nothing was started" in proc.stderr
    assert keyed.request_count == 0  # a routing mistake needs no upstream to find


def test_a_refused_key_stops_before_the_child_and_names_the_variable(
    tmp_path: Path, keyed: KeyedOpenAI
) -> None:
    env = _env(tmp_path, keyed.base_url, WRONG_KEY)
    proc, ran = _wrap(tmp_path, env, "--model=gpt-4o")
    assert proc.returncode == 1 and not ran, proc.stderr
    assert "refused its key (HTTP 401: Incorrect API key provided: sk-wrong" in proc.stderr
    assert "check OPENAI_API_KEY (set in your environment)" in proc.stderr
    assert "`vdm health upstream`" in proc.stderr
    assert WRONG_KEY not in proc.stderr
    assert keyed.model_lists == 1
    # A refusal is not remembered: the next run asks again.
    proc, ran = _wrap(tmp_path, env, "--model=gpt-4o")
    assert proc.returncode == 1 and not ran
    assert keyed.model_lists == 2


def test_a_key_in_the_dotenv_file_is_named_with_its_file(
    tmp_path: Path, keyed: KeyedOpenAI
) -> None:
    (tmp_path / ".env").write_text(f"OPENAI_API_KEY={WRONG_KEY}\n")
    env = clean_env(HOME=str(tmp_path), OPENAI_BASE_URL=keyed.base_url)
    proc, ran = _wrap(tmp_path, env)
    assert proc.returncode == 1 and not ran, proc.stderr
    assert "check OPENAI_API_KEY (set in ./.env)" in proc.stderr


def test_geminis_400_for_a_bad_key_is_a_refused_key(tmp_path: Path) -> None:
    with FakeGemini(api_key="AIza-right") as gemini:
        env = clean_env(
            HOME=str(tmp_path), GEMINI_API_KEY="AIza-wrong", GEMINI_BASE_URL=gemini.base_url
        )
        proc, ran = _wrap(tmp_path, env, "--model", "gemini:gemini-3-pro-preview")
        assert proc.returncode == 1 and not ran, proc.stderr
        assert "API key not valid. Please pass a valid API key." in proc.stderr
        assert "check GEMINI_API_KEY" in proc.stderr
        assert gemini.last.path == "/v1beta/models"
        # The right key passes, and only the models list was asked for.
        env["GEMINI_API_KEY"] = "AIza-right"
        proc, ran = _wrap(tmp_path, env, "--model", "gemini:gemini-3-pro-preview")
        assert proc.returncode == 0 and ran, proc.stderr
        assert [r.path for r in gemini.requests] == ["/v1beta/models"] * 2


def test_an_unreachable_base_url_stops_before_the_child(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    proc, ran = _wrap(tmp_path, _env(tmp_path, f"http://127.0.0.1:{port}/v1"))
    assert proc.returncode == 1 and not ran, proc.stderr
    assert f"cannot reach openai at http://127.0.0.1:{port}/v1 (" in proc.stderr
    assert "check OPENAI_BASE_URL (set in your environment)" in proc.stderr
    assert "`vdm health upstream`" in proc.stderr


# --- what does not stop -----------------------------------------------------------------------


def test_a_busy_provider_is_a_warning_and_the_child_runs(
    tmp_path: Path, keyed: KeyedOpenAI
) -> None:
    keyed.models_reply = JsonReply(
        _openai_error("The server is overloaded or not ready yet.", None, "server_error"),
        status=503,
    )
    proc, ran = _wrap(tmp_path, _env(tmp_path, keyed.base_url))
    assert proc.returncode == 0 and ran, proc.stderr
    assert "vdm wrap: warning: openai" in proc.stderr
    assert "may be busy (HTTP 503: The server is overloaded or not ready yet.)" in proc.stderr
    assert "starting anyway" in proc.stderr
    # Not a success: not remembered.
    _wrap(tmp_path, _env(tmp_path, keyed.base_url))
    assert keyed.model_lists == 2


def test_a_provider_that_does_not_answer_in_time_is_a_warning(
    tmp_path: Path, keyed: KeyedOpenAI
) -> None:
    keyed.models_reply = JsonReply({"object": "list", "data": []}, delay=30.0)
    proc, ran = _wrap(tmp_path, _env(tmp_path, keyed.base_url))
    assert proc.returncode == 0 and ran, proc.stderr
    assert "may be busy (timed out" in proc.stderr


def test_no_check_and_vdm_no_check_skip_it(tmp_path: Path, keyed: KeyedOpenAI) -> None:
    env = _env(tmp_path, keyed.base_url, WRONG_KEY)
    proc, ran = _wrap(tmp_path, env, "--model", "opnai:x", options=("--no-check",))
    assert proc.returncode == 0 and ran, proc.stderr
    proc, ran = _wrap(tmp_path, {**env, "VDM_NO_CHECK": "1"})
    assert proc.returncode == 0 and ran, proc.stderr
    assert keyed.request_count == 0


def _settings(fake: FakeOpenAI, keys: str) -> Any:
    from vdm.config.settings import Settings

    return Settings.from_mapping({"OPENAI_API_KEY": keys, "OPENAI_BASE_URL": fake.base_url})


def test_one_refused_key_among_several_is_a_warning(keyed: KeyedOpenAI) -> None:
    outcome = preflight.check(_settings(keyed, f"{WRONG_KEY} {RIGHT_KEY}"), ["gpt-4o"])
    assert outcome.stops == [] and outcome.probed == 2
    (warning,) = outcome.warnings
    assert "openai refused key sk-…cdef (HTTP 401" in warning
    assert "vdm uses its other keys" in warning
    assert WRONG_KEY not in warning
    outcome = preflight.check(_settings(keyed, f"{WRONG_KEY} sk-also-wrong-000"), ["gpt-4o"])
    assert len(outcome.stops) == 1 and "refused all 2 of its keys" in outcome.stops[0]


@pytest.mark.parametrize(
    ("reply", "stops", "warns"),
    [
        # Some OpenAI-compatible servers list no models: answered, key not refused.
        (
            JsonReply(
                _openai_error(
                    "Unknown request URL: GET /v1/models.", None, "invalid_request_error"
                ),
                status=404,
            ),
            False,
            False,
        ),
        # OpenAI's restricted keys without the Models read scope can still chat.
        (
            JsonReply(
                _openai_error(
                    "You have insufficient permissions for this operation. Missing scopes: "
                    "api.model.read. Check that you have the correct role in your organization "
                    "(Reader, Writer, Owner) and project (Member, Owner), and if you're using a "
                    "restricted API key, that it has the necessary scopes.",
                    None,
                    "invalid_request_error",
                ),
                status=401,
            ),
            False,
            True,
        ),
        (
            JsonReply(
                _openai_error("Rate limit reached for requests", "rate_limit_exceeded", "requests"),
                status=429,
            ),
            False,
            True,
        ),
        (
            JsonReply(
                _openai_error("Invalid authorization header", None, "invalid_request_error"),
                status=403,
            ),
            True,
            False,
        ),
    ],
)
def test_what_each_answer_means(keyed: KeyedOpenAI, reply: Reply, stops: bool, warns: bool) -> None:
    keyed.models_reply = reply
    outcome = preflight.check(_settings(keyed, RIGHT_KEY), ["gpt-4o"])
    assert bool(outcome.stops) is stops, outcome
    assert bool(outcome.warnings) is warns, outcome


def test_the_whole_check_is_bounded(keyed: KeyedOpenAI) -> None:
    """What has not answered when the budget is spent is a warning, not a wait."""
    keyed.models_reply = JsonReply({"object": "list", "data": []}, delay=30.0)
    outcome = preflight.check(_settings(keyed, RIGHT_KEY), ["gpt-4o"], budget=0.2)
    assert outcome.stops == []
    assert outcome.warnings == [
        f"openai ({keyed.base_url}) did not answer in time; starting anyway "
        "(`vdm health upstream` checks it again)"
    ]


# --- the cache --------------------------------------------------------------------------------


def test_a_success_is_remembered_for_a_minute_without_the_key(
    tmp_path: Path, keyed: KeyedOpenAI
) -> None:
    env = _env(tmp_path, keyed.base_url)
    for _ in range(3):
        proc, ran = _wrap(tmp_path, env)
        assert proc.returncode == 0 and ran, proc.stderr
    assert keyed.model_lists == 1
    cache = tmp_path / ".cache" / "vandamme-proxy" / "preflight.json"
    text = cache.read_text()
    assert RIGHT_KEY not in text and len(json.loads(text)) == 1
    assert cache.stat().st_mode & 0o077 == 0
    # Another key is another entry: asked for again.
    keyed.api_key = "sk-another-key-0000"
    proc, ran = _wrap(tmp_path, _env(tmp_path, keyed.base_url, "sk-another-key-0000"))
    assert ran and keyed.model_lists == 2


def test_cache_entries_expire_and_are_keyed_by_provider_url_and_key(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "preflight.json"
    provider = ProviderConfig(name="openai", api_keys=("k1",), base_url="https://a/v1")
    cache = Cache(path, now=1000.0)
    cache.add(cache_key(provider, "k1"))
    cache.save()
    assert Cache(path, now=1059.0).fresh(cache_key(provider, "k1"))
    assert not Cache(path, now=1061.0).fresh(cache_key(provider, "k1"))
    other_url = ProviderConfig(name="openai", api_keys=("k1",), base_url="https://b/v1")
    assert not Cache(path, now=1001.0).fresh(cache_key(other_url, "k1"))
    assert not Cache(path, now=1001.0).fresh(cache_key(provider, "k2"))
    path.write_text("not json")
    assert Cache(path, now=1001.0).entries == {}  # a damaged file is a miss, not an error


# --- which models are checked -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "model"),
    [
        (["claude", "--model", "fast", "-p", "hi"], "fast"),
        (["claude", "--model=openai:gpt-4o"], "openai:gpt-4o"),
        (["/usr/bin/claude", "-m", "fast"], "fast"),
        (["claude", "--model", "a", "--model", "b"], "b"),
        (["python", "-m", "agent"], None),  # -m is Python's here, not a model
        (["python", "agent.py", "--model", "x"], "x"),
        (["claude", "-p", "hi"], None),
        (["claude", "--", "--model", "x"], None),
    ],
)
def test_the_model_on_the_command_line(command: list[str], model: str | None) -> None:
    assert command_model(command) == model


def test_claude_codes_default_and_aliases_are_spelled_as_it_sends_them(tmp_path: Path) -> None:
    home = {"HOME": str(tmp_path)}
    assert wanted_models(["claude"], home, tmp_path) == ["claude-opus-5-5", "claude-haiku-5-5"]
    assert wanted_models(["claude", "--model", "sonnet[1m]"], home, tmp_path) == [
        "claude-sonnet-5-5"
    ]
    assert wanted_models(["claude", "--model", "opusplan"], home, tmp_path) == [
        "claude-opus-5-5",
        "claude-sonnet-5-5",
    ]
    env = {**home, "ANTHROPIC_MODEL": "fast", "ANTHROPIC_DEFAULT_HAIKU_MODEL": "cheap"}
    assert wanted_models(["claude"], env, tmp_path) == ["fast", "cheap"]
    (tmp_path / ".claude").mkdir()
    (tmp_path / ".claude" / "settings.json").write_text('{"model": "groq:llama"}')
    assert wanted_models(["claude"], home, tmp_path)[0] == "groq:llama"


def test_the_default_route_is_checked_when_no_model_is_given(
    tmp_path: Path, keyed: KeyedOpenAI
) -> None:
    """Claude Code's own names reach the default provider: its key is what is checked."""
    proc, ran = _wrap(tmp_path, _env(tmp_path, keyed.base_url, WRONG_KEY))
    assert proc.returncode == 1 and not ran
    assert "openai" in proc.stderr and "check OPENAI_API_KEY" in proc.stderr


def test_a_refusal_from_resolution_needs_no_network(tmp_path: Path) -> None:
    from vdm.config.settings import Settings

    settings = Settings.from_mapping({"OPENAI_API_KEY": "sk-x"})
    outcome = preflight.check(settings, ["mycorp:model"])
    assert outcome.probed == 0 and len(outcome.stops) == 1
    assert "unknown provider 'mycorp'" in outcome.stops[0]


# --- a busy port ------------------------------------------------------------------------------


def _server_start(tmp_path: Path, port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VDM, "server", "start", "--port", str(port)],
        env=clean_env(HOME=str(tmp_path), OPENAI_API_KEY="sk-x"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_busy_port_fails_before_saying_listening_and_names_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _server_start(tmp_path, port)
    assert proc.returncode == 1
    assert "listening on" not in proc.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert "another program uses this port; choose another with --port" in proc.stderr


def test_a_busy_port_with_a_vdm_on_it_says_so(tmp_path: Path) -> None:
    with running_vdm({"OPENAI_API_KEY": "sk-x"}) as vdm:
        proc = _server_start(tmp_path, vdm.port)
    assert proc.returncode == 1
    assert "listening on" not in proc.stderr
    assert f"a vdm {__version__} is already running there" in proc.stderr
    assert f"`vdm health server --url http://127.0.0.1:{vdm.port}`" in proc.stderr
    assert "--port" in proc.stderr


def test_wrap_on_a_busy_port_says_why(tmp_path: Path, keyed: KeyedOpenAI) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc, ran = _wrap(tmp_path, _env(tmp_path, keyed.base_url), options=("--port", str(port)))
    assert proc.returncode == 1 and not ran
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr and "--port" in proc.stderr


# --- claude.vdm --help ------------------------------------------------------------------------


def _stand_in_claude(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "claude"
    stand_in.write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        "print('Usage: claude [options] [command] [prompt]', sys.argv[1:])\n"
        "print('PROXIED', 'ANTHROPIC_BASE_URL' in os.environ)\n"
        "sys.exit(3)\n"
    )
    stand_in.chmod(0o755)
    env = clean_env(HOME=str(tmp_path))  # no provider: --help needs none
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.mark.parametrize("args", [["--help"], ["mcp", "-h"]])
def test_claude_vdm_help_says_what_it_is_then_shows_claudes_help(
    tmp_path: Path, args: list[str]
) -> None:
    entry = Path(sys.executable).parent / "claude.vdm"
    proc = subprocess.run(
        [str(entry), *args],
        env=_stand_in_claude(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    lines = proc.stdout.splitlines()
    assert lines[0] == (
        "claude.vdm: Claude Code behind a vdm session proxy; vdm wrap -- claude ARGS"
    ), proc.stdout + proc.stderr
    assert f"Usage: claude [options] [command] [prompt] {args!r}" in lines
    assert "PROXIED False" in lines
    assert proc.returncode == 3  # Claude Code's own exit code


# --- the distribution -------------------------------------------------------------------------


def test_the_wheel_holds_every_package_data_file_and_entry_point(tmp_path: Path) -> None:
    """`make dist`'s build (sdist, then the wheel from it), from a copy of the tree."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "vdm", source / "vdm", ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    assert wheel.name == f"vandamme_proxy-{__version__}-py3-none-any.whl"
    assert list((tmp_path / "dist").glob(f"vandamme_proxy-{__version__}.tar.gz"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        str(p.relative_to(REPO))
        for p in (REPO / "vdm").rglob("*")
        if p.suffix in (".py", ".toml", ".typed", ".html", ".css", ".js")
        and "__pycache__" not in p.parts
    }
    assert {"vdm/config/defaults.toml", "vdm/usage/prices.toml", "vdm/py.typed"} <= expected
    # The dashboard's page is package data too: a wheel without it serves a 500.
    dashboard = {
        f"vdm/server/dashboard/{name}" for name in ("index.html", "dashboard.css", "dashboard.js")
    }
    assert dashboard <= expected
    assert expected - names == set()
    info = f"vandamme_proxy-{__version__}.dist-info"
    entry_points = zipfile.ZipFile(wheel).read(f"{info}/entry_points.txt").decode()
    assert "vdm = vdm.cli.main:main" in entry_points
    assert "claude.vdm = vdm.cli.main:claude_vdm" in entry_points
    metadata = zipfile.ZipFile(wheel).read(f"{info}/METADATA").decode()
    assert "Name: vandamme-proxy" in metadata and f"Version: {__version__}" in metadata


def test_the_version_has_one_source_and_is_above_the_original_projects() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert tuple(int(n) for n in __version__.split(".")) >= (3, 0, 0)  # PyPI has up to 2.0.9
