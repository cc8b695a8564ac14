"""The official `openai` SDK's `chat.completions.create`, streamed and not, through vdm to
each kind of upstream: a Chat Completions provider (the body forwarded), a Responses one and
an Anthropic one (both translated). What the client sees is checked through the SDK's own
types; what reached the upstream is checked in the upstream's dialect.

Forwarding specifics (fields passed through untouched, the usage chunk vdm asks for) are in
tests/server/test_chat_forwarded.py."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tests.fakes.anthropic_upstream import (
    AnthropicSseReply,
    anthropic_event,
    anthropic_stream_events,
)
from tests.fakes.openai_clients import (
    DATA_URL,
    KINDS,
    UPSTREAM_KEY,
    Stand,
    openai_error,
    stand,
    upstream_images,
)
from tests.fakes.openai_upstream import JsonReply, Recorded, Reply, SseReply, stream_chunks
from tests.fakes.responses_upstream import ResponsesSseReply, message_item, response_events
from tests.fakes.scripts import Usage

PROMPT = [{"role": "user", "content": "What is the weather in Paris and in Rome?"}]
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"The {name} tool.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
    for name in ("get_weather", "get_time")
]


@pytest.fixture(params=KINDS)
def s(request: pytest.FixtureRequest) -> Iterator[Stand]:
    with stand(request.param) as ready:
        yield ready


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    """An upstream kind, for a test that configures vdm itself."""
    return str(request.param)


def _chunks(s: Stand, **kwargs: Any) -> list[ChatCompletionChunk]:
    params = {"model": s.model, "messages": PROMPT, **kwargs}
    with s.client.chat.completions.create(stream=True, **params) as stream:
        return list(stream)


def _accumulate(chunks: list[ChatCompletionChunk]) -> ChatCompletion:
    """The completion the SDK's own accumulator (behind `chat.completions.stream()`) builds."""
    state: ChatCompletionStreamState[None] = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(chunk)
    return state.get_final_completion()


def _completion(s: Stand, stream: bool, **kwargs: Any) -> ChatCompletion:
    if stream:
        return _accumulate(_chunks(s, **kwargs))
    params = {"model": s.model, "messages": PROMPT, **kwargs}
    return s.client.chat.completions.create(**params)


# --- answers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_text(s: Stand, stream: bool) -> None:
    s.answer(lambda r: s.script.reply(r, text="Sunny in Paris."))
    answer = _completion(s, stream)
    choice = answer.choices[0]
    assert choice.message.content == "Sunny in Paris."
    assert choice.message.role == "assistant" and not choice.message.tool_calls
    assert choice.finish_reason == "stop"
    (sent,) = s.calls()
    assert s.script.is_stream(sent) is stream
    assert s.script.user_texts(sent) == [PROMPT[0]["content"]]
    assert s.script.model(sent) == s.model.split(":", 1)[1]
    assert UPSTREAM_KEY not in answer.model_dump_json()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_parallel_tool_calls(s: Stand, stream: bool) -> None:
    calls = [
        ("get_weather", '{"city": "Paris"}', s.script.call_id("w")),
        ("get_time", '{"city": "Rome"}', s.script.call_id("t")),
    ]
    s.answer(lambda r: s.script.reply(r, tool_calls=calls))
    answer = _completion(s, stream, tools=TOOLS)
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    got = choice.message.tool_calls or []
    assert [(c.id, c.function.name) for c in got] == [(c[2], c[0]) for c in calls]
    assert [json.loads(c.function.arguments) for c in got] == [json.loads(c[1]) for c in calls]
    assert all(c.type == "function" for c in got)
    assert s.script.tool_names(s.calls()[0]) == ["get_weather", "get_time"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_two_turn_tool_loop(s: Stand, stream: bool) -> None:
    """Turn 2 carries turn 1's assistant message (its calls, as the SDK returned them) and
    one tool message per call: the upstream gets them paired in its own dialect."""
    calls = [
        ("get_weather", '{"city": "Paris"}', s.script.call_id("w")),
        ("get_time", '{"city": "Rome"}', s.script.call_id("t")),
    ]

    def respond(request: Recorded) -> Reply:
        if s.script.tool_results(request):
            return s.script.reply(request, text="Sunny in Paris; noon in Rome.")
        return s.script.reply(request, tool_calls=calls)

    s.answer(respond)
    first = _completion(s, stream, tools=TOOLS).choices[0].message
    assistant = first.model_dump(exclude_none=True, exclude={"annotations", "audio"})
    outputs = {"get_weather": "18C, sunny", "get_time": "12:00"}
    results = [
        {"role": "tool", "tool_call_id": c.id, "content": outputs[c.function.name]}
        for c in first.tool_calls or []
    ]
    messages = [*PROMPT, assistant, *results]
    second = _completion(s, stream, tools=TOOLS, messages=messages).choices[0]
    assert second.message.content == "Sunny in Paris; noon in Rome."
    assert second.finish_reason == "stop"

    turn2 = s.calls()[-1]
    carried = s.script.tool_calls(turn2)
    assert [(c.id, c.name) for c in carried] == [(c[2], c[0]) for c in calls]
    assert [json.loads(c.arguments) for c in carried] == [json.loads(c[1]) for c in calls]
    answered = s.script.tool_results(turn2)
    assert [(r.call_id, r.text) for r in answered] == [
        (calls[0][2], "18C, sunny"),
        (calls[1][2], "12:00"),
    ]
    _check_pairing(s.kind, turn2.json)


def _check_pairing(kind: str, body: dict[str, Any]) -> None:
    """Each dialect's own rule for a tool turn: Anthropic wants every tool_result in the
    user message right after the assistant's tool_use blocks; the Responses API each
    function_call before its function_call_output (and no stored state); Chat one tool
    message per call right after the assistant's."""
    if kind == "anthropic":
        messages = body["messages"]
        uses = [i for i, m in enumerate(messages) if _has(m, "tool_use")]
        assert len(uses) == 1, messages
        after = messages[uses[0] + 1]
        assert after["role"] == "user"
        ids = [b["id"] for b in messages[uses[0]]["content"] if b["type"] == "tool_use"]
        results = [b for b in after["content"] if b["type"] == "tool_result"]
        assert [b["tool_use_id"] for b in results] == ids
        assert after["content"][: len(results)] == results, "tool results come first"
    elif kind == "responses":
        assert body["store"] is False
        types = [item.get("type", "message") for item in body["input"]]
        assert types[-4:] == [
            "function_call",
            "function_call",
            "function_call_output",
            "function_call_output",
        ], types
    else:
        roles = [m["role"] for m in body["messages"]]
        assert roles == ["user", "assistant", "tool", "tool"], roles


def _has(message: dict[str, Any], kind: str) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(b.get("type") == kind for b in content)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_an_image_reaches_the_upstream_in_its_dialect(s: Stand, stream: bool) -> None:
    s.answer(lambda r: s.script.reply(r, text="A tiny transparent square."))
    content = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": DATA_URL}},
    ]
    answer = _completion(s, stream, messages=[{"role": "user", "content": content}])
    assert answer.choices[0].message.content == "A tiny transparent square."
    (sent,) = s.calls()
    assert s.script.has_image(sent)
    assert upstream_images(s.kind, sent) == [DATA_URL]


def test_usage_of_a_whole_answer(s: Stand) -> None:
    s.answer(lambda r: s.script.reply(r, text="ok", usage=Usage(120, 100, 9)))
    usage = _completion(s, False).usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (120, 9, 129)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 100


def test_usage_of_a_stream_is_its_last_chunk(s: Stand) -> None:
    s.answer(lambda r: s.script.reply(r, text="ok then", usage=Usage(120, 100, 9)))
    chunks = _chunks(s, stream_options={"include_usage": True})
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (120, 9)
    assert last.usage.prompt_tokens_details is not None
    assert last.usage.prompt_tokens_details.cached_tokens == 100
    assert all(c.usage is None for c in chunks[:-1])
    assert "".join(c.choices[0].delta.content or "" for c in chunks[:-1]) == "ok then"


def test_no_usage_chunk_unless_asked(s: Stand) -> None:
    s.answer(lambda r: s.script.reply(r, text="ok", usage=Usage(120, 100, 9)))
    chunks = _chunks(s)
    assert all(c.choices for c in chunks), "a usage-only chunk the client did not ask for"


# --- errors before the stream -------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_upstream_400_is_a_bad_request_with_its_message(s: Stand, stream: bool) -> None:
    message = "Invalid 'messages[0].content': string too long."
    s.answer(lambda r: s.script.error(400, message))
    with pytest.raises(openai.BadRequestError) as caught:
        _completion(s, stream)
    assert message in caught.value.message
    error = openai_error(caught.value.response)
    assert message in error["message"]
    assert error["type"] == "invalid_request_error"
    assert len(s.calls()) == 1


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_upstream_429_after_vdms_retries_is_a_rate_limit_error(stream: bool, kind: str) -> None:
    limited = "Rate limit reached for requests per minute (RPM): Limit 60, Used 60."
    with stand(kind, MAX_RETRIES="1") as s:
        s.answer(lambda r: _with_headers(s.script.error(429, limited), {"retry-after": "0"}))
        with pytest.raises(openai.RateLimitError) as caught:
            _completion(s, stream)
        assert limited in openai_error(caught.value.response)["message"]
        assert len(s.calls()) == 2, "vdm retried once, then gave up"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_upstream_401_is_an_authentication_error(s: Stand, stream: bool) -> None:
    s.answer(lambda r: s.script.error(401, "Incorrect API key provided."))
    with pytest.raises(openai.AuthenticationError) as caught:
        _completion(s, stream)
    error = openai_error(caught.value.response)
    assert "Incorrect API key" in error["message"]
    assert UPSTREAM_KEY not in caught.value.response.text


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_an_unknown_provider_is_vdms_own_bad_request(s: Stand, stream: bool) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        if stream:
            _chunks(s, model="nosuchprovider:some-model")
        else:
            s.client.chat.completions.create(model="nosuchprovider:some-model", messages=PROMPT)
    error = openai_error(caught.value.response)
    assert "nosuchprovider" in error["message"]
    assert set(error) == {"message", "type", "param", "code"}
    assert not s.calls()


# --- errors during the stream -------------------------------------------------------------------


def test_a_stream_cut_midway_raises_while_iterating(s: Stand) -> None:
    s.answer(lambda r: s.script.cut(r, "Partial text that never ends"))
    seen: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        with s.client.chat.completions.create(
            model=s.model, messages=PROMPT, stream=True
        ) as stream:
            for chunk in stream:
                if chunk.choices:
                    seen.append(chunk.choices[0].delta.content or "")
    assert "closed the connection" in caught.value.message
    text = "".join(seen)
    assert text and "Partial text that never ends".startswith(text), "text came before the cut"
    assert text != "Partial text that never ends"
    assert isinstance(caught.value.body, dict) and set(caught.value.body) >= {"message", "type"}


def _in_stream_error(s: Stand, request: Recorded) -> Reply:
    """A stream that starts, then reports the upstream's own failure in its dialect."""
    message = "The server had an error while processing your request."
    if s.kind == "chat":
        chunks: list[Any] = stream_chunks("Partial", pieces=2)[:2]
        chunks.append({"error": {"message": message, "type": "server_error", "code": None}})
        return SseReply(chunks)
    if s.kind == "responses":
        error = {"code": "server_error", "message": message}
        events = response_events([message_item("Partial")], pieces=2)
        failed = response_events([message_item("Partial")], status="failed", error=error)[-1]
        return ResponsesSseReply([*events[:5], {**failed, "sequence_number": 5}])
    head = anthropic_stream_events("Partial", pieces=2)[:4]
    error = {"type": "error", "error": {"type": "api_error", "message": message}}
    return AnthropicSseReply([*head, anthropic_event(error)])


def test_an_upstream_error_event_in_the_stream_raises_api_error(s: Stand) -> None:
    s.answer(lambda r: _in_stream_error(s, r))
    with pytest.raises(openai.APIError) as caught:
        _chunks(s)
    assert "error while processing your request" in caught.value.message
    assert not isinstance(caught.value, openai.APIStatusError), "the stream had started: HTTP 200"


def _with_headers(reply: Reply, headers: dict[str, str]) -> Reply:
    assert isinstance(reply, JsonReply), reply
    return dataclasses.replace(reply, headers={**(reply.headers or {}), **headers})


# --- bad input, deprecated function calling, errors of a translated request ----------------------

TRANSLATED = [k for k in KINDS if k != "chat"]
#: Malformed or unservable requests (as the SDK sends them) and the `param` of vdm's 400.
REFUSED: list[tuple[dict[str, Any], str]] = [
    (
        {"tools": TOOLS, "tool_choice": {"type": "allowed_tools", "allowed_tools": "get_time"}},
        "tool_choice.allowed_tools",
    ),
    (
        {
            "tools": TOOLS,
            "tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": 5}},
        },
        "tool_choice.allowed_tools.tools",
    ),
    (
        {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "get_news"}}},
        "tool_choice.function.name",
    ),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": [*PROMPT, {"role": "assistant", "tool_calls": "x"}]}, "messages[1].tool_calls"),
    ({"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}}, "modalities"),
]


@pytest.mark.parametrize("kind", TRANSLATED)
@pytest.mark.parametrize(("params", "param"), REFUSED, ids=[p for _, p in REFUSED])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_bad_input_is_a_400_naming_the_param_and_no_upstream_call(
    kind: str, params: dict[str, Any], param: str, stream: bool
) -> None:
    with stand(kind) as s:
        s.answer(lambda r: s.script.reply(r, text="should not be asked"))
        with pytest.raises(openai.BadRequestError) as caught:
            _completion(s, stream, **params)
        error = openai_error(caught.value.response)
        assert (error["type"], error["param"]) == ("invalid_request_error", param)
        assert param in error["message"]
        assert not s.calls(), "a refused request reached the upstream"


@pytest.mark.parametrize("kind", TRANSLATED)
def test_deprecated_functions_reach_the_upstream_as_tools(kind: str) -> None:
    """`functions` / `function_call`, an assistant `function_call` turn and the `function`
    message answering it: the upstream gets the tools and the call paired with its result."""
    with stand(kind) as s:
        s.answer(lambda r: s.script.reply(r, text="Sunny."))
        messages = [
            *PROMPT,
            {
                "role": "assistant",
                "content": None,
                "function_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {"role": "function", "name": "get_weather", "content": "18C, sunny"},
        ]
        answer = _completion(
            s,
            False,
            messages=messages,
            functions=[t["function"] for t in TOOLS],
            function_call="auto",
        )
        assert answer.choices[0].message.content == "Sunny."
        (sent,) = s.calls()
        assert s.script.tool_names(sent) == ["get_weather", "get_time"]
        (carried,) = s.script.tool_calls(sent)
        assert carried.name == "get_weather" and json.loads(carried.arguments) == {"city": "Paris"}
        (result,) = s.script.tool_results(sent)
        assert (result.call_id, result.text) == (carried.id, "18C, sunny")


def test_an_upstream_error_of_a_translated_request_is_vdms_envelope() -> None:
    """A Chat client whose request went to a Responses provider gets the provider's message in
    vdm's envelope, not the provider's `param` naming a field it never sent."""
    with stand("responses") as s:
        message = "Invalid 'input[1].content': string too long."
        error = {"message": message, "type": "invalid_request_error", "param": "input[1].content"}
        s.answer(lambda r: JsonReply({"error": {**error, "code": "string_above_max_length"}}, 400))
        with pytest.raises(openai.BadRequestError) as caught:
            _completion(s, False)
        got = openai_error(caught.value.response)
        assert message in got["message"]
        assert got["param"] is None and got["type"] == "invalid_request_error"
        assert len(s.calls()) == 1


def test_an_upstream_error_of_a_forwarded_request_is_relayed_as_it_came() -> None:
    with stand("chat") as s:
        error = {
            "message": "Invalid 'messages[0].content': string too long.",
            "type": "invalid_request_error",
            "param": "messages[0].content",
            "code": "string_above_max_length",
        }
        s.answer(lambda r: JsonReply({"error": error}, 400))
        with pytest.raises(openai.BadRequestError) as caught:
            _completion(s, False)
        assert openai_error(caught.value.response) == error


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_are_a_405_in_openais_shape(method: str) -> None:
    with stand("anthropic") as s:
        answer = httpx.request(method, f"{s.vdm.url}/v1/chat/completions", timeout=10)
        assert answer.status_code == 405
        assert answer.headers["allow"] == "POST"
        error = openai_error(answer)
        assert error["type"] == "invalid_request_error" and "POST" in error["message"]
        assert not s.calls()
