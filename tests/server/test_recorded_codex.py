"""The requests recorded from the real Codex CLI 0.169 (../shared/protocol/codex/) replayed over
HTTP to vdm's `/v1/responses`, with their recorded headers (less the key), and answered by each
kind of upstream: a Chat Completions provider, a Responses one and an Anthropic one.

The stream is checked against what Codex acts on (dialects.md B4): `response.created` first,
each item announced (`output_item.added`) before its deltas and finished
(`output_item.done`, the only place Codex reads items from), and `response.completed` with a
string id and integer usage. A call to a member of a namespace tool comes back under its
namespace, and the hosted `web_search` tool never reaches a provider vdm translates for. The
protocol-level replay is in tests/protocol/test_anthropic_request_from_responses.py."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.openai_clients import KINDS, UPSTREAM_KEY, Stand, sse_events, stand
from tests.fakes.openai_upstream import Recorded, Reply
from tests.fakes.responses_upstream import (
    ResponsesSseReply,
    function_call_item,
    message_item,
    response_events,
    responses_usage,
)
from tests.fakes.scripts import Usage
from tests.harness import PROTOCOL

RECORDINGS = PROTOCOL / "codex"
EXEC = "codex_01_exec_request.json"
ROUND_TRIP = "codex_02_tool_roundtrip_req2.json"
#: Headers of the recorded connection, not of the request, and the client's key.
LEFT_OUT = {"host", "content-length", "connection", "accept-encoding", "authorization"}
NAMESPACE, MEMBER = "multi_agent_v1", "spawn_agent"
#: The name a provider vdm translates for sees for a namespace member.
FLAT = f"{NAMESPACE}__{MEMBER}"
SPAWN_ARGS = '{"id": "agent-1"}'


def recorded(name: str) -> tuple[dict[str, str], dict[str, Any]]:
    """A recording's headers (less the connection's and the key) and its body with the
    omitted tool schemas restored (shared/protocol/README.md)."""
    data = json.loads((RECORDINGS / name).read_text())
    headers = {k: v for k, v in data["headers"].items() if k.lower() not in LEFT_OUT}
    body: dict[str, Any] = copy.deepcopy(data["body"])
    body.pop("_tool_names")
    schema = {"type": "object", "properties": {"id": {"type": "string"}}}
    for tool in body["tools"]:
        if tool.pop("_omitted", None) is None:
            continue
        tool["description"] = f"The {tool['name']} tool."
        if tool["type"] == "namespace":
            tool["tools"] = [
                {
                    "type": "function",
                    "name": member,
                    "description": f"{member}.",
                    "strict": False,
                    "parameters": schema,
                }
                for member in tool["tools"]
            ]
        else:
            tool["parameters"] = {"type": "object", "properties": {}}
    return headers, body


@pytest.fixture(params=KINDS)
def s(request: pytest.FixtureRequest) -> Iterator[Stand]:
    with stand(request.param) as ready:
        yield ready


def replay(s: Stand, name: str) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """POST the recording to vdm as Codex did; its body and the events of the answer."""
    headers, body = recorded(name)
    url = f"{s.vdm.url}/v1/responses"
    with httpx.Client(timeout=30) as http:
        reply = http.post(url, content=json.dumps(body).encode(), headers=headers)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/event-stream")
    assert UPSTREAM_KEY not in reply.text
    return body, sse_events(reply.content)


def check_codex_stream(events: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The stream is one Codex takes (B4); the items as `output_item.done` gave them."""
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "response.created", kinds
    assert kinds[-1] == "response.completed", kinds
    assert kinds.count("response.completed") == 1
    assert all(kind != "response.failed" for kind in kinds)
    added: dict[int, str] = {}
    done: dict[int, dict[str, Any]] = {}
    for kind, data in events:
        index = data.get("output_index")
        if kind == "response.output_item.added":
            assert index not in added, "an item announced twice"
            added[index] = data["item"]["type"]
        elif kind == "response.output_item.done":
            assert added.get(index) == data["item"]["type"], "done before added"
            assert index not in done, "an item finished twice"
            done[index] = data["item"]
        elif kind.endswith(".delta"):
            assert index in added and index not in done, (kind, data)
    assert sorted(done) == sorted(added) == list(range(len(done)))
    created, completed = events[0][1]["response"], events[-1][1]["response"]
    assert isinstance(completed["id"], str) and completed["id"] == created["id"]
    assert completed["status"] == "completed"
    usage = completed["usage"]
    for field in ("input_tokens", "output_tokens", "total_tokens"):
        assert isinstance(usage[field], int), usage
    items = [done[i] for i in sorted(done)]
    assert completed["output"] == items
    for item in items:  # what Codex needs to deserialize them, else it drops them silently
        if item["type"] == "message":
            assert item["role"] == "assistant" and isinstance(item["content"], list)
            assert all(p["type"] == "output_text" for p in item["content"])
        elif item["type"] == "function_call":
            assert isinstance(item["arguments"], str) and item["call_id"] and item["name"]
        elif item["type"] == "reasoning":
            assert isinstance(item["summary"], list)
    return items


def _namespaced_call(s: Stand, request: Recorded) -> Reply:
    """Text, then a call to the namespace member, in the upstream's dialect: a provider vdm
    translates for calls the flattened name; a Responses provider, the member under its
    namespace, as OpenAI does."""
    call_id = s.script.call_id("spawn")
    if s.kind != "responses":
        return s.script.reply(
            request,
            text="Spawning.",
            tool_calls=[(FLAT, SPAWN_ARGS, call_id)],
            usage=Usage(900, 0, 20),
        )
    call = function_call_item(MEMBER, SPAWN_ARGS, call_id=call_id)
    call["namespace"] = NAMESPACE
    output = [message_item("Spawning."), call]
    return ResponsesSseReply(
        response_events(output, model=s.script.model(request), usage=responses_usage(900, 20))
    )


def test_exec_request_replayed(s: Stand) -> None:
    s.answer(lambda r: _namespaced_call(s, r))
    body, events = replay(s, EXEC)
    items = check_codex_stream(events)
    assert [i["type"] for i in items] == ["message", "function_call"]
    assert items[0]["content"][0]["text"] == "Spawning."
    call = items[1]
    assert (call.get("namespace"), call["name"]) == (NAMESPACE, MEMBER)
    assert json.loads(call["arguments"]) == json.loads(SPAWN_ARGS)
    assert call["call_id"] == s.script.call_id("spawn")
    usage = events[-1][1]["response"]["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (900, 20)

    (sent,) = s.calls()
    assert s.script.is_stream(sent)
    assert s.script.user_texts(sent)[-1] == "say hi"
    assert "You are a coding agent running in the Codex CLI" in s.script.system_text(sent)
    names = s.script.tool_names(sent)
    assert "exec_command" in names
    if s.kind == "responses":
        # Forwarded: the conversation, tools and options as Codex sent them.
        for field in ("input", "tools", "tool_choice", "reasoning", "include", "store"):
            assert sent.json[field] == body[field], field
    else:
        assert FLAT in names
        assert "web_search" not in json.dumps(sent.json.get("tools")), "a hosted tool went out"


def _final_answer(s: Stand, request: Recorded) -> Reply:
    assert s.script.tool_results(request), "turn 2 without the command's output"
    return s.script.reply(request, text="It printed hello.", usage=Usage(950, 0, 8))


def test_tool_round_trip_replayed(s: Stand) -> None:
    s.answer(lambda r: _final_answer(s, r))
    body, events = replay(s, ROUND_TRIP)
    items = check_codex_stream(events)
    assert [i["type"] for i in items] == ["message"]
    assert items[0]["content"][0]["text"] == "It printed hello."

    (sent,) = s.calls()
    call = next(i for i in body["input"] if i["type"] == "function_call")
    output = next(i for i in body["input"] if i["type"] == "function_call_output")
    (carried,) = s.script.tool_calls(sent)
    assert (carried.id, carried.name) == (call["call_id"], "exec_command")
    assert json.loads(carried.arguments) == {"cmd": "echo hello"}
    (result,) = s.script.tool_results(sent)
    assert (result.call_id, result.text) == (call["call_id"], output["output"])
    assert "run echo hello" in s.script.user_texts(sent)
    if s.kind != "responses":
        assert "web_search" not in json.dumps(sent.json.get("tools"))
