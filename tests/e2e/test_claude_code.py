"""End to end with the real Claude Code CLI: `claude -p` → `vdm server start` (a real subprocess)
→ the fake OpenAI upstream (a real HTTP server). Assertions on what the CLI printed and on what
the upstream received.

The CLI (`@anthropic-ai/claude-code`, pinned in the Makefile) is installed by
`make install-claude` into `.venv/node/node_modules/.bin/claude`. Where npm is missing the
tests are skipped; where npm exists but the CLI is not installed they fail, so that a broken
install is never hidden by a silent skip.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.openai_upstream import (
    FakeOpenAI,
    Recorded,
    Reply,
    SseReply,
    stream_chunks,
)
from tests.fakes.scripts import reply_to, text_of, tool_names
from tests.harness import REPO, clean_env, free_port

pytestmark = pytest.mark.e2e

UPSTREAM_KEY = "sk-upstream-e2e-5678"
CLIENT_KEY = "sk-test-client"
MODEL = "openai:gpt-4o"
#: Asked of Claude Code through CLAUDE_CODE_MAX_OUTPUT_TOKENS: far above gpt-4o's real output
#: limit, which OpenAI enforces with a 400 ("max_tokens is too large"): vdm sends the ceiling.
MAX_OUTPUT_TOKENS = 64000
GPT_4O_CEILING = 16384
CLI_TIMEOUT = 90.0
BILLING_HEADER = "x-anthropic-billing-header"


# --- fixtures ---------------------------------------------------------------------------------


@dataclass
class VdmProcess:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, limit: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-limit:]
        except OSError as exc:
            return f"<cannot read vdm log: {exc}>"


def _vdm_executable() -> Path:
    exe = REPO / ".venv" / "bin" / "vdm"
    return exe if exe.is_file() else Path(sys.executable).with_name("vdm")


@contextmanager
def start_vdm(env: Mapping[str, str], tmp_path: Path) -> Iterator[VdmProcess]:
    """`vdm server start --port N` as a real subprocess, configured only by `env` (on top of a
    temporary HOME and an empty working directory); stopped with SIGTERM, which must end it
    cleanly."""
    home = tmp_path / "vdm-home"
    workdir = tmp_path / "vdm-cwd"  # no stray .env or vandamme-config.toml
    home.mkdir()
    workdir.mkdir()
    port = free_port()
    log = tmp_path / "vdm.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(_vdm_executable()), "server", "start", "--port", str(port)],
            env=clean_env(HOME=str(home), **env),
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = VdmProcess(url=f"http://127.0.0.1:{port}", proc=proc, log=log)
    try:
        _wait_healthy(server, timeout=10.0)
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            code = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            pytest.fail(f"vdm did not exit within 10 s of SIGTERM\n{server.log_tail()}")
        assert code == 0, f"vdm exited with {code} after SIGTERM\n{server.log_tail()}"


@pytest.fixture
def vdm_server(fake: FakeOpenAI, tmp_path: Path) -> Iterator[VdmProcess]:
    """vdm configured with the fake OpenAI upstream only."""
    env = {"OPENAI_API_KEY": UPSTREAM_KEY, "OPENAI_BASE_URL": fake.base_url}
    with start_vdm(env, tmp_path) as server:
        yield server


def _wait_healthy(server: VdmProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    with httpx.Client(timeout=0.5) as client:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                pytest.fail(f"vdm exited with {server.proc.returncode}:\n{server.log_tail()}")
            try:
                response = client.get(f"{server.url}/health")
            except httpx.TransportError as exc:
                last = exc
                time.sleep(0.05)
                continue
            assert response.status_code == 200, (
                f"GET /health: {response.status_code} {response.text}\n{server.log_tail()}"
            )
            return
    pytest.fail(
        f"vdm did not answer GET /health within {timeout} s ({last!r})\n{server.log_tail()}"
    )


# --- running the CLI --------------------------------------------------------------------------


@dataclass
class ClaudeRun:
    proc: subprocess.CompletedProcess[str]
    output: dict[str, Any] = field(default_factory=dict)


def run_claude(
    claude: Path,
    base_url: str,
    tmp_path: Path,
    prompt: str,
    *args: str,
    model: str = MODEL,
    **env: str,
) -> ClaudeRun:
    """`claude -p prompt --model model --output-format json *args` against `base_url`, in a
    temporary HOME and project (`e2e-project`), with an environment built from scratch."""
    home = tmp_path / "claude-home"
    project = tmp_path / "e2e-project"
    home.mkdir(exist_ok=True)
    project.mkdir(exist_ok=True)
    child_env = clean_env(
        HOME=str(home),
        ANTHROPIC_BASE_URL=base_url,
        ANTHROPIC_API_KEY=CLIENT_KEY,
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_AUTOUPDATER="1",
        CLAUDE_CODE_MAX_RETRIES="0",
        **env,
    )
    cmd = [str(claude), "-p", prompt, "--model", model, "--output-format", "json", *args]
    try:
        proc = subprocess.run(
            cmd,
            env=child_env,
            cwd=project,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"claude did not finish within {CLI_TIMEOUT} s\nstdout: {exc.stdout!r}")
    run = ClaudeRun(proc)
    for line in reversed(proc.stdout.strip().splitlines()):
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict):
            run.output = parsed
            break
    return run


def _summary(request: Recorded) -> str:
    body = request.json
    if not isinstance(body, dict):
        return f"{request.method} {request.path} <non-JSON body {request.body[:200]!r}>"
    messages = body.get("messages") or []
    roles = [m.get("role") for m in messages if isinstance(m, dict)]
    last = json.dumps(messages[-1])[:300] if messages else "-"
    return (
        f"{request.method} {request.path} model={body.get('model')!r} "
        f"stream={body.get('stream')!r} max_completion_tokens="
        f"{body.get('max_completion_tokens')!r} tools={tool_names(body)} roles={roles} "
        f"last={last}"
    )


def _explain(run: ClaudeRun, fake: FakeOpenAI, server: VdmProcess | None = None) -> str:
    parts = [
        f"claude exit code: {run.proc.returncode}",
        f"claude stdout:\n{run.proc.stdout[-4000:]}",
        f"claude stderr:\n{run.proc.stderr[-4000:]}",
        "upstream requests:",
        *(f"  {i}: {_summary(r)}" for i, r in enumerate(fake.requests)),
    ]
    if server is not None:
        parts.append(f"vdm log:\n{server.log_tail()}")
    return "\n".join(parts)


def _assert_success(run: ClaudeRun, fake: FakeOpenAI, server: VdmProcess | None) -> str:
    why = _explain(run, fake, server)
    assert run.proc.returncode == 0, why
    assert run.output, f"no JSON result on stdout\n{why}"
    assert run.output.get("is_error") is False, why
    assert run.output.get("api_error_status") is None, why
    result = run.output.get("result")
    assert isinstance(result, str), why
    return result


def _main_loop(fake: FakeOpenAI) -> list[dict[str, Any]]:
    """Bodies of the agent's main-loop calls: the ones offering the Bash tool."""
    return [r.json for r in fake.requests if "Bash" in tool_names(r.json)]


def _assert_claude_code_prompt(body: dict[str, Any], why: str) -> None:
    """The request still carries Claude Code's own system prompt, environment and tools."""
    messages = body["messages"]
    assert messages[0]["role"] == "system", why
    assert "Claude" in text_of(messages[0]["content"]), why
    env_messages = [
        m
        for m in messages[1:]
        if m.get("role") == "system"
        and (
            "# Environment" in text_of(m.get("content"))
            or "Primary working directory" in text_of(m.get("content"))
        )
    ]
    assert env_messages, f"no environment system message after the first one\n{why}"
    assert "e2e-project" in text_of(env_messages[0]["content"]), why
    assert "Bash" in tool_names(body), why
    bash = next(t["function"] for t in body["tools"] if t["function"]["name"] == "Bash")
    assert all(t.get("type") == "function" for t in body["tools"]), why
    assert "command" in bash["parameters"]["properties"], why


# --- tests ------------------------------------------------------------------------------------


def test_say_hello_through_vdm_server_start(
    claude_bin: Path, fake: FakeOpenAI, vdm_server: VdmProcess, tmp_path: Path
) -> None:
    reply_text = "Hello from the fake upstream, via vdm!"

    def script(request: Recorded) -> Reply:
        return reply_to(request.json, reply_text)

    fake.default = script
    run = run_claude(
        claude_bin,
        vdm_server.url,
        tmp_path,
        "say hello",
        CLAUDE_CODE_MAX_OUTPUT_TOKENS=str(MAX_OUTPUT_TOKENS),
    )
    why = _explain(run, fake, vdm_server)
    result = _assert_success(run, fake, vdm_server)
    assert reply_text in result, why

    main = _main_loop(fake)
    assert main, f"no upstream request offered the Bash tool\n{why}"
    request = next(r for r in fake.requests if r.json is main[0])
    assert request.path == "/v1/chat/completions", why
    assert request.headers.get("authorization") == f"Bearer {UPSTREAM_KEY}", why
    assert all(CLIENT_KEY not in v for r in fake.requests for v in r.headers.values()), why
    assert all(BILLING_HEADER not in r.body.decode() for r in fake.requests), why

    body = main[0]
    assert body["model"] == "gpt-4o", why
    assert body["stream"] is True, why
    assert body.get("stream_options", {}).get("include_usage") is True, why
    assert body.get("max_completion_tokens") == GPT_4O_CEILING, why
    assert body.get("max_tokens") is None, why
    # Anthropic-only fields never reach an OpenAI-format provider.
    leaked = {"system", "thinking", "context_management", "output_config", "metadata"}
    assert not leaked & body.keys(), why
    _assert_claude_code_prompt(body, why)
    users = [m for m in body["messages"] if m["role"] == "user"]
    assert any("say hello" in text_of(m["content"]) for m in users), why


def test_bash_tool_round_trip(
    claude_bin: Path, fake: FakeOpenAI, vdm_server: VdmProcess, tmp_path: Path
) -> None:
    call_id = "call_e2eBashRoundTrip01"
    arguments = json.dumps({"command": "echo hello", "description": "Print hello"})

    def script(request: Recorded) -> Reply:
        body = request.json if isinstance(request.json, dict) else {}
        messages = body.get("messages") or [{}]
        if messages[-1].get("role") == "tool":
            return reply_to(body, f"The command printed: {text_of(messages[-1].get('content'))}")
        if "Bash" in tool_names(body):
            return reply_to(body, tool_calls=[("Bash", arguments, call_id)])
        return reply_to(body, "OK")  # a side request (title, summary, ...)

    fake.default = script
    run = run_claude(
        claude_bin, vdm_server.url, tmp_path, "run echo hello", "--allowedTools", "Bash"
    )
    why = _explain(run, fake, vdm_server)
    result = _assert_success(run, fake, vdm_server)
    assert "The command printed:" in result, why
    assert "hello" in result, why

    main = _main_loop(fake)
    assert len(main) >= 2, why
    second = main[1]
    messages = second["messages"]
    index = next(
        (i for i, m in enumerate(messages) if m.get("role") == "assistant" and m.get("tool_calls")),
        None,
    )
    assert index is not None, f"no assistant message with tool_calls\n{why}"
    (call,) = messages[index]["tool_calls"]
    assert call["id"] == call_id, why
    assert call["type"] == "function", why
    assert call["function"]["name"] == "Bash", why
    assert json.loads(call["function"]["arguments"])["command"] == "echo hello", why
    assert index + 1 < len(messages), why
    tool_message = messages[index + 1]
    assert tool_message["role"] == "tool", why
    assert tool_message["tool_call_id"] == call_id, why
    assert "hello" in text_of(tool_message["content"]), why  # the real output of `echo hello`
    assert second["model"] == "gpt-4o", why
    assert second["stream"] is True, why
    _assert_claude_code_prompt(second, why)
    assert any("run echo hello" in text_of(m.get("content")) for m in messages[:index]), why


def test_broken_stream_falls_back_to_non_streaming(
    claude_bin: Path, fake: FakeOpenAI, vdm_server: VdmProcess, tmp_path: Path
) -> None:
    """Claude Code answers a broken stream (vdm relays it as an SSE `error` event) by
    retrying the same request with `stream: false`; vdm must serve that path too."""
    recovered = "Recovered without streaming."
    broken: list[int] = []

    def script(request: Recorded) -> Reply:
        body = request.json if isinstance(request.json, dict) else {}
        if body.get("stream") and "Bash" in tool_names(body) and not broken:
            broken.append(1)
            # The role chunk and one text delta, then the connection drops mid-body.
            return SseReply(stream_chunks("Partial text that never ends", pieces=4), cut_after=2)
        return reply_to(body, recovered)

    fake.default = script
    run = run_claude(claude_bin, vdm_server.url, tmp_path, "say hello")
    why = _explain(run, fake, vdm_server)
    result = _assert_success(run, fake, vdm_server)
    assert recovered in result, why

    main = _main_loop(fake)
    assert len(main) >= 2, why
    first, retry = main[0], main[1]
    assert first["stream"] is True, why
    assert not retry.get("stream"), f"the retry was not a non-streaming request\n{why}"
    assert "stream_options" not in retry, why
    assert retry["messages"] == first["messages"], why
    assert retry["model"] == "gpt-4o", why


# --- count_tokens (via a recording pass-through in front of vdm) ------------------------------


@dataclass
class Exchange:
    method: str
    path: str
    body: bytes
    status: int
    response: bytes


_HOP = {"host", "connection", "keep-alive", "transfer-encoding", "content-length", "upgrade"}


@dataclass
class RecordingForwarder:
    """A small HTTP/1.1 server that forwards each request to `target` (buffered: fine for
    JSON calls) and records the exchange."""

    target: str
    exchanges: list[Exchange] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=30.0)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def _handler(self) -> Callable[..., BaseHTTPRequestHandler]:
        forwarder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in _HOP and k.lower() != "accept-encoding"
                }
                response = forwarder._client.request(
                    self.command, forwarder.target + self.path, headers=headers, content=body
                )
                payload = response.content
                with forwarder._lock:
                    forwarder.exchanges.append(
                        Exchange(self.command, self.path, body, response.status_code, payload)
                    )
                self.send_response(response.status_code)
                for k, v in response.headers.items():
                    if k.lower() not in _HOP and k.lower() != "content-encoding":
                        self.send_header(k, v)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_HEAD = _forward

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def __enter__(self) -> RecordingForwarder:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        self._client.close()


def test_context_command_counts_tokens(
    claude_bin: Path, fake: FakeOpenAI, vdm_server: VdmProcess, tmp_path: Path
) -> None:
    """`/context` makes Claude Code call `count_tokens` (about two dozen times in parallel);
    vdm answers them locally, without calling the upstream."""
    with RecordingForwarder(vdm_server.url) as forwarder:
        run = run_claude(claude_bin, forwarder.url, tmp_path, "/context")
        exchanges = list(forwarder.exchanges)
    seen = "\n".join(f"  {e.method} {e.path} -> {e.status} {e.response[:200]!r}" for e in exchanges)
    why = f"{_explain(run, fake, vdm_server)}\nrequests to vdm:\n{seen}"
    result = _assert_success(run, fake, vdm_server)
    assert "Context Usage" in result, why

    counts = [e for e in exchanges if e.path.split("?")[0] == "/v1/messages/count_tokens"]
    assert counts, f"Claude Code did not call count_tokens\n{why}"
    for exchange in counts:
        assert exchange.method == "POST", why
        assert exchange.status == 200, why
        answer = json.loads(exchange.response)
        assert isinstance(answer.get("input_tokens"), int), why
        assert answer["input_tokens"] > 0, why
        assert json.loads(exchange.body)["model"] == MODEL, why
    assert any(json.loads(e.body).get("tools") for e in counts), why
    assert fake.requests == [], f"count_tokens reached the upstream\n{why}"
