"""OpenAI Responses request -> Anthropic Messages request (`anthropic_request_from_responses`).

Requests are built by the official `openai` SDK and captured on the wire (an
`httpx.MockTransport`), or replayed from Codex CLI 0.169 recordings, so the tests translate
what real clients send; every translation must validate as a `MessagesRequest`, the
gateway's canonical form, and keep the pairing Anthropic enforces (`check_pairs`).
"""

from __future__ import annotations

import copy
import json
import logging
import re
from typing import Any

import httpx
import openai
import pytest

from tests.harness import PROTOCOL
from tests.protocol.mutations import codex_bodies, mutations
from tests.protocol.targets import target
from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.anthropic_request_from_responses import (
    CACHE_CONTROL,
    DEFAULT_MAX_OUTPUT_TOKENS,
    messages_request_from_responses,
    refuse_stateful,
)
from vdm.protocol.errors import VdmError
from vdm.protocol.gemini_from_anthropic import gemini_request_from_messages
from vdm.protocol.openai_from_anthropic import chat_request_from_messages
from vdm.protocol.openai_request_in import JSON_OBJECT_INSTRUCTION
from vdm.protocol.openai_tools_in import flat_tool_name
from vdm.protocol.openai_turns import INTERRUPTED
from vdm.protocol.responses_from_anthropic import responses_request_from_messages
from vdm.protocol.responses_tools import ToolRoutes
from vdm.protocol.signatures import pack_thinking, restore_tool_id

PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
PDF_B64 = "JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PD4+CmVuZG9iagp0cmFpbGVyCjw8Pj4KJSVFT0YK"
RESPONSE = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1,
    "model": "claude-sonnet-4-5",
    "status": "completed",
    "output": [],
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": False,
}
SIGNED = {"type": "thinking", "thinking": "Need the weather.", "signature": "EqQBsig"}
ANTHROPIC_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
LOGGER = "vdm.protocol.anthropic_request_from_responses"


def sent(**params: Any) -> dict[str, Any]:
    """The JSON body the `openai` SDK puts on the wire for `responses.create(**params)`."""
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        if bodies[-1].get("stream"):
            return httpx.Response(200, content=b"", headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json=RESPONSE)

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        client = openai.OpenAI(
            api_key="sk-test", base_url="http://vdm.test/v1", http_client=http, max_retries=0
        )
        params.setdefault("model", "claude-sonnet-4-5")
        answer = client.responses.create(**params)
        if isinstance(answer, openai.Stream):
            answer.close()
    return bodies[0]


def check_pairs(out: dict[str, Any]) -> None:
    """What Anthropic enforces beyond the schema: every tool_use is answered by a tool_result
    at the start of the next non-system message, and no result lacks its call."""
    turns = [m for m in out["messages"] if m["role"] != "system"]
    for n, message in enumerate(turns):
        blocks = message["content"] if isinstance(message["content"], list) else []
        calls = [b["id"] for b in blocks if b["type"] == "tool_use"]
        if message["role"] == "assistant" and calls:
            answer = turns[n + 1]
            assert answer["role"] == "user"
            results = [b["tool_use_id"] for b in answer["content"] if b["type"] == "tool_result"]
            assert sorted(results) == sorted(calls)
            kinds = [b["type"] for b in answer["content"]]
            assert kinds[: len(results)] == ["tool_result"] * len(results)  # results first
        if message["role"] == "user":
            previous = turns[n - 1]["content"] if n else []
            called = {b["id"] for b in previous if b["type"] == "tool_use"}
            assert {b["tool_use_id"] for b in blocks if b["type"] == "tool_result"} <= called
    # A system message never sits between a call and its result.
    for message, after in zip(out["messages"], out["messages"][1:], strict=False):
        if message["role"] == "system":
            assert after["role"] != "user" or not any(
                b["type"] == "tool_result" for b in after["content"]
            )


def convert(body: dict[str, Any]) -> tuple[dict[str, Any], ToolRoutes]:
    out, routes = messages_request_from_responses(body)
    MessagesRequest.model_validate(out)
    check_pairs(out)
    return out, routes


def translate(**params: Any) -> dict[str, Any]:
    """The Anthropic body for what the SDK sends, checked against the canonical model."""
    return convert(sent(**params))[0]


def refused(body: dict[str, Any]) -> VdmError:
    with pytest.raises(VdmError) as caught:
        messages_request_from_responses(body)
    assert caught.value.status == 400
    return caught.value


def msg(role: str, *texts: str, kind: str = "input_text") -> dict[str, Any]:
    content = [{"type": kind, "text": t} for t in texts]
    return {"type": "message", "role": role, "content": content}


def fcall(call_id: str, name: str, arguments: str = "{}", **extra: Any) -> dict[str, Any]:
    item = {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}
    return item | extra


def fout(call_id: str, output: Any) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def reasoning(block: dict[str, Any]) -> dict[str, Any]:
    """A reasoning item as vdm's encoder hands it to Codex (and Codex sends it back)."""
    summary = [{"type": "summary_text", "text": block.get("thinking", "")}]
    return {"type": "reasoning", "summary": summary, "encrypted_content": pack_thinking(block)}


def nocache(value: Any) -> Any:
    """`value` without the cache breakpoints (tested once, in their own test)."""
    if isinstance(value, dict):
        return {k: nocache(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [nocache(v) for v in value]
    return value


# --- messages ---------------------------------------------------------------------------------


def test_instructions_and_leading_developer_messages_become_system_blocks() -> None:
    out = translate(
        instructions="Be brief.",
        input=[
            msg("developer", "Rule one.", "Rule two."),
            msg("system", "Rule three."),
            msg("user", "hi"),
            msg("developer", "Later rule."),
            msg("user", "again"),
        ],
    )
    assert nocache(out["system"]) == [
        {"type": "text", "text": t} for t in ("Be brief.", "Rule one.", "Rule two.", "Rule three.")
    ]
    assert nocache(out["messages"]) == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "system", "content": "Later rule."},
        {"role": "user", "content": [{"type": "text", "text": "again"}]},
    ]


def test_later_developer_message_waits_until_the_calls_results_are_in() -> None:
    out = translate(
        input=[
            msg("user", "weather?"),
            fcall("call_1", "get_weather"),
            msg("developer", "Mind the units."),
            fout("call_1", "18C"),
            msg("user", "thanks"),
        ],
        tools=[WEATHER],
    )
    roles = [m["role"] for m in out["messages"]]
    assert roles == ["user", "assistant", "user", "system"]
    assert [b["type"] for b in out["messages"][2]["content"]] == ["tool_result", "text"]
    assert out["messages"][3]["content"] == "Mind the units."


def test_string_input_string_content_and_items_without_a_type() -> None:
    assert nocache(translate(input="hello")["messages"]) == [
        {"role": "user", "content": [{"type": "text", "text": "hello"}]}
    ]
    out = translate(
        input=[
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a"},
            {"role": "user", "content": "q2"},
        ]
    )
    assert [(m["role"], m["content"][0]["text"]) for m in out["messages"]] == [
        ("user", "q"),
        ("assistant", "a"),
        ("user", "q2"),
    ]


def test_user_images_and_files_become_anthropic_sources() -> None:
    parts = [
        {"type": "input_text", "text": "look"},
        {"type": "input_image", "image_url": f"data:image/jpeg;base64,{PNG_B64}", "detail": "low"},
        {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "auto"},
        {
            "type": "input_file",
            "filename": "a.pdf",
            "file_data": f"data:application/pdf;base64,{PDF_B64}",
        },
        {"type": "input_file", "file_url": "https://example.com/b.pdf"},
    ]
    out = translate(input=[{"role": "user", "content": parts}])
    assert nocache(out["messages"][0]["content"][1:]) == [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/jpeg", "data": PNG_B64},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_B64},
            "title": "a.pdf",
        },
        {"type": "document", "source": {"type": "url", "url": "https://example.com/b.pdf"}},
    ]


@pytest.mark.parametrize("kind", ["input_image", "input_file"])
def test_uploaded_file_ids_are_refused_naming_the_part(kind: str) -> None:
    parts = [{"type": "input_text", "text": "see"}, {"type": kind, "file_id": "file-abc"}]
    body = {"model": "m", "input": [msg("user", "hi"), {"role": "user", "content": parts}]}
    error = refused(body)
    assert error.param == "input[1].content[1].file_id"


def test_assistant_items_in_a_row_are_one_turn_in_order() -> None:
    out = translate(
        input=[
            msg("user", "weather in Paris and Rome?"),
            reasoning(SIGNED),
            msg("assistant", "Checking.", "", kind="output_text"),
            fcall("call_1", "get_weather", '{"city": "Paris"}'),
            fcall("call_2", "get_weather", '{"city": "Rome"}'),
            fout("call_1", "18C"),
            fout("call_2", "21C"),
            msg("user", "and now?"),
        ],
        tools=[WEATHER],
    )
    assert len(out["messages"]) == 3
    assert nocache(out["messages"][1]) == {
        "role": "assistant",
        "content": [
            SIGNED,
            {"type": "text", "text": "Checking."},  # the empty output_text is skipped
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}},
        ],
    }
    assert nocache(out["messages"][2]["content"]) == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
        {"type": "tool_result", "tool_use_id": "call_2", "content": "21C"},
        {"type": "text", "text": "and now?"},
    ]


def test_reasoning_vdm_did_not_pack_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    openai_own = {"type": "reasoning", "summary": [], "encrypted_content": "gAAAAABo-opaque"}
    bare = {"type": "reasoning", "summary": [{"type": "summary_text", "text": "hm"}]}
    with caplog.at_level(logging.DEBUG, LOGGER):
        out = translate(
            input=[msg("user", "hi"), openai_own, bare, msg("assistant", "yo", kind="output_text")]
        )
    assert out["messages"][1]["content"] == [{"type": "text", "text": "yo", **cache()}]
    assert "reasoning vdm did not pack" in caplog.text
    # A turn of nothing but (foreign) reasoning is no turn at all.
    only = translate(input=[msg("user", "hi"), openai_own, msg("user", "again")])
    assert [m["role"] for m in only["messages"]] == ["user", "user"]


def test_redacted_thinking_and_refusals_come_back() -> None:
    redacted = {"type": "redacted_thinking", "data": "EmwKAhgB"}
    refusal = {"type": "refusal", "refusal": "I can't help with that."}
    assistant = {"type": "message", "role": "assistant", "content": [refusal]}
    out = translate(input=[msg("user", "x"), reasoning(redacted), assistant, msg("user", "ok")])
    assert out["messages"][1]["content"] == [
        redacted,
        {"type": "text", "text": "I can't help with that."},
    ]


def test_call_without_output_gets_an_error_result_and_output_without_call_is_text() -> None:
    out = translate(
        input=[msg("user", "go"), fcall("call_1", "get_weather"), msg("user", "never mind")],
        tools=[WEATHER],
    )
    assert nocache(out["messages"][2]["content"]) == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": INTERRUPTED, "is_error": True},
        {"type": "text", "text": "never mind"},
    ]
    orphan = translate(input=[msg("user", "go"), fout("call_9", "stale"), fout("call_8", "")])
    assert nocache(orphan["messages"][1]) == {
        "role": "user",
        "content": [
            {"type": "text", "text": "stale"},
            {"type": "text", "text": "(empty tool result)"},
        ],
    }


def test_array_outputs_become_result_blocks() -> None:
    output = [
        {"type": "input_text", "text": "screenshot:"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG_B64}"},
    ]
    out = translate(input=[msg("user", "shoot"), fcall("c1", "view_image"), fout("c1", output)])
    result = out["messages"][2]["content"][0]
    assert nocache(result["content"]) == [
        {"type": "text", "text": "screenshot:"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
    ]


def test_custom_tool_calls_carry_the_raw_input_string() -> None:
    patch = "*** Begin Patch\n*** Add File: a.txt\n+hi\n*** End Patch\n"
    out = translate(
        input=[
            msg("user", "add a file"),
            {
                "type": "custom_tool_call",
                "call_id": "call_p",
                "name": "apply_patch",
                "input": patch,
            },
            {"type": "custom_tool_call_output", "call_id": "call_p", "output": "Done!"},
        ],
        tools=[{"type": "custom", "name": "apply_patch", "description": "Edit files"}],
    )
    use = out["messages"][1]["content"][0]
    assert use == {
        "type": "tool_use",
        "id": "call_p",
        "name": "apply_patch",
        "input": {"input": patch},
    }
    assert out["messages"][2]["content"][0]["tool_use_id"] == "call_p"


def test_arguments_that_are_not_json_stay_visible() -> None:
    out = translate(input=[msg("user", "x"), fcall("c1", "get_weather", "{city: Paris")])
    assert out["messages"][1]["content"][0]["input"] == {"_raw_arguments": "{city: Paris"}


def test_call_ids_outside_anthropics_alphabet_are_sanitised_on_both_sides() -> None:
    out = translate(
        input=[msg("user", "x"), fcall("functions.get:0", "g"), fout("functions.get:0", "ok")]
    )
    use_id = out["messages"][1]["content"][0]["id"]
    assert re.fullmatch(r"[a-zA-Z0-9_-]+", use_id) and restore_tool_id(use_id) == "functions.get:0"
    assert out["messages"][2]["content"][0]["tool_use_id"] == use_id


def test_namespaced_calls_use_the_flattened_tool_name() -> None:
    spawn = {"type": "function", "name": "spawn_agent", "parameters": {"type": "object"}}
    namespace = {
        "type": "namespace",
        "name": "multi_agent_v1",
        "description": "Agents.",
        "tools": [spawn],
    }
    call = fcall("c1", "spawn_agent", '{"task": "x"}', namespace="multi_agent_v1")
    out, routes = convert(sent(input=[msg("user", "x"), call, fout("c1", "ok")], tools=[namespace]))
    name = out["messages"][1]["content"][0]["name"]
    assert name == "multi_agent_v1__spawn_agent" == out["tools"][0]["name"]
    assert routes.client_call(name) == ("multi_agent_v1", "spawn_agent")


def test_other_item_types_are_dropped_without_breaking_the_turn(
    caplog: pytest.LogCaptureFixture,
) -> None:
    shell = {"type": "local_shell_call", "call_id": "s1", "action": {"type": "exec"}}
    search = {"type": "web_search_call", "id": "ws_1", "status": "completed"}
    with caplog.at_level(logging.DEBUG, LOGGER):
        out = translate(
            input=[
                msg("user", "x"),
                msg("assistant", "a", kind="output_text"),
                shell,
                search,
                {"type": "compaction", "encrypted_content": "zzz"},
                {"type": "mcp_list_tools", "server_label": "s", "tools": []},
                {"type": "brand_new_item"},
                fcall("c1", "g"),
                fout("c1", "ok"),
            ]
        )
    assert [b["type"] for b in out["messages"][1]["content"]] == ["text", "tool_use"]
    for kind in (
        "local_shell_call",
        "web_search_call",
        "compaction",
        "mcp_list_tools",
        "brand_new",
    ):
        assert kind in caplog.text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("previous_response_id", "resp_123"),
        ("conversation", "conv_123"),
        ("prompt", {"id": "pmpt_1"}),
        ("background", True),
    ],
)
def test_stateful_fields_are_refused_naming_the_field(field: str, value: Any) -> None:
    error = refused({"model": "m", "input": "hi", field: value})
    assert error.param == field
    assert "stateless" in error.message and "store: false" in error.message


def test_item_references_are_refused_and_stateless_requests_pass() -> None:
    body = {"model": "m", "input": [msg("user", "x"), {"type": "item_reference", "id": "msg_1"}]}
    error = refused(body)
    assert error.param == "input[1]" and "stateless" in error.message
    with pytest.raises(VdmError):
        refuse_stateful(body)
    refuse_stateful(
        {"model": "m", "input": "hi", "previous_response_id": None, "background": False}
    )


def test_missing_input_and_model_are_400s() -> None:
    assert refused({"model": "m", "input": []}).param == "input"
    assert refused({"input": "hi"}).param == "model"
    assert refused({"model": "m", "input": [msg("developer", "rules only")]}).param == "input"


# --- tools ------------------------------------------------------------------------------------


def test_function_tools_map_to_anthropic_tools() -> None:
    bare = {"type": "function", "name": "get_time", "parameters": None, "strict": False}
    out = translate(input="x", tools=[WEATHER, bare])
    assert nocache(out["tools"]) == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": WEATHER["parameters"],
        },
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
    ]


def test_namespace_members_are_flattened_and_routed_back() -> None:
    members = [
        {
            "type": "function",
            "name": "spawn_agent",
            "description": "Start one.",
            "parameters": {"type": "object"},
        },
        {"type": "function", "name": "wait_agent"},
    ]
    namespace = {
        "type": "namespace",
        "name": "agents",
        "description": "Sub-agents.",
        "tools": members,
    }
    out, routes = convert(sent(input="x", tools=[namespace, WEATHER]))
    assert [t["name"] for t in out["tools"]] == [
        "agents__spawn_agent",
        "agents__wait_agent",
        "get_weather",
    ]
    assert out["tools"][0]["description"] == "Sub-agents.\n\nStart one."
    assert out["tools"][1]["description"] == "Sub-agents."
    assert routes.client_call("agents__wait_agent") == ("agents", "wait_agent")
    assert routes.client_call("get_weather") == (None, "get_weather")


def test_long_or_invalid_flattened_names_are_hashed_deterministically() -> None:
    long = flat_tool_name("mcp__a_really_long_server_name_for_testing", "and_a_long_tool_name_too")
    odd = flat_tool_name("my.server", "tool name")
    for name in (long, odd):
        assert ANTHROPIC_NAME.fullmatch(name) and len(name) <= 64
        assert re.search(r"_[0-9a-f]{8}$", name)
    assert long == flat_tool_name(
        "mcp__a_really_long_server_name_for_testing", "and_a_long_tool_name_too"
    )
    assert odd != flat_tool_name("my_server", "tool name")  # sanitising alone would collide
    namespace = {
        "type": "namespace",
        "name": "my.server",
        "tools": [{"type": "function", "name": "tool name"}],
    }
    out, routes = convert(sent(input="x", tools=[namespace]))
    assert out["tools"][0]["name"] == odd
    assert routes.client_call(odd) == ("my.server", "tool name")


def test_custom_tools_take_one_string_input_with_their_grammar() -> None:
    grammar = {"type": "grammar", "syntax": "lark", "definition": 'start: "*** Begin Patch"'}
    tools = [
        {"type": "custom", "name": "apply_patch", "description": "Edit files", "format": grammar},
        {"type": "custom", "name": "note"},
    ]
    out, routes = convert(sent(input="x", tools=tools))
    schema = out["tools"][0]["input_schema"]
    assert schema["required"] == ["input"] and schema["properties"]["input"]["type"] == "string"
    assert 'start: "*** Begin Patch"' in schema["properties"]["input"]["description"]
    assert out["tools"][1]["input_schema"]["properties"] == {"input": {"type": "string"}}
    assert routes.custom == frozenset({"apply_patch", "note"})


def test_hosted_tools_are_dropped_quietly(caplog: pytest.LogCaptureFixture) -> None:
    hosted = [
        {"type": "web_search", "external_web_access": False},
        {"type": "web_search_preview"},
        {"type": "local_shell"},
        {"type": "image_generation"},
        {"type": "file_search", "vector_store_ids": ["vs_1"]},
        {"type": "mcp", "server_label": "s", "server_url": "https://mcp.example"},
        {
            "type": "computer_use_preview",
            "display_width": 1,
            "display_height": 1,
            "environment": "linux",
        },
        {"type": "tool_search"},
    ]
    with caplog.at_level(logging.DEBUG, LOGGER):
        out = translate(input="x", tools=[*hosted, WEATHER])
        alone = translate(input="x", tools=hosted[:1], tool_choice="auto")
    assert [t["name"] for t in out["tools"]] == ["get_weather"]
    assert "tools" not in alone and "tool_choice" not in alone
    assert "'web_search' is a hosted tool" in caplog.text and "'mcp'" in caplog.text


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        ({"type": "function", "name": "get_weather"}, {"type": "tool", "name": "get_weather"}),
        (
            {"type": "function", "name": "wait", "namespace": "ns"},
            {"type": "tool", "name": "ns__wait"},
        ),
        ({"type": "custom", "name": "apply_patch"}, {"type": "tool", "name": "apply_patch"}),
    ],
)
def test_tool_choice_maps_to_anthropic(choice: Any, expected: dict[str, Any]) -> None:
    tools = [
        WEATHER,
        {"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "wait"}]},
    ]
    tools.append({"type": "custom", "name": "apply_patch"})
    assert translate(input="x", tools=tools, tool_choice=choice)["tool_choice"] == expected


def test_allowed_tools_narrow_the_list_and_parallel_calls_can_be_disabled() -> None:
    clock = {"type": "function", "name": "get_time"}
    allowed = {
        "type": "allowed_tools",
        "mode": "required",
        "tools": [{"type": "function", "name": "get_time"}],
    }
    out = translate(
        input="x", tools=[WEATHER, clock], tool_choice=allowed, parallel_tool_calls=False
    )
    assert [t["name"] for t in out["tools"]] == ["get_time"]
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    auto = translate(input="x", tools=[WEATHER], parallel_tool_calls=False)
    assert auto["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert "tool_choice" not in translate(input="x", tools=[WEATHER], parallel_tool_calls=True)


# --- sampling, reasoning, format ------------------------------------------------------------


def test_max_output_tokens_and_the_generous_default() -> None:
    assert translate(input="x")["max_tokens"] == DEFAULT_MAX_OUTPUT_TOKENS == 32000
    assert translate(input="x", max_output_tokens=700)["max_tokens"] == 700
    assert (
        refused({"model": "m", "input": "x", "max_output_tokens": 0}).param == "max_output_tokens"
    )


def test_reasoning_maps_to_a_thinking_budget() -> None:
    assert "thinking" not in translate(input="x")
    # `none` is said out loud: providers that think by default must hear it.
    assert translate(input="x", reasoning={"effort": "none"})["thinking"] == {"type": "disabled"}
    codex = translate(input="x", reasoning={"summary": "auto"})  # no effort: OpenAI's medium
    assert codex["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    assert codex["max_tokens"] == 32000
    high = translate(input="x", reasoning={"effort": "high"}, max_output_tokens=4000)
    assert high["thinking"] == {"type": "enabled", "budget_tokens": 4000 - 1024}  # room to answer
    tight = translate(input="x", reasoning={"effort": "high"}, max_output_tokens=1000)
    assert "thinking" not in tight


def test_thinking_drops_sampling_and_gives_way_to_a_forced_tool() -> None:
    out = translate(input="x", reasoning={"effort": "low"}, temperature=0.3)
    assert out["thinking"]["budget_tokens"] == 2048 and "temperature" not in out
    forced = translate(
        input="x", reasoning={"effort": "low"}, tools=[WEATHER], tool_choice="required"
    )
    assert "thinking" not in forced


def test_tool_loop_keeps_thinking_only_with_vdms_reasoning_item_sent_back() -> None:
    history = [msg("user", "x"), fcall("c1", "get_weather"), fout("c1", "18C")]
    assert "thinking" not in translate(
        input=history, tools=[WEATHER], reasoning={"effort": "medium"}
    )
    history.insert(1, reasoning(SIGNED))
    out = translate(input=history, tools=[WEATHER], reasoning={"effort": "medium"})
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    assert out["messages"][1]["content"][0] == SIGNED


def test_temperature_is_clamped_and_wins_over_top_p() -> None:
    out = translate(input="x", temperature=1.7, top_p=0.5)
    assert out["temperature"] == 1.0 and "top_p" not in out
    assert translate(input="x", top_p=0.5)["top_p"] == 0.5


def test_text_format_json_schema_and_json_object() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    fmt = {"type": "json_schema", "name": "out", "schema": schema, "strict": True}
    out = translate(input="x", text={"format": fmt, "verbosity": "low"})
    assert out["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    obj = translate(input="x", instructions="Be brief.", text={"format": {"type": "json_object"}})
    assert [b["text"] for b in obj["system"]] == ["Be brief.", JSON_OBJECT_INSTRUCTION]
    assert "output_config" not in translate(input="x", text={"format": {"type": "text"}})
    bad = {"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "name": "o"}}}
    assert refused(bad).param == "text.format.schema"


def test_codex_bookkeeping_fields_are_dropped_and_user_becomes_metadata(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, LOGGER):
        out = translate(
            input="x",
            stream=True,
            store=False,
            include=["reasoning.encrypted_content"],
            prompt_cache_key="sess-1",
            service_tier="auto",
            truncation="disabled",
            metadata={"k": "v"},
            safety_identifier="user-7",
            extra_body={"client_metadata": {"turn_id": "t"}, "brand_new_field": 1},
        )
    assert set(out) == {"model", "messages", "max_tokens", "stream", "metadata"}
    assert out["stream"] is True and out["metadata"] == {"user_id": "user-7"}
    assert "'brand_new_field' is unknown" in caplog.text
    assert "'client_metadata' has no Anthropic counterpart" in caplog.text


# --- cache breakpoints ----------------------------------------------------------------------


def cache() -> dict[str, Any]:
    return {"cache_control": CACHE_CONTROL}


def test_cache_breakpoints_on_system_tools_and_the_last_block() -> None:
    out = translate(
        instructions="Be brief.",
        input=[
            msg("developer", "Rules."),
            msg("user", "x"),
            reasoning(SIGNED),
            fcall("c1", "get_weather"),
            fout("c1", "18C"),
            msg("developer", "late"),
        ],
        tools=[WEATHER, {"type": "function", "name": "get_time"}],
    )
    marked = json.dumps(out).count('"cache_control"')
    assert marked == 3  # Anthropic allows 4
    assert out["system"][-1] == {"type": "text", "text": "Rules.", **cache()}
    assert "cache_control" not in out["system"][0]
    assert out["tools"][-1]["cache_control"] == CACHE_CONTROL
    # The last message is a string system message: the breakpoint goes on the results.
    assert out["messages"][-1] == {"role": "system", "content": "late"}
    assert out["messages"][-2]["content"][-1]["cache_control"] == CACHE_CONTROL


def test_thinking_blocks_never_carry_a_breakpoint() -> None:
    prefill = [msg("user", "x"), msg("assistant", "a", kind="output_text"), reasoning(SIGNED)]
    out = translate(input=prefill)
    last = out["messages"][-1]["content"]
    assert last[0]["cache_control"] == CACHE_CONTROL and "cache_control" not in last[1]


@pytest.mark.parametrize(
    ("encode", "family", "model"),
    [
        (chat_request_from_messages, "openai", "gpt-4o"),
        (responses_request_from_messages, "openai", "gpt-5.2"),
        (gemini_request_from_messages, "gemini", "gemini-2.5-pro"),
    ],
)
def test_other_providers_never_see_the_breakpoints(encode: Any, family: str, model: str) -> None:
    out = translate(instructions="Be brief.", input=[msg("user", "x")], tools=[WEATHER])
    assert json.dumps(out).count("cache_control") == 3
    body = encode(MessagesRequest.model_validate(out), target(model, family))
    assert "cache_control" not in json.dumps(body)


# --- recorded Codex requests ----------------------------------------------------------------


def codex_body(name: str) -> dict[str, Any]:
    """A recorded Codex request body, omitted schemas restored (shared/protocol/README.md)."""
    body: dict[str, Any] = copy.deepcopy(
        json.loads((PROTOCOL / "codex" / name).read_text())["body"]
    )
    body.pop("_tool_names")
    for tool in body["tools"]:
        if tool.pop("_omitted", None) is None:
            continue
        if tool["type"] == "namespace":
            tool["description"] = f"The {tool['name']} tools."
            tool["tools"] = [
                {
                    "type": "function",
                    "name": n,
                    "description": f"{n}.",
                    "strict": False,
                    "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
                }
                for n in tool["tools"]
            ]
        else:
            tool["description"] = f"The {tool['name']} tool."
            tool["parameters"] = {"type": "object", "properties": {}}
    return body


@pytest.mark.parametrize(
    "name", ["codex_01_exec_request.json", "codex_02_tool_roundtrip_req2.json"]
)
def test_recorded_codex_requests_translate(name: str) -> None:
    body = codex_body(name)
    out, routes = convert(body)
    names = [t["name"] for t in out["tools"]]
    assert all(ANTHROPIC_NAME.fullmatch(n) for n in names)
    assert "web_search" not in json.dumps(out["tools"])
    assert "exec_command" in names
    members = ["close_agent", "resume_agent", "send_input", "spawn_agent", "wait_agent"]
    for member in members:
        assert routes.client_call(f"multi_agent_v1__{member}") == ("multi_agent_v1", member)
    assert len(names) == 7 + len(members)
    developer = [
        part["text"]
        for item in body["input"]
        if item.get("role") == "developer"
        for part in item["content"]
    ]
    assert [b["text"] for b in out["system"]] == developer
    assert all(m["role"] != "system" for m in out["messages"])
    assert out["stream"] is True and out["max_tokens"] == DEFAULT_MAX_OUTPUT_TOKENS
    assert out["tool_choice"] == {"type": "auto"}


def test_recorded_codex_tool_round_trip_pairs_call_and_output() -> None:
    body = codex_body("codex_02_tool_roundtrip_req2.json")
    out, _ = convert(body)
    call = next(i for i in body["input"] if i["type"] == "function_call")
    output = next(i for i in body["input"] if i["type"] == "function_call_output")
    assert [m["role"] for m in out["messages"]] == ["user", "user", "assistant", "user"]
    texts = [m["content"][0]["text"] for m in out["messages"][:2]]
    assert texts[0].startswith("<environment_context>") and texts[1] == "run echo hello"
    assert out["messages"][2]["content"] == [
        {
            "type": "tool_use",
            "id": call["call_id"],
            "name": "exec_command",
            "input": {"cmd": "echo hello"},
        }
    ]
    assert out["messages"][3]["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": call["call_id"],
            "content": output["output"],
            **cache(),
        }
    ]
    # Codex asks for reasoning, but no signed thinking came back with the call: thinking off.
    assert "thinking" not in out


# --- malformed input: a 400, never a crash -----------------------------------------------------

#: A body using every shape the decoder reads that Codex's recorded ones lack.
RICH = {
    "model": "claude-sonnet-4-5",
    "instructions": "Be brief.",
    "input": [
        msg("developer", "Use tools."),
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Look:"},
                {"type": "input_image", "image_url": f"data:image/png;base64,{PNG_B64}"},
                {"type": "input_file", "file_data": PDF_B64, "filename": "a.pdf"},
                {"type": "input_file", "file_url": "https://example.com/a.pdf"},
            ],
        },
        reasoning(SIGNED),
        msg("assistant", "Checking.", kind="output_text"),
        fcall("c1", "get_weather", '{"city": "Paris"}'),
        fcall("c2", "spawn", "{}", namespace="agents"),
        {"type": "custom_tool_call", "call_id": "c3", "name": "apply_patch", "input": "*** x"},
        fout("c1", [{"type": "input_text", "text": "sunny"}]),
        fout("c2", {"ok": True}),
        {"type": "custom_tool_call_output", "call_id": "c3", "output": "done"},
    ],
    "tools": [
        WEATHER,
        {"type": "namespace", "name": "agents", "tools": [{"type": "function", "name": "spawn"}]},
        {
            "type": "custom",
            "name": "apply_patch",
            "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"},
        },
        {"type": "web_search"},
    ],
    "tool_choice": {
        "type": "allowed_tools",
        "mode": "required",
        "tools": [
            {"type": "function", "name": "get_weather"},
            {"type": "custom", "name": "apply_patch"},
            {"type": "web_search"},
        ],
    },
    "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
    "reasoning": {"effort": "low"},
    "parallel_tool_calls": False,
    "max_output_tokens": 4000,
}


def test_rich_body_translates() -> None:
    out, routes = convert(copy.deepcopy(RICH))
    assert [t["name"] for t in out["tools"]] == ["get_weather", "apply_patch"]
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert routes.custom == frozenset({"apply_patch"})


@pytest.mark.parametrize(
    "body", [RICH, *codex_bodies()], ids=lambda b: "rich" if b is RICH else "codex"
)
def test_every_malformed_variant_is_translated_or_a_400(body: dict[str, Any]) -> None:
    """Each node of a valid body replaced in turn by a value of the wrong kind: the decoder
    returns a request or raises its 400, never another exception (a 500 for the client)."""
    crashes: list[str] = []
    for what, mutated in mutations(body):
        try:
            out, _ = messages_request_from_responses(mutated)
        except VdmError as exc:
            assert exc.status == 400 and exc.param, what
            continue
        except Exception as exc:  # noqa: BLE001 - what this test looks for
            crashes.append(f"{what}: {exc!r}")
            continue
        MessagesRequest.model_validate(out)
    assert not crashes, "\n".join(crashes[:20])


@pytest.mark.parametrize(
    ("choice", "param"),
    [
        ({"type": "allowed_tools", "mode": "auto"}, "tool_choice.tools"),
        ({"type": "allowed_tools", "mode": "auto", "tools": "get_weather"}, "tool_choice.tools"),
        ({"type": "allowed_tools", "tools": [None]}, "tool_choice.tools[0]"),
        ({"type": "allowed_tools", "tools": [{"type": "function"}]}, "tool_choice.tools[0].name"),
        (
            {"type": "allowed_tools", "tools": [{"type": "function", "name": ["get_weather"]}]},
            "tool_choice.tools[0].name",
        ),
        (
            {"type": "allowed_tools", "tools": [{"type": "function", "name": "nope"}]},
            "tool_choice.tools",
        ),
        ({"type": "function", "name": "nope"}, "tool_choice.name"),
        ({"type": "custom"}, "tool_choice.name"),
    ],
)
def test_malformed_tool_choice_is_a_400_naming_it(choice: Any, param: str) -> None:
    body = {"model": "m", "input": "hi", "tools": [WEATHER], "tool_choice": choice}
    error = refused(body)
    assert error.param == param


def test_allowed_tools_keeps_hosted_entries_out_and_reads_an_unknown_mode_as_auto() -> None:
    choice = {
        "type": "allowed_tools",
        "mode": 7,
        "tools": [{"type": "web_search"}, {"type": "function", "name": "get_weather"}],
    }
    tools = [WEATHER, {"type": "function", "name": "get_time"}, {"type": "web_search"}]
    out, _ = convert({"model": "m", "input": "hi", "tools": tools, "tool_choice": choice})
    assert [t["name"] for t in out["tools"]] == ["get_weather"]
    assert out["tool_choice"] == {"type": "auto"}


@pytest.mark.parametrize(
    ("items", "param"),
    [
        ([{"type": ["message"], "role": "user", "content": "hi"}], "input[0].type"),
        ([{"type": 3}], "input[0].type"),
        (["hi"], "input[0]"),
        ({"role": "user", "content": "hi"}, "input"),
        ([{"role": "user", "content": 5}], "input[0].content"),
        ([msg("user", "hi"), fcall("c1", "")], "input[1]"),
        ([msg("user", "hi"), {"type": "function_call", "call_id": "c1", "name": 5}], "input[1]"),
    ],
)
def test_malformed_items_are_a_400_naming_the_place(items: Any, param: str) -> None:
    assert refused({"model": "m", "input": items}).param == param
