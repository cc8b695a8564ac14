"""Claude Code's tool search through a translated provider, with the real CLI: `claude -p` →
vdm (Hypercorn on loopback) → the strict fake OpenAI upstream.

Claude Code 2.1.330 offers its deferred tools by name only (a system reminder) and loads one
with its ToolSearch tool, whose result is a `tool_reference` block; the loaded tool then joins
`tools` with `defer_loading: true`. The provider must get the result as text naming the tool,
and the tool itself; never the `DeferredToolPlaceholder`.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.openai_upstream import FakeOpenAI, Recorded, Reply
from tests.fakes.scripts import reply_to, text_of, tool_names
from tests.harness import clean_env, running_vdm

pytestmark = pytest.mark.e2e

#: The names after Claude Code's "The following deferred tools are now available via
#: ToolSearch. …:" line, up to the next blank line.
_DEFERRED = re.compile(r"deferred tools are now available via ToolSearch[^\n]*:\n((?:[^\n]+\n)+)")


def deferred_tools(body: dict[str, Any]) -> list[str]:
    text = "\n".join(text_of(m.get("content")) for m in body.get("messages", []))
    found = _DEFERRED.search(text + "\n")
    return found.group(1).split() if found else []


def test_a_tool_loaded_by_tool_search_reaches_the_provider(
    claude_bin: Path, tmp_path: Path
) -> None:
    chosen: list[str] = []

    def script(request: Recorded) -> Reply:
        body = request.json
        assert isinstance(body, dict)
        if not any(m.get("role") == "tool" for m in body["messages"]) and not chosen:
            names = deferred_tools(body)
            assert names, "Claude Code offered no deferred tools"
            chosen.append(names[0])
            query = json.dumps({"query": f"select:{names[0]}", "max_results": 5})
            return reply_to(body, tool_calls=[("ToolSearch", query)])
        return reply_to(body, "done")

    with FakeOpenAI(rules="openai") as fake:
        fake.default = script
        env = {"OPENAI_API_KEY": "sk-upstream", "OPENAI_BASE_URL": fake.base_url}
        with running_vdm(env) as vdm:
            child = clean_env(
                HOME=str(tmp_path),
                ANTHROPIC_BASE_URL=vdm.url,
                ANTHROPIC_API_KEY="sk-client",
                CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
                DISABLE_AUTOUPDATER="1",
                CLAUDE_CODE_MAX_RETRIES="0",
            )
            done = subprocess.run(
                [str(claude_bin), "-p", "load a tool", "--model", "openai:gpt-4.1"]
                + ["--output-format", "json"],
                env=child,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=90,
                stdin=subprocess.DEVNULL,
            )
        requests = [r.json for r in fake.requests]
    result = json.loads(done.stdout)
    assert result["is_error"] is False, done.stdout + done.stderr
    assert result["result"] == "done"
    assert chosen and len(requests) >= 2
    loaded = chosen[0]
    first, second = requests[0], requests[1]
    assert "ToolSearch" in tool_names(first) and loaded not in tool_names(first)
    assert loaded in tool_names(second)
    tool_messages = [m["content"] for m in second["messages"] if m["role"] == "tool"]
    assert tool_messages == [f"Tool {loaded} loaded."]
    assert all("DeferredToolPlaceholder" not in tool_names(body) for body in requests)
