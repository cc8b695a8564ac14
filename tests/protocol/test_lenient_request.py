"""The translating path accepts anything Claude Code may send (issue 10; Claude Code's gateway
contract C5, C8, C14).

New values, fields and block types never give a 400: each is dropped or degraded
(vdm/protocol/translation.py), and the provider gets what the degradation says. Every case
runs through the real server (Hypercorn on loopback) against the strict fakes of each dialect:
Chat Completions (OpenAI's and DeepSeek's rules), Responses and native Gemini. What stays a 400
is what is really malformed, and `safeguards`, which must not be dropped silently.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import pytest

from tests.fakes import chat_rules
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.gemini_upstream import check_request as gemini_check
from tests.fakes.openai_upstream import FakeOpenAI, SseReply, stream_chunks
from tests.fakes.responses_upstream import FakeResponses
from tests.fakes.responses_upstream import check_request as responses_check
from tests.harness import RunningVdm, running_vdm
from tests.protocol.targets import target
from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.translation import (
    client_tools,
    loaded_text,
    result_content,
    strict_compatible,
)

GEMINI_KEY = "AIza-lenient-test-key"
BASH = {
    "name": "Bash",
    "description": "Run a shell command",
    "input_schema": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"command": {"type": "string"}},
        "required": ["command"],
        "additionalProperties": False,
    },
}
#: An output schema OpenAI's strict mode takes as it is.
CLOSED = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"t": {"type": "number"}},
                "required": ["t"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["city", "days"],
    "additionalProperties": False,
}
#: One Anthropic takes but strict mode does not: `note` is optional.
OPTIONAL = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "note": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}


@dataclass
class Upstreams:
    chat: FakeOpenAI
    deepseek: FakeOpenAI
    responses: FakeResponses
    gemini: FakeGemini

    def count(self) -> int:
        fakes = (self.chat, self.deepseek, self.responses, self.gemini)
        return sum(len(f.requests) for f in fakes)


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    with (
        FakeOpenAI(rules="openai") as chat,
        FakeOpenAI(rules="deepseek") as deepseek,
        FakeResponses() as responses,
        FakeGemini(api_key=GEMINI_KEY) as gemini,
    ):
        yield Upstreams(chat, deepseek, responses, gemini)


@pytest.fixture(scope="module")
def vdm(upstreams: Upstreams) -> Iterator[RunningVdm]:
    env = {
        "OPENAI_API_KEY": "sk-openai",
        "OPENAI_BASE_URL": upstreams.chat.base_url,
        "DEEPSEEK_API_KEY": "sk-deepseek",
        "DEEPSEEK_BASE_URL": upstreams.deepseek.base_url,
        "RESP_API_KEY": "sk-responses",
        "RESP_BASE_URL": upstreams.responses.base_url,
        "RESP_API_FORMAT": "responses",
        "GEMINI_API_KEY": GEMINI_KEY,
        "GEMINI_BASE_URL": upstreams.gemini.base_url,
        "MAX_RETRIES": "0",
    }
    with running_vdm(env) as server:
        yield server


#: backend -> (the model the client asks for, the fake that serves it)
MODELS = {
    "chat": "openai:gpt-4o",
    "responses": "resp:gpt-5.6-terra",
    "gemini": "gemini:gemini-2.5-flash",
}


def fake_of(upstreams: Upstreams, backend: str) -> FakeOpenAI:
    return {
        "chat": upstreams.chat,
        "responses": upstreams.responses,
        "gemini": upstreams.gemini,
        "deepseek": upstreams.deepseek,
    }[backend]


def body(model: str, **fields: Any) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "hi"}],
        **fields,
    }


def post(vdm: RunningVdm, payload: dict[str, Any], *, stream: bool = False) -> httpx.Response:
    payload = dict(payload, stream=stream)
    with httpx.stream(
        "POST", f"{vdm.url}/v1/messages?beta=true", json=payload, timeout=30
    ) as response:
        response.read()
    return response


def answered(
    vdm: RunningVdm, upstreams: Upstreams, backend: str, model: str | None = None, **fields: Any
) -> Any:
    """Send a request to `backend`'s model (or `model` on it); assert a 200 that reached the
    upstream; return the body the upstream got."""
    fake = fake_of(upstreams, backend)
    before = len(fake.requests)
    model = model or MODELS.get(backend, "deepseek:deepseek-v4-flash")
    response = post(vdm, body(model, **fields))
    assert response.status_code == 200, response.text
    assert len(fake.requests) == before + 1
    return fake.last.json


def refused(vdm: RunningVdm, payload: dict[str, Any], *, stream: bool = False) -> str:
    """A 400 `invalid_request_error` in Anthropic's shape, that the client is told not to
    retry: its message."""
    response = post(vdm, payload, stream=stream)
    assert response.status_code == 400, response.text
    assert response.headers.get("x-should-retry") == "false"
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    return str(error["error"]["message"])


# --- unknown values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "thinking", "expect"),
    [
        ("deepseek", "auto", {"thinking": {"type": "enabled"}}),
        ("deepseek", "off", {"thinking": {"type": "disabled"}}),
        ("responses", "auto", {"reasoning": {"effort": "medium", "summary": "auto"}}),
        ("gemini", "auto", {"thinkingConfig": {"thinkingBudget": -1, "includeThoughts": True}}),
        (
            "gemini",
            "never-heard-of",
            {"thinkingConfig": {"thinkingBudget": -1, "includeThoughts": True}},
        ),
    ],
)
def test_an_unknown_thinking_type_is_read_as_adaptive(
    vdm: RunningVdm, upstreams: Upstreams, backend: str, thinking: str, expect: dict[str, Any]
) -> None:
    sent = answered(vdm, upstreams, backend, thinking={"type": thinking})
    where = sent.get("generationConfig", sent)
    for key, value in expect.items():
        assert where[key] == value


@pytest.mark.parametrize(
    ("backend", "key", "expect"),
    [
        ("chat", "tool_choice", "auto"),
        ("responses", "tool_choice", "auto"),
        ("gemini", "toolConfig", {"functionCallingConfig": {"mode": "AUTO"}}),
    ],
)
def test_an_unknown_tool_choice_type_is_auto(
    vdm: RunningVdm, upstreams: Upstreams, backend: str, key: str, expect: Any
) -> None:
    sent = answered(
        vdm, upstreams, backend, tools=[BASH], tool_choice={"type": "auto_or_none_2027"}
    )
    assert sent[key] == expect


SYSTEM = [
    {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.330;"},
    {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
    {"type": "policy_2027", "rules": ["x"]},
]


@pytest.mark.parametrize("backend", ["chat", "responses", "gemini"])
def test_system_blocks_other_than_text_are_left_out(
    vdm: RunningVdm, upstreams: Upstreams, backend: str
) -> None:
    sent = answered(vdm, upstreams, backend, system=SYSTEM)
    system = {
        "chat": lambda: sent["messages"][0],
        "responses": lambda: sent["instructions"],
        "gemini": lambda: sent["systemInstruction"],
    }[backend]()
    assert system in (
        {"role": "system", "content": "Be brief."},
        "Be brief.",
        {"parts": [{"text": "Be brief."}]},
    )
    assert "policy_2027" not in json.dumps(sent) and "iVBO" not in json.dumps(sent)


TOOLS = [
    BASH,
    {"type": "mcp_toolset", "mcp_server_name": "github", "default_config": {"enabled": True}},
    {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
    {"type": "tool_search_tool_regex_2027", "name": "tool_search"},
    {
        "name": "Strict",
        "description": "A tool with Anthropic-only fields",
        "input_schema": {"type": "object", "properties": {}},
        "strict": True,
        "cache_control": {"type": "ephemeral"},
        "input_examples": [{}],
        "eager_input_streaming": True,
    },
]


def sent_tool_names(backend: str, sent: dict[str, Any]) -> list[str]:
    if backend == "chat":
        return [t["function"]["name"] for t in sent.get("tools", [])]
    if backend == "gemini":
        return [d["name"] for t in sent.get("tools", []) for d in t["functionDeclarations"]]
    return [t["name"] for t in sent.get("tools", [])]


@pytest.mark.parametrize("backend", ["chat", "responses", "gemini"])
def test_server_tools_and_tool_sets_are_dropped_and_client_tools_kept(
    vdm: RunningVdm, upstreams: Upstreams, backend: str
) -> None:
    # gpt-4.1-nano has no search of its own (gpt-4o's is on the Responses API, where a request
    # with web search goes): the web search goes as a stub function (docs/protocol.md).
    model = "openai:gpt-4.1-nano" if backend == "chat" else None
    sent = answered(vdm, upstreams, backend, model, tools=TOOLS)
    assert sent_tool_names(backend, sent) == ["Bash", "Strict", "web_search"]
    dumped = json.dumps(sent)
    for field in ("mcp_toolset", "input_examples", "cache_control", "eager_input_streaming"):
        assert field not in dumped
    if backend == "responses":
        assert [t["strict"] for t in sent["tools"]] == [False, False, False]
    else:
        assert '"strict"' not in dumped


@pytest.mark.parametrize(("backend", "key"), [("chat", "temperature"), ("gemini", "temperature")])
def test_sampling_values_outside_anthropics_range_are_the_providers_to_judge(
    vdm: RunningVdm, upstreams: Upstreams, backend: str, key: str
) -> None:
    sent = answered(vdm, upstreams, backend, temperature=1.5)
    assert sent.get("generationConfig", sent)[key] == 1.5


def test_an_unknown_effort_leaves_the_models_default(vdm: RunningVdm, upstreams: Upstreams) -> None:
    sent = answered(vdm, upstreams, "responses", output_config={"effort": "ludicrous"})
    assert sent["reasoning"]["effort"] == "medium"  # the nearest the model takes


# --- dropped fields -------------------------------------------------------------------------


ANTHROPIC_ONLY = {
    "tags": ["team:infra", "ticket:42"],
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    "container": "container_01",
    "mcp_servers": [{"type": "url", "url": "https://mcp.example", "name": "ex"}],
    "service_tier": "auto",
    "output_config": {"effort": "high", "task_budget": {"type": "tokens", "total": 9000}},
    "messages": [
        {
            "role": "user",
            "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
        }
    ],
}


@pytest.mark.parametrize("backend", ["chat", "responses", "gemini"])
def test_anthropic_only_fields_are_dropped_with_a_debug_line(
    vdm: RunningVdm, upstreams: Upstreams, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="vdm.protocol.translation")
    sent = answered(vdm, upstreams, backend, **ANTHROPIC_ONLY)
    dumped = json.dumps(sent)
    for field in ("tags", "team:infra", "context_management", "container", "mcp_servers"):
        assert field not in dumped
    assert "task_budget" not in dumped and "cache_control" not in dumped
    assert "service_tier" not in dumped
    lines = [r.getMessage() for r in caplog.records if r.name == "vdm.protocol.translation"]
    dropped = next(line for line in lines if line.startswith("dropped what the provider"))
    for field in ("tags", "context_management", "output_config.task_budget", "cache_control"):
        assert field in dropped


# --- safeguards -----------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["not-streamed", "streamed"])
@pytest.mark.parametrize("backend", ["chat", "responses", "gemini", "deepseek"])
def test_safeguards_are_a_400_naming_them_and_reach_no_upstream(
    vdm: RunningVdm, upstreams: Upstreams, backend: str, stream: bool
) -> None:
    before = upstreams.count()
    model = MODELS.get(backend, "deepseek:deepseek-v4-flash")
    payload = body(model, safeguards={"mode": "auto", "policies": ["default"]})
    message = refused(vdm, payload, stream=stream)
    assert message.startswith("safeguards is not supported by ")
    assert model.split(":")[1] in message
    assert upstreams.count() == before


def test_the_anthropic_sdk_sees_the_safeguards_refusal(
    vdm: RunningVdm, upstreams: Upstreams
) -> None:
    before = upstreams.count()
    with anthropic.Anthropic(base_url=vdm.url, api_key="sk-client", max_retries=0) as client:
        with pytest.raises(anthropic.BadRequestError) as caught:
            client.messages.create(
                **body(MODELS["chat"]), extra_body={"safeguards": {"mode": "auto"}}
            )
    assert "safeguards" in caught.value.message
    assert upstreams.count() == before


# --- tool search: deferred tools and tool_reference results -----------------------------------

TOOL_SEARCH = {
    "name": "ToolSearch",
    "description": "Fetches full schema definitions for deferred tools.",
    "input_schema": {
        "type": "object",
        "properties": {"query": {"type": "string"}},
        "required": ["query"],
    },
}
TASK_CREATE = {
    "name": "TaskCreate",
    "description": "Create a task",
    "input_schema": {
        "type": "object",
        "properties": {"subject": {"type": "string"}},
        "required": ["subject"],
    },
    "defer_loading": True,
}
PLACEHOLDER = {
    "name": "DeferredToolPlaceholder",
    "description": "Reserved placeholder that keeps deferred tool loading active.",
    "input_schema": {"type": "object", "properties": {}},
    "defer_loading": True,
}
#: Claude Code 2.1.330 after ToolSearch loaded TaskCreate (recorded against a fake upstream:
#: the loaded tool joins `tools` with `defer_loading`, the result is a `tool_reference`).
SEARCHED = {
    "tools": [TOOL_SEARCH, TASK_CREATE, PLACEHOLDER],
    "messages": [
        {"role": "user", "content": "load the task tool"},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_01ff89ec4bc014e8e13993e3",
                    "name": "ToolSearch",
                    "input": {"query": "select:TaskCreate"},
                }
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01ff89ec4bc014e8e13993e3",
                    "content": [{"type": "tool_reference", "tool_name": "TaskCreate"}],
                }
            ],
        },
    ],
}


def tool_output(backend: str, sent: dict[str, Any]) -> Any:
    if backend == "chat":
        return next(m["content"] for m in sent["messages"] if m["role"] == "tool")
    if backend == "responses":
        return next(i["output"] for i in sent["input"] if i["type"] == "function_call_output")
    parts = [p for c in sent["contents"] for p in c["parts"] if "functionResponse" in p]
    return parts[0]["functionResponse"]["response"]["output"]


@pytest.mark.parametrize("backend", ["chat", "responses", "gemini"])
def test_a_tool_reference_is_text_naming_the_loaded_tool_which_is_sent(
    vdm: RunningVdm, upstreams: Upstreams, backend: str
) -> None:
    sent = answered(vdm, upstreams, backend, **SEARCHED)
    assert tool_output(backend, sent) == "Tool TaskCreate loaded."
    # The loaded tool is there; the placeholder, never loaded, is not.
    assert sent_tool_names(backend, sent) == ["ToolSearch", "TaskCreate"]


@pytest.mark.parametrize("backend", ["chat", "responses", "gemini"])
def test_a_deferred_tool_is_not_sent_before_it_is_loaded(
    vdm: RunningVdm, upstreams: Upstreams, backend: str
) -> None:
    sent = answered(vdm, upstreams, backend, tools=[TOOL_SEARCH, TASK_CREATE, PLACEHOLDER])
    assert sent_tool_names(backend, sent) == ["ToolSearch"]


def test_the_loaded_tool_is_called_through_the_sdk(vdm: RunningVdm, upstreams: Upstreams) -> None:
    upstreams.chat.enqueue(
        SseReply(stream_chunks("", tool_calls=[("TaskCreate", '{"subject": "ship"}')]))
    )
    with anthropic.Anthropic(base_url=vdm.url, api_key="sk-client", max_retries=0) as client:
        with client.messages.stream(model=MODELS["chat"], max_tokens=1024, **SEARCHED) as events:
            message = events.get_final_message()
    use = message.content[-1]
    assert use.type == "tool_use" and use.name == "TaskCreate"
    assert use.input == {"subject": "ship"}
    assert message.stop_reason == "tool_use"


def test_several_references_and_text_beside_them() -> None:
    req = MessagesRequest.model_validate(
        body(
            "m",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "content": [
                                {"type": "tool_reference", "tool_name": "A"},
                                {"type": "tool_reference", "tool_name": "B"},
                                {"type": "text", "text": "Tools loaded."},
                                {"type": "tool_reference", "tool_name": "C"},
                            ],
                        }
                    ],
                }
            ],
        )
    )
    block = req.messages[0].content[0]  # type: ignore[index]
    texts = [b.text for b in result_content(block, str.upper)]  # type: ignore[arg-type, union-attr]
    assert texts == ["Tools A, B loaded.", "Tools loaded.", "Tool C loaded."]
    assert loaded_text(["X"]) == "Tool X loaded."


def test_with_anthropics_server_side_tool_search_every_deferred_tool_is_sent() -> None:
    """No other provider searches tools: the model could load none, so it gets them all."""
    tools = [
        {"type": "tool_search_tool_regex_20251119", "name": "tool_search_tool_regex"},
        BASH,
        TASK_CREATE,
        dict(PLACEHOLDER, name="Other"),
    ]
    req = MessagesRequest.model_validate(body("m", tools=tools))
    assert [t.name for t in client_tools(req)] == ["Bash", "TaskCreate", "Other"]


def test_a_deferred_tool_called_earlier_or_forced_is_sent() -> None:
    messages = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "TaskCreate", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
    ]
    called = MessagesRequest.model_validate(body("m", tools=[TASK_CREATE], messages=messages))
    assert [t.name for t in client_tools(called)] == ["TaskCreate"]
    forced = MessagesRequest.model_validate(
        body("m", tools=[TASK_CREATE], tool_choice={"type": "tool", "name": "TaskCreate"})
    )
    assert [t.name for t in client_tools(forced)] == ["TaskCreate"]


# --- structured outputs -----------------------------------------------------------------------


def fmt(schema: dict[str, Any]) -> dict[str, Any]:
    return {"output_config": {"format": {"type": "json_schema", "schema": schema}}}


@pytest.mark.parametrize(("schema", "strict"), [(CLOSED, True), (OPTIONAL, False)])
def test_chat_gets_response_format_strict_where_strict_mode_takes_the_schema(
    vdm: RunningVdm, upstreams: Upstreams, schema: dict[str, Any], strict: bool
) -> None:
    sent = answered(vdm, upstreams, "chat", **fmt(schema))
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": strict},
    }
    if not strict:  # the strict fake refuses the same schema under strict mode
        flipped = copy.deepcopy(sent)
        flipped["response_format"]["json_schema"]["strict"] = True
        status, error = chat_rules.check("openai", flipped, "/v1/chat/completions")  # type: ignore[misc]
        assert status == 400
        assert error["error"]["message"] == (
            "Invalid schema for response_format 'output': In context=(), 'required' is "
            "required to be supplied and to be an array including every key in properties. "
            "Missing 'note'."
        )


def test_chat_response_format_needs_a_name_as_on_openai() -> None:
    nameless = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"schema": CLOSED}},
    }
    status, error = chat_rules.check("openai", nameless, "/v1/chat/completions")  # type: ignore[misc]
    assert status == 400
    assert error["error"]["message"] == (
        "Missing required parameter: 'response_format.json_schema.name'."
    )


def test_deepseek_gets_json_mode_and_the_schema_in_the_system_prompt(
    vdm: RunningVdm, upstreams: Upstreams
) -> None:
    sent = answered(vdm, upstreams, "deepseek", system="Be brief.", **fmt(OPTIONAL))
    assert sent["response_format"] == {"type": "json_object"}
    system = sent["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("Be brief.\n\n")
    assert json.dumps(OPTIONAL, separators=(",", ":")) in system["content"]
    # DeepSeek refuses the schema form, and JSON mode without "json" in the prompt.
    as_schema = dict(sent, response_format={"type": "json_schema", "json_schema": {}})
    refusal = chat_rules.check("deepseek", as_schema, "/chat/completions")
    assert refusal is not None
    assert refusal[1]["error"]["message"] == "This response_format type is unavailable now"
    bare = dict(sent, messages=[{"role": "user", "content": "hi"}])
    assert chat_rules.check("deepseek", bare, "/chat/completions") is not None


@pytest.mark.parametrize(("schema", "strict"), [(CLOSED, True), (OPTIONAL, False)])
def test_responses_gets_text_format(
    vdm: RunningVdm, upstreams: Upstreams, schema: dict[str, Any], strict: bool
) -> None:
    sent = answered(vdm, upstreams, "responses", **fmt(schema))
    assert sent["text"] == {
        "format": {"type": "json_schema", "name": "output", "schema": schema, "strict": strict}
    }
    if not strict:
        flipped = copy.deepcopy(sent)
        flipped["text"]["format"]["strict"] = True
        rejection = responses_check(flipped)
        assert rejection is not None and rejection.code == "invalid_json_schema"


def test_gemini_gets_a_json_mime_type_and_the_schema(vdm: RunningVdm, upstreams: Upstreams) -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"day": {"$ref": "#/$defs/day"}},
        "required": ["day", "ghost"],
        "$defs": {"day": {"type": "string"}},
    }
    sent = answered(vdm, upstreams, "gemini", **fmt(schema))
    config = sent["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"] == {
        "type": "object",
        "properties": {"day": {"type": "string"}},
        "required": ["day"],
    }
    # As the client sent it, the schema is one Gemini refuses.
    raw = copy.deepcopy(sent)
    raw["generationConfig"]["responseJsonSchema"] = schema
    refusal = gemini_check(raw, "gemini-2.5-flash")
    assert refusal is not None and "property is not defined" in refusal[1]


@pytest.mark.parametrize("backend", ["chat", "responses", "gemini"])
def test_an_output_format_that_is_not_a_json_schema_is_dropped(
    vdm: RunningVdm, upstreams: Upstreams, backend: str
) -> None:
    sent = answered(
        vdm, upstreams, backend, output_config={"format": {"type": "regex", "pattern": "a+"}}
    )
    assert "response_format" not in sent and "text" not in sent
    assert "responseMimeType" not in sent.get("generationConfig", {})
    assert "json_schema" not in json.dumps(sent)


@pytest.mark.parametrize(
    ("schema", "strict"),
    [
        (CLOSED, True),
        (OPTIONAL, False),
        ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}, False),
        ({"type": "array", "items": {"type": "string"}}, False),
        (
            {
                "type": "object",
                "properties": {"a": {"anyOf": [{"type": "object", "properties": {}}]}},
                "required": ["a"],
                "additionalProperties": False,
            },
            False,
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"$ref": "#/$defs/x"}},
                "required": ["a"],
                "additionalProperties": False,
                "$defs": {
                    "x": {
                        "type": "object",
                        "properties": {"b": {"type": "string"}},
                        "required": ["b"],
                        "additionalProperties": False,
                    }
                },
            },
            True,
        ),
    ],
    ids=["closed", "optional", "open", "array-root", "open-in-anyOf", "closed-defs"],
)
def test_strict_mode_only_for_schemas_it_takes(schema: dict[str, Any], strict: bool) -> None:
    assert strict_compatible(schema) is strict


@pytest.mark.parametrize("keyword", [{"minLength": 1}, {"default": "x"}, {"oneOf": []}])
def test_keywords_strict_mode_does_not_know_make_a_schema_not_strict(
    keyword: dict[str, Any],
) -> None:
    schema = copy.deepcopy(CLOSED)
    schema["properties"]["city"].update(keyword)
    assert strict_compatible(CLOSED) and not strict_compatible(schema)


# --- what stays a 400 -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"model": ""}, "model"),
        ({"messages": []}, "messages"),
        ({"thinking": {"type": 5}}, "thinking.type: Input should be a valid string"),
        ({"tool_choice": "auto"}, "tool_choice"),
        ({"tools": [{"description": "no name"}]}, "name: Field required"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "messages.0.role"),
        ({"temperature": "hot"}, "temperature"),
    ],
    ids=[
        "max_tokens",
        "model",
        "messages",
        "thinking-type",
        "tool_choice",
        "nameless-tool",
        "role",
        "temperature-type",
    ],
)
def test_what_is_really_malformed_stays_a_400_naming_the_field(
    vdm: RunningVdm, upstreams: Upstreams, fields: dict[str, Any], named: str
) -> None:
    before = upstreams.count()
    payload = {k: v for k, v in {**body(MODELS["chat"]), **fields}.items() if v is not None}
    assert named in refused(vdm, payload)
    assert upstreams.count() == before


# --- count_tokens -----------------------------------------------------------------------------


def test_count_tokens_takes_the_same_lenient_request(vdm: RunningVdm) -> None:
    payload = {
        "model": MODELS["chat"],
        "system": SYSTEM,
        "tools": TOOLS + [TOOL_SEARCH, TASK_CREATE],
        "tool_choice": {"type": "auto_or_none_2027"},
        "thinking": {"type": "auto"},
        "messages": SEARCHED["messages"],
    }
    response = httpx.post(f"{vdm.url}/v1/messages/count_tokens", json=payload, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["input_tokens"] > 346  # the tool prompt alone is that much


def test_translation_keeps_the_targets_own_names_for_loaded_tools() -> None:
    """A loaded tool whose name OpenAI would refuse is named in the text as the provider
    knows it, the same alias its declaration gets."""
    long_name = "mcp__plugin_a_very_long_server_name__and_an_even_longer_tool_name_here"
    searched = copy.deepcopy(SEARCHED)
    searched["tools"][1] = dict(TASK_CREATE, name=long_name)
    searched["messages"][2]["content"][0]["content"][0]["tool_name"] = long_name
    from vdm.protocol.openai_from_anthropic import chat_request_from_messages

    chat = chat_request_from_messages(
        MessagesRequest.model_validate(body("m", **searched)), target("gpt-4o")
    )
    alias = chat["tools"][1]["function"]["name"]
    assert alias != long_name and len(alias) <= 64
    tool_message = next(m for m in chat["messages"] if m["role"] == "tool")
    assert tool_message["content"] == f"Tool {alias} loaded."
