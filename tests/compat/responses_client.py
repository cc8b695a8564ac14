"""The Responses client's checks (`POST /v1/responses` with the `openai` SDK, requests shaped
like Codex CLI 0.169's: tests/compat/openai_requests.py).

Streams are read as the SDK's typed events. The assertions follow what Codex acts on: it
builds messages and calls only from `response.output_item.done`, ends the turn at
`response.completed`, replays reasoning items by their `encrypted_content`, routes a call by
(`namespace`, `name`), and retries a `response.failed` whose code is `rate_limit_exceeded`
after the delay its message names.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from openai.types.responses import ResponseStreamEvent

from tests.compat.openai_checks import (
    BAD,
    LIMITED,
    TIMEOUT,
    Client,
    ClientCheck,
    ClientStand,
    check_turn_two,
    with_retry_after,
)
from tests.compat.openai_requests import (
    CODEX_FLAT_TOOL_NAMES,
    CODEX_IDENTITY,
    CODEX_TOOLS,
    codex_params,
    codex_replay,
    function_output,
)
from tests.fakes.scripts import Usage

_EXEC = "exec_command"
_SPAWN = "multi_agent_v1__spawn_agent"


def _events(s: ClientStand, kwargs: dict[str, Any]) -> list[ResponseStreamEvent]:
    stream = s.client.responses.create(**kwargs, stream=True, timeout=TIMEOUT)
    with stream:
        return list(stream)


def _turn(events: list[ResponseStreamEvent]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(the items done, in order; the final response) of a stream held to the order Codex
    and the SDK need: created first, sequence numbers 0, 1, 2, ..., completed last."""
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created", kinds
    assert kinds[-1] == "response.completed", kinds
    assert [e.sequence_number for e in events] == list(range(len(events))), kinds
    done = [e.item.model_dump(mode="json") for e in events if e.type == "response.output_item.done"]
    final = events[-1].response.model_dump(mode="json")  # type: ignore[union-attr]
    assert final["status"] == "completed", final
    return done, final


def _texts(items: list[dict[str, Any]]) -> str:
    return "".join(
        part["text"]
        for item in items
        if item["type"] == "message"
        for part in item["content"]
        if part["type"] == "output_text"
    )


def text(s: ClientStand) -> None:
    """A non-streamed `response`: the reply as a message item, `status: completed`, usage;
    the developer messages and prompt reach the provider, and the tools as it takes them
    (Codex's own list when it speaks Responses; else functions, the namespace's members
    flattened, `web_search` dropped)."""
    reply = "Hello! How can I help you today?"
    s.answer(lambda r: s.script.reply(r, text=reply))
    response = s.client.responses.create(**codex_params(s.model, "say hi"), timeout=TIMEOUT)
    assert response.status == "completed", response
    assert response.output_text == reply
    assert response.usage is not None and response.usage.output_tokens > 0
    [request] = s.served()
    assert s.script.model(request) == s.family.model
    assert not s.script.is_stream(request)
    assert any("say hi" in t for t in s.script.user_texts(request))
    assert CODEX_IDENTITY in s.script.system_text(request)
    if s.forwarded("responses"):
        assert isinstance(request.json, dict) and request.json["tools"] == CODEX_TOOLS
    else:
        assert s.script.tool_names(request) == CODEX_FLAT_TOOL_NAMES


def stream(s: ClientStand) -> None:
    """A stream as Codex reads it: `response.created` first, gapless `sequence_number`s,
    text deltas as they come, the message in `output_item.done`, `response.completed` with
    usage (cached input tokens counted in `input_tokens` and shown apart)."""
    reply = "The quick brown fox jumps over the lazy dog, twice over."
    s.answer(lambda r: s.script.reply(r, text=reply, usage=Usage(1200, 1000, 14)))
    events = _events(s, codex_params(s.model, "Write one sentence."))
    done, final = _turn(events)
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == reply and len(deltas) >= 2, deltas
    assert _texts(done) == reply, done
    usage = final["usage"]
    assert usage["input_tokens"] == 1200 and usage["output_tokens"] == 14, usage
    assert usage["input_tokens_details"]["cached_tokens"] == 1000, usage
    [request] = s.served()
    assert s.script.is_stream(request)


def tools(s: ClientStand) -> None:
    """A streamed `function_call` whose arguments arrive as deltas; translated for a
    provider of another dialect, a call to a namespace member (flattened upstream) comes
    back under Codex's own (`namespace`, `name`)."""
    args = {"cmd": "ls -la", "workdir": "/home/user/project"}
    spawn = {"message": "Review the diff."}
    calls = [(_EXEC, json.dumps(args), s.script.call_id("tools"))]
    if not s.forwarded("responses"):
        calls.append((_SPAWN, json.dumps(spawn), s.script.call_id("tools-2")))
    s.answer(lambda r: s.script.reply(r, tool_calls=calls))
    events = _events(s, codex_params(s.model, "List the files here."))
    done, _ = _turn(events)
    called = [item for item in done if item["type"] == "function_call"]
    assert len(called) == len(calls), done
    assert called[0]["name"] == _EXEC and called[0]["call_id"], called
    assert json.loads(called[0]["arguments"]) == args
    assert called[0].get("namespace") is None, called
    assert any(e.type == "response.function_call_arguments.delta" for e in events)
    if len(called) == 2:
        assert (called[1].get("namespace"), called[1]["name"]) == ("multi_agent_v1", "spawn_agent")
        assert json.loads(called[1]["arguments"]) == spawn
    [request] = s.served()
    schema = s.script.tool_parameters(request, _EXEC) or {}
    assert {"cmd", "sandbox_permissions"} <= set(schema.get("properties") or ()), schema


def tool_loop(s: ClientStand) -> None:
    """Turn 1 streams a reasoning item (its summary, where the provider shows reasoning,
    and its `encrypted_content`), text and a call; turn 2 replays those items as Codex
    stores them, then the `function_call_output`: the strict provider takes it, the call
    paired with its output and its reasoning state back unchanged."""
    marker = "compat-7f3a9c"
    reasoning = "The user wants the marker printed, so I will run echo with it."
    args = {"cmd": f"echo {marker}"}
    call = (_EXEC, json.dumps(args), s.script.call_id("loop"))
    done_text = f"The command printed {marker}."
    s.answer(
        lambda r: (
            s.script.reply(r, text=done_text)
            if s.script.tool_results(r)
            else s.script.reply(r, text="Let me run that.", tool_calls=[call], reasoning=reasoning)
        )
    )
    kwargs = codex_params(s.model, f"Run echo {marker}.")
    items, _ = _turn(_events(s, kwargs))
    kinds = [item["type"] for item in items]
    expected = ["message", "function_call"]
    assert [k for k in kinds if k != "reasoning"] == expected, kinds
    if s.family.thinking:
        [thought] = [item for item in items if item["type"] == "reasoning"]
        assert [p["text"] for p in thought["summary"]] == [reasoning], thought
        assert thought["encrypted_content"], thought
    assert _texts(items) == "Let me run that."
    [fc] = [item for item in items if item["type"] == "function_call"]
    assert json.loads(fc["arguments"]) == args
    history = [*kwargs["input"], *map(codex_replay, items), function_output(fc["call_id"], marker)]
    items, _ = _turn(_events(s, {**kwargs, "input": history}))
    assert _texts(items) == done_text, items
    requests = s.served()
    assert len(requests) == 2, "turn 2 must be taken at once"
    check_turn_two(s, requests[-1], _EXEC, args, marker)


def errors(s: ClientStand) -> None:
    """The provider's 400 reaches the SDK as `BadRequestError` with the provider's message;
    its 429 (`retry-after: 7`) on a stream is what Codex retries: an HTTP 200 stream ending
    in `response.failed` with code `rate_limit_exceeded` and "try again in 7s"; neither is
    retried upstream."""
    kwargs = codex_params(s.model, "say hi")
    s.answer(lambda r: s.script.error(400, BAD))
    with pytest.raises(openai.BadRequestError) as refused:
        s.client.responses.create(**kwargs, stream=True, timeout=TIMEOUT)
    assert BAD in refused.value.message, refused.value.body
    s.answer(lambda r: with_retry_after(s.script.error(429, LIMITED), "7"))
    events = _events(s, kwargs)
    kinds = [e.type for e in events]
    assert kinds == ["response.created", "response.failed"], kinds
    error = events[-1].response.error  # type: ignore[union-attr]
    assert error is not None and error.code == "rate_limit_exceeded", error
    assert LIMITED in error.message and "try again in 7s" in error.message, error
    assert len(s.served()) == 1, "a 429 the client must wait for is not retried upstream"


RESPONSES = Client(
    "responses",
    "OpenAI SDK, Responses (Codex CLI 0.169)",
    "responses",
    (
        ClientCheck("text", "text", text),
        ClientCheck("stream", "stream", stream),
        ClientCheck("tools", "tools", tools),
        ClientCheck("tool_loop", "tool loop", tool_loop),
        ClientCheck("errors", "errors", errors),
    ),
)
