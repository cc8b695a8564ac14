"""The wrap summary through real processes: `vdm wrap` (its proxy in-process), a child that
speaks with the anthropic SDK and sends Claude Code's headers, and a fake upstream.

What is checked is what the user reads: the split between main agent and subagents, the
session count, the cost at the routed models' prices and at the Claude models asked for, and
1-hour cache writes priced as Anthropic bills them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.anthropic_upstream import (
    AnthropicSseReply,
    FakeAnthropic,
    anthropic_event,
    anthropic_stream_events,
)
from tests.fakes.openai_upstream import FakeOpenAI, SseReply, stream_chunks
from tests.harness import clean_env

VDM = [sys.executable, "-m", "vdm.cli"]

#: Sends one streamed request per argv item `model|header=value,header=value` and prints the
#: hint switch vdm handed it.
CHILD = """
import os, sys, anthropic
print("HINTS", os.environ.get("CLAUDE_CODE_GATEWAY_HINT_HEADERS"))
client = anthropic.Anthropic(max_retries=0)
for spec in sys.argv[1:]:
    model, _, headers = spec.partition("|")
    extra = dict(h.split("=", 1) for h in headers.split(",") if h)
    with client.messages.stream(
        model=model, max_tokens=20, messages=[{"role": "user", "content": "hi"}],
        extra_headers=extra,
    ) as stream:
        print("TEXT:", stream.get_final_message().content[0].text)
"""
SESSION = "x-claude-code-session-id=5ecc5470-016b-4277-80f6-5cec9aafdeaa"
MAIN = f"{SESSION},x-claude-code-request-class=main"


def _subagent(agent: str) -> str:
    return (
        f"{SESSION},x-claude-code-agent-id={agent},x-claude-code-request-class=subagent,"
        "x-claude-code-agent-type=general-purpose"
    )


def _wrap(
    tmp_path: Path, env: dict[str, str], *requests: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    child = tmp_path / "child.py"
    child.write_text(textwrap.dedent(CHILD))
    out = tmp_path / "usage.json"
    proc = subprocess.run(
        [*VDM, "wrap", "--no-check", "--summary-json", str(out), "--", sys.executable, str(child)]
        + list(requests),
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc, json.loads(out.read_text())


def test_main_agent_and_subagents_are_split_in_the_text_and_the_json(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    for _ in range(5):
        fake.enqueue(SseReply(stream_chunks("ok", prompt_tokens=1200, completion_tokens=30)))
    env = clean_env(
        HOME=str(tmp_path),
        OPENAI_API_KEY="sk-upstream",
        OPENAI_BASE_URL=fake.base_url,
        # Claude Code's names routed to two OpenAI models.
        OPENAI_ALIAS_CLAUDE_OPUS_4_6="gpt-4o",
        OPENAI_ALIAS_CLAUDE_HAIKU_4_5="gpt-4o-mini",
    )
    proc, data = _wrap(
        tmp_path,
        env,
        f"claude-opus-4-6|{MAIN}",
        f"claude-haiku-4-5|{_subagent('agent-1')}",
        f"claude-haiku-4-5|{_subagent('agent-1')}",
        f"claude-haiku-4-5|{_subagent('agent-2')}",
        f"claude-opus-4-6|{MAIN}",
    )
    assert proc.stdout.count("TEXT: ok") == 5
    assert "HINTS 1" in proc.stdout  # vdm wrap turns Claude Code's hint headers on

    main, sub = data["agents"]["main"], data["agents"]["subagent"]
    assert (main["requests"], sub["requests"], sub["agents"]) == (2, 3, 2)
    assert (main["input_tokens"], sub["input_tokens"]) == (2400, 3600)
    # Main agent on gpt-4o ($2.50 / $10), subagents on gpt-4o-mini ($0.15 / $0.60).
    assert main["cost_usd"] == pytest.approx(2 * (1200 * 2.5 + 30 * 10) / 1e6)
    assert sub["cost_usd"] == pytest.approx(3 * (1200 * 0.15 + 30 * 0.6) / 1e6)
    # On Claude: Opus 4.6 ($5 / $25) and Haiku 4.5 ($1 / $5).
    assert main["claude_cost_usd"] == pytest.approx(2 * (1200 * 5 + 30 * 25) / 1e6)
    assert sub["claude_cost_usd"] == pytest.approx(3 * (1200 * 1 + 30 * 5) / 1e6)
    assert data["total"]["claude_cost_usd"] == pytest.approx(
        main["claude_cost_usd"] + sub["claude_cost_usd"], abs=1e-6
    )
    assert (data["sessions"], data["total"]["subagents"]) == (1, 2)
    assert data["request_classes"] == {"main": 2, "subagent": 3}
    models = {m["model"]: m for m in data["models"]}
    assert models["gpt-4o-mini"]["requested"] == {"claude-haiku-4-5": 3}

    lines = proc.stderr.splitlines()
    assert any(line.split()[:4] == ["main", "agent", "2", "0"] for line in lines), proc.stderr
    assert any(line.split()[:4] == ["subagents", "(2)", "3", "0"] for line in lines), proc.stderr
    assert "Claude Code: 1 session, 2 subagents" in proc.stderr
    assert "on the Claude models asked for (claude-haiku-4-5, claude-opus-4-6)" in proc.stderr


def test_a_hint_switch_the_user_set_is_kept(tmp_path: Path, fake: FakeOpenAI) -> None:
    env = clean_env(
        HOME=str(tmp_path),
        OPENAI_API_KEY="sk-upstream",
        OPENAI_BASE_URL=fake.base_url,
        CLAUDE_CODE_GATEWAY_HINT_HEADERS="0",
    )
    proc, data = _wrap(tmp_path, env)
    assert "HINTS 0" in proc.stdout
    assert data["models"] == [] and data["agents"]["subagent"]["requests"] == 0


def test_one_hour_cache_writes_through_a_passthrough_are_priced_at_twice_the_input(
    tmp_path: Path, ant: FakeAnthropic
) -> None:
    """Anthropic says how many cache writes were 1-hour ones (`usage.cache_creation`); the
    relay keeps the split and the cost uses each lifetime's rate."""
    model = "claude-sonnet-4-5-20250929"
    events = anthropic_stream_events(
        "ok", model=model, input_tokens=300, output_tokens=40, cache_read=5000, cache_creation=1000
    )
    start = json.loads(events[0].split(b"data: ", 1)[1])
    start["message"]["usage"]["cache_creation"] = {
        "ephemeral_5m_input_tokens": 200,
        "ephemeral_1h_input_tokens": 800,
    }
    ant.enqueue(AnthropicSseReply([anthropic_event(start), *events[1:]]))
    env = clean_env(
        HOME=str(tmp_path), ANTHROPIC_API_KEY="sk-ant-up", ANTHROPIC_BASE_URL=ant.base_url
    )
    _, data = _wrap(tmp_path, env, f"{model}|{MAIN}")
    (row,) = data["models"]
    assert row["cache_creation_input_tokens"] == 1000
    assert (row["cache_creation_5m_input_tokens"], row["cache_creation_1h_input_tokens"]) == (
        200,
        800,
    )
    # Sonnet 4.5: $3 in, $15 out, $0.30 cache read, $3.75 5-minute and $6 1-hour writes.
    expected = (300 * 3 + 40 * 15 + 5000 * 0.3 + 200 * 3.75 + 800 * 6) / 1e6
    assert row["cost_usd"] == pytest.approx(expected)
    # Asked for the model it went to: the Claude cost is the cost.
    assert data["total"]["claude_cost_usd"] == pytest.approx(expected)
