"""The checks of the compatibility matrix: the same Claude-Code-shaped exchanges for every
provider family, each asserting what Claude Code (or its user) would notice.

A check gets a `Stand`: one family's strict fake (a real HTTP server), vdm on real Hypercorn
pointed at it, and the anthropic SDK pointed at vdm. It scripts the fake through the family's
adapter (tests/fakes/scripts.py), talks to vdm as Claude Code does, and asserts on what the
client got and on what reached the provider. Streams are read as raw bytes and held to the
exact Anthropic SSE grammar (tests/protocol/grammar.py) before anything else is looked at.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anthropic
import pytest

from tests.compat.claude_code import (
    BILLING,
    IDENTITY,
    TOOL_NAMES,
    content_of,
    follow_up,
    opening,
    params,
    results,
)
from tests.compat.families import KEY, Family
from tests.fakes.openai_upstream import FakeOpenAI, JsonReply, Recorded, Reply
from tests.fakes.scripts import Script, Usage
from tests.harness import running_vdm
from tests.protocol.grammar import Result, check_grammar, parse_sse

#: A 4×4 red PNG, as Claude Code attaches a pasted screenshot.
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAQAAAAECAIAAAAmkwkpAAAAEElEQVR4nGO4IycHRwzEcQDTIxGBFNCZswAAAABJRU5E"
    "rkJggg=="
)
#: Anthropic requires tool_use ids to match this.
TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
#: Headers that carry a provider key.
_KEY_HEADERS = ("authorization", "api-key", "x-api-key", "x-goog-api-key")
#: The SDK refuses a long non-streamed request without a timeout of its own.
TIMEOUT = 30.0


@dataclass
class Stand:
    """One family's test stand: the fake, vdm's settings, a client talking to vdm."""

    family: Family
    script: Script
    fake: FakeOpenAI
    env: dict[str, str]
    client: anthropic.Anthropic

    def answer(self, responder: Callable[[Recorded], Reply]) -> None:
        """Forget earlier requests; answer the next ones with `responder`."""
        self.fake.clear()
        self.fake.default = responder

    def served(self) -> list[Recorded]:
        """The model calls the fake received since `answer`, oldest first."""
        return [r for r in self.fake.requests if r.method == "POST"]

    def request(self, prompt: str, *blocks: dict[str, Any]) -> dict[str, Any]:
        return params(self.family.client_model, opening(prompt, *blocks))

    def stream(self, kwargs: dict[str, Any]) -> bytes:
        """A streamed request's raw SSE body (a non-200 answer raises the SDK's error)."""
        with self.client.messages.with_streaming_response.create(**kwargs, stream=True) as answer:
            assert answer.http_response.headers["content-type"].startswith("text/event-stream")
            return b"".join(answer.iter_bytes())

    def create(self, kwargs: dict[str, Any]) -> anthropic.types.Message:
        message: anthropic.types.Message = self.client.messages.create(**kwargs, timeout=TIMEOUT)
        return message


def _usage(result: Result) -> dict[str, Any]:
    """The usage a client ends with: message_start's, updated by message_delta's (as the SDK
    accumulates it)."""
    usage = dict(result.message.get("usage") or {})
    usage.update({k: v for k, v in result.usage.items() if v is not None})
    return usage


def _types(result: Result) -> list[str]:
    return [block.type for block in result.blocks]


def _paired(script: Script, request: Recorded) -> None:
    """Every tool result the provider got answers the call it was paired with."""
    calls, answered = script.tool_calls(request), script.tool_results(request)
    assert len(calls) == len(answered), (calls, answered)
    assert [r.call_id for r in answered] == [c.id for c in calls], (calls, answered)


# --- the checks ---------------------------------------------------------------------------------


def text(s: Stand) -> None:
    """A non-streamed answer; the system prompt, tools and prompt reach the provider (the
    billing header only when it speaks Anthropic), with the key in the provider's own
    header."""
    reply = "Hello! How can I help you today?"
    s.answer(lambda r: s.script.reply(r, text=reply))
    kwargs = s.request("Say hello.")
    message = s.create(kwargs)
    assert [block.type for block in message.content] == ["text"], message.content
    assert message.content[0].text == reply  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens > 0
    [request] = s.served()
    assert s.script.model(request) == s.family.model
    assert not s.script.is_stream(request)
    assert any("Say hello." in t for t in s.script.user_texts(request))
    assert IDENTITY in s.script.system_text(request)
    assert s.script.tool_names(request) == TOOL_NAMES
    keys = {k: v for k, v in request.headers.items() if k in _KEY_HEADERS}
    if s.family.auth is None:
        assert keys == {}, keys
    else:
        bearer = s.family.auth == "authorization"
        assert keys == {s.family.auth: f"Bearer {KEY}" if bearer else KEY}, keys
    if s.family.passthrough:
        sent = {k: v for k, v in kwargs.items() if k not in ("extra_headers", "extra_body")}
        assert request.json == {**sent, **kwargs["extra_body"], "model": s.family.model}
    else:
        assert BILLING.split(":")[0].encode() not in request.body


def stream(s: Stand) -> None:
    """A streamed answer: text deltas as they come, usage with the cached tokens apart."""
    reply = "The quick brown fox jumps over the lazy dog, twice over."
    s.answer(lambda r: s.script.reply(r, text=reply, usage=Usage(1200, 1000, 14)))
    result = check_grammar(s.stream(s.request("Write one sentence.")))
    assert _types(result) == ["text"]
    assert result.text == reply
    assert len(result.blocks[0].deltas) >= 2, "the text must arrive in pieces"
    assert result.stop_reason == "end_turn"
    usage = _usage(result)
    assert usage["input_tokens"] == 200, usage
    assert usage["cache_read_input_tokens"] == 1000, usage
    assert usage["output_tokens"] == 14, usage
    [request] = s.served()
    assert s.script.is_stream(request)


def tools(s: Stand) -> None:
    """One streamed tool call: a tool_use block whose input arrives as JSON deltas."""
    args = {"command": "ls -la", "description": "List files in current directory"}
    call = ("Bash", json.dumps(args), s.script.call_id("tools"))
    s.answer(lambda r: s.script.reply(r, tool_calls=[call]))
    result = check_grammar(s.stream(s.request("List the files here.")))
    assert _types(result) == ["tool_use"], _types(result)
    [block] = result.blocks
    assert block.start["name"] == "Bash"
    assert TOOL_ID.match(block.start["id"]), block.start["id"]
    assert block.partial_json, "the input must arrive as input_json_delta"
    assert block.input == args
    assert result.stop_reason == "tool_use"
    [request] = s.served()
    schema = s.script.tool_parameters(request, "Bash") or {}
    assert {"command", "timeout", "description"} <= set(schema.get("properties") or ()), schema


def parallel_tools(s: Stand) -> None:
    """Two calls in one answer become two tool_use blocks; both results go back, each
    paired with its call."""
    read = {"file_path": "/home/user/project/README.md"}
    bash = {"command": "git status", "description": "Show working tree status"}
    calls = [
        ("Read", json.dumps(read), s.script.call_id("parallel-1")),
        ("Bash", json.dumps(bash), s.script.call_id("parallel-2")),
    ]
    done = "The project is a demo and the tree is clean."
    s.answer(
        lambda r: (
            s.script.reply(r, text=done)
            if s.script.tool_results(r)
            else s.script.reply(r, tool_calls=calls)
        )
    )
    kwargs = s.request("Read the README and show git status.")
    first = check_grammar(s.stream(kwargs))
    assert _types(first) == ["tool_use", "tool_use"], _types(first)
    assert [b.start["name"] for b in first.blocks] == ["Read", "Bash"]
    assert [b.input for b in first.blocks] == [read, bash]
    ids = [b.start["id"] for b in first.blocks]
    assert len(set(ids)) == 2 and all(TOOL_ID.match(i) for i in ids), ids
    assert first.stop_reason == "tool_use"
    outputs = ["# Project\nA demo.", "nothing to commit, working tree clean"]
    answer = results(*zip(ids, outputs, strict=True))
    messages = follow_up(kwargs["messages"], content_of(first), answer)
    second = check_grammar(s.stream(dict(kwargs, messages=messages)))
    assert second.text == done and second.stop_reason == "end_turn"
    request = s.served()[-1]
    assert [c.name for c in s.script.tool_calls(request)] == ["Read", "Bash"]
    assert [r.text for r in s.script.tool_results(request)] == outputs
    _paired(s.script, request)


def tool_loop(s: Stand) -> None:
    """Turn 1: reasoning, text and a call; turn 2 sent as Claude Code sends it (the
    assistant content verbatim, thinking signature included, then the tool result): the
    strict provider takes it, with the reasoning state it handed out, unchanged."""
    marker = "compat-7f3a9c"
    reasoning = "The user wants the marker printed, so I will run echo with it."
    args = {"command": f"echo {marker}", "description": "Print the marker"}
    call = ("Bash", json.dumps(args), s.script.call_id("loop"))
    done = f"The command printed {marker}."
    s.answer(
        lambda r: (
            s.script.reply(r, text=done)
            if s.script.tool_results(r)
            else s.script.reply(r, text="Let me run that.", tool_calls=[call], reasoning=reasoning)
        )
    )
    kwargs = s.request(f"Run echo {marker}.")
    first = check_grammar(s.stream(kwargs))
    expected = ["thinking", "text", "tool_use"] if s.family.thinking else ["text", "tool_use"]
    assert _types(first) == expected, _types(first)
    if s.family.thinking:
        assert first.thinking == reasoning, first.thinking
    assert first.text == "Let me run that."
    assert first.blocks[-1].input == args
    assert first.stop_reason == "tool_use"
    tool_id = first.blocks[-1].start["id"]
    messages = follow_up(kwargs["messages"], content_of(first), results((tool_id, marker)))
    second = check_grammar(s.stream(dict(kwargs, messages=messages)))
    assert second.text == done and second.stop_reason == "end_turn"
    requests = s.served()
    assert len(requests) == 2, "turn 2 must be taken at once"
    request = requests[-1]
    [called] = s.script.tool_calls(request)
    assert called.name == "Bash" and json.loads(called.arguments) == args
    assert [r.text for r in s.script.tool_results(request)] == [marker]
    _paired(s.script, request)
    if s.family.state:
        issued = s.script.issued[-1:]
        assert issued, "turn 1 handed out no reasoning state"
        assert s.script.reasoning_state(request) == issued


def images(s: Stand) -> None:
    """A pasted image reaches the provider as an image in its own dialect; a text-only model
    (whose real API refuses image parts) gets a note in its place and the request succeeds."""
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    reply = "A small red square."
    s.answer(lambda r: s.script.reply(r, text=reply))
    result = check_grammar(s.stream(s.request("What is in this image?", image)))
    assert result.text == reply
    [request] = s.served()
    if not s.family.images:
        assert not s.script.has_image(request) and PNG.encode() not in request.body
        assert b"accepts text only" in request.body, "the model must know an image was there"
        return
    assert s.script.has_image(request)
    assert PNG.encode() in request.body, "the image data must reach the provider unchanged"


def fallback(s: Stand) -> None:
    """A stream cut midway ends with an SSE `error` event (never a normal end); Claude
    Code's retry of the same request with `stream: false` then succeeds."""
    reply = "Here is the whole answer."
    s.answer(lambda r: s.script.cut(r) if s.script.is_stream(r) else s.script.reply(r, text=reply))
    kwargs = s.request("Explain the project.")
    events = parse_sse(s.stream(kwargs))
    names = [name for name, _ in events]
    assert names[0] == "message_start", names
    assert names[-1] == "error", names
    assert "message_stop" not in names and "message_delta" not in names, names
    error = events[-1][1]
    assert error["type"] == "error" and error["error"]["type"] in ("api_error", "overloaded_error")
    message = s.create(kwargs)
    assert message.content[0].text == reply  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert [s.script.is_stream(r) for r in s.served()] == [True, False]


def errors(s: Stand) -> None:
    """The provider's 400 and 429 reach the client as Anthropic errors of the right type,
    with the provider's own message and (429) its `retry-after`, without a retry upstream."""
    bad = "Invalid 'metadata.user_id': string too long. Expected at most 512 characters."
    limited = "Rate limit reached for requests per minute (RPM): Limit 60, Used 60, Requested 1."
    kwargs = s.request("Say hello.")
    # A vdm of its own: a 429 with `retry-after` rests the only key for that long, which must
    # not leak into the family's other checks.
    with (
        running_vdm(s.env) as vdm,
        anthropic.Anthropic(base_url=vdm.url, api_key="sk-client", max_retries=0) as client,
    ):
        s.answer(lambda r: s.script.error(400, bad))
        with pytest.raises(anthropic.BadRequestError) as refused:
            client.messages.create(**kwargs, stream=True)
        body: Any = refused.value.body
        assert body["error"]["type"] == "invalid_request_error", body
        assert bad in body["error"]["message"], body
        s.answer(lambda r: _with_retry_after(s.script.error(429, limited), "7"))
        with pytest.raises(anthropic.RateLimitError) as throttled:
            client.messages.create(**kwargs, stream=True)
        body = throttled.value.body
        assert body["error"]["type"] == "rate_limit_error", body
        assert limited in body["error"]["message"], body
        assert throttled.value.response.headers.get("retry-after") == "7"
    assert len(s.served()) == 1, "a 429 the client must wait for is not retried upstream"


def _with_retry_after(reply: Reply, seconds: str) -> Reply:
    assert isinstance(reply, JsonReply), reply
    return dataclasses.replace(reply, headers={**(reply.headers or {}), "retry-after": seconds})


@dataclass(frozen=True)
class Check:
    id: str
    #: The column heading.
    title: str
    run: Callable[[Stand], None]

    @property
    def legend(self) -> str:
        """What the check does, for the document (its docstring, on one line)."""
        return " ".join((self.run.__doc__ or "").split())


CHECKS: tuple[Check, ...] = (
    Check("text", "text", text),
    Check("stream", "stream", stream),
    Check("tools", "tools", tools),
    Check("parallel_tools", "parallel tools", parallel_tools),
    Check("tool_loop", "tool loop + thinking", tool_loop),
    Check("images", "images", images),
    Check("fallback", "non-stream fallback", fallback),
    Check("errors", "errors", errors),
)
