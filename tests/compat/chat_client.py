"""The Chat Completions client's checks (`POST /v1/chat/completions` with the `openai` SDK).

Streams are read through the SDK (typed `ChatCompletionChunk`s) and accumulated by its own
`ChatCompletionStreamState`, the accumulator behind `client.chat.completions.stream()`: what
an application sends back on turn 2 is what that accumulator holds.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

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
from tests.compat.openai_requests import CHAT_SYSTEM, CHAT_TOOL_NAMES, chat_params
from tests.fakes.scripts import Usage


def _chunks(s: ClientStand, kwargs: dict[str, Any]) -> list[ChatCompletionChunk]:
    stream = s.client.chat.completions.create(**kwargs, stream=True, timeout=TIMEOUT)
    with stream:
        return list(stream)


def _accumulate(chunks: list[ChatCompletionChunk]) -> ChatCompletion:
    state: ChatCompletionStreamState[None] = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(chunk)
    return state.get_final_completion()


def _one_stream(chunks: list[ChatCompletionChunk]) -> None:
    """Every chunk belongs to one completion, and a usage chunk comes only last."""
    assert chunks, "an empty stream"
    assert len({c.id for c in chunks}) == 1, [c.id for c in chunks]
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert all(c.choices for c in chunks[:-1]), "a chunk without choices before the end"


def text(s: ClientStand) -> None:
    """A non-streamed `chat.completion`: the reply, `finish_reason: stop`, usage; the system
    message, tools and prompt reach the provider under its own model name."""
    reply = "Hello! How can I help you today?"
    s.answer(lambda r: s.script.reply(r, text=reply))
    completion = s.client.chat.completions.create(
        **chat_params(s.model, "Say hello."), timeout=TIMEOUT
    )
    [choice] = completion.choices
    assert choice.message.content == reply
    assert choice.finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    [request] = s.served()
    assert s.script.model(request) == s.family.model
    assert not s.script.is_stream(request)
    assert any("Say hello." in t for t in s.script.user_texts(request))
    assert CHAT_SYSTEM in s.script.system_text(request)
    assert s.script.tool_names(request) == CHAT_TOOL_NAMES


def stream(s: ClientStand) -> None:
    """A stream with `stream_options.include_usage`: content deltas as they come, one
    completion id, `finish_reason: stop`, then the usage chunk (`choices: []`) with the
    cached prompt tokens counted in `prompt_tokens` and shown apart."""
    reply = "The quick brown fox jumps over the lazy dog, twice over."
    s.answer(lambda r: s.script.reply(r, text=reply, usage=Usage(1200, 1000, 14)))
    kwargs = chat_params(s.model, "Write one sentence.")
    chunks = _chunks(s, {**kwargs, "stream_options": {"include_usage": True}})
    _one_stream(chunks)
    deltas = [c.choices[0].delta.content for c in chunks if c.choices]
    assert "".join(d or "" for d in deltas) == reply
    assert sum(1 for d in deltas if d) >= 2, "the text must arrive in pieces"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None, chunks[-1]
    assert usage.prompt_tokens == 1200 and usage.completion_tokens == 14, usage
    details = usage.prompt_tokens_details
    assert details is not None and details.cached_tokens == 1000, usage
    [request] = s.served()
    assert s.script.is_stream(request)


def tools(s: ClientStand) -> None:
    """One streamed tool call: its id and name first, its arguments as fragments that the
    SDK joins into the JSON sent, `finish_reason: tool_calls`; a client that did not ask for
    usage gets no usage-only chunk (`choices: []`), though vdm asks a provider it forwards
    to for one."""
    args = {"command": "ls -la", "timeout": 30}
    call = ("run_shell", json.dumps(args), s.script.call_id("tools"))
    s.answer(lambda r: s.script.reply(r, tool_calls=[call]))
    chunks = _chunks(s, chat_params(s.model, "List the files here."))
    _one_stream(chunks)
    # `chunk.choices[0]` must hold on every chunk of a stream that asked for no usage.
    assert all(c.choices for c in chunks), "a usage-only chunk nobody asked for"
    message = _accumulate(chunks).choices[0]
    assert message.finish_reason == "tool_calls"
    [tool_call] = message.message.tool_calls or []
    assert tool_call.type == "function" and tool_call.id, tool_call
    assert tool_call.function.name == "run_shell"
    assert json.loads(tool_call.function.arguments) == args
    fragments = [
        d.function.arguments
        for c in chunks
        for d in (c.choices[0].delta.tool_calls or [])
        if d.function and d.function.arguments
    ]
    assert fragments, "the arguments must arrive as deltas"
    [request] = s.served()
    schema = s.script.tool_parameters(request, "run_shell") or {}
    assert {"command", "timeout"} <= set(schema.get("properties") or ()), schema


def tool_loop(s: ClientStand) -> None:
    """Turn 1 streams reasoning (`reasoning_content`, where the provider shows it), text and
    a call; turn 2 sends the SDK's accumulated assistant message back as it is, then the
    `tool` message: the strict provider takes it, the call paired with its result and its
    reasoning state back unchanged, and the answer ends the loop."""
    marker = "compat-7f3a9c"
    reasoning = "The user wants the marker printed, so I will run echo with it."
    args = {"command": f"echo {marker}"}
    call = ("run_shell", json.dumps(args), s.script.call_id("loop"))
    done = f"The command printed {marker}."
    s.answer(
        lambda r: (
            s.script.reply(r, text=done)
            if s.script.tool_results(r)
            else s.script.reply(r, text="Let me run that.", tool_calls=[call], reasoning=reasoning)
        )
    )
    kwargs = chat_params(s.model, f"Run echo {marker}.")
    first = _accumulate(_chunks(s, kwargs)).choices[0]
    assert first.finish_reason == "tool_calls"
    assert first.message.content == "Let me run that."
    # The client asks for no reasoning: a Chat provider shows it anyway, others only if asked.
    shown = (first.message.model_extra or {}).get("reasoning_content")
    if s.family.thinking and (s.forwarded("chat") or shown is not None):
        assert shown == reasoning, first.message
    [tool_call] = first.message.tool_calls or []
    assert tool_call.type == "function", tool_call
    assert json.loads(tool_call.function.arguments) == args
    assistant = first.message.model_dump(mode="json", exclude_unset=True, exclude_none=True)
    assistant.pop("parsed", None)
    for sent in assistant.get("tool_calls") or []:
        sent["function"].pop("parsed_arguments", None)
    tool = {"role": "tool", "tool_call_id": tool_call.id, "content": marker}
    messages = [*kwargs["messages"], assistant, tool]
    second = _accumulate(_chunks(s, {**kwargs, "messages": messages})).choices[0]
    assert second.message.content == done and second.finish_reason == "stop"
    requests = s.served()
    assert len(requests) == 2, "turn 2 must be taken at once"
    check_turn_two(s, requests[-1], "run_shell", args, marker)


def errors(s: ClientStand) -> None:
    """The provider's 400 and 429 reach the SDK as `BadRequestError` and `RateLimitError`
    (OpenAI's error envelope, the provider's own message, the 429's `retry-after`), without
    a retry upstream."""
    kwargs = chat_params(s.model, "Say hello.")
    s.answer(lambda r: s.script.error(400, BAD))
    with pytest.raises(openai.BadRequestError) as refused:
        s.client.chat.completions.create(**kwargs, stream=True, timeout=TIMEOUT)
    assert BAD in refused.value.message, refused.value.body
    s.answer(lambda r: with_retry_after(s.script.error(429, LIMITED), "7"))
    with pytest.raises(openai.RateLimitError) as throttled:
        s.client.chat.completions.create(**kwargs, stream=True, timeout=TIMEOUT)
    assert LIMITED in throttled.value.message, throttled.value.body
    assert throttled.value.response.headers.get("retry-after") == "7"
    assert len(s.served()) == 1, "a 429 the client must wait for is not retried upstream"


CHAT = Client(
    "chat",
    "OpenAI SDK, Chat Completions",
    "chat",
    (
        ClientCheck("text", "text", text),
        ClientCheck("stream", "stream", stream),
        ClientCheck("tools", "tools", tools),
        ClientCheck("tool_loop", "tool loop", tool_loop),
        ClientCheck("errors", "errors", errors),
    ),
)
