"""OpenAI Responses answer/stream -> Anthropic Message/SSE (`anthropic_from_responses`), rule by
rule (../shared/reference/dialects.md A2, A3).

Streams are built with the strict fake's builders (the events OpenAI sends, with
`sequence_number`s and `event:` lines), decoded, encoded as the server does (`Translation`),
and checked against the exact Anthropic SSE grammar before anything else is asserted.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fakes.responses_upstream import (
    encrypted_content,
    function_call_item,
    message_item,
    reasoning_item,
    response_events,
    response_object,
    responses_usage,
)
from tests.protocol.grammar import Result, Translation, check_grammar
from tests.protocol.targets import target
from vdm.protocol.anthropic_from_responses import (
    ResponsesStreamDecoder,
    message_from_response,
)
from vdm.protocol.codec import Target
from vdm.protocol.errors import VdmError
from vdm.protocol.signatures import unpack_reasoning

MODEL = "gpt-5.6-terra"


def frame(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def run(
    events: list[dict[str, Any]],
    *,
    tgt: Target | None = None,
    thinking: bool = True,
    bytewise: bool = False,
) -> Result:
    stream = Translation(ResponsesStreamDecoder(tgt or target(MODEL), thinking=thinking), MODEL)
    out = [stream.start()]
    raw = b"".join(frame(e) for e in events)
    reads = [raw[i : i + 1] for i in range(len(raw))] if bytewise else [frame(e) for e in events]
    for read in reads:
        out.extend(stream.feed(read))
    out.extend(stream.finish())
    return check_grammar(b"".join(out))


def decode(response: dict[str, Any], tgt: Target | None = None, **kw: Any) -> dict[str, Any]:
    return message_from_response(response, tgt or target(MODEL), **kw)


REASONING = reasoning_item(["First I look.", "Then I run it."], id="rs_1")
CALL = function_call_item("Bash", '{"command": "echo hello"}', call_id="call_1", id="fc_1")


# --- streams ----------------------------------------------------------------------------------


def test_text_stream_with_usage() -> None:
    usage = responses_usage(120, 9, cached_tokens=100, reasoning_tokens=3)
    result = run(response_events([message_item("Hello there, friend")], pieces=3, usage=usage))
    assert [b.type for b in result.blocks] == ["text"]
    assert result.text == "Hello there, friend"
    assert len(result.blocks[0].deltas) == 3
    assert result.stop_reason == "end_turn"
    assert result.usage == {
        "input_tokens": 20,
        "output_tokens": 9,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 0,
    }


def test_reasoning_and_a_function_call() -> None:
    result = run(response_events([REASONING, CALL], pieces=2))
    thinking, tool = result.blocks
    assert thinking.type == "thinking"
    assert thinking.thinking == "First I look.\n\nThen I run it."
    signatures = [d["signature"] for d in thinking.deltas if d["type"] == "signature_delta"]
    assert len(signatures) == 1, "the SDK replaces the signature on every delta: send it once"
    # The `done` copy of the encrypted content (the `added` one is truncated).
    assert unpack_reasoning(signatures[0]) == ("rs_1", encrypted_content("rs_1"))
    assert thinking.deltas[-1]["type"] == "signature_delta"
    assert tool.start == {"type": "tool_use", "id": "call_1", "name": "Bash", "input": {}}
    assert tool.input == {"command": "echo hello"}
    assert len(tool.partial_json) == 3, "arguments stream as they arrive"
    assert result.stop_reason == "tool_use"


def test_reasoning_without_summary_is_a_signature_only_block() -> None:
    result = run(response_events([reasoning_item([], id="rs_2"), CALL]))
    thinking = result.blocks[0]
    assert thinking.type == "thinking" and thinking.thinking == ""
    assert [d["type"] for d in thinking.deltas] == ["signature_delta"]
    assert unpack_reasoning(thinking.deltas[0]["signature"]) == ("rs_2", encrypted_content("rs_2"))


def test_reasoning_with_nothing_to_replay_makes_no_block() -> None:
    bare = reasoning_item([], id="rs_3", encrypted=False)
    result = run(response_events([bare, message_item("Hi")]))
    assert [b.type for b in result.blocks] == ["text"]


def test_no_thinking_blocks_when_the_client_switched_thinking_off() -> None:
    result = run(response_events([REASONING, message_item("Hi")]), thinking=False)
    assert [b.type for b in result.blocks] == ["text"]


def test_raw_reasoning_text_streams_as_thinking() -> None:
    events = [
        {"type": "response.created", "response": {"id": "resp_1"}},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {"id": "rs_9", "type": "reasoning", "summary": []},
        },
        {
            "type": "response.reasoning_text.delta",
            "output_index": 0,
            "item_id": "rs_9",
            "content_index": 0,
            "delta": "Hmm, ",
        },
        {
            "type": "response.reasoning_text.delta",
            "output_index": 0,
            "item_id": "rs_9",
            "content_index": 0,
            "delta": "ok.",
        },
        {
            "type": "response.output_item.done",
            "output_index": 0,
            "item": {
                "id": "rs_9",
                "type": "reasoning",
                "summary": [],
                "content": [{"type": "reasoning_text", "text": "Hmm, ok."}],
            },
        },
        {"type": "response.completed", "response": response_object([])},
    ]
    result = run(events)
    assert result.thinking == "Hmm, ok."
    # Without encrypted content the signature carries the id only (never replayed).
    signature = result.blocks[0].deltas[-1]["signature"]
    assert unpack_reasoning(signature) == ("rs_9", None)


def test_parallel_calls_are_separate_blocks() -> None:
    second = function_call_item("Read", '{"path": "a.txt"}', call_id="call_2", id="fc_2")
    result = run(response_events([CALL, second]))
    assert [(b.start["id"], b.input) for b in result.blocks] == [
        ("call_1", {"command": "echo hello"}),
        ("call_2", {"path": "a.txt"}),
    ]


def test_a_call_whose_arguments_arrive_only_at_the_end() -> None:
    events = [
        e
        for e in response_events([CALL, function_call_item("Noop", "", call_id="call_n")])
        if e["type"] != "response.function_call_arguments.delta"
    ]
    result = run(events)
    assert [b.partial_json for b in result.blocks] == [['{"command": "echo hello"}'], ["{}"]]


def test_aliased_names_and_renamed_ids_map_back_to_the_clients() -> None:
    tgt = target(MODEL)
    tgt.tool_names["mcp__docs_search_1a2b3c4d"] = "mcp__docs.search"
    tgt.tool_ids["call_short"] = "toolu_" + "x" * 80
    call = function_call_item("mcp__docs_search_1a2b3c4d", "{}", call_id="call_short")
    result = run(response_events([call]), tgt=tgt)
    assert result.blocks[0].start["name"] == "mcp__docs.search"
    assert result.blocks[0].start["id"] == "toolu_" + "x" * 80


def test_refusal() -> None:
    result = run(response_events([message_item(None, refusal="I can't help with that.")]))
    assert result.text == "I can't help with that."
    assert result.stop_reason == "refusal"


@pytest.mark.parametrize(
    ("reason", "stop"),
    [("max_output_tokens", "max_tokens"), ("content_filter", "refusal")],
)
def test_incomplete_responses(reason: str, stop: str) -> None:
    events = response_events(
        [REASONING, message_item("Partial answer")], status="incomplete", incomplete_reason=reason
    )
    result = run(events)
    assert result.stop_reason == stop
    assert result.text == "Partial answer"


def test_an_incomplete_response_closes_the_item_it_cut() -> None:
    events = response_events(
        [message_item("Cut off mid")], status="incomplete", incomplete_reason="max_output_tokens"
    )
    events = [
        e
        for e in events
        if e["type"] not in ("response.output_item.done", "response.content_part.done")
    ]
    result = run(events)
    assert result.text == "Cut off mid" and result.stop_reason == "max_tokens"


@pytest.mark.parametrize(
    ("code", "status", "starts"),
    [
        ("server_error", 500, "upstream error: "),
        ("rate_limit_exceeded", 429, "upstream error: "),
        ("server_is_overloaded", 529, "upstream error: "),
        ("context_length_exceeded", 400, "prompt is too long: "),
        ("something_new", 500, "upstream error: "),
    ],
)
def test_a_failed_response_raises_with_the_mapped_status(
    code: str, status: int, starts: str
) -> None:
    error = {"code": code, "message": "The model had a problem."}
    decoder = ResponsesStreamDecoder(target(MODEL))
    events = response_events([message_item("Hi")], status="failed", error=error)
    with pytest.raises(VdmError) as err:
        for event in events:
            decoder.feed(frame(event))
    assert err.value.status == status
    assert err.value.message == starts + "The model had a problem."


@pytest.mark.parametrize(
    "event",
    [
        {"type": "error", "code": "rate_limit_exceeded", "message": "Slow down.", "param": None},
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "code": "rate_limit_exceeded",
                "message": "Slow down.",
            },
        },
    ],
    ids=["flat", "nested"],
)
def test_error_events(event: dict[str, Any]) -> None:
    decoder = ResponsesStreamDecoder(target(MODEL))
    decoder.feed(frame(response_events([])[0]))
    with pytest.raises(VdmError) as err:
        decoder.feed(frame(event))
    assert (err.value.status, err.value.message) == (429, "upstream error: Slow down.")


def test_a_stream_cut_before_its_terminal_event_is_a_502() -> None:
    decoder = ResponsesStreamDecoder(target(MODEL))
    for event in response_events([message_item("Hi")])[:-1]:
        decoder.feed(frame(event))
    assert not decoder.done
    with pytest.raises(VdmError) as err:
        decoder.finish()
    assert err.value.status == 502
    assert "ended before the response was complete" in err.value.message


def test_done_after_the_terminal_event_and_nothing_after() -> None:
    decoder = ResponsesStreamDecoder(target(MODEL))
    events = response_events([message_item("Hi")])
    raw = b"".join(frame(e) for e in events)
    out = decoder.feed(
        raw + frame({"type": "response.output_text.delta", "output_index": 0, "delta": "late"})
    )
    assert decoder.done
    assert decoder.usage["output_tokens"] > 0
    assert decoder.feed(b"more") == [] and decoder.finish() == []
    assert sum(1 for e in out if type(e).__name__ == "MessageEnd") == 1


def test_a_last_event_without_its_blank_line_still_counts() -> None:
    decoder = ResponsesStreamDecoder(target(MODEL))
    raw = b"".join(frame(e) for e in response_events([message_item("Hi")]))
    decoder.feed(raw[:-2])
    assert not decoder.done
    assert decoder.finish()[-1].stop_reason == "end_turn"  # type: ignore[union-attr]


def test_byte_by_byte_reads_give_the_same_result() -> None:
    events = response_events([REASONING, message_item("Done: hello."), CALL], pieces=4)
    whole, bytewise = run(events), run(events, bytewise=True)
    assert [(b.start, b.deltas) for b in whole.blocks] == [
        (b.start, b.deltas) for b in bytewise.blocks
    ]


def test_interleaved_items_never_interleave_blocks() -> None:
    # The events of item 1 arrive before item 0 is done: they wait their turn.
    text = response_events([message_item("Looking.")])
    call = response_events([CALL])
    first = [e for e in text if "output_index" in e]
    second = [dict(e, output_index=1) for e in call if "output_index" in e]
    events = [text[0], first[0], second[0], first[1], second[1], first[2], second[2]]
    events += first[3:] + second[3:] + [call[-1]]
    result = run(events)
    assert [b.type for b in result.blocks] == ["text", "tool_use"]
    assert result.text == "Looking."
    assert result.blocks[1].input == {"command": "echo hello"}


def test_items_sent_whole_without_deltas() -> None:
    events = [
        e
        for e in response_events([REASONING, message_item("Whole text")])
        if not e["type"].endswith(".delta")
        and "part" not in e["type"]
        and not e["type"].endswith("text.done")
    ]
    result = run(events)
    assert result.thinking == "First I look.\n\nThen I run it."
    assert result.text == "Whole text"


@pytest.mark.parametrize("shape", ["whole", "completed-only"])
def test_items_never_announced_are_decoded_whole(shape: str) -> None:
    """Servers that send each item as one `output_item.done`, or only the terminal event
    with its `output`: every item comes out, in order, and the stop reason follows."""
    refusal = message_item(None, refusal="I can't.", id="msg_r")
    events = response_events([REASONING, message_item("Running."), CALL, refusal], shape=shape)
    assert not any(e["type"] == "response.output_item.added" for e in events)
    result = run(events)
    assert [b.type for b in result.blocks] == ["thinking", "text", "tool_use", "text"]
    assert result.blocks[0].thinking == "First I look.\n\nThen I run it."
    signature = result.blocks[0].deltas[-1]["signature"]
    assert unpack_reasoning(signature) == ("rs_1", encrypted_content("rs_1"))
    assert result.blocks[1].text == "Running." and result.blocks[3].text == "I can't."
    assert result.blocks[2].start["id"] == "call_1"
    assert result.blocks[2].input == {"command": "echo hello"}
    assert result.stop_reason == "tool_use"


def test_a_completed_only_text_answer_ends_with_its_text() -> None:
    result = run(response_events([message_item("Only at the end")], shape="completed-only"))
    assert result.text == "Only at the end" and result.stop_reason == "end_turn"
    refused = run(response_events([message_item(None, refusal="No.")], shape="completed-only"))
    assert refused.text == "No." and refused.stop_reason == "refusal"


def test_deltas_of_an_unannounced_item_are_not_doubled() -> None:
    """Deltas for an item whose `added` never came are dropped (they cannot open a block);
    the item comes whole from the terminal event, once, after the items decoded meanwhile."""
    streamed = response_events([message_item("Hello"), CALL], pieces=2)
    events = [
        e
        for e in streamed
        if not (e.get("output_index") == 0 and e["type"] != "response.output_text.delta")
    ]
    result = run(events)
    assert [b.type for b in result.blocks] == ["tool_use", "text"]
    assert result.blocks[0].input == {"command": "echo hello"}
    assert result.blocks[1].text == "Hello"
    assert result.stop_reason == "tool_use"


def test_items_already_decoded_are_not_repeated_at_the_end() -> None:
    result = run(response_events([REASONING, message_item("Once."), CALL]))
    assert [b.type for b in result.blocks] == ["thinking", "text", "tool_use"]


def test_not_json_is_a_502() -> None:
    decoder = ResponsesStreamDecoder(target(MODEL))
    with pytest.raises(VdmError) as err:
        decoder.feed(b"data: {nope\n\n")
    assert err.value.status == 502


# --- whole answers ----------------------------------------------------------------------------


def test_whole_answer_with_reasoning_text_and_a_call() -> None:
    usage = responses_usage(50, 20, cached_tokens=30)
    answer = response_object([REASONING, message_item("Running it."), CALL], usage=usage)
    message = decode(answer, target(MODEL, requested="openai:gpt-5.6-terra"))
    assert message["model"] == "openai:gpt-5.6-terra"
    thinking, text, tool = message["content"]
    assert thinking["thinking"] == "First I look.\n\nThen I run it."
    assert unpack_reasoning(thinking["signature"]) == ("rs_1", encrypted_content("rs_1"))
    assert text == {"type": "text", "text": "Running it."}
    assert tool == {
        "type": "tool_use",
        "id": "call_1",
        "name": "Bash",
        "input": {"command": "echo hello"},
    }
    assert message["stop_reason"] == "tool_use"
    assert message["usage"] == {
        "input_tokens": 20,
        "output_tokens": 20,
        "cache_read_input_tokens": 30,
        "cache_creation_input_tokens": 0,
    }


def test_whole_answer_rules() -> None:
    assert decode(response_object([REASONING, message_item("Hi")]), thinking=False)["content"] == [
        {"type": "text", "text": "Hi"}
    ]
    bad = function_call_item("Bash", '{"command": "echo', call_id="call_x")
    assert decode(response_object([bad]))["content"][0]["input"] == {
        "_raw_arguments": '{"command": "echo'
    }
    refused = decode(response_object([message_item(None, refusal="No.")]))
    assert (refused["content"], refused["stop_reason"]) == (
        [{"type": "text", "text": "No."}],
        "refusal",
    )
    cut = decode(
        response_object(
            [message_item("Par")], status="incomplete", incomplete_reason="max_output_tokens"
        )
    )
    assert cut["stop_reason"] == "max_tokens"
    written = responses_usage(100, 5, cached_tokens=40)
    written["input_tokens_details"]["cache_write_tokens"] = 10
    assert (
        decode(response_object([message_item("Hi")], usage=written))["usage"]["input_tokens"] == 50
    )


def test_a_failed_response_inside_a_200_is_an_error() -> None:
    error = {"code": "server_is_overloaded", "message": "Try later."}
    with pytest.raises(VdmError) as err:
        decode(response_object([], status="failed", error=error))
    assert (err.value.status, err.value.message) == (529, "upstream error: Try later.")


def test_the_final_output_never_repeats_an_item_decoded_under_another_index() -> None:
    """A server whose output_index differs from the position in the final output (a reasoning
    item listed first at the end): the call must come out once, or turn 2 is a 400."""
    call = function_call_item("Bash", '{"command":"ls"}', call_id="call_1")
    message = message_item("Listing.")
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": response_object([], status="in_progress")},
        {"type": "response.output_item.added", "output_index": 0, "item": message},
        {"type": "response.output_item.done", "output_index": 0, "item": message},
        {"type": "response.output_item.added", "output_index": 1, "item": call},
        {"type": "response.output_item.done", "output_index": 1, "item": call},
        {
            "type": "response.completed",
            "response": response_object([reasoning_item(["hm"]), message, call]),
        },
    ]
    result = run(events)
    assert [b.start["id"] for b in result.of_type("tool_use")] == ["call_1"]
    assert result.stop_reason == "tool_use"


def test_an_error_read_with_text_before_it_lets_the_text_out_first() -> None:
    """Text events and an `error` event in one read: the text first, then the error."""
    decoder = ResponsesStreamDecoder(target(MODEL))
    events = response_events([message_item("Hi")])[:-1]
    error = {"type": "error", "code": "rate_limit_exceeded", "message": "Slow down."}
    out = decoder.feed(b"".join(frame(e) for e in [*events, error]))
    assert "Hi" in [getattr(e, "text", None) for e in out]
    with pytest.raises(VdmError) as err:
        decoder.finish()
    assert (err.value.status, err.value.message) == (429, "upstream error: Slow down.")
