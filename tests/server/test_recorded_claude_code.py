"""Every request recorded from the real Claude Code (../shared/protocol/claude-code/) replayed
through vdm with its recorded headers and query: the client gets a well-formed Anthropic
stream (or message), and the upstream gets the system prompt, the environment system message,
the tools and the conversation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI, JsonReply, SseReply, completion, stream_chunks
from tests.harness import PROTOCOL, running_vdm
from vdm.protocol.openai_chat import ChatRequest
from vdm.protocol.sse import SseDecoder

RECORDINGS = PROTOCOL / "claude-code"
#: Headers that describe the recorded connection, not the request.
HOP_HEADERS = {"host", "content-length", "connection", "accept-encoding"}


def _recorded(kind: str) -> list[Path]:
    if not RECORDINGS.is_dir():
        return []
    out = []
    for path in sorted(RECORDINGS.glob("*.json")):
        data = json.loads(path.read_text())
        body = data.get("body")
        if not isinstance(body, dict):
            continue
        is_count = data.get("path", "").endswith("count_tokens")
        if (kind == "count") == is_count:
            out.append(path)
    return out


def restore(body: dict[str, Any]) -> dict[str, Any]:
    """Undo the recorder's size reductions (README: restore omitted schemas, drop names)."""
    body = dict(body)
    body.pop("_tool_names", None)
    tools = []
    for tool in body.get("tools") or []:
        tool = dict(tool)
        if "_omitted" in tool:
            tool.pop("_omitted")
            tool.setdefault("description", f"The {tool['name']} tool")
            tool.setdefault("input_schema", {"type": "object", "properties": {}})
        tools.append(tool)
    if "tools" in body:
        body["tools"] = tools
    return body


def _headers(recorded: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in recorded["headers"].items() if k.lower() not in HOP_HEADERS}


#: Fallback aliases for Claude Code's model families, so the test sees where each name goes.
FALLBACKS = {f"VDM_FALLBACK_{f.upper()}": f"fake-{f}" for f in ("haiku", "sonnet", "opus")}


def _events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    decoder = SseDecoder()
    events = decoder.feed(raw) + decoder.flush()
    return [(e.event, json.loads(e.data)) for e in events]


def _skip_without_recordings(paths: list[Path]) -> None:
    if not paths:
        pytest.skip(f"no recorded Claude Code traffic at {RECORDINGS}")


@pytest.mark.parametrize(
    "path", _recorded("messages") or [None], ids=lambda p: p.stem if p else "none"
)
def test_recorded_message_request(fake: FakeOpenAI, path: Path | None) -> None:
    if path is None:
        _skip_without_recordings([])
    assert path is not None
    recorded = json.loads(path.read_text())
    body = restore(recorded["body"])
    query = "&".join(f"{k}={v[0]}" for k, v in (recorded.get("query") or {}).items())
    url_path = recorded["path"] + (f"?{query}" if query else "")
    stream = bool(body.get("stream"))
    fake.enqueue(
        SseReply(stream_chunks("Recorded reply."))
        if stream
        else JsonReply(completion("Recorded reply."))
    )
    env = {"OPENAI_API_KEY": "sk-up", "OPENAI_BASE_URL": fake.base_url, **FALLBACKS}
    with running_vdm(env) as vdm:
        response = httpx.post(vdm.url + url_path, json=body, headers=_headers(recorded), timeout=20)
    assert response.status_code == 200, response.text

    if stream:
        events = _events(response.content)
        names = [name for name, _ in events]
        assert names[0] == "message_start" and names[-1] == "message_stop"
        text = "".join(
            d["delta"]["text"]
            for n, d in events
            if n == "content_block_delta" and d["delta"]["type"] == "text_delta"
        )
        assert text == "Recorded reply."
    else:
        assert response.json()["content"][0]["text"] == "Recorded reply."

    sent = fake.last.json
    ChatRequest.model_validate(sent)
    # Claude Code's model names reach the upstream through the fallback aliases.
    family = next((f for f in ("haiku", "sonnet", "opus") if f in body["model"]), None)
    assert sent["model"] == (f"fake-{family}" if family else body["model"])
    assert (
        sent[next(k for k in ("max_completion_tokens", "max_tokens") if k in sent)]
        == body["max_tokens"]
    )
    first = sent["messages"][0]
    system_blocks = body["system"] if isinstance(body.get("system"), list) else []
    real_system = [
        b["text"] for b in system_blocks if not b["text"].startswith("x-anthropic-billing-header")
    ]
    assert first["role"] == "system"
    assert "x-anthropic-billing-header" not in json.dumps(sent)
    for text in real_system:
        assert text in first["content"]
    # The environment section Claude Code sends as a role:"system" message stays in place.
    inline_system = [m for m in body["messages"] if m["role"] == "system"]
    sent_inline = [m for m in sent["messages"][1:] if m["role"] == "system"]
    assert len(sent_inline) == len(inline_system)
    if body.get("tools"):
        # Deferred tools go once loaded: Claude Code's DeferredToolPlaceholder never is.
        loaded = [t["name"] for t in body["tools"] if not t.get("defer_loading")]
        assert [t["function"]["name"] for t in sent["tools"]] == loaded
    # Tool results of the recording arrive as tool messages with the same ids.
    result_ids = [
        b["tool_use_id"]
        for m in body["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result"
    ]
    assert [m["tool_call_id"] for m in sent["messages"] if m["role"] == "tool"] == result_ids
    # Nothing Anthropic-only leaks upstream.
    for field in ("cache_control", "context_management", "output_config", "thinking", "metadata"):
        assert f'"{field}"' not in json.dumps(sent)


@pytest.mark.parametrize(
    "path", _recorded("count") or [None], ids=lambda p: p.stem if p else "none"
)
def test_recorded_count_tokens(fake: FakeOpenAI, path: Path | None) -> None:
    if path is None:
        _skip_without_recordings([])
    assert path is not None
    recorded = json.loads(path.read_text())
    env = {"OPENAI_API_KEY": "sk-up", "OPENAI_BASE_URL": fake.base_url}
    with running_vdm(env) as vdm:
        response = httpx.post(
            f"{vdm.url}{recorded['path']}?beta=true",
            json=restore(recorded["body"]),
            headers=_headers(recorded),
            timeout=20,
        )
    assert response.status_code == 200, response.text
    assert response.json()["input_tokens"] > 0
    assert fake.requests == []
