"""End to end with the real Claude Code CLI: the parts of its gateway contract a user feels.

`claude -p` → `vdm server start` (a real subprocess) → a fake Anthropic-format upstream (a
real HTTP server). Claude Code runs with its own retry policy (no CLAUDE_CODE_MAX_RETRIES):
before vdm said `x-should-retry: false`, a wrong key kept it retrying for about 3 minutes
(11 requests) before it showed the error.

* a wrong proxy key ends the run in seconds, naming the failure;
* so does an upstream 401 from an Anthropic-format provider;
* an upstream "prompt is too long" reaches Claude Code unchanged, so that it compacts the
  conversation (or at least shows the provider's own words).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_claude_code import RecordingForwarder, VdmProcess, start_vdm
from tests.fakes.anthropic_upstream import (
    AnthropicSseReply,
    FakeAnthropic,
    JsonReply,
    Recorded,
    anthropic_error,
    anthropic_message,
    anthropic_stream_events,
)
from tests.harness import clean_env
from tests.processes import run_to_end

pytestmark = pytest.mark.e2e

UPSTREAM_KEY = "sk-ant-upstream-contract-5678"
PROXY_KEY = "vdm-proxy-key-contract-1234"
MODEL = "claude-sonnet-4-5"
#: A run that gives up at once takes a few seconds; one that retries takes minutes.
FAST = 30.0
#: Never wait longer than this for a run (the old behaviour took about 180 s).
RUN_TIMEOUT = 120.0
TOO_LONG = "prompt is too long: 210118 tokens > 200000 maximum"


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    seconds: float
    output: dict[str, Any]

    @property
    def text(self) -> str:
        return f"{self.stdout}\n{self.stderr}"


def _claude(
    claude: Path, base_url: str, tmp_path: Path, api_key: str, prompt: str, *args: str
) -> Run:
    """`claude -p prompt --output-format json` against `base_url`, with Claude Code's own
    retry policy, in a temporary HOME and project, from a clean environment."""
    home, project = tmp_path / "claude-home", tmp_path / "project"
    home.mkdir(exist_ok=True)
    project.mkdir(exist_ok=True)
    env = clean_env(
        HOME=str(home),
        ANTHROPIC_BASE_URL=base_url,
        ANTHROPIC_API_KEY=api_key,
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_AUTOUPDATER="1",
    )
    cmd = [str(claude), "-p", prompt, "--model", MODEL, "--output-format", "json", *args]
    started = time.monotonic()
    proc = run_to_end(cmd, env=env, cwd=project, timeout=RUN_TIMEOUT)
    seconds = time.monotonic() - started
    output: dict[str, Any] = {}
    for line in reversed(proc.stdout.strip().splitlines()):
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict):
            output = parsed
            break
    return Run(proc.returncode, proc.stdout, proc.stderr, seconds, output)


def _explain(run: Run, server: VdmProcess, *requests: str) -> str:
    return "\n".join(
        [
            f"claude exit code {run.code} after {run.seconds:.1f} s",
            f"stdout:\n{run.stdout[-3000:]}",
            f"stderr:\n{run.stderr[-3000:]}",
            *requests,
            f"vdm log:\n{server.log_tail()}",
        ]
    )


def _upstream(fake: FakeAnthropic) -> str:
    lines = ["upstream requests:"]
    for i, r in enumerate(fake.requests):
        body = r.json if isinstance(r.json, dict) else {}
        lines.append(f"  {i}: {r.method} {r.path} model={body.get('model')!r}")
    return "\n".join(lines)


def _messages_posts(forwarder: RecordingForwarder) -> list[int]:
    return [
        e.status
        for e in forwarder.exchanges
        if e.method == "POST" and e.path.split("?")[0] == "/v1/messages"
    ]


@pytest.fixture
def ant_env(ant: FakeAnthropic) -> dict[str, str]:
    return {"ANTHROPIC_API_KEY": UPSTREAM_KEY, "ANTHROPIC_BASE_URL": ant.base_url}


@pytest.fixture
def guarded(ant_env: dict[str, str], tmp_path: Path) -> Iterator[VdmProcess]:
    """vdm requiring a proxy key, in front of the fake Anthropic upstream."""
    with start_vdm({**ant_env, "PROXY_API_KEY": PROXY_KEY}, tmp_path) as server:
        yield server


@pytest.fixture
def open_vdm(ant_env: dict[str, str], tmp_path: Path) -> Iterator[VdmProcess]:
    with start_vdm(ant_env, tmp_path) as server:
        yield server


def test_a_wrong_proxy_key_ends_the_run_in_seconds(
    claude_bin: Path, ant: FakeAnthropic, guarded: VdmProcess, tmp_path: Path
) -> None:
    with RecordingForwarder(guarded.url) as forwarder:
        run = _claude(claude_bin, forwarder.url, tmp_path, "not-the-proxy-key", "say hello")
        posts = _messages_posts(forwarder)
    why = _explain(run, guarded, f"POST /v1/messages answers: {posts}", _upstream(ant))
    assert run.seconds < FAST, why
    assert run.code != 0 and run.output.get("is_error") is True, why
    assert run.output.get("api_error_status") == 401, why
    assert run.output.get("api_error_type") == "authentication_error", why
    assert "api key" in str(run.output.get("result")).lower(), why
    assert posts and set(posts) == {401}, why
    assert len(posts) <= 2, why  # the old behaviour: 11
    assert ant.requests == [], why


def test_an_upstream_401_ends_the_run_in_seconds(
    claude_bin: Path, ant: FakeAnthropic, open_vdm: VdmProcess, tmp_path: Path
) -> None:
    # A custom Anthropic-format provider that does not say whether to retry: vdm does.
    ant.default = anthropic_error(401, "authentication_error", "invalid x-api-key")
    run = _claude(claude_bin, open_vdm.url, tmp_path, "sk-client-unused", "say hello")
    why = _explain(run, open_vdm, _upstream(ant))
    assert run.seconds < FAST, why
    assert run.code != 0 and run.output.get("is_error") is True, why
    assert run.output.get("api_error_status") == 401, why
    assert run.output.get("api_error_type") == "authentication_error", why
    messages = [r for r in ant.requests if r.path == "/v1/messages"]
    assert messages and len(messages) <= 2, why
    assert all(r.headers["x-api-key"] == UPSTREAM_KEY for r in messages), why


def test_prompt_is_too_long_reaches_claude_code_unchanged(
    claude_bin: Path, ant: FakeAnthropic, open_vdm: VdmProcess, tmp_path: Path
) -> None:
    """Anthropic's own overflow error must reach Claude Code exactly: its recovery matches the
    wording. A first run makes a conversation; continuing it, the first answer is the
    overflow error, and Claude Code compacts the conversation and tries again."""
    too_long = JsonReply(
        {"type": "error", "error": {"type": "invalid_request_error", "message": TOO_LONG}},
        status=400,
        headers={"request-id": "req_011CTooLong", "x-should-retry": "false"},
    )
    answered: list[str] = []
    overflow = [False]

    def script(request: Recorded) -> Any:
        body = request.json if isinstance(request.json, dict) else {}
        text = json.dumps(body.get("messages", [])[-1:]).lower()
        if overflow[0] and not answered:
            answered.append("too long")
            return too_long
        # The request right after the overflow is the compaction: it asks for a summary.
        kind = "summary" if answered[-1:] == ["too long"] and "summar" in text else "answer"
        answered.append(kind)
        reply = "The user greeted twice." if kind == "summary" else "Hello again."
        if body.get("stream"):
            return AnthropicSseReply(anthropic_stream_events(reply))
        return JsonReply(anthropic_message(reply))

    ant.default = script
    first = _claude(claude_bin, open_vdm.url, tmp_path, "sk-client-unused", "say hello")
    assert first.code == 0, _explain(first, open_vdm, _upstream(ant))
    answered.clear()
    overflow[0] = True
    run = _claude(claude_bin, open_vdm.url, tmp_path, "sk-client-unused", "again", "--continue")
    why = _explain(run, open_vdm, f"answers: {answered}", _upstream(ant))
    assert answered[:1] == ["too long"], why
    assert "summary" in answered, f"Claude Code did not compact the conversation\n{why}"
    assert run.code == 0 and "Hello again." in str(run.output.get("result")), why
    assert run.seconds < FAST, why


def test_prompt_is_too_long_is_shown_in_claude_codes_words(
    claude_bin: Path, ant: FakeAnthropic, open_vdm: VdmProcess, tmp_path: Path
) -> None:
    """A single exchange cannot be compacted: Claude Code explains it with the numbers it read
    from the upstream's own message."""
    ant.default = JsonReply(
        {"type": "error", "error": {"type": "invalid_request_error", "message": TOO_LONG}},
        status=400,
    )
    run = _claude(claude_bin, open_vdm.url, tmp_path, "sk-client-unused", "say hello")
    why = _explain(run, open_vdm, _upstream(ant))
    result = str(run.output.get("result"))
    assert run.output.get("is_error") is True, why
    assert "Prompt is too long" in result and "210118" in result and "200000" in result, why
    assert run.seconds < FAST, why
