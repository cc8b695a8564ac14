"""End to end with the real Claude Code CLI behind `vdm wrap` (a real subprocess, its session
proxy in-process) and the fake OpenAI upstream (a real HTTP server):

* `vdm wrap -- claude -p …`: a Bash tool call that really runs, its result sent back upstream;
* Claude Code's TUI under tmux: start, a prompt typed, the answer on screen, `/exit`.

Each checks what the user would notice (output, exit code, the port closed afterwards) and what
only the upstream sees (the configured key, never the session secret).

Claude Code's first-run dialogs are answered in advance in the temporary HOME's
`~/.claude.json` (see `_seed_claude_home`). tmux comes from the system (`.ci/run` installs it
with apt-get where it is missing): the TUI test is skipped only where neither tmux nor apt-get
exists.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from tests.fakes.openai_upstream import (
    FakeOpenAI,
    Recorded,
    Reply,
)
from tests.fakes.scripts import messages_of, reply_to, text_of, tool_names
from tests.harness import clean_env
from vdm.cli.wrap import PLACEHOLDER_KEY, SESSION_HEADER

pytestmark = pytest.mark.e2e

VDM = [sys.executable, "-m", "vdm.cli"]
UPSTREAM_KEY = "sk-upstream-wrap-e2e-4321"
MODEL = "openai:gpt-4o"
#: Upper bound for one `vdm wrap -- claude -p` run (it takes about a second).
RUN_TIMEOUT = 30.0
#: Upper bounds for the TUI: start-up to the prompt, a prompt to its answer, `/exit` to exit.
TUI_START_TIMEOUT = 20.0
TUI_ANSWER_TIMEOUT = 20.0
TUI_EXIT_TIMEOUT = 15.0


# --- helpers shared by both tests --------------------------------------------------------------


def _requests_summary(fake: FakeOpenAI) -> str:
    lines = ["upstream requests:"]
    for i, request in enumerate(fake.requests):
        body = request.json if isinstance(request.json, dict) else {}
        messages = messages_of(request)
        last = json.dumps(messages[-1])[:400] if messages else "-"
        headers = {k: v for k, v in request.headers.items() if k != "authorization"}
        lines.append(
            f"  {i}: {request.method} {request.path} model={body.get('model')!r} "
            f"stream={body.get('stream')!r} tools={tool_names(body)} "
            f"auth={request.headers.get('authorization')!r} headers={headers} last={last}"
        )
    return "\n".join(lines)


def _seed_claude_home(home: Path, project: Path) -> None:
    """Answer Claude Code's first-run dialogs in advance (2.1.330, interactive mode only):

    * `hasCompletedOnboarding`: no theme picker and no connectivity check against
      api.anthropic.com (which fails offline and ends the CLI with exit code 1);
    * `projects[cwd].hasTrustDialogAccepted`: no "Do you trust the files in this folder?".
    """
    home.mkdir(parents=True, exist_ok=True)
    config = {
        "hasCompletedOnboarding": True,
        "projects": {str(project.resolve()): {"hasTrustDialogAccepted": True}},
    }
    (home / ".claude.json").write_text(json.dumps(config))


def _env(home: Path, fake: FakeOpenAI) -> dict[str, str]:
    """vdm's (and through it Claude Code's) environment, from scratch: the upstream is
    configured, and nothing Anthropic is set, so vdm hands the child its placeholder token
    (as ANTHROPIC_AUTH_TOKEN: an ANTHROPIC_API_KEY would stop the TUI with a "Detected a custom
    API key" dialog, and this HOME has not approved one)."""
    return clean_env(
        HOME=str(home),
        OPENAI_API_KEY=UPSTREAM_KEY,
        OPENAI_BASE_URL=fake.base_url,
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_AUTOUPDATER="1",
        CLAUDE_CODE_MAX_RETRIES="0",
    )


def _assert_port_closed(port: int, why: str) -> None:
    with socket.socket() as probe:
        probe.settimeout(2.0)
        try:
            probe.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return
    pytest.fail(f"port {port} still accepts connections after vdm exited\n{why}")


def _assert_upstream_saw_no_session(fake: FakeOpenAI, secret: str, why: str) -> None:
    """The upstream got the configured key on every request, never the placeholder, and never
    the session header (vdm must not forward it)."""
    assert fake.requests, f"the upstream got no request\n{why}"
    for request in fake.requests:
        assert request.headers.get("authorization") == f"Bearer {UPSTREAM_KEY}", why
        assert SESSION_HEADER not in request.headers, why
        assert all(secret not in value for value in request.headers.values()), why
        assert all(PLACEHOLDER_KEY not in value for value in request.headers.values()), why


# --- `vdm wrap -- claude -p` ------------------------------------------------------------------


def test_claude_print_mode_runs_a_bash_tool_through_vdm_wrap(
    claude_bin: Path, fake: FakeOpenAI, tmp_path: Path
) -> None:
    token = secrets.token_hex(6)
    marker = f"vdm-marker-{token}"
    # The output (`vdm-marker-…`) is not in the command's text: seeing it upstream proves the
    # command ran. printenv shows what vdm handed Claude Code (inherited by its Bash tool).
    command = (
        f"printf 'vdm-marker-%s\\n' {token}; "
        "printenv ANTHROPIC_BASE_URL ANTHROPIC_CUSTOM_HEADERS ANTHROPIC_AUTH_TOKEN"
    )
    arguments = json.dumps({"command": command, "description": "Print a marker"})
    call_id = f"call_wrapE2e{token}"
    final = f"The command printed the marker. ({token})"
    prompt = f"run the marker command {token}"

    def script(request: Recorded) -> Reply:
        body = request.json if isinstance(request.json, dict) else {}
        messages = messages_of(request) or [{}]
        if messages[-1].get("role") == "tool" and marker in text_of(messages[-1].get("content")):
            return reply_to(body, final)
        if "Bash" in tool_names(body) and not any(m.get("role") == "tool" for m in messages):
            return reply_to(body, tool_calls=[("Bash", arguments, call_id)])
        return reply_to(body, "OK")  # a side request, or a tool result without the marker

    fake.default = script
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    started = time.monotonic()
    summary = tmp_path / "usage.json"
    proc = subprocess.Popen(
        [
            *VDM,
            "wrap",
            "--summary-json",
            str(summary),
            "--",
            str(claude_bin),
            "-p",
            prompt,
            "--model",
            MODEL,
            "--allowedTools",
            "Bash",
        ],
        env=_env(home, fake),
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
            f"vdm wrap -- claude -p did not finish within {RUN_TIMEOUT} s\nstdout:\n{stdout}\n"
            f"stderr:\n{stderr}\n{_requests_summary(fake)}"
        )
    elapsed = time.monotonic() - started
    why = (
        f"vdm exit code {proc.returncode} after {elapsed:.1f} s\nstdout:\n{stdout[-4000:]}\n"
        f"stderr (vdm and claude):\n{stderr[-4000:]}\n{_requests_summary(fake)}"
    )

    assert proc.returncode == 0, why
    assert final in stdout, why

    # The request that carried the tool result back: the call id round-tripped, and the
    # result is the real output of the command.
    followups = [r for r in fake.requests if any(m.get("role") == "tool" for m in messages_of(r))]
    assert followups, f"no upstream request carried a tool result\n{why}"
    messages = messages_of(followups[0])
    index = next(
        (i for i, m in enumerate(messages) if m.get("role") == "assistant" and m.get("tool_calls")),
        None,
    )
    assert index is not None, f"no assistant message with tool_calls\n{why}"
    (call,) = messages[index]["tool_calls"]
    assert call["id"] == call_id, why
    assert call["function"]["name"] == "Bash", why
    assert json.loads(call["function"]["arguments"])["command"] == command, why
    tool_message = messages[index + 1]
    assert tool_message["role"] == "tool", why
    assert tool_message["tool_call_id"] == call_id, why
    output = text_of(tool_message["content"])
    assert marker in output, why
    assert any(prompt in text_of(m.get("content")) for m in messages[:index]), why

    # The session's summary: every upstream request, under the model it went to.
    assert "vdm: session usage" in stderr and "openai:gpt-4o" in stderr, why
    usage = json.loads(summary.read_text())
    (row,) = usage["models"]
    assert (row["provider"], row["model"]) == ("openai", "gpt-4o"), usage
    # Every model request (the GET is vdm wrap's pre-flight models list, not a model call).
    posts = [r for r in fake.requests if r.method == "POST"]
    assert row["requests"] == len(posts) and row["errors"] == 0, usage
    assert row["input_tokens"] > 0 and row["output_tokens"] > 0, usage
    assert usage["exit_code"] == 0, usage

    # What vdm handed the child, as its Bash tool saw it.
    urls = re.findall(r"http://127\.0\.0\.1:(\d+)", output)
    assert urls, f"no loopback ANTHROPIC_BASE_URL in the tool output\n{why}"
    secrets_seen = re.findall(rf"{SESSION_HEADER}: (\S+)", output)
    assert secrets_seen, f"the child got no {SESSION_HEADER} header\n{why}"
    assert PLACEHOLDER_KEY in output, why
    secret = secrets_seen[0]
    assert len(secret) >= 32, why

    _assert_upstream_saw_no_session(fake, secret, why)
    _assert_port_closed(int(urls[0]), why)


# --- Claude Code's TUI under tmux -------------------------------------------------------------


@pytest.fixture
def tmux_bin() -> str:
    found = shutil.which("tmux")
    if found:
        return found
    if shutil.which("apt-get"):
        pytest.fail(
            "tmux is not installed: `apt-get install tmux` (.ci/run does it); apt-get is "
            "available, so this is a broken setup, not a missing tool"
        )
    pytest.skip("tmux not found, and no apt-get to install it: cannot drive Claude Code's TUI")


#: Runs the command, then writes its exit code to the file named first. tmux 3.3a sometimes
#: loses `#{pane_dead_status}`: when it sees the pty close before it reaps the pane's process,
#: the status stays empty for good (about one run in five, with any command; tmux PR #4841).
_RECORD_EXIT = 'status=$1; shift; "$@"; code=$?; echo "$code" > "$status"; exit "$code"'


@dataclass
class Tmux:
    """A private tmux server (its own socket) with one detached session, ``vdm``."""

    exe: str
    socket_name: str
    conf: Path
    status_file: Path
    #: The tmux server's environment, and so the pane's (plus tmux's own TMUX, TERM, …).
    env: dict[str, str]
    target: str = "vdm"

    def start(self, cwd: Path, width: int, height: int, *command: str) -> None:
        """The session, running `command` in `cwd` (under a shell that records its exit code;
        it stays in the terminal's foreground process group)."""
        self.run(
            "-f", str(self.conf), "new-session", "-d", "-s", self.target,
            "-x", str(width), "-y", str(height), "-c", str(cwd),
            "--", "/bin/sh", "-c", _RECORD_EXIT, "sh", str(self.status_file), *command,
        )  # fmt: skip

    def run(self, *args: str) -> str:
        proc = subprocess.run(
            [self.exe, "-L", self.socket_name, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=10,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {proc.returncode} {proc.stderr.strip()}")
        return proc.stdout

    def screen(self, history: bool = False) -> str:
        extra = ("-S", "-") if history else ()
        # Claude Code puts a no-break space after its prompt sign (❯).
        return self.run("capture-pane", "-p", "-t", self.target, *extra).replace("\xa0", " ")

    def pane(self, fmt: str) -> str:
        return self.run("display-message", "-p", "-t", self.target, fmt).strip()

    def exit_code(self) -> int | None:
        """The command's exit code once the pane is dead (`remain-on-exit` keeps the pane);
        128+N when signal N killed the recording shell, -1 when tmux lost that too."""
        fields = self.pane("#{pane_dead} #{pane_dead_status} #{pane_dead_signal}").split(" ")
        dead, status, signum = (fields + ["", ""])[:3]
        if dead != "1":
            return None
        try:
            return int(self.status_file.read_text())
        except (OSError, ValueError):
            pass
        if status:
            return int(status)
        return 128 + int(signum) if signum else -1

    def type(self, text: str) -> None:
        self.run("send-keys", "-t", self.target, "-l", text)

    def press(self, key: str) -> None:
        self.run("send-keys", "-t", self.target, key)

    def kill(self) -> None:
        try:
            self.run("kill-server")
        except (RuntimeError, subprocess.TimeoutExpired):
            pass  # already gone


@pytest.fixture
def tmux(tmux_bin: str, tmp_path: Path) -> Iterator[Tmux]:
    conf = tmp_path / "tmux.conf"
    # remain-on-exit keeps the dead pane: vdm's last output stays readable.
    conf.write_text("set -g remain-on-exit on\nset -g history-limit 5000\n")
    name = f"vdm-e2e-{os.getpid()}-{secrets.token_hex(4)}"
    server = Tmux(tmux_bin, name, conf, tmp_path / "exit-code", clean_env(HOME=str(tmp_path)))
    try:
        yield server
    finally:
        server.kill()


def _wait(
    tmux: Tmux, done: Callable[[str], bool], timeout: float, what: str, why: Callable[[], str]
) -> str:
    """Poll the screen until `done(screen)`; fail with the diagnostics if it does not come."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        screen = tmux.screen()
        if done(screen):
            return screen
        if "Enter to confirm" in screen:
            pytest.fail(f"a Claude Code dialog blocks the TUI while waiting for {what}\n{why()}")
        code = tmux.exit_code()
        if code is not None:
            pytest.fail(f"vdm exited ({code}) while waiting for {what}\n{why()}")
        time.sleep(0.1)
    pytest.fail(f"no {what} within {timeout} s\n{why()}")


def _vdm_process(pane_pid: int, why: Callable[[], str]) -> psutil.Process:
    """vdm: the child of the pane's recording shell."""
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        for child in psutil.Process(pane_pid).children():
            if "vdm.cli" in child.cmdline():
                return child
        time.sleep(0.05)
    pytest.fail(f"no vdm process under the pane's shell ({pane_pid})\n{why()}")


_EMPTY_PROMPT = re.compile(r"^❯\s*$", re.MULTILINE)


def test_claude_code_tui_through_vdm_wrap_under_tmux(
    claude_bin: Path, fake: FakeOpenAI, tmux: Tmux, tmp_path: Path
) -> None:
    token = secrets.token_hex(6)
    prompt = f"say hello {token}"
    answer = f"Hello from the fake upstream through vdm wrap, {token}!"

    def script(request: Recorded) -> Reply:
        body = request.json if isinstance(request.json, dict) else {}
        users = [m for m in messages_of(request) if m.get("role") == "user"]
        if "Bash" in tool_names(body) and any(prompt in text_of(m.get("content")) for m in users):
            return reply_to(body, answer)
        return reply_to(body, "OK")  # a side request (title, summary, …)

    fake.default = script
    home, project = tmp_path / "home", tmp_path / "project"
    project.mkdir()
    _seed_claude_home(home, project)
    tmux.env = _env(home, fake)  # the tmux server, and so the pane, gets only this environment

    def why() -> str:
        try:
            screen = tmux.screen(history=True)
            state = tmux.pane(
                "dead=#{pane_dead} status=#{pane_dead_status} signal=#{pane_dead_signal}"
            )
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            screen, state = "<tmux is gone>", repr(exc)
        try:
            recorded = tmux.status_file.read_text().strip()
        except OSError:
            recorded = "-"
        return (
            f"pane ({state}, recorded exit code {recorded}):\n{screen.rstrip()}\n"
            f"{_requests_summary(fake)}"
        )

    tmux.start(project, 120, 40, *VDM, "wrap", "--", str(claude_bin), "--model", MODEL)
    vdm = _vdm_process(int(tmux.pane("#{pane_pid}")), why)
    claude: psutil.Process | None = None
    try:
        _wait(tmux, lambda s: bool(_EMPTY_PROMPT.search(s)), TUI_START_TIMEOUT, "prompt", why)

        # What vdm handed the child: its URL, the session header, the placeholder token.
        claude = next((p for p in vdm.children() if str(claude_bin) in p.cmdline()), None)
        assert claude is not None, f"no claude process under vdm\n{why()}"
        child_env = claude.environ()
        base_url = child_env.get("ANTHROPIC_BASE_URL", "")
        match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)", base_url)
        assert match, f"ANTHROPIC_BASE_URL={base_url!r}\n{why()}"
        port = int(match[1])
        header = child_env.get("ANTHROPIC_CUSTOM_HEADERS", "")
        secret = header.rpartition(f"{SESSION_HEADER}: ")[2]
        assert f"{SESSION_HEADER}: " in header and len(secret) >= 32, f"{header!r}\n{why()}"
        assert child_env.get("ANTHROPIC_AUTH_TOKEN") == PLACEHOLDER_KEY, why()
        assert "ANTHROPIC_API_KEY" not in child_env, why()
        # Another local process, without the secret, cannot use the session proxy.
        intruder = f"intruder {token}"
        refused = httpx.post(
            f"{base_url}/v1/messages",
            headers={"authorization": f"Bearer {PLACEHOLDER_KEY}"},
            json={
                "model": MODEL,
                "max_tokens": 5,
                "messages": [{"role": "user", "content": intruder}],
            },
            timeout=5.0,
        )
        assert refused.status_code == 401, f"{refused.status_code} {refused.text}\n{why()}"

        # Type the prompt; press Enter only once it is on screen (no keystroke lost).
        tmux.type(prompt)
        _wait(tmux, lambda s: f"❯ {prompt}" in s, 5.0, "typed prompt", why)
        tmux.press("Enter")
        _wait(tmux, lambda s: answer in s, TUI_ANSWER_TIMEOUT, "answer on screen", why)

        tmux.type("/exit")
        _wait(tmux, lambda s: "❯ /exit" in s, 5.0, "typed /exit", why)
        tmux.press("Enter")
        deadline = time.monotonic() + TUI_EXIT_TIMEOUT
        while (code := tmux.exit_code()) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        report = why()
        assert code is not None, f"vdm still running {TUI_EXIT_TIMEOUT} s after /exit\n{report}"
        assert code == 0, f"vdm exited with {code}\n{report}"
        assert not vdm.is_running(), report
        assert not claude.is_running(), f"claude is still running after vdm exited\n{report}"
        _assert_port_closed(port, report)

        main = [
            r
            for r in fake.requests
            if "Bash" in tool_names(r.json)
            and any(prompt in text_of(m.get("content")) for m in messages_of(r))
        ]
        assert main, f"the typed prompt never reached the upstream\n{report}"
        assert main[0].json["model"] == "gpt-4o", report
        for request in fake.requests:
            body = request.body.decode(errors="replace")
            assert intruder not in body and secret not in body, report
        _assert_upstream_saw_no_session(fake, secret, report)
    finally:
        tmux.kill()  # its SIGHUP reaches vdm, which forwards it; make sure both are gone
        for proc in (vdm, claude):
            if proc is None:
                continue
            try:
                proc.wait(5)
            except psutil.TimeoutExpired:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
