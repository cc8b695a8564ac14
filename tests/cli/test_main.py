"""The `vdm` command line: help, version, and `server start` failures that name the fix."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Literal

from typer.testing import CliRunner

from tests.harness import REPO, clean_env
from vdm import __version__
from vdm.cli.main import _NOT_PLAIN, app

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"vdm {__version__}"


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "server" in result.output and "version" in result.output


def _start(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vdm.cli", "server", "start", "--port", "1"],
        env=clean_env(HOME=str(tmp_path), **env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_server_start_reports_bad_configuration(tmp_path: Path) -> None:
    proc = _start(tmp_path, PORT="not-a-port")
    assert proc.returncode == 1
    assert "PORT='not-a-port'" in proc.stderr and "whole number" in proc.stderr


def test_server_start_stops_on_malformed_toml_naming_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "vandamme-config.toml"
    config.write_text('[openai]\nbase-url = "https://x/v1"\ntimeout = = 3\n')
    proc = _start(tmp_path)
    assert proc.returncode == 1
    assert str(config) in proc.stderr and "line 3" in proc.stderr


def test_server_start_on_a_busy_port_fails_clearly(tmp_path: object) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "vdm.cli", "server", "start", "--port", str(port)],
            env=clean_env(HOME=str(tmp_path)),
            cwd=tmp_path,  # type: ignore[arg-type]
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert proc.returncode == 1, proc.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr


def test_cli_import_stays_light() -> None:
    """`vdm --help` must not import the server stack (start-up time)."""
    heavy = ("hypercorn", "httpx", "pydantic", "tiktoken")
    code = f"import sys, vdm.cli.main; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=30
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_server_start_stops_on_a_middleware_it_cannot_load(tmp_path: Path) -> None:
    """Checked at startup, not by failing every request that reaches it."""
    (tmp_path / "vandamme-config.toml").write_text('[middleware]\nenabled = ["no-such-hook"]\n')
    proc = subprocess.run(
        [sys.executable, "-m", "vdm.cli", "server", "start", "--port", "0"],
        env=clean_env(HOME=str(tmp_path), OPENAI_API_KEY="sk-test-1"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1, proc.stderr
    assert "configuration error" in proc.stderr and "no-such-hook" in proc.stderr
    assert "Traceback" not in proc.stderr


#: Run `vdm` (argv after the script name) and print, at its first child process start, which
#: of the heavy packages are already imported.
_AT_SPAWN = """
import subprocess, sys
heavy = ("hypercorn", "httpx", "pydantic", "tiktoken", "anyio", "uvloop")
start = subprocess.Popen.__init__
def spawn(self, *args, **kwargs):
    if not getattr(spawn, "said", False):
        spawn.said = True
        print("AT SPAWN", sorted(m for m in heavy if m in sys.modules), flush=True)
    start(self, *args, **kwargs)
subprocess.Popen.__init__ = spawn
from vdm.cli.main import main
sys.argv = ["vdm", *sys.argv[1:]]
main()
"""


def test_wrap_starts_its_child_before_the_server_stack_loads(tmp_path: Path) -> None:
    """`vdm wrap`'s child starts ≤ 0.2 s after vdm (docs/wrap.md, step 4): the socket is
    bound first, and what serves it (Hypercorn, httpx, pydantic, anyio) loads while the child
    starts; typer must not pull pydantic in to parse the command line either."""
    out = subprocess.run(
        [sys.executable, "-c", _AT_SPAWN, "wrap", "--quiet", "--no-check", "--", "true"],
        env=clean_env(HOME=str(tmp_path), OPENAI_API_KEY="sk-test-1"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert "AT SPAWN []" in out.stdout, out.stdout + out.stderr


#: Run `vdm server start --fd N` (argv after the script name) and print, at its first healthy
#: answer, which of the modules a gateway with an OpenAI provider has no use for are imported.
_AT_HEALTHY = """
import os, socket, sys, threading, time
unused = (
    "botocore", "google.auth", "tiktoken", "vdm.protocol.tokens",
    "vdm.upstream.aws_auth", "vdm.upstream.sigv4", "vdm.upstream.gcp_auth",
    "vdm.upstream.backends.bedrock", "vdm.upstream.backends.vertex",
)
port = int(sys.argv[1])
def poll():
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                c.sendall(b"GET /health HTTP/1.1\\r\\nhost: 127.0.0.1\\r\\n\\r\\n")
                if c.recv(64).startswith(b"HTTP/1.1 200"):
                    break
        except OSError:
            time.sleep(0.01)
    print("AT HEALTHY", sorted(m for m in unused if m in sys.modules), flush=True)
    os._exit(0)
threading.Thread(target=poll, daemon=True).start()
from vdm.cli.main import main
sys.argv = ["vdm", *sys.argv[2:]]
main()
"""


def test_server_start_loads_no_cloud_signer_nor_token_counter(tmp_path: Path) -> None:
    """Start-up time (docs/performance.md): the SigV4 and Google signers (and botocore,
    google-auth) load with the first request of a provider that signs, tiktoken with the
    first count_tokens; a gateway with an OpenAI provider is healthy without any of them."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port, fd = listener.getsockname()[1], listener.fileno()
        out = subprocess.run(
            [sys.executable, "-c", _AT_HEALTHY, str(port), "server", "start", "--fd", str(fd)],
            env=clean_env(HOME=str(tmp_path), OPENAI_API_KEY="sk-test-1", LOG_LEVEL="WARNING"),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
            pass_fds=(fd,),
        )
    assert "AT HEALTHY []" in out.stdout, out.stdout + out.stderr


def test_plain_option_values_parse_as_typer_parses_them() -> None:
    """vdm/cli/main.py's `_plain_coercion`: what it does not take is left to typer, whose
    checks and messages stay."""
    from vdm.cli.main import _plain_value

    assert _plain_value(int, "8082") == 8082 and _plain_value(int, "-1") == -1
    assert _plain_value(str, "::1") == "::1"
    assert _plain_value(list[str], ("claude", "--model", "x")) == ["claude", "--model", "x"]
    assert _plain_value(Literal["text", "json"], "json") == "json"
    for annotation, value in ((int, "8o82"), (int, "1e3"), (Literal["text"], "TEXT")):
        assert _plain_value(annotation, value) is _NOT_PLAIN
    bad = runner.invoke(app, ["server", "start", "--port", "8o82"])
    assert bad.exit_code == 2 and "Invalid value for '--port'" in bad.output
    bad = runner.invoke(app, ["wrap", "--log-format", "yaml", "--", "true"])
    assert bad.exit_code == 2 and "Invalid value for '--log-format'" in bad.output
