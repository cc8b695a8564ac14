"""A session that changes provider on the way: turn 1 answered by a provider of another
dialect (translated, so the client gets vdm-made state: `vdm-th1:` reasoning, `toolu_` or
Gemini call ids, `thinking_blocks`), turn 2 sends that history back to a provider of the
client's own dialect (forwarded). The strict fakes refuse what the real APIs refuse, so turn 2
only succeeds if vdm left out its own state and renamed the ids the provider would refuse
(vdm/protocol/forward_clean.py). The clients are the official `openai` SDK.

The relay's stream ends are here too: a bare `error` event is followed by a `response.failed`
(the end Codex acts on), and vdm's error after a cut never lands inside half an event."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.compat.anthropic_script import Anthropic
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_clients import TIMEOUT, sse_events
from tests.fakes.openai_upstream import FakeOpenAI, SseReply, stream_chunks
from tests.fakes.responses_upstream import (
    FakeResponses,
    ResponsesSseReply,
    message_item,
    response_events,
)
from tests.fakes.scripts import Chat
from tests.harness import RunningVdm, running_vdm
from vdm.protocol.signatures import id_with_thought
from vdm.protocol.sse_frames import EventFrames

KEY = "sk-upstream-secret-7741"
CLAUDE = "anthropic:claude-sonnet-4-5"
TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "The weather in a city.",
        "strict": False,
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
QUESTION = [{"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]}]
CALL = ("get_weather", '{"city": "Paris"}')


@pytest.fixture
def anthropic_fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


def _env(anthropic_fake: FakeAnthropic, **providers: FakeOpenAI) -> dict[str, str]:
    env = {
        "ANTHROPIC_API_KEY": KEY,
        "ANTHROPIC_BASE_URL": anthropic_fake.base_url,
        "MAX_RETRIES": "0",
    }
    for name, fake in providers.items():
        env[f"{name.upper()}_API_KEY"] = KEY
        env[f"{name.upper()}_BASE_URL"] = fake.base_url
    return env


def _client(vdm: RunningVdm) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{vdm.url}/v1", api_key="sk-client", max_retries=0, timeout=TIMEOUT
    )


# --- Responses clients (Codex) ------------------------------------------------------------------


@pytest.fixture
def responses_fake() -> Iterator[FakeResponses]:
    with FakeResponses() as fake:
        yield fake


@pytest.fixture
def codex(anthropic_fake: FakeAnthropic, responses_fake: FakeResponses) -> Iterator[openai.OpenAI]:
    env = _env(anthropic_fake, openai=responses_fake)
    env["OPENAI_API_FORMAT"] = "responses"
    with running_vdm(env) as vdm, _client(vdm) as client:
        yield client


def _replayed(output: list[Any]) -> list[dict[str, Any]]:
    """The output items as Codex sends them back: reasoning with its encrypted content,
    calls and messages without their output-only fields."""
    items: list[dict[str, Any]] = []
    for item in output:
        data = item.model_dump(exclude_none=True)
        if data["type"] == "reasoning":
            data.pop("status", None)
        elif data["type"] == "message":
            data = {"type": "message", "role": "assistant", "content": data["content"]}
        items.append(data)
    return items


def _second_turn(client: openai.OpenAI, first: Any, stream: bool) -> tuple[str, list[Any]]:
    """Turn 2 on the Responses provider with turn 1's items and the tool's output; the
    answer's text and the items the provider received."""
    calls = [i for i in first.output if i.type == "function_call"]
    assert calls, first.output
    history = [
        *QUESTION,
        *_replayed(first.output),
        *({"type": "function_call_output", "call_id": c.call_id, "output": "sunny"} for c in calls),
    ]
    kwargs: dict[str, Any] = {
        "model": "openai:gpt-5.6-terra",
        "input": history,
        "tools": TOOLS,
        "store": False,
        "include": ["reasoning.encrypted_content"],
    }
    if stream:
        with client.responses.stream(**kwargs) as events:
            answer = events.get_final_response()
    else:
        answer = client.responses.create(**kwargs)
    return answer.output_text, history


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_codex_switches_from_claude_to_openai_mid_session(
    codex: openai.OpenAI,
    anthropic_fake: FakeAnthropic,
    responses_fake: FakeResponses,
    stream: bool,
) -> None:
    script = Anthropic()
    anthropic_fake.default = lambda r: script.reply(r, tool_calls=[CALL], reasoning="Check it.")
    first = codex.responses.create(
        model=CLAUDE,
        input=QUESTION,
        tools=TOOLS,
        store=False,
        include=["reasoning.encrypted_content"],
    )
    reasoning = [i for i in first.output if i.type == "reasoning"]
    assert reasoning and (reasoning[0].encrypted_content or "").startswith("vdm-th1:")
    text, history = _second_turn(codex, first, stream)
    assert text
    assert not responses_fake.rejected, responses_fake.rejected[0][1].message
    sent = responses_fake.responses_requests[-1].json["input"]
    assert not any(str(i.get("encrypted_content", "")).startswith("vdm-") for i in sent)
    # The tool call and its output still pair (the fake checks), under the client's id.
    assert [i["call_id"] for i in sent if "call_id" in i] == [
        i["call_id"] for i in history if "call_id" in i
    ]


def test_a_gemini_call_id_carrying_its_signature_reaches_openai_short_enough(
    codex: openai.OpenAI, responses_fake: FakeResponses
) -> None:
    """A call id vdm made from a Gemini call (`<base>_vdmg1_<signature>`, hundreds of
    characters) is over the Responses API's 64: renamed alike in the call and its output."""
    long_id = id_with_thought("get_weather_0", "CiQBVKhc7" + "Zm9v" * 80)
    history: list[Any] = [
        *QUESTION,
        {"type": "function_call", "call_id": long_id, "name": CALL[0], "arguments": CALL[1]},
        {"type": "function_call_output", "call_id": long_id, "output": "sunny"},
    ]
    answer = codex.responses.create(
        model="openai:gpt-5.6-terra", input=history, tools=TOOLS, store=False
    )
    assert answer.output_text
    assert not responses_fake.rejected
    sent = responses_fake.responses_requests[-1].json["input"]
    ids = {i["call_id"] for i in sent if "call_id" in i}
    assert len(ids) == 1 and len(ids.pop()) <= 64
    assert history[1]["call_id"] == long_id  # the client's own data is untouched


# --- Chat clients -------------------------------------------------------------------------------


@pytest.fixture
def chat_fakes() -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    with FakeOpenAI(rules="mistral") as mistral, FakeOpenAI(rules="openai") as gpt:
        yield mistral, gpt


@pytest.fixture
def chat_vdm(
    anthropic_fake: FakeAnthropic, chat_fakes: tuple[FakeOpenAI, FakeOpenAI]
) -> Iterator[RunningVdm]:
    mistral, gpt = chat_fakes
    with running_vdm(_env(anthropic_fake, mistral=mistral, openai=gpt)) as vdm:
        yield vdm


@pytest.mark.parametrize("provider", ["mistral:mistral-large-latest", "openai:gpt-4o"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_chat_client_switches_from_claude_mid_session(
    chat_vdm: RunningVdm,
    anthropic_fake: FakeAnthropic,
    chat_fakes: tuple[FakeOpenAI, FakeOpenAI],
    provider: str,
    stream: bool,
) -> None:
    script = Anthropic()
    anthropic_fake.default = lambda r: script.reply(r, tool_calls=[CALL], reasoning="Check it.")
    tools: list[Any] = [
        {"type": "function", "function": {k: v for k, v in TOOLS[0].items() if k != "type"}}
    ]
    question: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    with _client(chat_vdm) as client:
        first = client.chat.completions.create(model=CLAUDE, messages=question, tools=tools)
        said = first.choices[0].message.model_dump(exclude_none=True)
        # What vdm hands a Chat client for a Claude turn with thinking and a tool call.
        assert said["thinking_blocks"] and said["reasoning_content"] == "Check it."
        call_id = said["tool_calls"][0]["id"]
        assert call_id.startswith("toolu_")
        history = [*question, said, {"role": "tool", "tool_call_id": call_id, "content": "sunny"}]
        chat = Chat(provider.split(":")[0])
        fake = chat_fakes[0] if provider.startswith("mistral") else chat_fakes[1]
        fake.default = lambda r: chat.reply(r, text="Sunny in Paris.")
        if stream:
            chunks = client.chat.completions.create(
                model=provider, messages=history, tools=tools, stream=True
            )
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            answer = client.chat.completions.create(model=provider, messages=history, tools=tools)
            text = answer.choices[0].message.content or ""
    assert text == "Sunny in Paris."
    sent = fake.last.json["messages"]
    assert "thinking_blocks" not in sent[1] and "reasoning_content" not in sent[1]
    assert sent[1]["tool_calls"][0]["id"] == sent[2]["tool_call_id"]
    assert history[1]["tool_calls"][0]["id"] == call_id  # the client's own data is untouched


# --- the relay's stream ends --------------------------------------------------------------------


@pytest.fixture
def forwarded(responses_fake: FakeResponses) -> Iterator[RunningVdm]:
    env = {
        "OPENAI_API_KEY": KEY,
        "OPENAI_BASE_URL": responses_fake.base_url,
        "OPENAI_API_FORMAT": "responses",
        "MAX_RETRIES": "0",
    }
    with running_vdm(env) as vdm:
        yield vdm


def _raw_stream(vdm: RunningVdm) -> list[tuple[str, dict[str, Any]]]:
    body = {"model": "openai:gpt-5.6-terra", "input": QUESTION, "stream": True, "store": False}
    with httpx.Client(timeout=TIMEOUT) as http:
        answer = http.post(f"{vdm.url}/v1/responses", json=body)
    assert answer.status_code == 200
    # Every event is whole: its data parses (sse_events would raise on half an event).
    return sse_events(answer.content)


def _recent_errors(vdm: RunningVdm) -> list[dict[str, Any]]:
    state = httpx.get(f"{vdm.url}/dashboard/api/state", timeout=5).json()
    errors: list[dict[str, Any]] = state["recent_errors"]
    return errors


def test_a_bare_error_event_is_followed_by_a_failed_response(
    forwarded: RunningVdm, responses_fake: FakeResponses
) -> None:
    message = "Rate limit reached for gpt-5.6-terra. Please try again in 20s."
    head = response_events([message_item("Partial")], pieces=2)[:5]
    bare = {"type": "error", "code": "rate_limit_exceeded", "message": message, "param": None}
    responses_fake.enqueue(ResponsesSseReply([*head, {**bare, "sequence_number": 5}]))
    events = _raw_stream(forwarded)
    names = [name for name, _ in events]
    # The upstream's own event stays, and the end Codex acts on follows it.
    assert names[-2:] == ["error", "response.failed"], names
    created = events[0][1]["response"]["id"]
    failed = events[-1][1]["response"]
    assert failed["id"] == created and failed["status"] == "failed"
    assert failed["error"] == {"code": "rate_limit_exceeded", "message": message}
    errors = _recent_errors(forwarded)
    assert errors and errors[0]["message"] == message
    assert errors[0]["type"] == "rate_limit_error", errors[0]


def test_a_bare_error_event_is_read_by_the_sdk_as_a_failed_response(
    forwarded: RunningVdm, responses_fake: FakeResponses
) -> None:
    bare = {"type": "error", "code": "server_error", "message": "boom", "param": None}
    head = response_events([message_item("Partial")], pieces=2)[:3]
    responses_fake.enqueue(ResponsesSseReply([*head, {**bare, "sequence_number": 3}]))
    with _client(forwarded) as client:
        events = list(
            client.responses.create(
                model="openai:gpt-5.6-terra", input=QUESTION, store=False, stream=True
            )
        )
    assert [e.type for e in events][-2:] == ["error", "response.failed"]
    assert events[-1].response.error is not None  # type: ignore[union-attr]


def test_an_upstream_error_after_a_bare_error_is_not_doubled(
    forwarded: RunningVdm, responses_fake: FakeResponses
) -> None:
    head = response_events([message_item("Partial")], pieces=2)[:3]
    error = {"code": "server_error", "message": "boom"}
    failed = response_events([message_item("Partial")], status="failed", error=error)[-1]
    bare = {"type": "error", "code": "server_error", "message": "boom", "param": None}
    replies = [*head, {**bare, "sequence_number": 3}, {**failed, "sequence_number": 4}]
    # Both in one read: the upstream's own `response.failed` is the end.
    responses_fake.enqueue(ResponsesSseReply([b"".join(_frame(e) for e in replies)]))
    names = [name for name, _ in _raw_stream(forwarded)]
    assert names.count("response.failed") == 1 and names[-1] == "response.failed"


def _frame(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def test_the_error_after_a_cut_never_lands_inside_half_an_event(
    forwarded: RunningVdm, responses_fake: FakeResponses
) -> None:
    head = response_events([message_item("Partial")], pieces=2)[:5]
    half = _frame(head[4])[:40]  # `event: …` and the start of its data: then the cut
    responses_fake.enqueue(ResponsesSseReply([*head[:4], half], cut_after=5))
    events = _raw_stream(forwarded)
    assert events[-1][0] == "response.failed"
    assert [name for name, _ in events][:-1] == [e["type"] for e in head[:4]]


def test_a_chat_stream_cut_mid_event_ends_with_an_error_the_sdk_reads(
    chat_fakes: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    _, gpt = chat_fakes
    env = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": gpt.base_url, "MAX_RETRIES": "0"}
    chunks = stream_chunks("one two three", pieces=3)
    half = b"data: " + json.dumps(chunks[2]).encode()[:25]
    gpt.enqueue(SseReply([*chunks[:2], half], cut_after=3))
    with running_vdm(env) as vdm, _client(vdm) as client:
        stream = client.chat.completions.create(
            model="openai:gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},  # relayed as it comes, not re-framed
        )
        with pytest.raises(openai.APIError) as raised:
            for _ in stream:
                pass
    assert not isinstance(raised.value, openai.APIConnectionError)


@pytest.mark.parametrize("end", [b"\n\n", b"\r\n\r\n", b"\r\r"])
def test_event_frames_pass_whole_events_only(end: bytes) -> None:
    """However the reads split the stream, what goes out ends on an event boundary."""
    line = end[: len(end) // 2]
    stream = b"event: a" + line + b"data: {}" + end + b'data: {"x": 1}' + end
    for cut in range(1, len(stream)):
        frames = EventFrames()
        out = frames.feed(stream[:cut])
        assert out in (b"", stream[: stream.index(end) + len(end)]), (cut, out)
        rest = frames.feed(stream[cut:])
        assert out + rest == stream, cut
        assert frames.rest() == b""
    frames = EventFrames()
    assert frames.feed(b'data: {"half') == b"" and frames.rest() == b'data: {"half'
