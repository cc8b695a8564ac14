"""Canonical events / Anthropic messages -> Chat Completions answers (`chat_from_events`,
dialects.md C2, C3), read back by the official `openai` SDK as a Chat client would: chunks
through `ChatCompletionChunk`, whole streams through the SDK's own stream accumulator, errors
through the exceptions it raises."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from vdm.protocol.anthropic_request_from_chat import messages_request_from_chat
from vdm.protocol.anthropic_stream import AnthropicStreamEncoder
from vdm.protocol.chat_from_events import (
    DONE,
    ChatStreamEncoder,
    chat_completion_from_message,
    openai_error_body,
    openai_status,
)
from vdm.protocol.errors import VdmError
from vdm.protocol.events import (
    BlockStop,
    Event,
    InputJsonDelta,
    MessageEnd,
    RedactedThinkingStart,
    SignatureDelta,
    TextDelta,
    TextStart,
    ThinkingDelta,
    ThinkingStart,
    ToolUseStart,
)

MODEL = "claude-terra-5"
USAGE = {
    "input_tokens": 20,
    "output_tokens": 42,
    "cache_read_input_tokens": 1000,
    "cache_creation_input_tokens": 300,
}

TEXT: list[Event] = [
    TextStart(0),
    TextDelta(0, "Hello, "),
    TextDelta(0, "wörld \u2728"),
    BlockStop(0),
    MessageEnd("end_turn", usage=USAGE),
]

#: Thinking, a sentence, then two parallel tool calls with arguments in fragments: the tool
#: calls sit at block indexes 2 and 3 but must reach the client as tool call 0 and 1.
TOOLS: list[Event] = [
    ThinkingStart(0),
    ThinkingDelta(0, "The user wants "),
    ThinkingDelta(0, "two files."),
    SignatureDelta(0, "sig-abc"),
    BlockStop(0),
    TextStart(1),
    TextDelta(1, "Reading both."),
    BlockStop(1),
    ToolUseStart(2, "toolu_01", "Read"),
    InputJsonDelta(2, '{"path": '),
    InputJsonDelta(2, '"a.py"}'),
    BlockStop(2),
    ToolUseStart(3, "toolu_02", "Read"),
    InputJsonDelta(3, '{"path": "b.py"}'),
    BlockStop(3),
    MessageEnd("tool_use", usage=USAGE),
]

#: Thinking, then a block Anthropic redacted, then a tool call: what a tool loop with
#: thinking on has to send back, both blocks unchanged and in this order.
REDACTED: list[Event] = [
    ThinkingStart(0),
    ThinkingDelta(0, "Checking the file."),
    SignatureDelta(0, "sig-abc"),
    BlockStop(0),
    RedactedThinkingStart(1, "EmwKAhgBEgy3va3pzix"),
    BlockStop(1),
    TextStart(2),
    TextDelta(2, "Reading it."),
    BlockStop(2),
    ToolUseStart(3, "toolu_01", "Read"),
    InputJsonDelta(3, '{"path": "a.py"}'),
    BlockStop(3),
    MessageEnd("tool_use", usage=USAGE),
]


def _stream(events: list[Event], include_usage: bool = True) -> bytes:
    encoder = ChatStreamEncoder(MODEL, include_usage, created=1_700_000_000, id="chatcmpl-x")
    out = [encoder.start()]
    # Fed in two batches, as reads from an upstream arrive.
    encoder.encode(events[:3], out)
    encoder.encode(events[3:], out, reasoning_tokens=7)
    return b"".join(out)


def _data_lines(body: bytes) -> list[str]:
    assert body.endswith(b"\n\n")
    events = body.decode().split("\n\n")[:-1]
    assert all(event.startswith("data: ") for event in events)
    return [event.removeprefix("data: ") for event in events]


def _chunks(body: bytes) -> list[ChatCompletionChunk]:
    lines = _data_lines(body)
    assert lines[-1] == "[DONE]"
    return [ChatCompletionChunk.model_validate_json(line) for line in lines[:-1]]


def _client(body: bytes, status: int = 200) -> openai.OpenAI:
    def answer(request: httpx2.Request) -> httpx2.Response:
        kind = "text/event-stream" if status == 200 else "application/json"
        return httpx2.Response(status, content=body, headers={"content-type": kind})

    http = httpx2.Client(transport=httpx2.MockTransport(answer))
    return openai.OpenAI(
        api_key="sk-test", base_url="http://vdm.test/v1", http_client=http, max_retries=0
    )


def _final_completion(body: bytes) -> ChatCompletion:
    """The stream as the SDK's own accumulator (`chat.completions.stream`) puts it together."""
    with _client(body).chat.completions.stream(
        model=MODEL, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        return stream.get_final_completion()


def test_text_stream_is_valid_chunks_sharing_id_created_and_model() -> None:
    chunks = _chunks(_stream(TEXT))
    assert {(c.id, c.created, c.model, c.object) for c in chunks} == {
        ("chatcmpl-x", 1_700_000_000, MODEL, "chat.completion.chunk")
    }
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello, wörld \u2728"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert all(c.choices[0].logprobs is None for c in chunks if c.choices)


def test_usage_null_on_every_chunk_only_when_include_usage() -> None:
    with_usage = [json.loads(line) for line in _data_lines(_stream(TEXT))[:-1]]
    assert all(chunk["usage"] is None for chunk in with_usage[:-1])
    without = [json.loads(line) for line in _data_lines(_stream(TEXT, include_usage=False))[:-1]]
    assert all("usage" not in chunk for chunk in without)
    assert all(chunk["choices"] for chunk in without), "no usage chunk was asked for"


def test_usage_chunk_counts_cached_prompt_tokens_like_openai() -> None:
    last = _chunks(_stream(TEXT))[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens == 20 + 1000 + 300
    assert last.usage.completion_tokens == 42
    assert last.usage.total_tokens == 1320 + 42
    assert last.usage.prompt_tokens_details is not None
    assert last.usage.prompt_tokens_details.cached_tokens == 1000
    assert last.usage.prompt_tokens_details.cache_write_tokens == 300
    assert last.usage.completion_tokens_details is not None
    assert last.usage.completion_tokens_details.reasoning_tokens == 7


def test_stream_ends_with_done_exactly_once() -> None:
    body = _stream(TEXT)
    assert body.endswith(DONE)
    assert body.count(b"[DONE]") == 1


def test_parallel_tool_calls_are_indexed_from_zero_with_fragmented_arguments() -> None:
    chunks = _chunks(_stream(TOOLS))
    calls = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or []]
    starts = [call for call in calls if call.id]
    assert [(s.index, s.id, s.type) for s in starts] == [
        (0, "toolu_01", "function"),
        (1, "toolu_02", "function"),
    ]
    assert all(s.function and s.function.name == "Read" for s in starts)
    assert all(s.function and s.function.arguments == "" for s in starts)
    args = {0: "", 1: ""}
    for call in calls:
        args[call.index] += (call.function.arguments or "") if call.function else ""
    assert {k: json.loads(v) for k, v in args.items()} == {0: {"path": "a.py"}, 1: {"path": "b.py"}}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_thinking_streams_as_reasoning_content_with_a_signed_block() -> None:
    lines = [json.loads(line) for line in _data_lines(_stream(TOOLS))[:-1]]
    deltas = [line["choices"][0]["delta"] for line in lines if line["choices"]]
    reasoning = "".join(d.get("reasoning_content", "") for d in deltas)
    assert reasoning == "The user wants two files."
    blocks = [b for d in deltas for b in d.get("thinking_blocks", [])]
    assert blocks == [
        {
            "index": 0,
            "type": "thinking",
            "thinking": "The user wants two files.",
            "signature": "sig-abc",
        }
    ]


def test_redacted_thinking_streams_in_thinking_blocks_after_the_signed_one() -> None:
    lines = [json.loads(line) for line in _data_lines(_stream(REDACTED))[:-1]]
    deltas = [line["choices"][0]["delta"] for line in lines if line["choices"]]
    blocks = [b for d in deltas for b in d.get("thinking_blocks", [])]
    assert blocks == [
        {"index": 0, "type": "thinking", "thinking": "Checking the file.", "signature": "sig-abc"},
        {"index": 1, "type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
    ]
    # Its data is no reasoning text to show.
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "Checking the file."


def test_redacted_thinking_sent_back_reaches_anthropic_unchanged() -> None:
    # The tool loop as an SDK application runs it: the accumulated message is sent back
    # whole (extra fields included), then the tool result.
    message = _final_completion(_stream(REDACTED)).choices[0].message
    turn = message.model_dump(exclude_none=True)
    body = {
        "model": MODEL,
        "messages": [
            {"role": "user", "content": "Read a.py"},
            turn,
            {"role": "tool", "tool_call_id": "toolu_01", "content": "print(1)"},
        ],
    }
    request = messages_request_from_chat(body)
    assistant = request["messages"][1]
    assert assistant["role"] == "assistant"
    assert [b["type"] for b in assistant["content"]] == [
        "thinking",
        "redacted_thinking",
        "text",
        "tool_use",
    ]
    assert assistant["content"][0]["signature"] == "sig-abc"
    assert assistant["content"][1] == {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"}


def test_sdk_accumulates_the_stream_into_a_tool_calls_completion() -> None:
    final = _final_completion(_stream(TOOLS))
    message = final.choices[0].message
    assert message.content == "Reading both."
    assert message.tool_calls is not None
    assert _calls(message) == [
        ("toolu_01", "Read", {"path": "a.py"}),
        ("toolu_02", "Read", {"path": "b.py"}),
    ]
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.usage is not None and final.usage.prompt_tokens == 1320


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("some_future_reason", "stop"),
    ],
)
def test_stop_reasons_map_to_finish_reasons(stop_reason: str, finish: str) -> None:
    events: list[Event] = [TextStart(0), TextDelta(0, "x"), BlockStop(0), MessageEnd(stop_reason)]
    chunks = _chunks(_stream(events))
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == finish
    assert finishes[:-1] == [None] * (len(finishes) - 1)
    message = {"content": [{"type": "text", "text": "x"}], "stop_reason": stop_reason}
    completion = ChatCompletion.model_validate(chat_completion_from_message(message, MODEL))
    assert completion.choices[0].finish_reason == finish


def _anthropic_message(events: list[Event]) -> dict[str, Any]:
    """The same events as an Anthropic client gets them, put together by the anthropic SDK
    (which speaks through `httpx2`): the non-streamed message for the same answer."""
    encoder = AnthropicStreamEncoder(MODEL)
    out = [encoder.start()]
    encoder.encode(events, out)
    body = b"".join(out)

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})

    client = anthropic.Anthropic(
        api_key="sk-ant-test",
        base_url="http://vdm.test",
        http_client=httpx2.Client(transport=httpx2.MockTransport(answer)),
        max_retries=0,
    )
    with client.messages.stream(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        return stream.get_final_message().model_dump()


def _calls(message: Any) -> list[tuple[str, str, Any]]:
    return [
        (c.id, c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or []
    ]


def _extra(message: Any, name: str) -> Any:
    """A non-standard field the SDK kept on the message (`reasoning_content`, ...)."""
    return (message.model_extra or {}).get(name)


@pytest.mark.parametrize(
    "events", [TEXT, TOOLS, REDACTED], ids=["text", "thinking+tools", "redacted"]
)
def test_accumulated_stream_equals_the_non_streamed_answer(events: list[Event]) -> None:
    streamed = _final_completion(_stream(events))
    whole = ChatCompletion.model_validate(
        chat_completion_from_message(_anthropic_message(events), MODEL, reasoning_tokens=7)
    )
    left, right = streamed.choices[0], whole.choices[0]
    assert left.finish_reason == right.finish_reason
    assert left.message.content == right.message.content
    # Same calls; the arguments as the same JSON (the stream relays the upstream's spacing).
    assert _calls(left.message) == _calls(right.message)
    assert _extra(left.message, "reasoning_content") == _extra(right.message, "reasoning_content")
    streamed_blocks = [
        {k: v for k, v in block.items() if k != "index"}
        for block in _extra(left.message, "thinking_blocks") or []
    ]
    assert streamed_blocks == (_extra(right.message, "thinking_blocks") or [])
    if events is TOOLS:  # the comparison above must not pass on two missing fields
        assert _extra(left.message, "reasoning_content") == "The user wants two files."
        assert streamed_blocks[0]["signature"] == "sig-abc"
        assert len(_calls(left.message)) == 2
    if events is REDACTED:
        assert [b["type"] for b in streamed_blocks] == ["thinking", "redacted_thinking"]
    assert streamed.usage == whole.usage
    assert streamed.model == whole.model == MODEL


def test_non_streamed_answer_shape() -> None:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "Plan.", "signature": "sig-1"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "tool_use", "id": "toolu_9", "name": "Bash", "input": {"cmd": "ls"}},
            {
                "type": "tool_use",
                "id": "toolu_8",
                "name": "Echo",
                "input": {"_raw_arguments": "{x"},
            },
            {"type": "server_tool_use", "id": "srv", "name": "web_search", "input": {}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 5, "output_tokens": 3, "cache_creation": {"x": 1}},
    }
    body = chat_completion_from_message(message, MODEL)
    completion = ChatCompletion.model_validate(body)
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    reply = completion.choices[0].message
    assert reply.content is None, "no text: content is null, as OpenAI sends with tool calls"
    assert reply.refusal is None
    assert reply.tool_calls is not None
    assert [(c.id, c.function.arguments) for c in reply.tool_calls if c.type == "function"] == [
        ("toolu_9", '{"cmd":"ls"}'),
        ("toolu_8", "{x"),  # upstream's non-JSON arguments go back as they came
    ]
    assert body["choices"][0]["message"]["reasoning_content"] == "Plan."
    assert body["choices"][0]["message"]["thinking_blocks"] == [
        {"type": "thinking", "thinking": "Plan.", "signature": "sig-1"},
        {"type": "redacted_thinking", "data": "opaque"},
    ]
    assert completion.choices[0].logprobs is None
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.total_tokens) == (5, 8)


def test_text_blocks_join_and_no_tool_calls_key_without_tools() -> None:
    message = {
        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
        "stop_reason": "end_turn",
        "usage": USAGE,
    }
    body = chat_completion_from_message(message, MODEL, created=5, id="chatcmpl-fixed")
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "ab", "refusal": None}
    assert (body["id"], body["created"], body["model"]) == ("chatcmpl-fixed", 5, MODEL)


# --- errors ---------------------------------------------------------------------------------


def _raised_by_stream(body: bytes) -> openai.APIError:
    stream = _client(body).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    with pytest.raises(openai.APIError) as caught:
        for _ in stream:
            pass
    return caught.value


def test_mid_stream_error_makes_the_sdk_raise_with_type_and_code() -> None:
    encoder = ChatStreamEncoder(MODEL, include_usage=True)
    out = [encoder.start()]
    encoder.encode(TEXT[:2], out)
    error = VdmError(429, "rate limited by upstream")
    out.append(encoder.error(error))
    body = b"".join(out)
    assert body.endswith(DONE)
    line = json.loads(_data_lines(body)[-2])
    assert line == {
        "error": {
            "message": "rate limited by upstream",
            "type": "rate_limit_error",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    raised = _raised_by_stream(body)
    assert raised.message == "rate limited by upstream"
    assert raised.type == "rate_limit_error"
    assert raised.code == "rate_limit_exceeded"


def test_nothing_is_written_after_the_stream_is_over() -> None:
    encoder = ChatStreamEncoder(MODEL, include_usage=False)
    out: list[bytes] = []
    encoder.encode(TEXT, out)
    assert out[0].startswith(b'data: {"id"'), "the role chunk comes first even without start()"
    assert encoder.error(VdmError(502, "late")) == b""


@pytest.mark.parametrize(
    ("error", "status", "kind", "code"),
    [
        (VdmError(529, "Overloaded"), 503, openai.InternalServerError, None),
        (
            VdmError(400, "prompt is too long: 300000 tokens > 200000", overflow=True),
            400,
            openai.BadRequestError,
            "context_length_exceeded",
        ),
        (VdmError(404, "model: claude-nope"), 404, openai.NotFoundError, "model_not_found"),
        (VdmError(404, "no such endpoint: GET /v1/x"), 404, openai.NotFoundError, None),
        (
            VdmError(400, "n: only 1 is supported", param="n"),
            400,
            openai.BadRequestError,
            None,
        ),
        (VdmError(429, "quota", code="insufficient_quota"), 429, openai.RateLimitError, None),
    ],
)
def test_error_answers_raise_the_matching_sdk_exception(
    error: VdmError, status: int, kind: type[openai.APIStatusError], code: str | None
) -> None:
    assert openai_status(error.status) == status
    client = _client(openai_error_body(error), status=openai_status(error.status))
    with pytest.raises(kind) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.message == f"Error code: {status} - {error.message}"
    assert caught.value.type == error.error_type
    assert caught.value.param == error.param
    expected = error.code if error.code == "insufficient_quota" else code
    assert caught.value.code == expected
