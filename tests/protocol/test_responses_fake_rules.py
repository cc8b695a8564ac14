"""The strict Responses fake (`tests/fakes/responses_upstream.py`) rejects what the real API
rejects, with its status and message: a lenient fake would let the codec tests prove nothing.
Also the fake's replies: they adapt to the request as the real API does."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fakes.openai_upstream import JsonReply, Recorded
from tests.fakes.responses_upstream import (
    ResponsesSseReply,
    check_request,
    encrypted_content,
    responses_reply,
)

OK_INPUT = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}]
FC = {"type": "function_call", "call_id": "call_1", "name": "Bash", "arguments": "{}"}
FCO = {"type": "function_call_output", "call_id": "call_1", "output": "ok"}
TOOL = {"type": "function", "name": "Bash", "parameters": {"type": "object"}, "strict": False}


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt-5.6-terra", "input": OK_INPUT, "store": False, **fields}


def reasoning(item_id: str = "rs_1", **fields: Any) -> dict[str, Any]:
    item = {"type": "reasoning", "id": item_id, "summary": []}
    item["encrypted_content"] = encrypted_content(item_id)
    return {**item, **fields}


def rejected(payload: Any) -> tuple[int, str, str | None, str | None]:
    rejection = check_request(payload)
    assert rejection is not None, "the real API rejects this"
    return rejection.status, rejection.message, rejection.param, rejection.code


def test_a_well_formed_tool_loop_is_accepted() -> None:
    items = [*OK_INPUT, reasoning(), FC, FCO, {"role": "developer", "content": "note"}]
    payload = body(
        input=items,
        tools=[TOOL],
        tool_choice={"type": "function", "name": "Bash"},
        reasoning={"effort": "high", "summary": "auto"},
        include=["reasoning.encrypted_content"],
        max_output_tokens=16,
        prompt_cache_key="s",
        safety_identifier="x" * 64,
        stream=True,
    )
    assert check_request(payload) is None


@pytest.mark.parametrize("param", ["messages", "max_tokens", "max_completion_tokens", "stop"])
def test_chat_only_parameters_are_unknown(param: str) -> None:
    assert rejected(body(**{param: 1})) == (
        400,
        f"Unknown parameter: '{param}'.",
        param,
        "unknown_parameter",
    )


def test_chat_shaped_tools_miss_their_name() -> None:
    chat_tool = {"type": "function", "function": {"name": "Bash", "parameters": {}}}
    assert rejected(body(tools=[chat_tool]))[1:] == (
        "Missing required parameter: 'tools[0].name'.",
        "tools[0].name",
        "missing_required_parameter",
    )


def test_tool_names_must_match_openais_pattern_and_length() -> None:
    status, message, param, _ = rejected(body(tools=[dict(TOOL, name="mcp__docs.search")]))
    assert (status, param) == (400, "tools[0].name")
    assert "does not match pattern" in message
    _, message, _, code = rejected(body(tools=[dict(TOOL, name="a" * 65)]))
    assert code == "string_above_max_length" and "got a string with length 65" in message


def test_strict_tools_need_a_strict_schema_and_strict_is_on_unless_false() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    loose = {"type": "function", "name": "T", "parameters": schema}
    _, message, _, _ = rejected(body(tools=[loose]))
    assert message.startswith("Invalid schema for function 'T': In context=(), ")
    assert "'additionalProperties' is required to be supplied and to be false" in message
    closed = dict(schema, additionalProperties=False)
    _, message, _, _ = rejected(body(tools=[dict(loose, parameters=closed, strict=True)]))
    assert "Missing 'a'" in message
    assert check_request(body(tools=[dict(loose, strict=False)])) is None


@pytest.mark.parametrize("param", ["temperature", "top_p"])
def test_sampling_on_reasoning_models(param: str) -> None:
    assert rejected(body(**{param: 0.5}))[1] == (
        f"Unsupported parameter: '{param}' is not supported with this model."
    )
    assert check_request(body(model="gpt-4o", **{param: 0.5})) is None


def test_efforts_each_model_takes() -> None:
    assert rejected(body(model="gpt-4o", reasoning={"effort": "low"}))[2] == "reasoning.effort"
    _, message, _, code = rejected(body(model="o3", reasoning={"effort": "xhigh"}))
    assert code == "unsupported_value"
    assert message == (
        "Unsupported value: 'xhigh' is not supported with the 'o3' model. "
        "Supported values are: 'low', 'medium', and 'high'."
    )
    assert check_request(body(reasoning={"effort": "xhigh"})) is None


def test_max_output_tokens_minimum() -> None:
    assert rejected(body(max_output_tokens=1))[3] == "integer_below_min_value"


def test_chat_content_parts_are_invalid() -> None:
    chat = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    _, message, param, _ = rejected(body(input=chat))
    assert param == "input[0].content[0].type"
    assert message.startswith("Invalid value: 'text'. Supported values are: 'input_text'")


def test_reasoning_items_need_a_summary_and_no_status() -> None:
    no_summary = {k: v for k, v in reasoning().items() if k != "summary"}
    assert rejected(body(input=[*OK_INPUT, no_summary, FC, FCO]))[1] == (
        "Missing required parameter: 'input[1].summary'."
    )
    assert rejected(body(input=[*OK_INPUT, reasoning(status="completed"), FC, FCO]))[1] == (
        "Unknown parameter: 'input[1].status'."
    )


def test_reasoning_items_need_their_following_item() -> None:
    for items in ([*OK_INPUT, reasoning()], [*OK_INPUT, reasoning(), *OK_INPUT]):
        assert rejected(body(input=items))[1] == (
            "Item 'rs_1' of type 'reasoning' was provided without its required following item."
        )
    assistant = {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Hi"}],
    }
    assert check_request(body(input=[*OK_INPUT, reasoning(), assistant])) is None


def test_reasoning_items_by_id_only_need_store() -> None:
    by_id = {"type": "reasoning", "id": "rs_1", "summary": []}
    status, message, _, _ = rejected(body(input=[*OK_INPUT, by_id, FC, FCO]))
    assert status == 404
    assert message.startswith("Item with id 'rs_1' not found. Items are not persisted when `store`")


def test_encrypted_content_must_be_the_one_issued() -> None:
    forged = reasoning(encrypted_content=encrypted_content("rs_other"))
    _, message, _, code = rejected(body(input=[*OK_INPUT, forged, FC, FCO]))
    assert code == "invalid_encrypted_content"
    assert message.startswith("The encrypted content for item rs_1 could not be verified.")


def test_calls_and_outputs_must_pair() -> None:
    assert rejected(body(input=[*OK_INPUT, FCO]))[1] == (
        "No tool call found for function call output with call_id call_1."
    )
    assert rejected(body(input=[*OK_INPUT, FC, *OK_INPUT]))[1] == (
        "No tool output found for function call call_1."
    )
    long = dict(FC, call_id="c" * 65)
    assert rejected(body(input=[*OK_INPUT, long, dict(FCO, call_id="c" * 65)]))[3] == (
        "string_above_max_length"
    )


# --- replies ----------------------------------------------------------------------------------


def recorded(payload: dict[str, Any]) -> Recorded:
    return Recorded("POST", "/v1/responses", "", {}, json.dumps(payload).encode())


def test_replies_carry_encrypted_content_and_summaries_only_when_asked() -> None:
    reply = responses_reply(reasoning=["Plan."], tool_calls=[("Bash", "{}")])
    plain = reply(recorded(body()))
    assert isinstance(plain, JsonReply) and isinstance(plain.body, dict)
    rs = plain.body["output"][0]
    assert rs["summary"] == [] and "encrypted_content" not in rs
    asked = reply(
        recorded(body(include=["reasoning.encrypted_content"], reasoning={"summary": "auto"}))
    )
    assert isinstance(asked, JsonReply) and isinstance(asked.body, dict)
    rs = asked.body["output"][0]
    assert rs["summary"] == [{"type": "summary_text", "text": "Plan."}]
    assert rs["encrypted_content"] == encrypted_content(rs["id"])


def test_streamed_replies_use_the_real_framing() -> None:
    reply = responses_reply("Hi")(recorded(body(stream=True)))
    assert isinstance(reply, ResponsesSseReply)
    wire = reply.wire().split(b"\r\n\r\n", 1)[1]
    assert b"event: response.created\ndata: {" in wire
    assert b"[DONE]" not in wire
    assert b'"sequence_number":0' in wire
