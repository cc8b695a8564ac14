"""The official `openai` SDK's `responses.create` / `responses.stream`, through vdm to each
kind of upstream: a Chat Completions provider and an Anthropic one (translated), a Responses
one (the body forwarded). Streams are read through the SDK's stream helper, which checks the
lifecycle (one response id from `response.created` to the end, items announced before their
deltas) and accumulates the final response as an application gets it.

vdm is stateless: a tool loop resends its items with `store: false`, and
`previous_response_id` is refused before any upstream sees the request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent

from tests.fakes.anthropic_upstream import (
    AnthropicSseReply,
    anthropic_error,
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
from tests.fakes.responses_upstream import (
    ResponsesSseReply,
    message_item,
    response_events,
)
from tests.fakes.scripts import Usage

QUESTION = "What is the weather in Paris and in Rome?"
INPUT: list[Any] = [{"role": "user", "content": [{"type": "input_text", "text": QUESTION}]}]
#: Strict-mode function tools, as the Responses API takes them by default.
TOOLS: list[Any] = [
    {
        "type": "function",
        "name": name,
        "description": f"The {name} tool.",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    }
    for name in ("get_weather", "get_time")
]
OVERFLOW = "prompt is too long: 210000 tokens > 200000 maximum"


@pytest.fixture(params=KINDS)
def s(request: pytest.FixtureRequest) -> Iterator[Stand]:
    with stand(request.param) as ready:
        yield ready


def _params(s: Stand, kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"model": s.model, "input": INPUT, "store": False, **kwargs}


def _streamed(s: Stand, **kwargs: Any) -> tuple[list[ResponseStreamEvent], Response | None]:
    """The events the SDK's stream helper yields, and its final response (None unless the
    stream completed)."""
    with s.client.responses.stream(**_params(s, kwargs)) as stream:
        events = list(stream)
        final = stream.get_final_response() if events[-1].type == "response.completed" else None
    return events, final


def _response(s: Stand, stream: bool, **kwargs: Any) -> Response:
    if not stream:
        return s.client.responses.create(**_params(s, kwargs))
    events, final = _streamed(s, **kwargs)
    assert final is not None, [e.type for e in events]
    _check_lifecycle(events)
    return final


def _check_lifecycle(events: list[ResponseStreamEvent]) -> None:
    """What Codex and the SDK require of a stream (dialects.md B4): `response.created`
        first, each item added before its deltas and done once (all of them, unless the response
    failed), one terminal event, last, and one response id throughout."""
    assert events[0].type == "response.created", [e.type for e in events]
    added: set[int] = set()
    done: list[int] = []
    for event in events:
        index = getattr(event, "output_index", None)
        if event.type == "response.output_item.added":
            added.add(event.output_index)
        elif event.type == "response.output_item.done":
            done.append(event.output_index)
        elif index is not None:
            assert index in added and index not in done, event
    assert sorted(added) == list(range(len(added))) and len(set(done)) == len(done)
    if events[-1].type == "response.completed":
        assert sorted(done) == sorted(added), "an item never done"
    ends = [e for e in events if e.type in ("response.completed", "response.failed")]
    assert ends == [events[-1]], [e.type for e in events]
    ids = {e.response.id for e in events if hasattr(e, "response")}
    assert len(ids) == 1, ids


# --- answers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_text(s: Stand, stream: bool) -> None:
    s.answer(lambda r: s.script.reply(r, text="Sunny in Paris."))
    response = _response(s, stream)
    assert response.status == "completed"
    assert response.output_text == "Sunny in Paris."
    assert [item.type for item in response.output] == ["message"]
    (sent,) = s.calls()
    assert s.script.is_stream(sent) is stream
    assert s.script.user_texts(sent) == [QUESTION]
    assert s.script.model(sent) == s.model.split(":", 1)[1]
    assert UPSTREAM_KEY not in response.model_dump_json()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_parallel_function_calls(s: Stand, stream: bool) -> None:
    calls = [
        ("get_weather", '{"city": "Paris"}', s.script.call_id("w")),
        ("get_time", '{"city": "Rome"}', s.script.call_id("t")),
    ]
    s.answer(lambda r: s.script.reply(r, tool_calls=calls))
    response = _response(s, stream, tools=TOOLS)
    got = [item for item in response.output if item.type == "function_call"]
    assert [(c.call_id, c.name) for c in got] == [(c[2], c[0]) for c in calls]
    assert [json.loads(c.arguments) for c in got] == [json.loads(c[1]) for c in calls]
    assert s.script.tool_names(s.calls()[0]) == ["get_weather", "get_time"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_two_turn_loop(s: Stand, stream: bool) -> None:
    """Turn 2 resends turn 1's function_call items as the SDK returned them, then one
    function_call_output per call (`store: false`, the whole history): the upstream gets
    them paired in its own dialect."""
    calls = [
        ("get_weather", '{"city": "Paris"}', s.script.call_id("w")),
        ("get_time", '{"city": "Rome"}', s.script.call_id("t")),
    ]

    def respond(request: Recorded) -> Reply:
        if s.script.tool_results(request):
            return s.script.reply(request, text="Sunny in Paris; noon in Rome.")
        return s.script.reply(request, tool_calls=calls)

    s.answer(respond)
    first = _response(s, stream, tools=TOOLS)
    items = [item.model_dump(exclude_none=True) for item in first.output]
    outputs = {"get_weather": "18C, sunny", "get_time": "12:00"}
    results = [
        {"type": "function_call_output", "call_id": item.call_id, "output": outputs[item.name]}
        for item in first.output
        if item.type == "function_call"
    ]
    second = _response(s, stream, tools=TOOLS, input=[*INPUT, *items, *results])
    assert second.output_text == "Sunny in Paris; noon in Rome."

    turn2 = s.calls()[-1]
    carried = s.script.tool_calls(turn2)
    assert [(c.id, c.name) for c in carried] == [(c[2], c[0]) for c in calls]
    assert [json.loads(c.arguments) for c in carried] == [json.loads(c[1]) for c in calls]
    answered = s.script.tool_results(turn2)
    assert [(r.call_id, r.text) for r in answered] == [
        (calls[0][2], "18C, sunny"),
        (calls[1][2], "12:00"),
    ]
    body = turn2.json
    if s.kind == "anthropic":
        messages = body["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant", "user"]
        ids = [b["id"] for b in messages[1]["content"] if b["type"] == "tool_use"]
        assert [b["tool_use_id"] for b in messages[2]["content"]] == ids
    elif s.kind == "responses":
        assert body["store"] is False and "previous_response_id" not in body
        types = [item.get("type", "message") for item in body["input"]]
        assert types == ["message", *["function_call"] * 2, *["function_call_output"] * 2]
    else:
        assert [m["role"] for m in body["messages"]] == ["user", "assistant", "tool", "tool"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_an_input_image_reaches_the_upstream_in_its_dialect(s: Stand, stream: bool) -> None:
    s.answer(lambda r: s.script.reply(r, text="A tiny transparent square."))
    content = [
        {"type": "input_text", "text": "What is in this picture?"},
        {"type": "input_image", "image_url": DATA_URL, "detail": "auto"},
    ]
    response = _response(s, stream, input=[{"role": "user", "content": content}])
    assert response.output_text == "A tiny transparent square."
    (sent,) = s.calls()
    assert s.script.has_image(sent)
    assert upstream_images(s.kind, sent) == [DATA_URL]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_usage(s: Stand, stream: bool) -> None:
    s.answer(lambda r: s.script.reply(r, text="ok", usage=Usage(120, 100, 9)))
    usage = _response(s, stream).usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (120, 9, 129)
    assert usage.input_tokens_details.cached_tokens == 100


# --- errors before the stream -------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_upstream_400_is_a_bad_request_with_its_message(s: Stand, stream: bool) -> None:
    message = "Invalid 'input[0].content': string too long."
    s.answer(lambda r: s.script.error(400, message))
    with pytest.raises(openai.BadRequestError) as caught:
        _response(s, stream)
    assert message in caught.value.message
    error = openai_error(caught.value.response)
    assert message in error["message"] and error["type"] == "invalid_request_error"


def test_upstream_429_is_a_rate_limit_error_without_a_stream(s: Stand) -> None:
    s.answer(lambda r: s.script.error(429, "Rate limit reached for requests per minute."))
    with pytest.raises(openai.RateLimitError) as caught:
        _response(s, False)
    assert "Rate limit reached" in openai_error(caught.value.response)["message"]


def _overflow(kind: str) -> Reply:
    """Each dialect's own 'the prompt does not fit' error."""
    if kind == "anthropic":
        return anthropic_error(400, "invalid_request_error", OVERFLOW)
    body = {
        "message": OVERFLOW,
        "type": "invalid_request_error",
        "param": "messages" if kind == "chat" else "input",
        "code": "context_length_exceeded",
    }
    return JsonReply({"error": body}, status=400)


LIMITED = "Rate limit reached. Please try again in 2s."


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (lambda s: s.script.error(429, LIMITED), "rate_limit_exceeded"),
        (lambda s: s.script.error(503, "The engine is currently overloaded."), "server_error"),
        (lambda s: _overflow(s.kind), "context_length_exceeded"),
    ],
    ids=["429", "503", "context-overflow"],
)
def test_a_stream_that_fails_before_it_starts_is_a_failed_response(
    s: Stand, failure: Any, code: str
) -> None:
    """Codex acts on these only in-band (dialects.md B4): HTTP 200, `response.created`, then
    `response.failed` with the code it dispatches on."""
    s.answer(lambda r: failure(s))
    events, final = _streamed(s)
    assert final is None
    _check_lifecycle(events)
    assert [e.type for e in events] == ["response.created", "response.failed"]
    failed = events[-1]
    assert failed.type == "response.failed"
    assert failed.response.status == "failed" and failed.response.error is not None
    assert failed.response.error.code == code
    assert failed.response.error.message


def test_a_stream_refused_for_the_clients_fault_is_an_http_error(s: Stand) -> None:
    s.answer(lambda r: s.script.error(400, "Invalid value for 'tool_choice'."))
    with pytest.raises(openai.BadRequestError) as caught:
        _streamed(s)
    assert "tool_choice" in openai_error(caught.value.response)["message"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_previous_response_id_is_refused_naming_the_param(s: Stand, stream: bool) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        _response(s, stream, previous_response_id="resp_0123456789abcdef")
    error = openai_error(caught.value.response)
    assert error["param"] == "previous_response_id"
    assert "previous_response_id" in error["message"]
    assert not s.calls()


# --- errors during the stream -------------------------------------------------------------------


def test_a_stream_cut_midway_ends_with_a_failed_response(s: Stand) -> None:
    s.answer(lambda r: s.script.cut(r, "Partial text that never ends"))
    events, final = _streamed(s)
    assert final is None
    _check_lifecycle(events)
    deltas = "".join(getattr(e, "delta", "") for e in events if e.type.endswith("text.delta"))
    assert deltas and "Partial text that never ends".startswith(deltas)
    failed = events[-1]
    assert failed.type == "response.failed" and failed.response.error is not None
    assert "closed the connection" in failed.response.error.message


def _in_stream_error(s: Stand) -> Reply:
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


def test_an_upstream_error_in_the_stream_is_a_failed_response(s: Stand) -> None:
    s.answer(lambda r: _in_stream_error(s))
    events, final = _streamed(s)
    assert final is None
    _check_lifecycle(events)
    failed = events[-1]
    assert failed.type == "response.failed" and failed.response.error is not None
    assert "error while processing your request" in failed.response.error.message


def test_the_stream_and_the_whole_answer_agree(s: Stand) -> None:
    """The SDK's accumulated stream is the same response as the non-streamed answer."""
    calls = [("get_weather", '{"city": "Paris"}', s.script.call_id("w"))]
    s.answer(lambda r: s.script.reply(r, text="Checking.", tool_calls=calls))
    whole = _response(s, False, tools=TOOLS)
    streamed = _response(s, True, tools=TOOLS)

    def shape(response: Response) -> list[tuple[str, str]]:
        return [
            (item.type, item.call_id if item.type == "function_call" else "")
            for item in response.output
        ]

    assert shape(whole) == shape(streamed) == [("message", ""), ("function_call", calls[0][2])]
    assert whole.output_text == streamed.output_text == "Checking."


# --- bad input and errors of a translated request ------------------------------------------------

TRANSLATED = [k for k in KINDS if k != "responses"]
#: Malformed requests (as the SDK sends them) and the `param` of vdm's 400.
REFUSED: list[tuple[dict[str, Any], str]] = [
    (
        {"tools": TOOLS, "tool_choice": {"type": "allowed_tools", "mode": "auto"}},
        "tool_choice.tools",
    ),
    (
        {"tools": TOOLS, "tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": [7]}},
        "tool_choice.tools[0]",
    ),
    (
        {
            "tools": TOOLS,
            "tool_choice": {
                "type": "allowed_tools",
                "mode": "required",
                "tools": [{"type": "function", "name": "get_news"}],
            },
        },
        "tool_choice.tools",
    ),
    ({"tools": TOOLS, "tool_choice": {"type": "function", "name": "get_news"}}, "tool_choice.name"),
    ({"input": [{"type": ["message"], "role": "user", "content": "hi"}]}, "input[0].type"),
    (
        {"input": [*INPUT, {"type": "function_call", "call_id": "c1", "arguments": "{}"}]},
        "input[1]",
    ),
    ({"tools": [{"type": "function", "name": 5}]}, "tools[0].name"),
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
            if stream:
                _streamed(s, **params)
            else:
                _response(s, False, **params)
        error = openai_error(caught.value.response)
        assert (error["type"], error["param"]) == ("invalid_request_error", param)
        assert param in error["message"]
        assert not s.calls(), "a refused request reached the upstream"


def test_an_upstream_error_of_a_translated_request_is_vdms_envelope() -> None:
    """A Responses client whose request went to a Chat provider gets the provider's message
    in vdm's envelope, not the provider's `param` naming a field it never sent."""
    with stand("chat") as s:
        message = "Invalid 'messages[1].content': string too long."
        error = {
            "message": message,
            "type": "invalid_request_error",
            "param": "messages[1].content",
        }
        s.answer(lambda r: JsonReply({"error": {**error, "code": "string_above_max_length"}}, 400))
        with pytest.raises(openai.BadRequestError) as caught:
            _response(s, False)
        got = openai_error(caught.value.response)
        assert message in got["message"]
        assert got["param"] is None and got["type"] == "invalid_request_error"
        assert len(s.calls()) == 1


def test_an_upstream_error_of_a_forwarded_request_is_relayed_as_it_came() -> None:
    with stand("responses") as s:
        error = {
            "message": "Invalid 'input[0].content': string too long.",
            "type": "invalid_request_error",
            "param": "input[0].content",
            "code": "string_above_max_length",
        }
        s.answer(lambda r: JsonReply({"error": error}, 400))
        with pytest.raises(openai.BadRequestError) as caught:
            _response(s, False)
        assert openai_error(caught.value.response) == error


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_other_methods_are_a_405_in_openais_shape(method: str) -> None:
    """A plain GET (no WebSocket upgrade, which is a 404: tests/server/test_websocket.py)."""
    with stand("anthropic") as s:
        answer = httpx.request(method, f"{s.vdm.url}/v1/responses", timeout=10)
        assert answer.status_code == 405
        assert answer.headers["allow"] == "POST"
        error = openai_error(answer)
        assert error["type"] == "invalid_request_error" and "POST" in error["message"]
        assert not s.calls()
