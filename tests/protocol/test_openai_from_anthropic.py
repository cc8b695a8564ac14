"""Anthropic Messages request -> OpenAI Chat Completions request (`openai_from_anthropic`).

One test per fidelity rule; each asserts what the provider would actually receive.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.protocol.targets import target
from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.openai_chat import ChatRequest
from vdm.protocol.openai_from_anthropic import chat_request_from_messages

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
CLAUDE_CODE = SHARED / "protocol" / "claude-code"

BILLING = "x-anthropic-billing-header: cc_version=2.1.330.930; cc_entrypoint=sdk-cli;"
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
PDF_B64 = "JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PD4+CmVuZG9iagp0cmFpbGVyCjw8Pj4KJSVFT0YK"
DEVICE_ID = "c2f63c157a547fee9eb7e375882f03adf0ed89a82349a6b698a314e68142b429"


# --- helpers ----------------------------------------------------------------------------------


def request(**fields: Any) -> MessagesRequest:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "hi"}],
    }
    body.update(fields)
    return MessagesRequest.model_validate(body)


def translate(model: str = "gpt-4o", *, max_tokens_limit: int | None = None, **fields: Any):
    out = chat_request_from_messages(
        request(**fields), target(model, max_tokens_limit=max_tokens_limit)
    )
    ChatRequest.model_validate(out)  # every output must be a valid Chat Completions body
    return out


def walk_keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from walk_keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk_keys(item)


def leading_system_text(out: dict[str, Any]) -> str:
    """The system prompt the provider sees: all leading system messages, joined."""
    texts = []
    for message in out["messages"]:
        if message["role"] != "system":
            break
        texts.append(message["content"])
    return "\n\n".join(texts)


def roles(out: dict[str, Any]) -> list[str]:
    return [m["role"] for m in out["messages"]]


def image(data: str = PNG_B64, media_type: str = "image/png") -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def tool_use(tool_id: str = "toolu_1", name: str = "Bash", **input_: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": input_ or {"command": "ls"}}


def tool_turn(*blocks: dict[str, Any], calls: tuple[str, ...] = ("toolu_1",)) -> list[Any]:
    """user question, assistant tool calls, then a user turn made of `blocks`."""
    return [
        {"role": "user", "content": "list files"},
        {"role": "assistant", "content": [tool_use(c) for c in calls]},
        {"role": "user", "content": list(blocks)},
    ]


def user_parts(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message["content"]
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def claude_code_user_id(session_id: str, device_id: str = DEVICE_ID) -> str:
    return json.dumps(
        {"device_id": device_id, "account_uuid": "", "session_id": session_id},
        separators=(",", ":"),
    )


# --- system prompt ----------------------------------------------------------------------------


def test_system_string_becomes_first_system_message() -> None:
    out = translate(system="You are terse.")
    assert out["messages"][0] == {"role": "system", "content": "You are terse."}
    assert roles(out) == ["system", "user"]


def test_system_blocks_drop_billing_header_and_keep_order() -> None:
    system = [
        {"type": "text", "text": BILLING},
        {"type": "text", "text": "FIRST block", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "SECOND block", "cache_control": {"type": "ephemeral"}},
    ]
    out = translate(system=system)
    text = leading_system_text(out)
    assert "x-anthropic-billing-header" not in json.dumps(out)
    assert "FIRST block" in text and "SECOND block" in text
    assert text.index("FIRST block") < text.index("SECOND block")
    assert text.startswith("FIRST block")
    assert out["messages"][-1] == {"role": "user", "content": "hi"}


def test_system_role_messages_stay_in_place() -> None:
    messages = [
        {"role": "user", "content": "hello"},
        {"role": "system", "content": "# Environment\ncwd: /tmp"},
        {"role": "assistant", "content": "hi there"},
        {"role": "system", "content": [{"type": "text", "text": "block env"}]},
        {"role": "user", "content": "bye"},
    ]
    out = translate(messages=messages)
    assert out["messages"] == [
        {"role": "user", "content": "hello"},
        {"role": "system", "content": "# Environment\ncwd: /tmp"},
        {"role": "assistant", "content": "hi there"},
        {"role": "system", "content": "block env"},
        {"role": "user", "content": "bye"},
    ]


# --- user content -----------------------------------------------------------------------------


def test_user_string() -> None:
    out = translate(messages=[{"role": "user", "content": "What is 2+2?"}])
    assert out["messages"] == [{"role": "user", "content": "What is 2+2?"}]


def test_text_and_base64_image_become_parts_with_data_url() -> None:
    content = [{"type": "text", "text": "what is this?"}, image()]
    out = translate(messages=[{"role": "user", "content": content}])
    assert out["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
            ],
        }
    ]


def test_url_image_keeps_url() -> None:
    url = "https://example.com/cat.jpg"
    content = [{"type": "image", "source": {"type": "url", "url": url}}]
    out = translate(messages=[{"role": "user", "content": content}])
    (part,) = user_parts(out["messages"][0])
    assert part == {"type": "image_url", "image_url": {"url": url}}


def test_pdf_document_becomes_file_part() -> None:
    doc = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_B64},
    }
    out = translate(messages=[{"role": "user", "content": [doc, {"type": "text", "text": "sum"}]}])
    parts = user_parts(out["messages"][0])
    assert parts[0]["type"] == "file"
    assert parts[0]["file"]["file_data"] == f"data:application/pdf;base64,{PDF_B64}"
    assert parts[0]["file"].get("filename", "x.pdf").endswith(".pdf")
    assert parts[1] == {"type": "text", "text": "sum"}


def test_text_document_becomes_text_part() -> None:
    doc = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "The grass is green."},
        "title": "Facts",
    }
    out = translate(messages=[{"role": "user", "content": [doc]}])
    (part,) = user_parts(out["messages"][0])
    assert part["type"] == "text"
    assert "The grass is green." in part["text"]
    assert "Facts" in part["text"]


def test_content_document_becomes_its_parts() -> None:
    doc = {
        "type": "document",
        "source": {
            "type": "content",
            "content": [{"type": "text", "text": "chunk one"}, image()],
        },
    }
    out = translate(messages=[{"role": "user", "content": [doc]}])
    parts = user_parts(out["messages"][0])
    assert parts == [
        {"type": "text", "text": "chunk one"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
    ]


# --- tools in history -------------------------------------------------------------------------


def test_assistant_tool_use_becomes_tool_calls_with_json_arguments() -> None:
    messages = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Running both."},
                tool_use("toolu_A", "Bash", command="echo ü", timeout=5),
                tool_use("toolu_B", "Read", file_path="/x", opts={"n": [1, 2]}),
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_A", "content": "ü"},
                {"type": "tool_result", "tool_use_id": "toolu_B", "content": "data"},
            ],
        },
    ]
    out = translate(messages=messages)
    assistant = out["messages"][1]
    assert assistant["role"] == "assistant"
    assert assistant["content"] == "Running both."
    calls = assistant["tool_calls"]
    assert [c["id"] for c in calls] == ["toolu_A", "toolu_B"]
    assert [c["type"] for c in calls] == ["function", "function"]
    assert [c["function"]["name"] for c in calls] == ["Bash", "Read"]
    assert all(isinstance(c["function"]["arguments"], str) for c in calls)
    assert json.loads(calls[0]["function"]["arguments"]) == {"command": "echo ü", "timeout": 5}
    assert json.loads(calls[1]["function"]["arguments"]) == {
        "file_path": "/x",
        "opts": {"n": [1, 2]},
    }


def test_tool_result_string_becomes_tool_message() -> None:
    out = translate(
        messages=tool_turn({"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt"})
    )
    assert roles(out) == ["user", "assistant", "tool"]
    assert out["messages"][2] == {"role": "tool", "tool_call_id": "toolu_1", "content": "a.txt"}


def test_tool_result_blocks_become_tool_message_text() -> None:
    result = {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": [{"type": "text", "text": "line one"}, {"type": "text", "text": "line two"}],
    }
    out = translate(messages=tool_turn(result))
    tool = out["messages"][2]
    assert tool["role"] == "tool" and tool["tool_call_id"] == "toolu_1"
    assert isinstance(tool["content"], str)
    assert tool["content"].index("line one") < tool["content"].index("line two")


@pytest.mark.parametrize(
    "text_first", [False, True], ids=["results-then-text", "text-then-results"]
)
def test_text_next_to_tool_results_follows_the_tool_messages(text_first: bool) -> None:
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt"}
    note = {"type": "text", "text": "Also, please hurry."}
    blocks = (note, result) if text_first else (result, note)
    out = translate(messages=tool_turn(*blocks))
    assert roles(out) == ["user", "assistant", "tool", "user"]
    assert out["messages"][2]["tool_call_id"] == "toolu_1"
    assert out["messages"][2]["content"] == "a.txt"
    assert user_parts(out["messages"][3]) == [{"type": "text", "text": "Also, please hurry."}]


def test_image_next_to_tool_result_follows_the_tool_messages() -> None:
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}
    out = translate(messages=tool_turn(image(), result))
    assert roles(out) == ["user", "assistant", "tool", "user"]
    parts = user_parts(out["messages"][3])
    assert {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}} in parts


def test_image_inside_tool_result_moves_to_following_user_message() -> None:
    result = {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": [{"type": "text", "text": "screenshot taken"}, image()],
    }
    out = translate(messages=tool_turn(result))
    assert roles(out) == ["user", "assistant", "tool", "user"]
    tool = out["messages"][2]
    assert isinstance(tool["content"], str)  # OpenAI tool messages carry text
    assert "screenshot taken" in tool["content"]
    assert PNG_B64 not in tool["content"]
    parts = user_parts(out["messages"][3])
    assert {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}} in parts


def test_is_error_marker_is_kept() -> None:
    error = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "boom", "is_error": True}
    ok = {"type": "tool_result", "tool_use_id": "toolu_2", "content": "fine", "is_error": False}
    out = translate(messages=tool_turn(error, ok, calls=("toolu_1", "toolu_2")))
    failed, passed = out["messages"][2], out["messages"][3]
    assert "boom" in failed["content"]
    assert failed["content"] != "boom"
    assert "error" in failed["content"].lower()
    assert passed["content"] == "fine"


def test_several_tool_results_become_several_tool_messages_in_order() -> None:
    calls = ("toolu_1", "toolu_2", "toolu_3")
    results = [{"type": "tool_result", "tool_use_id": c, "content": f"out {c}"} for c in calls]
    out = translate(messages=tool_turn(*results, calls=calls))
    assert out["messages"][2:] == [
        {"role": "tool", "tool_call_id": c, "content": f"out {c}"} for c in calls
    ]


def test_thinking_blocks_in_assistant_history_are_not_forwarded() -> None:
    messages = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "SECRET PLAN", "signature": "SIG-123"},
                {"type": "redacted_thinking", "data": "REDACTED-BLOB"},
                {"type": "text", "text": "Hello!"},
            ],
        },
        {"role": "user", "content": "again"},
    ]
    out = translate(messages=messages)
    dumped = json.dumps(out)
    for secret in ("SECRET PLAN", "SIG-123", "REDACTED-BLOB"):
        assert secret not in dumped
    assert out["messages"][1] == {"role": "assistant", "content": "Hello!"}
    assert "reasoning_content" not in set(walk_keys(out))


# --- tools and tool_choice --------------------------------------------------------------------

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {"command": {"type": "string", "description": "the command"}},
    "required": ["command"],
    "additionalProperties": False,
}
BASH = {"name": "Bash", "description": "Run a command", "input_schema": SCHEMA}


def test_tools_become_functions_with_schema_unchanged() -> None:
    out = translate(tools=[BASH])
    assert out["tools"] == [
        {
            "type": "function",
            "function": {"name": "Bash", "description": "Run a command", "parameters": SCHEMA},
        }
    ]


def test_server_tools_are_dropped() -> None:
    code = {"type": "code_execution_20250522", "name": "code_execution"}
    out = translate(tools=[code, BASH])
    assert [t["function"]["name"] for t in out["tools"]] == ["Bash"]
    assert "code_execution" not in json.dumps(out)
    # (web search: a stub function where the provider cannot search, tests/protocol/
    # test_search_stub.py)


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "Bash"}, {"type": "function", "function": {"name": "Bash"}}),
    ],
    ids=["auto", "any", "none", "tool"],
)
def test_tool_choice(choice: dict[str, Any], expected: Any) -> None:
    out = translate(tools=[BASH], tool_choice=choice)
    assert out["tool_choice"] == expected
    assert "parallel_tool_calls" not in out


@pytest.mark.parametrize(
    "tools",
    [None, [{"type": "code_execution_20250522", "name": "code_execution"}]],
    ids=["none", "server"],
)
def test_tool_choice_without_client_tools_is_omitted(tools: Any) -> None:
    out = translate(tools=tools, tool_choice={"type": "any"})
    assert "tool_choice" not in out
    assert "tools" not in out


def test_disable_parallel_tool_use() -> None:
    choice = {"type": "auto", "disable_parallel_tool_use": True}
    out = translate(tools=[BASH], tool_choice=choice)
    assert out["parallel_tool_calls"] is False


# --- sampling and limits ----------------------------------------------------------------------


def test_stop_sequences_become_stop() -> None:
    out = translate(stop_sequences=["</answer>", "\n\nHuman:"])
    assert out["stop"] == ["</answer>", "\n\nHuman:"]


def test_sampling_passed_for_gpt_4o() -> None:
    out = translate("gpt-4o", temperature=0.3, top_p=0.9)
    assert out["temperature"] == 0.3
    assert out["top_p"] == 0.9


@pytest.mark.parametrize("model", ["o3", "gpt-5"])
def test_sampling_absent_for_reasoning_models(model: str) -> None:
    out = translate(model, temperature=0.3, top_p=0.9)
    assert "temperature" not in out
    assert "top_p" not in out


@pytest.mark.parametrize("model", ["gpt-4o", "llama-3.1-70b", "o3"])
def test_top_k_never_sent(model: str) -> None:
    out = translate(model, top_k=40, temperature=0.5)
    assert "top_k" not in set(walk_keys(out))


@pytest.mark.parametrize(
    ("model", "field"),
    [
        ("gpt-4o", "max_completion_tokens"),
        ("o3", "max_completion_tokens"),
        ("gpt-5", "max_completion_tokens"),
        ("llama-3.1-70b", "max_tokens"),
        ("deepseek-chat", "max_tokens"),
    ],
)
def test_max_tokens_field_per_model(model: str, field: str) -> None:
    out = translate(model, max_tokens=2048)
    other = {"max_tokens", "max_completion_tokens"} - {field}
    assert out[field] == 2048
    assert not other & set(out)


def test_no_clamp_by_default_beyond_the_models_ceiling() -> None:
    big = request(max_tokens=128000)
    # Unknown models: sent as asked.
    assert chat_request_from_messages(big, target("some-model"))["max_tokens"] == 128000
    # Known ceilings: gpt-4o 16384, deepseek-chat 8192 (more is the provider's 400).
    assert chat_request_from_messages(big, target("gpt-4o"))["max_completion_tokens"] == 16384
    assert (
        chat_request_from_messages(big, target("deepseek-chat", "deepseek"))["max_tokens"] == 8192
    )


def test_max_tokens_limit_clamps_only_when_given() -> None:
    clamped = translate("deepseek-chat", max_tokens=128000, max_tokens_limit=8192)
    assert clamped["max_tokens"] == 8192
    below = translate("deepseek-chat", max_tokens=1000, max_tokens_limit=8192)
    assert below["max_tokens"] == 1000


# --- metadata ---------------------------------------------------------------------------------

SESSION_A = "03335b60-8b52-417b-8d40-d201031319b3"
SESSION_B = "1f72f29e-b9a7-489c-920b-fe7bc70f344b"


def test_claude_code_user_id_gives_stable_short_user_and_cache_key() -> None:
    a = translate("gpt-4o", metadata={"user_id": claude_code_user_id(SESSION_A)})
    b = translate("gpt-4o", metadata={"user_id": claude_code_user_id(SESSION_B)})
    assert isinstance(a["user"], str) and 0 < len(a["user"]) <= 64
    assert a["user"] == b["user"]  # stable across sessions of the same device
    assert a["prompt_cache_key"] == SESSION_A
    assert b["prompt_cache_key"] == SESSION_B
    other = translate("gpt-4o", metadata={"user_id": claude_code_user_id(SESSION_A, "ab" * 32)})
    assert other["user"] != a["user"]


def test_prompt_cache_key_only_for_models_that_take_it() -> None:
    out = translate("llama-3.1-70b", metadata={"user_id": claude_code_user_id(SESSION_A)})
    assert "prompt_cache_key" not in out
    assert len(out["user"]) <= 64


def test_plain_user_id_passed_unchanged() -> None:
    out = translate("gpt-4o", metadata={"user_id": "user-42"})
    assert out["user"] == "user-42"
    assert "prompt_cache_key" not in out


# --- reasoning effort -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("budget", "effort"),
    [(1024, "low"), (2000, "low"), (8000, "medium"), (12000, "medium"), (31999, "high")],
)
def test_thinking_budget_maps_to_reasoning_effort(budget: int, effort: str) -> None:
    out = translate("o3", thinking={"type": "enabled", "budget_tokens": budget})
    assert out["reasoning_effort"] == effort


def test_adaptive_thinking_with_effort_high() -> None:
    out = translate(
        "gpt-5",
        thinking={"type": "adaptive", "display": "omitted"},
        output_config={"effort": "high"},
    )
    assert out["reasoning_effort"] == "high"


@pytest.mark.parametrize("effort", ["low", "medium", "high"])
def test_output_config_effort_is_passed(effort: str) -> None:
    out = translate("o3", thinking={"type": "adaptive"}, output_config={"effort": effort})
    assert out["reasoning_effort"] == effort


def test_output_config_effort_wins_over_thinking_budget() -> None:
    out = translate(
        "o3",
        thinking={"type": "enabled", "budget_tokens": 31999},
        output_config={"effort": "low"},
    )
    assert out["reasoning_effort"] == "low"


@pytest.mark.parametrize(
    ("model", "effort"),
    [("o3", "high"), ("gpt-5", "high"), ("gpt-5.2", "xhigh"), ("gpt-5.1-codex-max", "xhigh")],
)
def test_effort_max_maps_to_models_max_effort(model: str, effort: str) -> None:
    out = translate(model, thinking={"type": "adaptive"}, output_config={"effort": "max"})
    assert out["reasoning_effort"] == effort


def test_effort_max_on_gpt_5_1_is_high() -> None:
    out = translate("gpt-5.1", thinking={"type": "adaptive"}, output_config={"effort": "max"})
    assert out["reasoning_effort"] == "high"


def test_thinking_disabled_sends_the_least_effort_the_model_takes() -> None:
    """Not the model's default (`medium`), and not the effort a disabled thinking names."""
    out = translate("o3", thinking={"type": "disabled"}, output_config={"effort": "high"})
    assert out["reasoning_effort"] == "low"
    assert translate("gpt-5.1", thinking={"type": "disabled"})["reasoning_effort"] == "none"


@pytest.mark.parametrize("model", ["gpt-4o", "llama-3.1-70b", "deepseek-chat"])
def test_non_reasoning_model_never_gets_reasoning_effort(model: str) -> None:
    out = translate(
        model,
        thinking={"type": "enabled", "budget_tokens": 31999},
        output_config={"effort": "high"},
    )
    assert "reasoning_effort" not in out


# --- streaming --------------------------------------------------------------------------------


def test_stream_asks_for_usage() -> None:
    out = translate(stream=True)
    assert out["stream"] is True
    assert out["stream_options"] == {"include_usage": True}


def test_non_stream_has_no_stream_fields() -> None:
    out = translate(stream=False)
    assert "stream" not in out or out["stream"] is False
    assert "stream_options" not in out


# --- nothing Anthropic-only leaks -------------------------------------------------------------

FORBIDDEN = {
    "cache_control",
    "context_management",
    "output_config",
    "thinking",
    "metadata",
    "top_k",
    "container",
    "mcp_servers",
    "service_tier",
    "budget_tokens",
    "defer_loading",
    "signature",
    "input_schema",
    "is_error",
    "tool_use_id",
}


@pytest.mark.parametrize("model", ["gpt-4o", "o3", "gpt-5", "llama-3.1-70b", "deepseek-chat"])
def test_anthropic_only_fields_never_appear(model: str) -> None:
    cc = {"cache_control": {"type": "ephemeral"}}
    fields: dict[str, Any] = {
        "system": [{"type": "text", "text": BILLING}, {"type": "text", "text": "sys", **cc}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi", **cc}, {**image(), **cc}]},
            {"role": "system", "content": [{"type": "text", "text": "env", **cc}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "text", "text": "ok", **cc},
                    {**tool_use("toolu_1"), **cc},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "text", "text": "r", **cc}],
                        "is_error": False,
                        **cc,
                    },
                    {"type": "text", "text": "more", **cc},
                ],
            },
        ],
        "tools": [{**BASH, **cc, "defer_loading": True}],
        "tool_choice": {"type": "auto"},
        "metadata": {"user_id": claude_code_user_id(SESSION_A)},
        "thinking": {"type": "enabled", "budget_tokens": 10000},
        "output_config": {"effort": "medium"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "top_k": 5,
        "container": "container_abc",
        "mcp_servers": [{"type": "url", "url": "https://mcp.example", "name": "ex"}],
        "service_tier": "auto",
        "stream": True,
    }
    out = translate(model, **fields)
    leaked = FORBIDDEN & set(walk_keys(out))
    assert not leaked, f"Anthropic-only keys reached the provider: {sorted(leaked)}"
    assert "container_abc" not in json.dumps(out)
    assert "mcp.example" not in json.dumps(out)


# --- recorded Claude Code requests ------------------------------------------------------------


def _recorded() -> list[Any]:
    if not CLAUDE_CODE.is_dir():
        reason = f"recorded Claude Code requests not found at {CLAUDE_CODE}"
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="absent")]
    params = []
    for path in sorted(CLAUDE_CODE.glob("*.json")):
        data = json.loads(path.read_text())
        body = data.get("body") if isinstance(data, dict) else None
        if isinstance(body, dict) and "max_tokens" in body:
            params.append(pytest.param(path, id=path.stem))
    return params


def replayable(path: Path) -> dict[str, Any]:
    """The recorded body made whole again, as the README says."""
    body = copy.deepcopy(json.loads(path.read_text())["body"])
    body.pop("_tool_names", None)
    for tool in body.get("tools") or ():
        if "_omitted" in tool:
            del tool["_omitted"]
            tool["input_schema"] = {"type": "object", "properties": {}}
    return body


def recorded(prefix: str) -> dict[str, Any]:
    if not CLAUDE_CODE.is_dir():
        pytest.skip(f"recorded Claude Code requests not found at {CLAUDE_CODE}")
    (path,) = CLAUDE_CODE.glob(f"{prefix}_*.json")
    return replayable(path)


@pytest.mark.parametrize("model", ["gpt-4o", "o3", "llama-3.1-70b"])
@pytest.mark.parametrize("path", _recorded())
def test_recorded_claude_code_request_translates(path: Path, model: str) -> None:
    body = replayable(path)
    out = chat_request_from_messages(MessagesRequest.model_validate(body), target(model))
    ChatRequest.model_validate(out)
    first = out["messages"][0]
    assert first["role"] == "system"
    assert "x-anthropic-billing-header" not in json.dumps(out)
    system_blocks = [b["text"] for b in body["system"] if not b["text"].startswith("x-anthropic")]
    assert leading_system_text(out).startswith(system_blocks[0])
    leaked = FORBIDDEN & set(walk_keys(out))
    assert not leaked, f"Anthropic-only keys reached the provider: {sorted(leaked)}"


def test_recorded_tool_round_trip() -> None:
    body = recorded("05")
    out = chat_request_from_messages(MessagesRequest.model_validate(body), target("gpt-4o"))
    messages = out["messages"]
    tool_use_id = body["messages"][-1]["content"][0]["tool_use_id"]
    assert roles(out)[-2:] == ["assistant", "tool"]
    calls = messages[-2]["tool_calls"]
    assert [c["id"] for c in calls] == [tool_use_id]
    assert json.loads(calls[0]["function"]["arguments"])["command"] == "echo hello"
    assert messages[-1] == {"role": "tool", "tool_call_id": tool_use_id, "content": "hello"}


def test_recorded_denied_tool_keeps_error_marker() -> None:
    body = recorded("06")
    out = chat_request_from_messages(MessagesRequest.model_validate(body), target("gpt-4o"))
    tool = out["messages"][-1]
    assert tool["role"] == "tool"
    assert "needs approval" in tool["content"]
    assert "error" in tool["content"].lower()


def test_recorded_thinking_round_trip_forwards_no_thinking() -> None:
    body = recorded("07")
    thinking = [
        block
        for message in body["messages"]
        if isinstance(message["content"], list)
        for block in message["content"]
        if block["type"] == "thinking"
    ]
    assert thinking, "fixture 07 should carry a thinking block"
    for model in ("gpt-4o", "o3", "deepseek-chat"):
        out = chat_request_from_messages(MessagesRequest.model_validate(body), target(model))
        dumped = json.dumps(out)
        for block in thinking:
            assert block["thinking"] not in dumped
            assert block["signature"] not in dumped
        assert roles(out)[-2:] == ["assistant", "tool"]
