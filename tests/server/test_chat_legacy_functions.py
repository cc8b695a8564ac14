"""The deprecated Chat function calling (`functions`, `function_call`, `role: "function"`)
through vdm to upstreams it translates for (Anthropic, Responses), with the official `openai`
SDK as the client: a client that declared `functions` and no `tools` reads its answer as
OpenAI gave it, one `message.function_call` (or `delta.function_call` chunks) with
finish_reason `function_call`, never `tool_calls`; it sends the result back as a
`function` message, which the upstream gets paired with the call in its own dialect."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tests.fakes.openai_clients import Stand, stand
from tests.fakes.openai_upstream import Recorded, Reply

PROMPT: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
FUNCTIONS: list[Any] = [
    {
        "name": name,
        "description": f"The {name} function.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
    for name in ("get_weather", "get_time")
]
#: The translated upstreams (a Chat one gets the client's body as it came).
TRANSLATED = ["anthropic", "responses"]


@pytest.fixture(params=TRANSLATED)
def s(request: pytest.FixtureRequest) -> Iterator[Stand]:
    with stand(request.param) as ready:
        yield ready


def _chunks(s: Stand, messages: list[Any], **kwargs: Any) -> list[ChatCompletionChunk]:
    params = {"model": s.model, "messages": messages, **kwargs}
    with s.client.chat.completions.create(stream=True, **params) as stream:
        return list(stream)


def _completion(s: Stand, stream: bool, messages: list[Any], **kwargs: Any) -> ChatCompletion:
    if not stream:
        return s.client.chat.completions.create(model=s.model, messages=messages, **kwargs)
    state: ChatCompletionStreamState[None] = ChatCompletionStreamState()
    for chunk in _chunks(s, messages, **kwargs):
        state.handle_chunk(chunk)
    return state.get_final_completion()


def _serial(s: Stand, request: Recorded) -> bool:
    """Whether the upstream was asked for one call at a time, in its own words."""
    body = request.json
    if s.kind == "anthropic":
        return bool(body.get("tool_choice", {}).get("disable_parallel_tool_use"))
    return body.get("parallel_tool_calls") is False


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_two_turn_function_loop(s: Stand, stream: bool) -> None:
    """`functions` -> `function_call` answer -> `function` result -> final text."""
    call_id = s.script.call_id("w")

    def respond(request: Recorded) -> Reply:
        if s.script.tool_results(request):
            return s.script.reply(request, text="Sunny in Paris.")
        calls = [("get_weather", '{"city": "Paris"}', call_id)]
        return s.script.reply(request, tool_calls=calls)

    s.answer(respond)
    first = _completion(s, stream, PROMPT, functions=FUNCTIONS).choices[0]
    assert first.finish_reason == "function_call"
    assert first.message.tool_calls is None
    assert first.message.function_call is not None
    assert first.message.function_call.name == "get_weather"
    assert json.loads(first.message.function_call.arguments) == {"city": "Paris"}
    sent = s.calls()[0]
    assert s.script.tool_names(sent) == ["get_weather", "get_time"]
    assert _serial(s, sent)

    assistant = first.message.model_dump(exclude_none=True, exclude={"annotations", "audio"})
    result = {"role": "function", "name": "get_weather", "content": "18C, sunny"}
    messages = [*PROMPT, assistant, result]
    second = _completion(s, stream, messages, functions=FUNCTIONS).choices[0]
    assert second.message.content == "Sunny in Paris."
    assert second.finish_reason == "stop"
    assert second.message.function_call is None and second.message.tool_calls is None
    upstream = s.calls()[1]
    ((called_id, name, arguments),) = s.script.tool_calls(upstream)
    assert name == "get_weather" and json.loads(arguments) == {"city": "Paris"}
    ((answered_id, text, *_),) = s.script.tool_results(upstream)
    assert answered_id == called_id and text == "18C, sunny"


def test_stream_chunks_in_legacy_shape(s: Stand) -> None:
    """The first `function_call` delta names the function with arguments "", the following
    ones carry argument fragments only; no chunk has `tool_calls`."""
    calls = [("get_weather", '{"city": "Paris"}', s.script.call_id("w"))]
    s.answer(lambda r: s.script.reply(r, tool_calls=calls))
    chunks = _chunks(s, PROMPT, functions=FUNCTIONS, function_call="auto")
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    calls_seen = [d.function_call for d in deltas if d.function_call is not None]
    assert calls_seen[0].name == "get_weather" and calls_seen[0].arguments == ""
    assert all(c.name is None for c in calls_seen[1:])
    fragments = "".join(c.arguments or "" for c in calls_seen)
    assert json.loads(fragments) == {"city": "Paris"}
    assert all(d.tool_calls is None for d in deltas)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "function_call"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_one_call_when_the_model_makes_two(s: Stand, stream: bool) -> None:
    """The legacy form holds one call: a second one the model made anyway is dropped, its
    arguments not mixed into the first's."""
    calls = [
        ("get_weather", '{"city": "Paris"}', s.script.call_id("w")),
        ("get_time", '{"city": "Rome"}', s.script.call_id("t")),
    ]
    s.answer(lambda r: s.script.reply(r, tool_calls=calls))
    choice = _completion(s, stream, PROMPT, functions=FUNCTIONS).choices[0]
    assert choice.message.function_call is not None
    assert choice.message.function_call.name == "get_weather"
    assert json.loads(choice.message.function_call.arguments) == {"city": "Paris"}
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "function_call"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_tools_beside_functions_answer_tool_calls(s: Stand, stream: bool) -> None:
    """A client that sends `tools` reads `tool_calls`, whatever else it sent."""
    call_id = s.script.call_id("w")
    s.answer(
        lambda r: s.script.reply(r, tool_calls=[("get_weather", '{"city": "Paris"}', call_id)])
    )
    tools = [{"type": "function", "function": FUNCTIONS[0]}]
    choice = _completion(s, stream, PROMPT, tools=tools, functions=FUNCTIONS[1:]).choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.function_call is None
    assert [c.function.name for c in choice.message.tool_calls or []] == ["get_weather"]
