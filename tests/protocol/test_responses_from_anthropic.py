"""Anthropic Messages request -> OpenAI Responses request (`responses_from_anthropic`), rule by
rule (../shared/reference/dialects.md A1). Every body built here must also pass the strict
fake's check of what the real API accepts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fakes.responses_upstream import check_request, encrypted_content
from tests.protocol.targets import target
from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.codec import Target
from vdm.protocol.errors import VdmError
from vdm.protocol.responses_from_anthropic import responses_request_from_messages
from vdm.protocol.responses_input import INTERRUPTED
from vdm.protocol.signatures import (
    CHAT_REASONING,
    pack_reasoning,
    pack_thought,
    unpack_reasoning,
)

MODEL = "gpt-5.6-terra"
BASH = {
    "name": "Bash",
    "description": "Run a command",
    "input_schema": {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"command": {"type": "string"}},
        "required": ["command"],
        "additionalProperties": False,
    },
}
CLAUDE_CODE_USER = json.dumps(
    {"device_id": "d" * 64, "account_uuid": "acct-1", "session_id": "5e55-10n"}
)


def encode(
    body: dict[str, Any], tgt: Target | None = None, *, accepted: bool = True
) -> dict[str, Any]:
    req = MessagesRequest.model_validate({"model": MODEL, "max_tokens": 1000, **body})
    out = responses_request_from_messages(req, tgt or target(MODEL))
    if accepted:
        rejection = check_request(json.loads(json.dumps(out)))
        assert rejection is None, rejection.message
    return out


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def assistant(content: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


def rs(item_id: str = "rs_1", thinking: str = "Plan.", ec: str | None = "") -> dict[str, Any]:
    """A thinking block as vdm hands it out for a Responses reasoning item."""
    enc = encrypted_content(item_id) if ec == "" else ec
    return {"type": "thinking", "thinking": thinking, "signature": pack_reasoning(item_id, enc)}


def call(tool_id: str = "call_1", name: str = "Bash", **input: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": input or {"command": "ls"}}


def result(tool_id: str = "call_1", content: Any = "ok", **extra: Any) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": tool_id, "content": content, **extra}


def tool_loop(*assistant_blocks: dict[str, Any], reply: Any = None) -> list[dict[str, Any]]:
    return [
        user("list files"),
        assistant(list(assistant_blocks)),
        user(reply if reply is not None else [result()]),
    ]


def kinds(body: dict[str, Any]) -> list[str]:
    return [item["type"] if item["type"] != "message" else item["role"] for item in body["input"]]


# --- system and messages ----------------------------------------------------------------------


def test_system_blocks_become_instructions_without_the_billing_header() -> None:
    body = encode(
        {
            "system": [
                {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.330;"},
                {
                    "type": "text",
                    "text": "You are Claude Code.",
                    "cache_control": {"type": "ephemeral"},
                },
                {"type": "text", "text": "Be brief."},
            ],
            "messages": [user("hi")],
        }
    )
    assert body["instructions"] == "You are Claude Code.\n\nBe brief."
    assert body["input"] == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    ]


def test_no_system_no_instructions() -> None:
    assert "instructions" not in encode({"messages": [user("hi")]})


def test_mid_conversation_system_becomes_a_developer_item_in_place() -> None:
    body = encode(
        {"messages": [user("hi"), {"role": "system", "content": "env: linux"}, user("go")]}
    )
    assert kinds(body) == ["user", "developer", "user"]
    assert body["input"][1]["content"] == [{"type": "input_text", "text": "env: linux"}]


def test_system_message_never_sits_between_a_call_and_its_output() -> None:
    messages = [
        user("run"),
        assistant([call()]),
        {"role": "system", "content": [{"type": "text", "text": "reminder"}]},
        user([result(), {"type": "text", "text": "and then?"}]),
    ]
    body = encode({"messages": messages})
    assert kinds(body) == ["user", "function_call", "function_call_output", "developer", "user"]


def test_assistant_text_and_tool_calls_keep_their_order() -> None:
    messages = [
        user("go"),
        assistant(
            [
                {"type": "text", "text": "First"},
                {"type": "text", "text": "second"},
                call("call_a"),
                {"type": "text", "text": "between"},
                call("call_b", command="pwd"),
            ]
        ),
        user([result("call_a"), result("call_b")]),
    ]
    body = encode({"messages": messages})
    assert kinds(body) == [
        "user",
        "assistant",
        "function_call",
        "assistant",
        "function_call",
        "function_call_output",
        "function_call_output",
    ]
    assert body["input"][1]["content"] == [
        {"type": "output_text", "text": "First"},
        {"type": "output_text", "text": "second"},
    ]
    fc = body["input"][4]
    assert fc == {
        "type": "function_call",
        "call_id": "call_b",
        "name": "Bash",
        "arguments": '{"command":"pwd"}',
    }
    assert "id" not in fc  # store:false: no item ids


def test_assistant_string_content_is_an_output_text_message() -> None:
    body = encode({"messages": [user("hi"), assistant("Hello!"), user("again")]})
    assert body["input"][1] == {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Hello!"}],
    }


# --- user content -----------------------------------------------------------------------------


def test_images_and_pdfs_become_input_parts() -> None:
    png = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
    pdf = {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": png},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
        {"type": "document", "source": pdf, "title": "spec.pdf"},
        {"type": "document", "source": {"type": "url", "url": "https://example.com/b.pdf"}},
        {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": "notes"},
        },
    ]
    parts = encode({"messages": [user(content)]})["input"][0]["content"]
    assert parts == [
        {"type": "input_text", "text": "What is this?"},
        {
            "type": "input_image",
            "image_url": "data:image/png;base64,iVBORw0KGgo=",
            "detail": "auto",
        },
        {"type": "input_image", "image_url": "https://example.com/a.jpg", "detail": "auto"},
        {
            "type": "input_file",
            "filename": "spec.pdf",
            "file_data": "data:application/pdf;base64,JVBERi0x",
        },
        {"type": "input_file", "file_url": "https://example.com/b.pdf"},
        {"type": "input_text", "text": "notes"},
    ]


def test_file_id_sources_are_a_clear_400() -> None:
    image = {"type": "image", "source": {"type": "file", "file_id": "file_1"}}
    with pytest.raises(VdmError) as err:
        encode({"messages": [user([image])]}, accepted=False)
    assert err.value.status == 400
    assert "image.source" in err.value.message


# --- tool results -----------------------------------------------------------------------------


def test_tool_results_come_first_then_the_turns_other_content() -> None:
    reply = [
        {"type": "text", "text": "Here you go."},
        result("call_1", [{"type": "text", "text": "line 1"}, {"type": "text", "text": "line 2"}]),
    ]
    body = encode({"messages": tool_loop(call(), reply=reply)})
    assert kinds(body) == ["user", "function_call", "function_call_output", "user"]
    assert body["input"][2] == {
        "type": "function_call_output",
        "call_id": "call_1",
        "output": "line 1\nline 2",
    }
    assert body["input"][3]["content"] == [{"type": "input_text", "text": "Here you go."}]


def test_is_error_survives_as_a_prefix() -> None:
    body = encode({"messages": tool_loop(call(), reply=[result(content="denied", is_error=True)])})
    assert body["input"][2]["output"] == "[tool error] denied"


def test_images_in_tool_results_become_an_output_array() -> None:
    png = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}}
    reply = [result(content=[{"type": "text", "text": "screenshot"}, png], is_error=True)]
    output = encode({"messages": tool_loop(call(), reply=reply)})["input"][2]["output"]
    assert output == [
        {"type": "input_text", "text": "[tool error]"},
        {"type": "input_text", "text": "screenshot"},
        {"type": "input_image", "image_url": "data:image/png;base64,AA==", "detail": "auto"},
    ]


def test_a_call_without_its_result_gets_an_interrupted_output() -> None:
    body = encode({"messages": tool_loop(call("call_1"), call("call_2"), reply=[result("call_1")])})
    outputs = [i for i in body["input"] if i["type"] == "function_call_output"]
    assert outputs == [
        {"type": "function_call_output", "call_id": "call_1", "output": "ok"},
        {"type": "function_call_output", "call_id": "call_2", "output": INTERRUPTED},
    ]


def test_a_result_without_its_call_is_kept_as_user_text() -> None:
    body = encode({"messages": [user("hi"), assistant("Hello"), user([result("toolu_gone")])]})
    assert kinds(body) == ["user", "assistant", "user"]
    assert body["input"][2]["content"][0]["text"].startswith("[result of tool call toolu_gone]")


def test_long_call_ids_are_shortened_consistently() -> None:
    long_id = "toolu_01" + "x" * 40 + "_vdmg1_" + "s" * 200  # carries a Gemini signature
    tgt = target(MODEL)
    body = encode({"messages": tool_loop(call(long_id), reply=[result(long_id)])}, tgt)
    fc, out = body["input"][1], body["input"][2]
    assert len(fc["call_id"]) <= 64
    assert fc["call_id"] == out["call_id"]
    assert tgt.tool_ids[fc["call_id"]] == long_id


# --- reasoning replay -------------------------------------------------------------------------


def test_reasoning_travels_back_as_a_reasoning_item_before_its_output() -> None:
    body = encode({"messages": tool_loop(rs("rs_abc", "Plan."), call())})
    assert kinds(body) == ["user", "reasoning", "function_call", "function_call_output"]
    assert body["input"][1] == {
        "type": "reasoning",
        "id": "rs_abc",
        "summary": [{"type": "summary_text", "text": "Plan."}],
        "encrypted_content": encrypted_content("rs_abc"),
    }


def test_reasoning_without_text_still_travels_with_an_empty_summary() -> None:
    body = encode({"messages": tool_loop(rs("rs_abc", ""), call())})
    assert body["input"][1]["summary"] == []


def test_reasoning_not_followed_by_an_output_item_is_dropped() -> None:
    messages = [user("hi"), assistant([{"type": "text", "text": "Hi"}, rs("rs_end")]), user("ok")]
    assert "reasoning" not in kinds(encode({"messages": messages}))
    # Two in a row: only the one an output item follows is kept.
    body = encode({"messages": tool_loop(rs("rs_1"), rs("rs_2"), call())})
    assert [i.get("id") for i in body["input"] if i["type"] == "reasoning"] == ["rs_2"]


@pytest.mark.parametrize(
    "block",
    [
        {"type": "thinking", "thinking": "Claude's", "signature": "EqQBCkYIBxgCKkB..."},
        {"type": "thinking", "thinking": "DeepSeek's", "signature": CHAT_REASONING},
        {"type": "thinking", "thinking": "Gemini's", "signature": pack_thought("c2ln")},
        {"type": "thinking", "thinking": "unsigned"},
        {"type": "redacted_thinking", "data": "EmwKAhgB..."},
        rs("rs_no_ec", ec=None),  # store:false cannot replay an item by id
    ],
    ids=["anthropic", "chat-reasoning", "gemini", "unsigned", "redacted", "no-encrypted-content"],
)
def test_foreign_thinking_blocks_are_dropped(block: dict[str, Any]) -> None:
    body = encode({"messages": tool_loop(block, call())})
    assert kinds(body) == ["user", "function_call", "function_call_output"]


def test_reasoning_is_not_replayed_when_thinking_is_off_or_the_model_does_not_reason() -> None:
    messages = tool_loop(rs(), call())
    off = encode({"messages": messages, "thinking": {"type": "disabled"}})
    assert "reasoning" not in kinds(off)
    chat_model = encode({"messages": messages}, target("gpt-4o"))
    assert "reasoning" not in kinds(chat_model)


def test_signature_round_trip_helper() -> None:
    assert unpack_reasoning(rs("rs_x")["signature"]) == ("rs_x", encrypted_content("rs_x"))


# --- tools ------------------------------------------------------------------------------------


def test_tools_are_flat_non_strict_functions_without_schema_dialect() -> None:
    web = {"type": "web_search_20250305", "name": "web_search"}
    bare = {
        "name": "Noop",
        "input_schema": {"type": "object"},
        "strict": True,
        "cache_control": {"type": "ephemeral"},
    }
    body = encode({"messages": [user("hi")], "tools": [BASH, web, bare]})
    assert body["tools"] == [
        {
            "type": "function",
            "name": "Bash",
            "description": "Run a command",
            "parameters": {
                "type": "object",
                "properties": {"command": {"type": "string"}},
                "required": ["command"],
                "additionalProperties": False,
            },
            "strict": False,
        },
        {
            "type": "function",
            "name": "Noop",
            "description": "",
            "parameters": {"type": "object"},
            "strict": False,
        },
        # Anthropic's web search server tool becomes OpenAI's (tests/protocol/test_web_search.py).
        {"type": "web_search"},
    ]
    assert body["parallel_tool_calls"] is True


def test_tool_names_openai_refuses_are_aliased_everywhere_and_recorded() -> None:
    long_name = "mcp__" + "very_long_server_name__" * 3 + "tool"
    dotted = "mcp__docs.search"
    tools = [dict(BASH, name=long_name), dict(BASH, name=dotted)]
    tgt = target(MODEL)
    body = encode(
        {
            "messages": tool_loop(call(name=dotted)),
            "tools": tools,
            "tool_choice": {"type": "tool", "name": long_name},
        },
        tgt,
    )
    alias_long, alias_dotted = (t["name"] for t in body["tools"])
    assert len(alias_long) <= 64 and alias_long.startswith("mcp__very_long")
    assert alias_dotted.startswith("mcp__docs_search_")
    assert tgt.tool_names == {alias_long: long_name, alias_dotted: dotted}
    assert body["input"][1]["name"] == alias_dotted
    assert body["tool_choice"] == {"type": "function", "name": alias_long}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "Bash"}, {"type": "function", "name": "Bash"}),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: Any) -> None:
    body = encode({"messages": [user("hi")], "tools": [BASH], "tool_choice": choice})
    assert body["tool_choice"] == expected


def test_disable_parallel_tool_use() -> None:
    choice = {"type": "auto", "disable_parallel_tool_use": True}
    body = encode({"messages": [user("hi")], "tools": [BASH], "tool_choice": choice})
    assert body["parallel_tool_calls"] is False


def test_tool_choice_tool_without_name_is_a_400() -> None:
    with pytest.raises(VdmError) as err:
        encode({"messages": [user("hi")], "tools": [BASH], "tool_choice": {"type": "tool"}})
    assert err.value.status == 400


def test_no_tools_no_tool_fields() -> None:
    body = encode({"messages": [user("hi")], "tool_choice": {"type": "auto"}})
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & set(body)


# --- limits, sampling, reasoning --------------------------------------------------------------


def test_max_output_tokens_respects_the_limit_and_the_minimum() -> None:
    assert encode({"messages": [user("hi")]})["max_output_tokens"] == 1000
    limited = target(MODEL, max_tokens_limit=500)
    assert encode({"messages": [user("hi")]}, limited)["max_output_tokens"] == 500
    # Claude Code's 1-token probes: the API's minimum is 16.
    assert encode({"messages": [user("quota")], "max_tokens": 1})["max_output_tokens"] == 16


def test_sampling_only_where_the_model_takes_it() -> None:
    sampled = {"messages": [user("hi")], "temperature": 0.2, "top_p": 0.9, "top_k": 5}
    reasoning = encode(sampled)
    assert not {"temperature", "top_p", "top_k"} & set(reasoning)
    chat_model = encode(sampled, target("gpt-4o"))
    assert (chat_model["temperature"], chat_model["top_p"]) == (0.2, 0.9)
    assert "top_k" not in chat_model


@pytest.mark.parametrize(
    ("thinking", "output_config", "model", "reasoning"),
    [
        # Claude Code today: adaptive thinking plus an effort.
        (
            {"type": "adaptive", "display": "updates"},
            {"effort": "high"},
            MODEL,
            {"effort": "high", "summary": "auto"},
        ),
        ({"type": "adaptive"}, None, MODEL, {"effort": "medium", "summary": "auto"}),
        ({"type": "adaptive", "display": "omitted"}, {"effort": "low"}, MODEL, {"effort": "low"}),
        ({"type": "adaptive"}, {"effort": "max"}, MODEL, {"effort": "max", "summary": "auto"}),
        ({"type": "adaptive"}, {"effort": "max"}, "o3", {"effort": "high", "summary": "auto"}),
        (
            {"type": "adaptive"},
            {"effort": "max"},
            "gpt-5.2",
            {"effort": "xhigh", "summary": "auto"},
        ),
        (
            {"type": "enabled", "budget_tokens": 2048},
            None,
            MODEL,
            {"effort": "low", "summary": "auto"},
        ),
        (
            {"type": "enabled", "budget_tokens": 8000},
            None,
            MODEL,
            {"effort": "medium", "summary": "auto"},
        ),
        (
            {"type": "enabled", "budget_tokens": 31999},
            None,
            MODEL,
            {"effort": "high", "summary": "auto"},
        ),
        # No thinking setting: the model's default effort, and no summary nobody asked for.
        (None, None, MODEL, {}),
        (None, {"effort": "low"}, MODEL, {"effort": "low"}),
    ],
)
def test_thinking_and_effort_become_reasoning(
    thinking: Any, output_config: Any, model: str, reasoning: dict[str, Any]
) -> None:
    body = encode(
        {"messages": [user("hi")], "thinking": thinking, "output_config": output_config},
        target(model),
    )
    assert body.get("reasoning") == (reasoning or None)
    assert body["include"] == ["reasoning.encrypted_content"]
    assert body["store"] is False


def test_thinking_disabled_asks_the_least_reasoning_a_chat_model_none() -> None:
    off = encode({"messages": [user("hi")], "thinking": {"type": "disabled"}})
    # gpt-5.6 takes `none`: switched off, not left at the model's default effort.
    assert off["reasoning"] == {"effort": "none"} and "include" not in off
    # gpt-5 has no `none`: its lowest effort, rather than its default (`medium`); it still
    # reasons at `minimal`, so the encrypted reasoning is asked for.
    gpt5 = encode({"messages": [user("hi")], "thinking": {"type": "disabled"}}, target("gpt-5"))
    assert gpt5["reasoning"] == {"effort": "minimal"}
    assert gpt5["include"] == ["reasoning.encrypted_content"]
    chat_model = encode(
        {"messages": [user("hi")], "thinking": {"type": "adaptive"}}, target("gpt-4o")
    )
    assert "reasoning" not in chat_model and "include" not in chat_model
    assert chat_model["store"] is False


def test_structured_output_becomes_text_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    config = {"format": {"type": "json_schema", "schema": schema}}
    body = encode({"messages": [user("hi")], "output_config": config})
    assert body["text"] == {
        "format": {"type": "json_schema", "name": "output", "schema": schema, "strict": False}
    }


def test_stream_flag() -> None:
    assert encode({"messages": [user("hi")], "stream": True})["stream"] is True
    assert "stream" not in encode({"messages": [user("hi")]})


def test_stop_sequences_are_dropped() -> None:
    assert "stop" not in encode({"messages": [user("hi")], "stop_sequences": ["END"]})


# --- identity and provider rules --------------------------------------------------------------


def test_claude_code_session_is_the_prompt_cache_key_and_the_user_is_hashed() -> None:
    body = encode({"messages": [user("hi")], "metadata": {"user_id": CLAUDE_CODE_USER}})
    assert body["prompt_cache_key"] == "5e55-10n"
    assert len(body["safety_identifier"]) == 64
    assert "acct-1" not in body["safety_identifier"]
    assert "user" not in body
    plain = encode({"messages": [user("hi")], "metadata": {"user_id": "alice"}})
    assert plain["safety_identifier"] != "alice" and len(plain["safety_identifier"]) == 64


def test_other_providers_get_user_instead_of_openais_fields() -> None:
    tgt = target(MODEL, family="mycorp")
    body = encode({"messages": [user("hi")], "metadata": {"user_id": CLAUDE_CODE_USER}}, tgt)
    assert "prompt_cache_key" not in body and "safety_identifier" not in body
    assert len(body["user"]) == 64


def test_fields_a_provider_refuses_are_never_sent() -> None:
    body = encode({"messages": [user("hi")]}, target("openai/gpt-oss-120b", family="groq"))
    assert "store" not in body
