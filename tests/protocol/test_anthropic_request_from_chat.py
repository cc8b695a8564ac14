"""OpenAI Chat Completions request -> Anthropic Messages request (`anthropic_request_from_chat`).

Every request is built by the official `openai` SDK and captured on the wire (an
`httpx.MockTransport`), so the tests translate exactly what an OpenAI client sends; every
translation must validate as a `MessagesRequest`, the gateway's canonical form.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import openai
import pytest

from tests.protocol.mutations import mutations
from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.anthropic_request_from_chat import messages_request_from_chat, wants_usage_chunk
from vdm.protocol.errors import VdmError
from vdm.protocol.openai_request_in import JSON_OBJECT_INSTRUCTION
from vdm.protocol.openai_turns import INTERRUPTED

PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
PDF_B64 = "JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PD4+CmVuZG9iagp0cmFpbGVyCjw8Pj4KJSVFT0YK"
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "claude-sonnet-4-5",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "ok"},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ],
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CLOCK = {"type": "function", "function": {"name": "get_time"}}


def sent(**params: Any) -> dict[str, Any]:
    """The JSON body the `openai` SDK puts on the wire for `chat.completions.create(**params)`."""
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        if bodies[-1].get("stream"):
            headers = {"content-type": "text/event-stream"}
            return httpx.Response(200, content=b"data: [DONE]\n\n", headers=headers)
        return httpx.Response(200, json=COMPLETION)

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        client = openai.OpenAI(
            api_key="sk-test", base_url="http://vdm.test/v1", http_client=http, max_retries=0
        )
        params.setdefault("model", "claude-sonnet-4-5")
        answer = client.chat.completions.create(**params)
        if isinstance(answer, openai.Stream):
            answer.close()
    return bodies[0]


def translate(**params: Any) -> dict[str, Any]:
    """The Anthropic body for what the SDK sends, checked against the canonical model."""
    out = messages_request_from_chat(sent(**params))
    MessagesRequest.model_validate(out)
    return out


def refused(**params: Any) -> VdmError:
    with pytest.raises(VdmError) as caught:
        messages_request_from_chat(sent(**params))
    assert caught.value.status == 400
    return caught.value


def user(text: str = "hi") -> dict[str, Any]:
    return {"role": "user", "content": text}


def call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def tool_turn(*calls: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": list(calls), **extra}


def tool_msg(call_id: str, content: Any) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


# --- messages ---------------------------------------------------------------------------------


def test_leading_system_and_developer_messages_become_system_blocks() -> None:
    out = translate(
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            user("Hello"),
        ]
    )
    assert out["system"] == [
        {"type": "text", "text": "You are terse."},
        {"type": "text", "text": "Answer in French."},
    ]
    assert out["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]
    assert out["max_tokens"] == 4096  # Anthropic requires it; the client gave none


def test_later_system_message_stays_in_place_but_never_splits_a_call_from_its_result() -> None:
    out = translate(
        messages=[
            user("What is the weather?"),
            {"role": "system", "content": "Be brief."},
            tool_turn(call("call_1", "get_weather", '{"city": "Paris"}')),
            {"role": "system", "content": "Use Celsius."},
            tool_msg("call_1", "18C"),
            user("Thanks"),
        ]
    )
    roles = [m["role"] for m in out["messages"]]
    assert roles == ["user", "system", "assistant", "user", "system"]
    assert out["messages"][1]["content"] == "Be brief."
    assert out["messages"][3]["content"][0]["type"] == "tool_result"
    assert out["messages"][4]["content"] == "Use Celsius."


def test_image_parts_become_base64_or_url_sources() -> None:
    out = translate(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare"},
                    {
                        "type": "image_url",
                        "image_url": {"url": f"data:image/png;base64,{PNG_B64}", "detail": "low"},
                    },
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                ],
            }
        ]
    )
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "Compare"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


def test_inline_pdf_becomes_a_document_and_uploaded_files_are_refused() -> None:
    pdf = {"file_data": f"data:application/pdf;base64,{PDF_B64}", "filename": "a.pdf"}
    out = translate(messages=[{"role": "user", "content": [{"type": "file", "file": pdf}]}])
    assert out["messages"][0]["content"] == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_B64},
            "title": "a.pdf",
        }
    ]
    error = refused(
        messages=[{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}]
    )
    assert error.param == "messages[0].content[0].file.file_id"


def test_audio_input_is_refused_naming_the_part() -> None:
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    error = refused(messages=[{"role": "user", "content": [audio]}])
    assert error.param == "messages[0].content[0].input_audio"
    assert "audio" in error.message


def test_image_url_that_is_neither_http_nor_base64_is_a_400() -> None:
    bad = {"type": "image_url", "image_url": {"url": "ftp://example.com/x.png"}}
    assert refused(messages=[{"role": "user", "content": [bad]}]).param == (
        "messages[0].content[0].image_url.url"
    )


def test_parallel_tool_round_merges_results_and_next_user_text_into_one_turn() -> None:
    out = translate(
        messages=[
            user("Weather in Paris and the time?"),
            {
                "role": "assistant",
                "content": "Checking both.",
                "tool_calls": [
                    call("call_a", "get_weather", '{"city": "Paris"}'),
                    call("call_b", "get_time", ""),
                ],
            },
            tool_msg("call_a", "18C"),
            tool_msg("call_b", [{"type": "text", "text": "12:00"}]),
            user("And tomorrow?"),
        ],
        tools=[WEATHER, CLOCK],
    )
    assistant, results = out["messages"][1], out["messages"][2]
    assert assistant["content"] == [
        {"type": "text", "text": "Checking both."},
        {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_b", "name": "get_time", "input": {}},
    ]
    assert results == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_a", "content": "18C"},
            {
                "type": "tool_result",
                "tool_use_id": "call_b",
                "content": [{"type": "text", "text": "12:00"}],
            },
            {"type": "text", "text": "And tomorrow?"},
        ],
    }
    assert len(out["messages"]) == 3


def test_arguments_that_are_not_json_stay_visible() -> None:
    out = translate(
        messages=[
            user(),
            tool_turn(call("call_1", "get_weather", "city=Paris")),
            tool_msg("call_1", "?"),
        ]
    )
    assert out["messages"][1]["content"][0]["input"] == {"_raw_arguments": "city=Paris"}


def test_unanswered_tool_call_gets_an_error_result_instead_of_a_provider_400() -> None:
    out = translate(
        messages=[user(), tool_turn(call("call_1", "get_weather", "{}")), user("never mind")]
    )
    assert out["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": INTERRUPTED, "is_error": True},
        {"type": "text", "text": "never mind"},
    ]


def test_tool_ids_outside_anthropics_alphabet_are_sanitised_on_both_sides() -> None:
    out = translate(
        messages=[
            user(),
            tool_turn(call("call:1/x", "get_weather", "{}")),
            tool_msg("call:1/x", "ok"),
        ]
    )
    used = out["messages"][1]["content"][0]["id"]
    assert used.replace("_", "").replace("-", "").isalnum()
    assert out["messages"][2]["content"][0]["tool_use_id"] == used


def test_empty_assistant_turn_is_dropped_and_refusal_kept_as_text() -> None:
    out = translate(
        messages=[
            user(),
            {"role": "assistant", "content": ""},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't."}]},
            user("ok"),
        ]
    )
    assert out["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "I can't."}],
    }
    assert len(out["messages"]) == 3


# --- tools and parameters ---------------------------------------------------------------------


def test_tools_and_tool_choice_map_to_anthropic_shapes() -> None:
    out = translate(messages=[user()], tools=[WEATHER, CLOCK], tool_choice="required")
    assert out["tools"] == [
        {
            "name": "get_weather",
            "input_schema": WEATHER["function"]["parameters"],
            "description": "Weather for a city",
        },
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert out["tool_choice"] == {"type": "any"}
    named = {"type": "function", "function": {"name": "get_time"}}
    assert translate(messages=[user()], tools=[CLOCK], tool_choice=named)["tool_choice"] == {
        "type": "tool",
        "name": "get_time",
    }
    assert translate(messages=[user()], tools=[CLOCK], tool_choice="none")["tool_choice"] == {
        "type": "none"
    }


def test_parallel_tool_calls_false_disables_parallel_use() -> None:
    out = translate(messages=[user()], tools=[WEATHER], parallel_tool_calls=False)
    assert out["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    out = translate(
        messages=[user()], tools=[WEATHER], tool_choice="required", parallel_tool_calls=False
    )
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


def test_allowed_tools_narrows_the_tool_list() -> None:
    choice = {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": "required",
            "tools": [{"type": "function", "function": {"name": "get_time"}}],
        },
    }
    out = translate(messages=[user()], tools=[WEATHER, CLOCK], tool_choice=choice)
    assert [t["name"] for t in out["tools"]] == ["get_time"]
    assert out["tool_choice"] == {"type": "any"}


def test_custom_tools_are_refused() -> None:
    custom = {"type": "custom", "custom": {"name": "shell"}}
    assert refused(messages=[user()], tools=[custom]).param == "tools[0]"


def test_max_tokens_prefers_max_completion_tokens() -> None:
    assert translate(messages=[user()], max_tokens=100)["max_tokens"] == 100
    both = translate(messages=[user()], max_tokens=100, max_completion_tokens=300)
    assert both["max_tokens"] == 300


def test_stop_becomes_stop_sequences_without_whitespace_only_entries() -> None:
    assert translate(messages=[user()], stop="END")["stop_sequences"] == ["END"]
    assert translate(messages=[user()], stop=["END", "\n"])["stop_sequences"] == ["END"]


def test_temperature_is_clamped_and_wins_over_top_p() -> None:
    out = translate(messages=[user()], temperature=1.6, top_p=0.9)
    assert out["temperature"] == 1.0
    assert "top_p" not in out
    assert translate(messages=[user()], top_p=0.9)["top_p"] == 0.9


def test_json_schema_response_format_becomes_output_config() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "r", "schema": schema, "strict": True}}
    out = translate(messages=[user()], response_format=fmt)
    assert out["output_config"] == {"format": {"type": "json_schema", "schema": schema}}


def test_json_object_response_format_becomes_a_system_instruction() -> None:
    out = translate(
        messages=[{"role": "system", "content": "Be helpful."}, user()],
        response_format={"type": "json_object"},
    )
    assert out["system"][-1] == {"type": "text", "text": JSON_OBJECT_INSTRUCTION}
    assert "output_config" not in out


def test_stream_user_and_usage_chunk_request() -> None:
    body = sent(messages=[user()], stream=True, stream_options={"include_usage": True}, user="u-1")
    out = messages_request_from_chat(body)
    assert out["stream"] is True
    assert out["metadata"] == {"user_id": "u-1"}
    assert "stream_options" not in out
    assert wants_usage_chunk(body)
    assert not wants_usage_chunk(sent(messages=[user()], stream=True))


def test_n_above_one_is_refused_with_param_n() -> None:
    error = refused(messages=[user()], n=2)
    assert error.param == "n"
    assert translate(messages=[user()], n=1)["messages"]


def test_unsupported_sampling_fields_and_unknown_fields_are_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, "vdm.protocol.anthropic_request_from_chat"):
        out = translate(
            messages=[user()],
            logprobs=True,
            top_logprobs=2,
            seed=7,
            frequency_penalty=0.5,
            presence_penalty=0.5,
            logit_bias={"50256": -100},
            extra_body={"brand_new_field": 1},
        )
    assert set(out) == {"model", "messages", "max_tokens"}
    assert "'brand_new_field' is unknown" in caplog.text


# --- reasoning --------------------------------------------------------------------------------


def test_reasoning_effort_gets_a_budget_and_room_for_the_answer() -> None:
    out = translate(messages=[user()], reasoning_effort="high")
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 16384}
    assert out["max_tokens"] == 16384 + 8192
    low = translate(messages=[user()], reasoning_effort="minimal")
    assert low["thinking"]["budget_tokens"] == 1024  # Anthropic's floor, never below


def test_reasoning_budget_shrinks_below_the_clients_max_tokens() -> None:
    out = translate(messages=[user()], reasoning_effort="high", max_completion_tokens=4000)
    # The answer keeps 1024 tokens: a budget of max - 1 would think and never answer.
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 4000 - 1024}
    assert out["max_tokens"] == 4000
    tight = translate(messages=[user()], reasoning_effort="high", max_completion_tokens=2000)
    assert "thinking" not in tight
    assert tight["output_config"] == {"effort": "high"}  # effort-taking providers still hear it


def test_reasoning_effort_none_means_no_thinking() -> None:
    # Said out loud: providers that think by default (DeepSeek V4, gpt-5.1+) must hear it.
    out = translate(messages=[user()], reasoning_effort="none")
    assert out["thinking"] == {"type": "disabled"}
    assert "output_config" not in out


def test_reasoning_effort_travels_as_output_config_effort() -> None:
    for effort in ("minimal", "low", "medium", "high", "xhigh", "max"):
        out = translate(messages=[user()], reasoning_effort=effort)
        assert out["output_config"] == {"effort": effort}
        assert out["thinking"]["type"] == "enabled"
    structured = translate(
        messages=[user()],
        reasoning_effort="xhigh",
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
    )
    assert structured["output_config"] == {
        "format": {"type": "json_schema", "schema": {}},
        "effort": "xhigh",
    }


def test_thinking_drops_sampling_params_and_gives_way_to_a_forced_tool() -> None:
    out = translate(messages=[user()], reasoning_effort="low", temperature=0.2)
    assert out["thinking"]["budget_tokens"] == 2048
    assert "temperature" not in out
    forced = translate(
        messages=[user()], tools=[WEATHER], tool_choice="required", reasoning_effort="low"
    )
    assert "thinking" not in forced
    assert forced["tool_choice"] == {"type": "any"}


def test_tool_loop_keeps_thinking_only_when_the_client_sent_signed_blocks_back() -> None:
    history = [user(), tool_turn(call("call_1", "get_weather", "{}")), tool_msg("call_1", "18C")]
    assert "thinking" not in translate(messages=history, reasoning_effort="medium")

    signed = {"type": "thinking", "thinking": "Need weather.", "signature": "sig", "index": 0}
    history[1] = tool_turn(call("call_1", "get_weather", "{}"), thinking_blocks=[signed])
    out = translate(messages=history, reasoning_effort="medium")
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    assert out["messages"][1]["content"][0] == {
        "type": "thinking",
        "thinking": "Need weather.",
        "signature": "sig",
    }


def test_missing_messages_and_model_are_400s() -> None:
    with pytest.raises(VdmError) as caught:
        messages_request_from_chat({"model": "m", "messages": []})
    assert caught.value.param == "messages"
    with pytest.raises(VdmError) as caught:
        messages_request_from_chat({"messages": [user()]})
    assert caught.value.param == "model"
    with pytest.raises(VdmError) as caught:
        messages_request_from_chat({"model": "m", "messages": [{"role": "system", "content": "x"}]})
    assert caught.value.param == "messages"


# --- malformed input: a 400, never a crash -----------------------------------------------------

#: A body using every shape the decoder reads, for the mutation test.
RICH = {
    "model": "claude-sonnet-4-5",
    "messages": [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look:"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                {"type": "file", "file": {"file_data": PDF_B64, "filename": "a.pdf"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "thinking_blocks": [{"type": "thinking", "thinking": "t", "signature": "sig"}],
            "tool_calls": [call("c1", "get_weather", '{"city": "Paris"}')],
        },
        tool_msg("c1", [{"type": "text", "text": "sunny"}]),
        {"role": "assistant", "content": None, "function_call": {"name": "get_time"}},
        {"role": "function", "name": "get_time", "content": "noon"},
        user("thanks"),
    ],
    "tools": [WEATHER],
    "functions": [{"name": "get_time", "parameters": {"type": "object"}}],
    "tool_choice": {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": "required",
            "tools": [{"type": "function", "function": {"name": "get_weather"}}],
        },
    },
    "function_call": {"name": "get_time"},
    "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
    "modalities": ["text"],
    "stop": ["END"],
    "max_completion_tokens": 2048,
    "reasoning_effort": "low",
    "parallel_tool_calls": False,
    "stream_options": {"include_usage": True},
}


def test_rich_body_translates() -> None:
    out = messages_request_from_chat(RICH)
    MessagesRequest.model_validate(out)
    assert [t["name"] for t in out["tools"]] == ["get_weather"]
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


@pytest.mark.parametrize(
    "body",
    [RICH, sent(messages=[user()], tools=[WEATHER, CLOCK], tool_choice="auto")],
    ids=["rich", "sdk"],
)
def test_every_malformed_variant_is_translated_or_a_400(body: dict[str, Any]) -> None:
    """Each node of a valid body replaced in turn by a value of the wrong kind: the decoder
    returns a request or raises its 400, never another exception (a 500 for the client)."""
    crashes: list[str] = []
    for what, mutated in mutations(body):
        try:
            out = messages_request_from_chat(mutated)
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
        ({"type": "allowed_tools", "allowed_tools": "auto"}, "tool_choice.allowed_tools"),
        ({"type": "allowed_tools"}, "tool_choice.allowed_tools"),
        (
            {"type": "allowed_tools", "allowed_tools": {"mode": "auto"}},
            "tool_choice.allowed_tools.tools",
        ),
        (
            {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": {"x": 1}}},
            "tool_choice.allowed_tools.tools",
        ),
        (
            {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": ["get_time"]}},
            "tool_choice.allowed_tools.tools[0]",
        ),
        (
            {"type": "allowed_tools", "allowed_tools": {"tools": [{"type": "function"}]}},
            "tool_choice.allowed_tools.tools[0].function.name",
        ),
        (
            {
                "type": "allowed_tools",
                "allowed_tools": {"tools": [{"type": "function", "function": {"name": "nope"}}]},
            },
            "tool_choice.allowed_tools.tools",
        ),
        ({"type": "function", "function": {"name": "nope"}}, "tool_choice.function.name"),
        ({"type": "function", "function": {"name": ["get_time"]}}, "tool_choice.function.name"),
    ],
)
def test_malformed_tool_choice_is_a_400_naming_it(choice: Any, param: str) -> None:
    body = {"model": "m", "messages": [user()], "tools": [WEATHER, CLOCK], "tool_choice": choice}
    with pytest.raises(VdmError) as caught:
        messages_request_from_chat(body)
    assert (caught.value.status, caught.value.param) == (400, param)


def test_allowed_tools_with_an_unknown_mode_reads_as_auto() -> None:
    allowed = {
        "mode": "sometimes",
        "tools": [{"type": "function", "function": {"name": "get_time"}}],
    }
    body = {
        "model": "m",
        "messages": [user()],
        "tools": [WEATHER, CLOCK],
        "tool_choice": {"type": "allowed_tools", "allowed_tools": allowed},
    }
    out = messages_request_from_chat(body)
    assert [t["name"] for t in out["tools"]] == ["get_time"]
    assert out["tool_choice"] == {"type": "auto"}


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ("hi", "messages"),
        ([user(), "hi"], "messages[1]"),
        ([{"role": "user", "content": 5}], "messages[0].content"),
        (
            [user(), tool_turn({"id": "c1", "function": {"arguments": "{}"}})],
            "messages[1].tool_calls[0]",
        ),
        ([user(), {"role": "assistant", "tool_calls": {"id": "c1"}}], "messages[1].tool_calls"),
        ([user(), {"role": "assistant", "function_call": "get_time"}], "messages[1].function_call"),
        ([user(), {"role": "function", "content": "noon"}], "messages[1].name"),
    ],
)
def test_malformed_messages_are_a_400_naming_the_place(messages: Any, param: str) -> None:
    with pytest.raises(VdmError) as caught:
        messages_request_from_chat({"model": "m", "messages": messages})
    assert (caught.value.status, caught.value.param) == (400, param)


# --- the deprecated function calling ----------------------------------------------------------


def test_functions_and_function_call_become_tools_and_tool_choice() -> None:
    body = sent(
        messages=[user()],
        functions=[WEATHER["function"], {"name": "get_time"}],
        function_call={"name": "get_time"},
    )
    out = messages_request_from_chat(body)
    MessagesRequest.model_validate(out)
    assert [t["name"] for t in out["tools"]] == ["get_weather", "get_time"]
    assert out["tools"][0]["input_schema"] == WEATHER["function"]["parameters"]
    assert out["tools"][1]["input_schema"] == {"type": "object", "properties": {}}
    assert out["tool_choice"] == {
        "type": "tool",
        "name": "get_time",
        "disable_parallel_tool_use": True,
    }


@pytest.mark.parametrize(
    ("given", "wanted"),
    [("none", {"type": "none"}), ("auto", {"type": "auto", "disable_parallel_tool_use": True})],
)
def test_function_call_strings_become_tool_choice(given: str, wanted: dict[str, Any]) -> None:
    out = translate(messages=[user()], functions=[WEATHER["function"]], function_call=given)
    assert out["tool_choice"] == wanted


def test_tool_choice_wins_over_function_call() -> None:
    body = sent(messages=[user()], tools=[WEATHER], tool_choice="required", function_call="none")
    assert messages_request_from_chat(body)["tool_choice"] == {"type": "any"}


def test_legacy_function_call_turn_pairs_with_its_function_message() -> None:
    """An assistant `function_call` (no id) and the `function` message answering it are a
    tool_use and its tool_result, paired by name, with an id that is the same every turn."""
    messages = [
        user("Weather in Paris?"),
        {
            "role": "assistant",
            "content": None,
            "function_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {"role": "function", "name": "get_weather", "content": "18C, sunny"},
    ]
    out = translate(messages=messages, functions=[WEATHER["function"]])
    assert out["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "call_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                }
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "18C, sunny"}],
        },
    ]
    assert translate(messages=messages, functions=[WEATHER["function"]]) == out


def test_function_message_without_its_call_stays_as_text() -> None:
    messages = [user("Weather?"), {"role": "function", "name": "get_weather", "content": "sunny"}]
    out = translate(messages=messages)
    assert out["messages"][-1] == {"role": "user", "content": [{"type": "text", "text": "sunny"}]}
    assert all(b["type"] == "text" for m in out["messages"] for b in m["content"])


def test_unanswered_legacy_call_gets_an_error_result() -> None:
    messages = [
        user(),
        {"role": "assistant", "function_call": {"name": "get_time", "arguments": "{}"}},
        user("never mind"),
    ]
    result = translate(messages=messages)["messages"][2]["content"][0]
    assert result == {
        "type": "tool_result",
        "tool_use_id": "call_1",
        "content": INTERRUPTED,
        "is_error": True,
    }


# --- audio output -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"modalities": "audio"}, "modalities"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
    ],
)
def test_audio_output_is_refused(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(VdmError) as caught:
        messages_request_from_chat({"model": "m", "messages": [user()], **extra})
    assert (caught.value.status, caught.value.param) == (400, param)
    assert "audio" in caught.value.message


def test_text_modality_is_fine() -> None:
    out = translate(messages=[user()], modalities=["text"])
    assert "modalities" not in out


def test_deprecated_functions_alone_ask_for_one_call_per_turn() -> None:
    """A `functions` client reads one `function_call` per answer: no parallel calls."""
    out = translate(messages=[user()], functions=[WEATHER["function"]])
    assert out["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert "tool_choice" not in translate(messages=[user()], tools=[WEATHER])
