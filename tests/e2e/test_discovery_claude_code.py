"""End to end with the real Claude Code CLI behind `vdm wrap` and the fake OpenAI upstream:

* model discovery as Claude Code performs it (`CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY=1`):
  its cache file `~/.claude/cache/gateway-models.json` lists vdm's aliases and routed models
  under the ids it keeps, and a picked id reaches the model it names;
* the context window: `claude -p /context` shows the routed model's real window, and the
  "Claude Code doesn't recognize the model …, so it assumes a context window of 1m tokens"
  notice is gone, for a vdm alias and for Claude Code's own `opus` routed elsewhere; a model
  whose window vdm does not know still gets the notice (so the check can fail).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.openai_upstream import FakeOpenAI, Recorded, Reply, SseReply, stream_chunks
from tests.harness import clean_env
from tests.processes import run_to_end

pytestmark = pytest.mark.e2e

VDM = [sys.executable, "-m", "vdm.cli"]
RUN_TIMEOUT = 60.0
NOTICE = "doesn't recognize the model"


def _dead_port() -> int:
    """A loopback port nothing listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_to_end(command, env=env, cwd=cwd, timeout=RUN_TIMEOUT)


def _places(tmp_path: Path) -> tuple[Path, Path]:
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    return home, project


def test_claude_code_discovers_vdms_models(
    claude_bin: Path, fake: FakeOpenAI, tmp_path: Path
) -> None:
    def slow_answer(request: Recorded) -> Reply:
        # A second before the answer, so that the discovery Claude Code starts alongside its
        # first request has surely landed before a one-prompt run exits.
        return SseReply(stream_chunks("Discovered."), pauses={0: 1.0})

    fake.default = slow_answer
    home, project = _places(tmp_path)
    dead = f"http://127.0.0.1:{_dead_port()}"
    env = clean_env(
        HOME=str(home),
        CORP_API_KEY="sk-corp-e2e",
        CORP_BASE_URL=fake.base_url,
        CORP_ALIAS_FAST="gpt-4o-mini",
        CORP_ALIAS_SMART="gpt-4o",
        CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY="1",
        # Claude Code skips discovery when nonessential traffic is disabled, so it is left
        # on here. Everything else stays on this machine: telemetry, error reports and the
        # updater are switched off, and any other request goes to a proxy that refuses
        # connections (loopback, vdm and the fake, is not proxied).
        DISABLE_TELEMETRY="1",
        DISABLE_ERROR_REPORTING="1",
        DISABLE_BUG_COMMAND="1",
        DISABLE_AUTOUPDATER="1",
        HTTPS_PROXY=dead,
        HTTP_PROXY=dead,
        NO_PROXY="127.0.0.1,localhost",
        CLAUDE_CODE_MAX_RETRIES="0",
    )
    command = [*VDM, "wrap", "--", str(claude_bin), "-p", "hi", "--model", "claude-vdm/fast"]
    result = _run(command, env, project)
    why = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, why
    assert "Discovered." in result.stdout, why
    # The id Claude Code keeps reaches the model it names.
    chats = [r for r in fake.requests if r.path.endswith("/chat/completions")]
    assert chats and {r.json["model"] for r in chats} == {"gpt-4o-mini"}, why

    cache = home / ".claude" / "cache" / "gateway-models.json"
    assert cache.is_file(), f"Claude Code wrote no discovery cache\n{why}"
    cached = json.loads(cache.read_text())
    assert cached["baseUrl"].startswith("http://127.0.0.1:")
    models = {m["id"]: m for m in cached["models"]}
    assert set(models) == {
        "claude-vdm/fast",
        "claude-vdm/smart",
        "claude-vdm/corp:gpt-4o-mini",
        "claude-vdm/corp:gpt-4o",
    }, cached
    assert models["claude-vdm/fast"]["display_name"] == "fast"
    assert models["claude-vdm/fast"]["description"] == "alias → corp:gpt-4o-mini · 128k context"
    assert models["claude-vdm/corp:gpt-4o"]["display_name"] == "gpt-4o (corp)"


@pytest.mark.parametrize(
    ("model", "aliases", "shown", "notice"),
    [
        # A vdm alias: Claude Code would assume 1M; vdm tells it gpt-4o's 128k.
        ("fast", {"CORP_ALIAS_FAST": "gpt-4o"}, "/ 128k", False),
        # Claude Code's own opus, routed to gpt-4o: compaction kept within 128k.
        ("opus", {"CORP_ALIAS_OPUS": "gpt-4o"}, "/ 128k", False),
        # A model whose window vdm does not know: Claude Code still assumes 1M and says so.
        ("mystery", {"CORP_ALIAS_MYSTERY": "house-model-7"}, "/ 1m", True),
    ],
)
def test_wrap_gives_claude_code_the_routed_models_window(
    claude_bin: Path,
    fake: FakeOpenAI,
    tmp_path: Path,
    model: str,
    aliases: dict[str, str],
    shown: str,
    notice: bool,
) -> None:
    home, project = _places(tmp_path)
    env = clean_env(
        HOME=str(home),
        CORP_API_KEY="sk-corp-e2e",
        CORP_BASE_URL=fake.base_url,
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_AUTOUPDATER="1",
        CLAUDE_CODE_MAX_RETRIES="0",
        **aliases,
    )
    command = [*VDM, "wrap", "--", str(claude_bin), "-p", "/context", "--model", model]
    result = _run(command, env, project)
    why = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, why
    tokens = next((line for line in result.stdout.splitlines() if "**Tokens:**" in line), "")
    assert shown in tokens, why
    assert (NOTICE in result.stderr) is notice, why
