"""End to end with the real Claude Code: a `claude -p` run whose main agent spawns a subagent,
behind `vdm wrap --summary-json`, and the summary's split between main agent and subagents.

The truth the summary is held against is what Claude Code itself sent: a small recording
relay sits between Claude Code and vdm's session proxy (vdm wrap runs the relay, the relay
runs Claude Code) and writes down every `/v1/messages` request's `x-claude-code-*` headers.
The fake upstream (OpenAI Chat Completions) scripts the conversation: the main agent calls the
`Agent` tool once (Claude Code 2.1.330's subagent tool; `Task` is its old name), the subagent's
request is answered with a plain end_turn, then the main turn ends. What the fake saw is a
second, independent truth: the subagent's requests carry the prompt the main agent gave it.
"""

from __future__ import annotations

import json
import secrets
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from tests.fakes.openai_upstream import FakeOpenAI, Recorded, Reply
from tests.fakes.scripts import messages_of, reply_to, text_of, tool_names
from tests.harness import clean_env
from tests.processes import run_to_end

pytestmark = pytest.mark.e2e

VDM = [sys.executable, "-m", "vdm.cli"]
#: Upper bound for the whole run (about 5 s on the 2-core VM).
RUN_TIMEOUT = 90.0

#: The recording relay: `relay.py LOG COMMAND...` serves 127.0.0.1 on a free port, forwards
#: every request to $ANTHROPIC_BASE_URL (vdm's session proxy) and streams the answer back,
#: appends each POST's path and headers to LOG (one JSON object a line), and runs COMMAND
#: with ANTHROPIC_BASE_URL pointing at itself; exits with COMMAND's exit code.
RELAY = """
import http.client, json, os, subprocess, sys, threading, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log_path, command = sys.argv[1], sys.argv[2:]
upstream = urllib.parse.urlsplit(os.environ["ANTHROPIC_BASE_URL"])
lock = threading.Lock()
HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}

class Relay(BaseHTTPRequestHandler):
    def _relay(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        if self.command == "POST":
            with lock, open(log_path, "a") as log:
                log.write(json.dumps({"path": self.path, "headers": headers}) + "\\n")
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
        conn.request(self.command, self.path, body=body, headers=headers)
        answer = conn.getresponse()
        self.send_response_only(answer.status, answer.reason)
        for name, value in answer.getheaders():
            if name.lower() not in HOP:
                self.send_header(name, value)
        self.send_header("connection", "close")
        self.end_headers()
        while chunk := answer.read1(65536):
            self.wfile.write(chunk)
            self.wfile.flush()
        conn.close()

    do_GET = do_POST = do_HEAD = _relay

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Relay)
threading.Thread(target=server.serve_forever, daemon=True).start()
env = dict(os.environ, ANTHROPIC_BASE_URL=f"http://127.0.0.1:{server.server_address[1]}")
sys.exit(subprocess.call(command, env=env))
"""


def _user_texts(request: Recorded) -> list[str]:
    return [text_of(m.get("content")) for m in messages_of(request) if m.get("role") == "user"]


def _lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def test_a_subagent_is_split_out_of_the_wrap_summary(
    claude_bin: Path, fake: FakeOpenAI, tmp_path: Path
) -> None:
    token = secrets.token_hex(6)
    prompt = f"delegate the survey {token} to a subagent"
    sub_prompt = f"Survey the repository for {token} and report back."
    sub_answer = f"Survey done for {token}: nothing to report."
    final = f"The subagent finished the survey {token}."
    call_id = f"call_agent{token}"
    arguments = json.dumps(
        {
            "description": "Survey the repository",
            "prompt": sub_prompt,
            "subagent_type": "general-purpose",
            "run_in_background": False,
        }
    )

    def script(request: Recorded) -> Reply:
        body = request.json if isinstance(request.json, dict) else {}
        users = _user_texts(request)
        if any(sub_prompt in text for text in users):
            return reply_to(body, sub_answer)  # the subagent: a plain end_turn
        if any(m.get("role") == "tool" for m in messages_of(request)):
            return reply_to(body, final)  # the main agent, with the subagent's result
        if "Agent" in tool_names(body) and any(prompt in text for text in users):
            return reply_to(body, tool_calls=[("Agent", arguments, call_id)])
        return reply_to(body, "OK")  # a side request (title, ...)

    fake.default = script
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    relay, log, summary = (
        tmp_path / "relay.py",
        tmp_path / "requests.jsonl",
        tmp_path / "usage.json",
    )
    relay.write_text(textwrap.dedent(RELAY))
    env = clean_env(
        HOME=str(home),
        OPENAI_API_KEY="sk-upstream-subagent-e2e",
        OPENAI_BASE_URL=fake.base_url,
        # Claude Code's own model names, main agent's and subagent's alike, go to gpt-4o.
        OPENAI_ALIAS_OPUS="gpt-4o",
        OPENAI_ALIAS_SONNET="gpt-4o",
        OPENAI_ALIAS_HAIKU="gpt-4o-mini",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_AUTOUPDATER="1",
        CLAUDE_CODE_MAX_RETRIES="0",
    )
    command = [
        *VDM,
        "wrap",
        "--no-check",
        "--summary-json",
        str(summary),
        "--",
        sys.executable,
        str(relay),
        str(log),
        str(claude_bin),
        "-p",
        prompt,
        "--model",
        "opus",
        "--allowedTools",
        "Agent",
    ]
    proc = run_to_end(command, env=env, cwd=project, timeout=RUN_TIMEOUT)
    stdout, stderr = proc.stdout, proc.stderr
    seen = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    upstream = [
        f"{r.path} users={[t[:80] for t in _user_texts(r)]} tools={tool_names(r.json)}"
        for r in fake.requests
    ]
    why = (
        f"exit {proc.returncode}\nstdout:\n{stdout[-3000:]}\nstderr:\n{stderr[-4000:]}\n"
        f"relayed:\n"
        + "\n".join(json.dumps(s) for s in seen)
        + "\nupstream:\n"
        + "\n".join(upstream)
    )
    assert proc.returncode == 0, why
    assert final in stdout, why

    # What Claude Code sent, per model call (count_tokens is not a model call).
    calls = [_lower(s["headers"]) for s in seen if s["path"].split("?")[0] == "/v1/messages"]
    assert calls, why
    classes = Counter(h.get("x-claude-code-request-class", "-") for h in calls)
    sub_calls = [h for h in calls if "x-claude-code-agent-id" in h]
    assert sub_calls, f"Claude Code sent no request with an agent id\n{why}"
    assert all(h.get("x-claude-code-request-class") == "subagent" for h in sub_calls), why
    agent_ids = {h["x-claude-code-agent-id"] for h in sub_calls}
    sessions = {h["x-claude-code-session-id"] for h in calls if "x-claude-code-session-id" in h}
    # The other truth: the requests the fake answered as the subagent's.
    subagent_upstream = [r for r in fake.requests if any(sub_prompt in t for t in _user_texts(r))]
    assert len(subagent_upstream) == len(sub_calls), why

    data = json.loads(summary.read_text())
    main, sub = data["agents"]["main"], data["agents"]["subagent"]
    assert sub["requests"] == len(sub_calls), f"{json.dumps(data, indent=1)}\n{why}"
    assert main["requests"] == len(calls) - len(sub_calls), json.dumps(data, indent=1)
    assert sub["agents"] == len(agent_ids) == data["total"]["subagents"] == 1, data
    assert data["sessions"] == len(sessions) == 1, data
    assert data["request_classes"] == {k: v for k, v in classes.items() if k != "-"}, data
    assert sub["input_tokens"] > 0 and sub["errors"] == 0 and main["errors"] == 0, data
    assert sum(m["requests"] for m in data["models"]) == len(calls), data
    # Priced at gpt-4o and at the Claude model Claude Code asked for.
    assert main["cost_usd"] > 0 and sub["cost_usd"] > 0, data
    assert data["total"]["claude_cost_usd"] is not None and data["total"]["claude_cost_usd"] > 0

    assert "subagents (1)" in stderr and "main agent" in stderr, why
    assert "Claude Code: 1 session, 1 subagent" in stderr, why
