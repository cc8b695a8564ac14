"""End to end with the real Codex CLI (0.169, `make install-codex`) behind `vdm wrap`: a real
subprocess, its session proxy in-process, and the fake OpenAI upstream (a real HTTP server).

`vdm wrap -- codex exec …`: the model answers with a call to Codex's shell tool
(`exec_command {"cmd": …}`, as recorded in /work/shared/protocol/codex), Codex really runs
it, sends its output back through vdm's `/v1/responses`, and prints the final answer.

Codex runs with a temporary HOME and CODEX_HOME whose config.toml turns off what would leave
loopback (the plugin sync's `git ls-remote https://github.com/openai/plugins.git`, analytics);
vdm's `-c` overrides choose the provider. Skipped only where npm is missing.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakes.openai_upstream import FakeOpenAI, Recorded, Reply
from tests.fakes.scripts import messages_of, reply_to, text_of, tool_names
from tests.harness import REPO, clean_env
from vdm.cli.wrap import SESSION_HEADER
from vdm.cli.wrap_codex import SECRET_ENV

pytestmark = pytest.mark.e2e

#: Installed by `make install-codex` (the version is pinned in the Makefile).
CODEX = REPO / ".venv" / "node" / "node_modules" / ".bin" / "codex"
VDM = [sys.executable, "-m", "vdm.cli"]
UPSTREAM_KEY = "sk-upstream-codex-e2e-8765"
MODEL = "openai:gpt-4o"
#: Upper bound for one `vdm wrap -- codex exec` run (it takes about two seconds).
RUN_TIMEOUT = 60.0
#: Codex's shell tool in 0.169 (REC codex_02_tool_roundtrip_req2.json).
SHELL_TOOL = "exec_command"


@pytest.fixture
def codex_bin() -> Path:
    """The Codex CLI. Skipped where npm is missing; a failure where npm exists but the CLI is
    not installed, so that a broken install is never hidden by a silent skip."""
    if CODEX.is_file():
        return CODEX
    if shutil.which("npm"):
        pytest.fail(
            f"the Codex CLI is not installed at {CODEX}: run `make install-codex` "
            "(npm is available, so this is a broken install, not a missing tool)"
        )
    pytest.skip("npm not found: cannot install the Codex CLI")


def _codex_home(home: Path) -> Path:
    """CODEX_HOME with only what keeps Codex on loopback (checked with strace on 0.169)."""
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True)
    (codex_home / "config.toml").write_text(
        "[features]\nplugins = false\n\n[analytics]\nenabled = false\n", encoding="utf-8"
    )
    return codex_home


def _requests_summary(fake: FakeOpenAI) -> str:
    lines = ["upstream requests:"]
    for i, request in enumerate(fake.requests):
        body = request.json if isinstance(request.json, dict) else {}
        messages = messages_of(request)
        last = json.dumps(messages[-1])[:400] if messages else "-"
        lines.append(
            f"  {i}: {request.method} {request.path} model={body.get('model')!r} "
            f"stream={body.get('stream')!r} tools={tool_names(body)[:12]} last={last}"
        )
    return "\n".join(lines)


def test_codex_exec_runs_a_shell_tool_through_vdm_wrap(
    codex_bin: Path, fake: FakeOpenAI, tmp_path: Path
) -> None:
    token = secrets.token_hex(6)
    marker = f"hello-from-codex-{token}"
    # The marker is not in the command's text: seeing it upstream proves the command ran. It
    # also leaves a file behind, prints what vdm handed Codex (inherited by its tools), and
    # the command lines of the processes given vdm's provider (Codex's: what `ps` shows). The
    # `[s]` keeps the pattern from matching the command's own processes.
    command = (
        f"printf 'hello-from-codex-%s\\n' {token} > made-by-codex.txt; cat made-by-codex.txt; "
        f"printenv OPENAI_BASE_URL {SECRET_ENV}; echo ---; "
        "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < \"$f\"; echo; done 2>/dev/null "
        "| grep -E 'model_provider[s]\\.vdm\\.base_url'"
    )
    call_id = f"call_codexE2e{token}"
    final = f"The command printed the marker. ({token})"
    prompt = f"run the marker command {token}"

    def script(request: Recorded) -> Reply:
        body = request.json if isinstance(request.json, dict) else {}
        messages = messages_of(request) or [{}]
        if messages[-1].get("role") == "tool" and marker in text_of(messages[-1].get("content")):
            return reply_to(body, final)
        if SHELL_TOOL in tool_names(body) and not any(m.get("role") == "tool" for m in messages):
            return reply_to(body, tool_calls=[(SHELL_TOOL, json.dumps({"cmd": command}), call_id)])
        return reply_to(body, "OK")  # anything else: a tool result without the marker

    fake.default = script
    home, project = tmp_path / "home", tmp_path / "project"
    project.mkdir()
    codex_home = _codex_home(home)
    summary = tmp_path / "usage.json"
    env = clean_env(
        HOME=str(home),
        CODEX_HOME=str(codex_home),
        OPENAI_API_KEY=UPSTREAM_KEY,
        OPENAI_BASE_URL=fake.base_url,
    )
    argv = [
        *VDM, "wrap", "--summary-json", str(summary), "--",
        str(codex_bin), "exec", "-m", MODEL, "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox", prompt,
    ]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        env=env,
        cwd=project,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # so a hung run can be stopped with its children
    )
    try:
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=10)
        pytest.fail(
            f"vdm wrap -- codex exec did not finish within {RUN_TIMEOUT} s\nstdout:\n{stdout}\n"
            f"stderr:\n{stderr}\n{_requests_summary(fake)}"
        )
    elapsed = time.monotonic() - started
    why = (
        f"vdm exit code {proc.returncode} after {elapsed:.1f} s\nstdout:\n{stdout[-4000:]}\n"
        f"stderr (vdm and codex):\n{stderr[-6000:]}\n{_requests_summary(fake)}"
    )

    assert proc.returncode == 0, why
    assert final in stdout, why
    made = project / "made-by-codex.txt"
    assert made.is_file() and made.read_text().strip() == marker, why

    # The model asked for reached the upstream as vdm resolved it.
    posts = [r for r in fake.requests if r.method == "POST"]
    assert posts and all(r.json["model"] == "gpt-4o" for r in posts), why
    # The request that carried the tool result back: the call id round-tripped, and the
    # result is the real output of the command.
    followups = [r for r in posts if any(m.get("role") == "tool" for m in messages_of(r))]
    assert followups, f"no upstream request carried a tool result\n{why}"
    messages = messages_of(followups[0])
    index = next(
        (i for i, m in enumerate(messages) if m.get("role") == "assistant" and m.get("tool_calls")),
        None,
    )
    assert index is not None, f"no assistant message with tool_calls\n{why}"
    (call,) = messages[index]["tool_calls"]
    assert call["function"]["name"] == SHELL_TOOL, why
    assert json.loads(call["function"]["arguments"]) == {"cmd": command}, why
    tool_message = messages[index + 1]
    assert tool_message["role"] == "tool" and tool_message["tool_call_id"] == call["id"], why
    output = text_of(tool_message["content"])
    assert marker in output, why
    assert any(prompt in text_of(m.get("content")) for m in messages[:index]), why

    # What vdm handed Codex, as its shell tool saw it: the session's URL and secret.
    found = re.search(r"http://127\.0\.0\.1:(\d+)/v1\s+(\S+)", output)
    assert found, f"no OPENAI_BASE_URL and session secret in the tool output\n{why}"
    port, secret = int(found[1]), found[2]
    assert len(secret) >= 32, why
    for request in fake.requests:
        assert request.headers.get("authorization") == f"Bearer {UPSTREAM_KEY}", why
        assert SESSION_HEADER not in request.headers, why
        assert all(secret not in value for value in request.headers.values()), why
    # Codex's command line (which `ps` shows) names the variable, never the secret.
    cmdlines = [line for line in output.partition("---")[2].splitlines() if line.strip()]
    assert cmdlines, f"no process with vdm's provider in its command line\n{why}"
    for line in cmdlines:
        assert f'env_http_headers={{"{SESSION_HEADER}"="{SECRET_ENV}"}}' in line, why
        assert f'base_url="http://127.0.0.1:{port}/v1"' in line, why
        assert secret not in line, why

    # The session's summary: every model request Codex made, under the model it went to.
    assert "vdm: session usage" in stderr and MODEL in stderr, why
    usage = json.loads(summary.read_text())
    (row,) = usage["models"]
    assert (row["provider"], row["model"]) == ("openai", "gpt-4o"), usage
    assert row["requests"] == len(posts) >= 2 and row["errors"] == 0, usage
    assert row["input_tokens"] > 0 and row["output_tokens"] > 0, usage
    assert usage["exit_code"] == 0, usage

    with socket.socket() as probe:
        probe.settimeout(2.0)
        with pytest.raises(ConnectionRefusedError):
            probe.connect(("127.0.0.1", port))
