"""Canonical events / Anthropic messages -> OpenAI Responses answers (`responses_from_events`,
dialects.md B3, B4), read back as Responses clients read them: every event through the
`openai` SDK's `ResponseStreamEvent` union, whole streams through the SDK's own stream helper
(which insists on `response.created` first and items announced before their deltas), whole
responses through `Response.model_validate`, and Codex's rules (items built from
`output_item.done`, tool calls routed by namespace, error codes) checked on the bytes."""

from __future__ import annotations

import copy
import json
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseFailedEvent,
    ResponseStreamEvent,
)
from pydantic import TypeAdapter

from tests.harness import PROTOCOL
from vdm.protocol.anthropic_request_from_responses import messages_request_from_responses
from vdm.protocol.anthropic_stream import AnthropicStreamEncoder
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
from vdm.protocol.responses_from_events import (
    ResponsesStreamEncoder,
    response_from_message,
    responses_error_stream,
)
from vdm.protocol.responses_objects import response_error_code
from vdm.protocol.responses_tools import ToolRoutes
from vdm.protocol.signatures import unpack_thinking

MODEL = "claude-terra-5"
USAGE = {
    "input_tokens": 20,
    "output_tokens": 42,
    "cache_read_input_tokens": 1000,
    "cache_creation_input_tokens": 300,
}
ROUTES = ToolRoutes(
    namespaced={"multi_agent_v1__spawn_agent": ("multi_agent_v1", "spawn_agent")},
    custom=frozenset({"apply_patch"}),
)
PATCH = '*** Begin Patch\n*** Add File: a.txt\n+hi "there"\n*** End Patch\n'

TEXT: list[Event] = [
    TextStart(0),
    TextDelta(0, "Hello, "),
    TextDelta(0, "wörld \u2728"),
    BlockStop(0),
    MessageEnd("end_turn", usage=USAGE),
]

#: Thinking, a sentence, then parallel calls: a plain function with fragmented arguments, a
#: namespace member (flattened upstream) and a freeform tool whose input arrives as partial
#: JSON of {"input": ...}.
TOOLS: list[Event] = [
    ThinkingStart(0),
    ThinkingDelta(0, "The user wants "),
    ThinkingDelta(0, "a file."),
    SignatureDelta(0, "sig-abc"),
    BlockStop(0),
    TextStart(1),
    TextDelta(1, "Working on it."),
    BlockStop(1),
    ToolUseStart(2, "toolu_01", "exec_command"),
    InputJsonDelta(2, '{"cmd": '),
    InputJsonDelta(2, '"ls -la"}'),
    BlockStop(2),
    ToolUseStart(3, "toolu_02", "multi_agent_v1__spawn_agent"),
    InputJsonDelta(3, '{"task": "review"}'),
    BlockStop(3),
    ToolUseStart(4, "toolu_03", "apply_patch"),
    InputJsonDelta(4, json.dumps({"input": PATCH})[:20]),
    InputJsonDelta(4, json.dumps({"input": PATCH})[20:]),
    BlockStop(4),
    MessageEnd("tool_use", usage=USAGE),
]

#: Thinking, a block Anthropic redacted, then a call: Anthropic wants both blocks back
#: unchanged, in this order, with the tool result.
REDACTED: list[Event] = [
    ThinkingStart(0),
    ThinkingDelta(0, "Checking the file."),
    SignatureDelta(0, "sig-abc"),
    BlockStop(0),
    RedactedThinkingStart(1, "EmwKAhgBEgy3va3pzix"),
    BlockStop(1),
    ToolUseStart(2, "toolu_01", "exec_command"),
    InputJsonDelta(2, '{"cmd": "ls"}'),
    BlockStop(2),
    MessageEnd("tool_use", usage=USAGE),
]

EVENT = TypeAdapter[Any](ResponseStreamEvent)


def _stream(
    events: list[Event], routes: ToolRoutes = ROUTES, request: dict[str, Any] | None = None
) -> bytes:
    encoder = ResponsesStreamEncoder(
        MODEL, routes, request, response_id="resp_fixed", created_at=1_700_000_000
    )
    out = [encoder.start()]
    # Fed in two batches, as reads from an upstream arrive.
    encoder.encode(events[:3], out)
    encoder.encode(events[3:], out, reasoning_tokens=7)
    return b"".join(out)


def _frames(body: bytes) -> list[dict[str, Any]]:
    """Each SSE frame's data, checking the framing Codex and the SDK read: `event: <type>`
    then one `data:` line whose JSON carries the same `type`."""
    assert body.endswith(b"\n\n")
    frames = []
    for frame in body.decode().split("\n\n")[:-1]:
        event_line, data_line = frame.split("\n")
        data = json.loads(data_line.removeprefix("data: "))
        assert event_line == f"event: {data['type']}"
        frames.append(data)
    return frames


def _validated(body: bytes) -> list[dict[str, Any]]:
    """The frames, each validated strictly as one of the SDK's stream events."""
    frames = _frames(body)
    for frame in frames:
        EVENT.validate_python(frame)
    return frames


def _client(body: bytes) -> openai.OpenAI:
    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})

    http = httpx2.Client(transport=httpx2.MockTransport(answer))
    return openai.OpenAI(
        api_key="sk-test", base_url="http://vdm.test/v1", http_client=http, max_retries=0
    )


def _final_response(body: bytes) -> Response:
    """The stream as the SDK's own helper (`responses.stream`) puts it together; the helper
    raises on a delta for an item or content part it was not told about."""
    with _client(body).responses.stream(model=MODEL, input="hi") as stream:
        for _ in stream:
            pass
        return stream.get_final_response()


def _sdk_events(body: bytes) -> list[Any]:
    """The typed events `responses.create(stream=True)` yields (the SDK's lenient parse)."""
    return list(_client(body).responses.create(model=MODEL, input="hi", stream=True))


# --- stream grammar ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "events", [TEXT, TOOLS, REDACTED], ids=["text", "thinking+tools", "redacted"]
)
def test_stream_grammar(events: list[Event]) -> None:
    frames = _validated(_stream(events))
    types = [f["type"] for f in frames]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert types.count("response.completed") == 1
    assert [f["sequence_number"] for f in frames] == list(range(len(frames)))

    added: dict[int, dict[str, Any]] = {}
    done: dict[int, dict[str, Any]] = {}
    parts: set[int] = set()
    for frame in frames[2:-1]:
        kind = frame["type"]
        if kind == "response.output_item.added":
            assert frame["output_index"] == len(added), "output_index counts items as added"
            added[frame["output_index"]] = frame["item"]
            continue
        index = frame["output_index"]
        assert index in added and index not in done, f"{kind} outside its item's life"
        if kind == "response.content_part.added":
            parts.add(index)
        elif kind == "response.output_text.delta":
            assert index in parts, "content_part.added must precede text deltas"
        if "item_id" in frame:
            assert frame["item_id"] == added[index]["id"]
        if kind == "response.output_item.done":
            assert frame["item"]["id"] == added[index]["id"]
            done[index] = frame["item"]
    assert sorted(done) == sorted(added) == list(range(len(added)))

    final = frames[-1]["response"]
    assert final["output"] == [done[i] for i in range(len(done))]
    assert final["status"] == "completed"
    assert final["id"] == "resp_fixed" == frames[0]["response"]["id"]
    Response.model_validate(final)


def test_text_stream_through_the_sdk_helper() -> None:
    final = _final_response(_stream(TEXT))
    assert final.output_text == "Hello, wörld \u2728"
    assert final.status == "completed"
    message = final.output[0]
    assert message.type == "message" and message.status == "completed"
    assert message.id.startswith("msg_")


def test_usage_counts_cached_input_like_openai() -> None:
    usage = _final_response(_stream(TEXT)).usage
    assert usage is not None
    assert usage.input_tokens == 20 + 1000 + 300
    assert usage.input_tokens_details.cached_tokens == 1000
    assert usage.input_tokens_details.cache_write_tokens == 300
    assert usage.output_tokens == 42
    assert usage.output_tokens_details.reasoning_tokens == 7
    assert usage.total_tokens == 1320 + 42


def test_created_and_in_progress_carry_no_output_or_usage() -> None:
    created, in_progress = _frames(_stream(TEXT))[:2]
    for frame in (created, in_progress):
        response = frame["response"]
        assert (response["status"], response["output"], response["usage"]) == (
            "in_progress",
            [],
            None,
        )
        assert (response["model"], response["created_at"]) == (MODEL, 1_700_000_000)


# --- tool calls -------------------------------------------------------------------------------


def test_parallel_calls_namespace_and_custom_tool_through_the_sdk() -> None:
    final = _final_response(_stream(TOOLS))
    kinds = [item.type for item in final.output]
    assert kinds == ["reasoning", "message", "function_call", "function_call", "custom_tool_call"]
    plain, member, custom = final.output[2:]
    assert plain.type == "function_call" and member.type == "function_call"
    assert (plain.call_id, plain.name, plain.namespace) == ("toolu_01", "exec_command", None)
    assert json.loads(plain.arguments) == {"cmd": "ls -la"}
    # Codex routes by (namespace, name): the flattened upstream name must not reach it.
    assert (member.call_id, member.name, member.namespace) == (
        "toolu_02",
        "spawn_agent",
        "multi_agent_v1",
    )
    assert json.loads(member.arguments) == {"task": "review"}
    assert custom.type == "custom_tool_call"
    assert (custom.call_id, custom.name, custom.input) == ("toolu_03", "apply_patch", PATCH)
    assert [(item.id or "").split("_")[0] for item in final.output[2:]] == ["fc", "fc", "ctc"]


def test_argument_deltas_and_done_events() -> None:
    frames = _validated(_stream(TOOLS))
    deltas: dict[int, str] = {}
    for frame in frames:
        if frame["type"] == "response.function_call_arguments.delta":
            deltas[frame["output_index"]] = deltas.get(frame["output_index"], "") + frame["delta"]
    assert deltas == {2: '{"cmd": "ls -la"}', 3: '{"task": "review"}'}
    args_done = [f for f in frames if f["type"] == "response.function_call_arguments.done"]
    assert [(f["output_index"], f["name"], f["arguments"]) for f in args_done] == [
        (2, "exec_command", '{"cmd": "ls -la"}'),
        (3, "spawn_agent", '{"task": "review"}'),
    ]
    custom = [f for f in frames if f["type"].startswith("response.custom_tool_call_input")]
    assert [(f["type"], f["output_index"]) for f in custom] == [
        ("response.custom_tool_call_input.delta", 4),
        ("response.custom_tool_call_input.done", 4),
    ]
    assert custom[0]["delta"] == custom[1]["input"] == PATCH
    added = [f["item"] for f in frames if f["type"] == "response.output_item.added"]
    assert added[3]["namespace"] == "multi_agent_v1" and added[3]["arguments"] == ""
    assert added[4]["type"] == "custom_tool_call" and added[4]["input"] == ""


def test_call_without_arguments_gets_an_empty_object() -> None:
    events: list[Event] = [ToolUseStart(0, "toolu_9", "get_goal"), BlockStop(0)]
    events.append(MessageEnd("tool_use"))
    final = _final_response(_stream(events))
    call = final.output[0]
    assert call.type == "function_call" and call.arguments == "{}"


def test_custom_tool_input_that_is_not_the_expected_json_is_passed_as_it_came() -> None:
    events: list[Event] = [
        ToolUseStart(0, "toolu_9", "apply_patch"),
        InputJsonDelta(0, "not json at all"),
        BlockStop(0),
        MessageEnd("tool_use"),
    ]
    item = _final_response(_stream(events)).output[0]
    assert item.type == "custom_tool_call" and item.input == "not json at all"


# --- thinking -----------------------------------------------------------------------------------


def test_thinking_becomes_a_reasoning_item_carrying_the_signed_block() -> None:
    body = _stream(TOOLS)
    frames = _validated(body)
    deltas = [f["delta"] for f in frames if f["type"] == "response.reasoning_summary_text.delta"]
    assert "".join(deltas) == "The user wants a file."
    types = [f["type"] for f in frames]
    assert types.index("response.reasoning_summary_part.added") < types.index(
        "response.reasoning_summary_text.delta"
    )
    reasoning = _final_response(body).output[0]
    assert reasoning.type == "reasoning" and reasoning.id.startswith("rs_")
    assert [(s.type, s.text) for s in reasoning.summary] == [
        ("summary_text", "The user wants a file.")
    ]
    assert unpack_thinking(reasoning.encrypted_content) == {
        "type": "thinking",
        "thinking": "The user wants a file.",
        "signature": "sig-abc",
    }
    added = next(f for f in frames if f["type"] == "response.output_item.added")
    assert added["item"] == {
        "id": reasoning.id,
        "type": "reasoning",
        "summary": [],
        "encrypted_content": None,
    }


def test_thinking_without_text_keeps_its_signature_and_an_empty_summary() -> None:
    # display "omitted": the upstream sends a signature and no thinking text.
    events: list[Event] = [
        ThinkingStart(0),
        SignatureDelta(0, "sig-only"),
        BlockStop(0),
        TextStart(1),
        TextDelta(1, "Done."),
        BlockStop(1),
        MessageEnd("end_turn"),
    ]
    frames = _validated(_stream(events))
    assert not any(f["type"].startswith("response.reasoning_summary") for f in frames)
    reasoning = _final_response(_stream(events)).output[0]
    assert reasoning.type == "reasoning" and reasoning.summary == []
    assert unpack_thinking(reasoning.encrypted_content) == {
        "type": "thinking",
        "thinking": "",
        "signature": "sig-only",
    }


def test_redacted_thinking_is_a_reasoning_item_carrying_the_redacted_block() -> None:
    body = _stream(REDACTED)
    frames = _validated(body)
    of_item = [f for f in frames if f.get("output_index") == 1]
    assert [f["type"] for f in of_item] == [
        "response.output_item.added",
        "response.output_item.done",
    ], "no summary part or delta: the block has no text"
    rs_id = of_item[0]["item"]["id"]
    assert of_item[0]["item"] == {
        "id": rs_id,
        "type": "reasoning",
        "summary": [],
        "encrypted_content": None,
    }
    done = of_item[1]["item"]
    assert done["id"] == rs_id and done["summary"] == []
    assert unpack_thinking(done["encrypted_content"]) == {
        "type": "redacted_thinking",
        "data": "EmwKAhgBEgy3va3pzix",
    }
    output = _final_response(body).output
    assert [item.type for item in output] == ["reasoning", "reasoning", "function_call"]
    assert output[1].model_dump(exclude_none=True) == done


def test_redacted_thinking_sent_back_reaches_anthropic_unchanged() -> None:
    # Codex's next turn: the output items it kept (reasoning included), then the result.
    output = _frames(_stream(REDACTED))[-1]["response"]["output"]
    body = {
        "model": MODEL,
        "store": False,
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "list files"}]},
            *output,
            {"type": "function_call_output", "call_id": "toolu_01", "output": "a.py"},
        ],
    }
    request, _ = messages_request_from_responses(body)
    assistant = request["messages"][1]
    assert assistant["role"] == "assistant"
    assert assistant["content"][:2] == [
        {"type": "thinking", "thinking": "Checking the file.", "signature": "sig-abc"},
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
    ]
    assert assistant["content"][2]["type"] == "tool_use"


# --- stop reasons -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stop_reason", "status", "reason"),
    [
        ("end_turn", "completed", None),
        ("tool_use", "completed", None),
        ("pause_turn", "completed", None),
        ("stop_sequence", "completed", None),
        ("some_future_reason", "completed", None),
        ("max_tokens", "incomplete", "max_output_tokens"),
        ("model_context_window_exceeded", "incomplete", "max_output_tokens"),
        ("refusal", "incomplete", "content_filter"),
    ],
)
def test_stop_reasons(stop_reason: str, status: str, reason: str | None) -> None:
    events: list[Event] = [TextStart(0), TextDelta(0, "x"), BlockStop(0), MessageEnd(stop_reason)]
    frames = _validated(_stream(events))
    last = frames[-1]
    assert last["type"] == f"response.{status}"
    response = Response.model_validate(last["response"])
    assert response.status == status
    details = response.incomplete_details
    assert (details.reason if details else None) == reason
    assert response.output_text == "x", "the text written so far is kept"
    message = {"content": [{"type": "text", "text": "x"}], "stop_reason": stop_reason}
    whole = Response.model_validate(response_from_message(message, MODEL, ROUTES))
    assert whole.status == status
    assert (whole.incomplete_details.reason if whole.incomplete_details else None) == reason


def test_refusal_text_is_output_text_codex_can_read() -> None:
    events: list[Event] = [
        TextStart(0),
        TextDelta(0, "I can't help with that."),
        BlockStop(0),
        MessageEnd("refusal"),
    ]
    last = _frames(_stream(events))[-1]
    assert last["response"]["incomplete_details"] == {"reason": "content_filter"}
    assert last["response"]["output"][0]["content"] == [
        {"type": "output_text", "text": "I can't help with that.", "annotations": []}
    ]


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (
            VdmError(400, "prompt is too long: 300000 tokens > 200000", overflow=True),
            "context_length_exceeded",
            "prompt is too long: 300000 tokens > 200000",
        ),
        (
            VdmError(429, "Rate limited.", headers={"Retry-After": "7"}),
            "rate_limit_exceeded",
            "Rate limited. Please try again in 7s",
        ),
        (
            VdmError(429, "Rate limited.", headers={"retry-after-ms": "1500"}),
            "rate_limit_exceeded",
            "Rate limited. Please try again in 2s",
        ),
        (VdmError(429, "Rate limited."), "rate_limit_exceeded", "Rate limited."),
        (
            VdmError(429, "Slow down; try again in 3s."),
            "rate_limit_exceeded",
            "Slow down; try again in 3s.",
        ),
        (VdmError(429, "quota", code="insufficient_quota"), "insufficient_quota", "quota"),
        (VdmError(529, "Overloaded"), "server_error", "Overloaded"),
        (VdmError(503, "upstream unavailable"), "server_error", "upstream unavailable"),
        (VdmError(500, "boom"), "server_error", "boom"),
        (VdmError(400, "messages: bad"), "invalid_prompt", "messages: bad"),
        (VdmError(404, "model: claude-nope"), "model_not_found", "model: claude-nope"),
        (VdmError(401, "invalid x-api-key"), "server_error", "invalid x-api-key"),
    ],
)
def test_failed_event_codes(error: VdmError, code: str, message: str) -> None:
    assert response_error_code(error) == code
    encoder = ResponsesStreamEncoder(MODEL, ROUTES)
    out = [encoder.start()]
    encoder.encode(TOOLS[:7], out)  # thinking done, text still open
    out.append(encoder.error(error))
    body = b"".join(out)
    frames = _frames(body)
    failed = frames[-1]
    assert failed["type"] == "response.failed"
    assert [f["sequence_number"] for f in frames] == list(range(len(frames)))
    assert failed["response"]["status"] == "failed"
    assert failed["response"]["error"] == {"code": code, "message": message}
    # What was done stays in the output; the open text item never completed.
    assert [item["type"] for item in failed["response"]["output"]] == ["reasoning"]
    # The SDK's own (lenient) parse of the stream, as a client gets it; it does not raise.
    last = _sdk_events(body)[-1]
    assert isinstance(last, ResponseFailedEvent)
    assert last.response.error is not None
    assert (last.response.error.code, last.response.error.message) == (code, message)
    if code in ("rate_limit_exceeded", "server_error", "invalid_prompt"):
        EVENT.validate_python(failed)  # strict too, where the SDK's code Literal lists it


def test_nothing_follows_the_end_of_a_stream() -> None:
    encoder = ResponsesStreamEncoder(MODEL, ROUTES)
    out: list[bytes] = []
    encoder.encode(TEXT, out)
    assert _frames(out[0])[0]["type"] == "response.created", "created first even without start()"
    assert encoder.error(VdmError(502, "late")) == b""
    assert encoder.keepalive() == b""
    more: list[bytes] = []
    encoder.encode(TEXT, more)
    assert more == []


def test_error_before_the_stream_started_sends_created_first() -> None:
    encoder = ResponsesStreamEncoder(MODEL, ROUTES)
    frames = _frames(encoder.error(VdmError(500, "boom")))
    assert [f["type"] for f in frames] == ["response.created", "response.failed"]
    assert [f["sequence_number"] for f in frames] == [0, 1]


@pytest.mark.parametrize(
    "error",
    [
        VdmError(400, "prompt is too long: 300000 tokens > 200000", overflow=True),
        VdmError(429, "Rate limited.", headers={"retry-after": "20"}),
        VdmError(529, "Overloaded"),
        VdmError(502, "upstream unreachable"),
    ],
)
def test_error_stream_for_failures_codex_handles_in_band(error: VdmError) -> None:
    body = responses_error_stream(error, MODEL, {"tools": [], "parallel_tool_calls": False})
    assert body is not None
    frames = _frames(body)
    assert [f["type"] for f in frames] == ["response.created", "response.failed"]
    assert frames[1]["response"]["error"]["code"] == response_error_code(error)
    assert frames[1]["response"]["parallel_tool_calls"] is False
    events = _sdk_events(body)
    assert [event.type for event in events] == ["response.created", "response.failed"]


@pytest.mark.parametrize(
    "error",
    [
        VdmError(400, "messages: bad"),
        VdmError(401, "invalid x-api-key"),
        VdmError(404, "model: claude-nope"),
        VdmError(413, "request too large"),
    ],
)
def test_other_failures_get_an_http_error(error: VdmError) -> None:
    assert responses_error_stream(error, MODEL) is None


def test_keepalive_is_in_progress_within_the_sequence() -> None:
    encoder = ResponsesStreamEncoder(MODEL, ROUTES)
    out = [encoder.keepalive()]  # before the upstream answered: the stream's start
    assert [f["type"] for f in _frames(out[0])] == ["response.created", "response.in_progress"]
    encoder.encode(TEXT[:2], out)
    beat = encoder.keepalive()
    out.append(beat)
    encoder.encode(TEXT[2:], out)
    body = b"".join(out)
    frames = _validated(body)
    assert [f["sequence_number"] for f in frames] == list(range(len(frames)))
    keepalive = _frames(beat)
    assert [f["type"] for f in keepalive] == ["response.in_progress"]
    assert keepalive[0]["response"]["status"] == "in_progress"
    assert _final_response(body).output_text == "Hello, wörld ✨"


@pytest.mark.parametrize("events", [TEXT, TOOLS, REDACTED], ids=["text", "tools", "redacted"])
def test_keepalives_anywhere_keep_the_sequence_gap_free(events: list[Event]) -> None:
    # A keepalive before the upstream answered, right after the start, and between every
    # two events (a read per event): each takes the next number, none is reused or skipped.
    encoder = ResponsesStreamEncoder(MODEL, ROUTES)
    out = [encoder.keepalive(), encoder.start(), encoder.keepalive()]
    assert out[1] == b"", "the keepalive started the stream: no second response.created"
    for event in events:
        encoder.encode([event], out)
        out.append(encoder.keepalive())
    assert out[-1] == b"", "nothing after the end"
    body = b"".join(out)
    frames = _validated(body)
    types = [f["type"] for f in frames]
    assert [f["sequence_number"] for f in frames] == list(range(len(frames)))
    assert types[0] == "response.created" and types.count("response.created") == 1
    assert types[-1] == "response.completed"
    assert types.count("response.in_progress") == 2 + len(events) - 1
    final = _final_response(body)
    assert final.status == "completed" and final.output


# --- the whole answer and the request echo ------------------------------------------------------


def _anthropic_message(events: list[Event]) -> dict[str, Any]:
    """The same events as an Anthropic client gets them, put together by the anthropic SDK:
    the non-streamed message for the same answer."""
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


def _without_ids(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in item.items() if k != "id"} for item in output]


@pytest.mark.parametrize(
    "events", [TEXT, TOOLS, REDACTED], ids=["text", "thinking+tools", "redacted"]
)
def test_whole_answer_equals_the_streamed_one(events: list[Event]) -> None:
    streamed = _frames(_stream(events))[-1]["response"]
    whole = response_from_message(
        _anthropic_message(events),
        MODEL,
        ROUTES,
        reasoning_tokens=7,
        response_id="resp_fixed",
        created_at=1_700_000_000,
    )
    Response.model_validate(whole)
    assert whole["output"], "the comparison must not pass on two empty outputs"
    # The stream relays the upstream's argument spacing; the whole answer re-serializes.
    for response in (streamed, whole):
        for item in response["output"]:
            if item["type"] == "function_call":
                item["arguments"] = json.loads(item["arguments"])
    assert _without_ids(whole["output"]) == _without_ids(streamed["output"])
    assert {k: v for k, v in whole.items() if k != "output"} == {
        k: v for k, v in streamed.items() if k != "output"
    }


def test_whole_answer_shapes() -> None:
    message = {
        "content": [
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": ""},
            {
                "type": "tool_use",
                "id": "toolu_8",
                "name": "echo",
                "input": {"_raw_arguments": "{x"},
            },
            {"type": "tool_use", "id": "toolu_7", "name": "apply_patch", "input": {"input": PATCH}},
            {"type": "server_tool_use", "id": "srv", "name": "web_search", "input": {}},
            {"type": "web_search_tool_result", "tool_use_id": "srv", "content": []},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 5, "output_tokens": 3},
    }
    body = response_from_message(message, MODEL, ROUTES)
    response = Response.model_validate(body)
    assert response.id.startswith("resp_") and response.status == "completed"
    kinds = [item.type for item in response.output]
    assert kinds == ["reasoning", "function_call", "custom_tool_call"]
    reasoning, call, custom = response.output
    assert reasoning.type == "reasoning" and reasoning.summary == []
    assert unpack_thinking(reasoning.encrypted_content) == {
        "type": "redacted_thinking",
        "data": "opaque",
    }
    assert call.type == "function_call" and call.arguments == "{x", "non-JSON goes back as is"
    assert custom.type == "custom_tool_call" and custom.input == PATCH
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.total_tokens) == (5, 8)


def _codex_request() -> dict[str, Any]:
    """Codex 0.169's recorded request, with the omitted tool schemas restored
    (shared/protocol/README.md)."""
    path = PROTOCOL / "codex" / "codex_01_exec_request.json"
    body: dict[str, Any] = copy.deepcopy(json.loads(path.read_text())["body"])
    body.pop("_tool_names", None)
    schema = {"type": "object", "properties": {}}
    for tool in body["tools"]:
        if tool.pop("_omitted", None) is None:
            continue
        tool["description"] = f"The {tool['name']} tool."
        if tool["type"] == "namespace":
            tool["tools"] = [
                {"type": "function", "name": name, "description": name, "parameters": schema}
                for name in tool["tools"]
            ]
        else:
            tool["parameters"] = schema
    return body


def test_response_echoes_codex_request_fields_and_validates() -> None:
    request = _codex_request()
    final = _frames(_stream(TOOLS, request=request))[-1]["response"]
    response = Response.model_validate(final)
    assert final["tools"] == request["tools"]
    assert [tool.type for tool in response.tools].count("namespace") == 1
    assert response.tools[-1].type == "web_search"
    assert response.tool_choice == "auto" and response.parallel_tool_calls is True
    assert response.reasoning is not None and response.reasoning.summary == "auto"
    assert final["store"] is False and final["instructions"] is None
    assert final["metadata"] == {}
    assert response.model == MODEL, "the client's model name, not the upstream's"
    sdk_final = _final_response(_stream(TOOLS, request=request))
    assert sdk_final.output[3].type == "function_call"
    assert sdk_final.output[3].namespace == "multi_agent_v1"


def test_response_defaults_without_a_request() -> None:
    final = _frames(_stream(TEXT))[-1]["response"]
    response = Response.model_validate(final)
    assert (response.tools, response.tool_choice, response.parallel_tool_calls) == (
        [],
        "auto",
        True,
    )
    assert final["text"] == {"format": {"type": "text"}}
    assert (final["temperature"], final["top_p"], final["max_output_tokens"]) == (None, None, None)


def test_sdk_yields_a_completed_event_with_the_whole_output() -> None:
    events = _sdk_events(_stream(TOOLS))
    last = events[-1]
    assert isinstance(last, ResponseCompletedEvent)
    assert [item.type for item in last.response.output][:2] == ["reasoning", "message"]
    assert last.response.output_text == "Working on it."
