"""Anthropic request -> Gemini `generateContent` body (vdm/protocol/gemini_from_anthropic.py).

Every body built here is also put to the strict fake's rules (`check_request`): what the
encoder produces must be what the real API accepts. The last section checks those rules
themselves, so that passing them means something.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.fakes.gemini_upstream import check_request, thought_signature
from tests.harness import PROTOCOL
from tests.protocol.targets import target
from tests.server.test_recorded_claude_code import restore
from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.codec import Target
from vdm.protocol.errors import VdmError
from vdm.protocol.gemini_from_anthropic import gemini_request_from_messages
from vdm.protocol.gemini_native_schema import native_parameters
from vdm.protocol.signatures import id_with_thought, pack_thought

PRO3 = "gemini-3-pro-preview"
FLASH25 = "gemini-2.5-flash"
SKIP = "skip_thought_signature_validator"
SIG_A = thought_signature("a")
SIG_B = thought_signature("b")
BASH = {
    "name": "Bash",
    "description": "Run a command",
    "input_schema": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"command": {"type": "string"}},
        "required": ["command"],
        "additionalProperties": False,
    },
}
READ = {
    "name": "Read",
    "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
}


def encode(body: dict[str, Any], model: str = PRO3, **kw: Any) -> dict[str, Any]:
    """The Gemini body for an Anthropic body, checked against the real API's rules."""
    req = MessagesRequest.model_validate({"model": "m", "max_tokens": 1024, **body})
    tgt: Target = target(model, "gemini", **kw)
    sent = gemini_request_from_messages(req, tgt)
    assert check_request(json.loads(json.dumps(sent)), model) is None, sent
    return sent


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def use(tool_id: str, name: str = "Bash", **args: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": args or {"command": "ls"}}


def result(tool_id: str, content: Any = "a.txt", **kw: Any) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": tool_id, "content": content, **kw}


# --- system, roles, text -----------------------------------------------------------------------


def test_system_goes_to_system_instruction_without_the_billing_header() -> None:
    sent = encode(
        {
            "system": [
                {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.330;"},
                {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "x"}},
            ],
            "messages": [user("hi")],
        }
    )
    assert sent["systemInstruction"] == {"parts": [{"text": "You are Claude Code."}]}
    assert sent["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]
    assert "model" not in sent  # the model is in the URL


def test_no_system_instruction_when_there_is_none() -> None:
    assert "systemInstruction" not in encode({"messages": [user("hi")]})


def test_roles_are_user_and_model_and_a_system_entry_is_user_text() -> None:
    sent = encode(
        {
            "messages": [
                user("list the files"),
                {"role": "system", "content": [{"type": "text", "text": "# Environment"}]},
                {"role": "assistant", "content": "Sure."},
                user("thanks"),
            ]
        }
    )
    assert sent["contents"] == [
        {"role": "user", "parts": [{"text": "list the files"}, {"text": "# Environment"}]},
        {"role": "model", "parts": [{"text": "Sure."}]},
        {"role": "user", "parts": [{"text": "thanks"}]},
    ]


def test_a_system_entry_between_a_call_and_its_result_follows_the_responses() -> None:
    sent = encode(
        {
            "tools": [BASH],
            "messages": [
                user("list"),
                {"role": "assistant", "content": [use(id_with_thought("toolu_1", SIG_A))]},
                {"role": "system", "content": "# Environment"},
                {"role": "user", "content": [result(id_with_thought("toolu_1", SIG_A))]},
            ],
        }
    )
    model, answer = sent["contents"][1], sent["contents"][2]
    assert model["role"] == "model" and "functionCall" in model["parts"][0]
    assert answer["role"] == "user"
    assert [next(iter(p)) for p in answer["parts"]] == ["functionResponse", "text"]
    assert answer["parts"][1] == {"text": "# Environment"}


def test_an_all_empty_conversation_is_a_clear_400() -> None:
    req = MessagesRequest.model_validate({"model": "m", "max_tokens": 10, "messages": [user("")]})
    with pytest.raises(VdmError) as caught:
        gemini_request_from_messages(req, target(PRO3, "gemini"))
    assert caught.value.status == 400


# --- tools and their results -------------------------------------------------------------------


def test_calls_and_responses_pair_by_order_with_names_from_the_calls() -> None:
    one, two = id_with_thought("toolu_1", SIG_A), "toolu_2"
    sent = encode(
        {
            "tools": [BASH, READ],
            "messages": [
                user("look"),
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Two things."},
                        use(one),
                        use(two, "Read", path="x"),
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        # Out of order, with text first: Gemini wants the responses in call
                        # order, and the text after them.
                        {"type": "text", "text": "done?"},
                        result(two, [{"type": "text", "text": "X"}]),
                        result(one, "boom", is_error=True),
                    ],
                },
            ],
        }
    )
    model, answer = sent["contents"][1], sent["contents"][2]
    assert model["parts"] == [
        {"text": "Two things."},
        {"functionCall": {"name": "Bash", "args": {"command": "ls"}}, "thoughtSignature": SIG_A},
        {"functionCall": {"name": "Read", "args": {"path": "x"}}},
    ]
    assert answer["parts"] == [
        {"functionResponse": {"name": "Bash", "response": {"error": "boom"}}},
        {"functionResponse": {"name": "Read", "response": {"output": "X"}}},
        {"text": "done?"},
    ]


def test_function_calls_carry_no_id() -> None:
    sent = encode(
        {
            "tools": [BASH],
            "messages": [
                user("x"),
                {"role": "assistant", "content": [use(id_with_thought("toolu_1", SIG_A))]},
                {"role": "user", "content": [result(id_with_thought("toolu_1", SIG_A))]},
            ],
        }
    )
    assert "id" not in sent["contents"][1]["parts"][0]["functionCall"]
    assert "id" not in sent["contents"][2]["parts"][0]["functionResponse"]


def test_a_result_without_its_call_is_text_and_a_call_without_result_an_error() -> None:
    sent = encode(
        {
            "tools": [BASH],
            "messages": [
                user("x"),
                {"role": "assistant", "content": [use(id_with_thought("toolu_1", SIG_A))]},
                {"role": "user", "content": [result("toolu_gone", "old output")]},
            ],
        }
    )
    parts = sent["contents"][2]["parts"]
    assert parts[0]["functionResponse"]["name"] == "Bash"
    assert "error" in parts[0]["functionResponse"]["response"]
    assert parts[1] == {"text": "[result of tool call toolu_gone]\nold output"}


def test_images_in_tool_results_follow_the_responses() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iV"}}
    sent = encode(
        {
            "tools": [BASH],
            "messages": [
                user("x"),
                {"role": "assistant", "content": [use(id_with_thought("toolu_1", SIG_A))]},
                {
                    "role": "user",
                    "content": [result(id_with_thought("toolu_1", SIG_A), [image])],
                },
            ],
        }
    )
    parts = sent["contents"][2]["parts"]
    assert parts[0]["functionResponse"]["response"] == {"output": "[attached below]"}
    assert parts[2] == {"inlineData": {"mimeType": "image/png", "data": "iV"}}


def test_images_and_pdfs_are_inline_data_and_urls_are_named() -> None:
    sent = encode(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j"},
                        },
                        {
                            "type": "document",
                            "source": {
                                "type": "base64",
                                "media_type": "application/pdf",
                                "data": "JVBE",
                            },
                        },
                        {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                        {"type": "text", "text": "describe"},
                    ],
                }
            ]
        }
    )
    assert sent["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "image/jpeg", "data": "/9j"}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}},
        {"text": "[image: https://x/y.png]"},
        {"text": "describe"},
    ]


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ({"type": "auto"}, {"mode": "AUTO"}),
        ({"type": "any"}, {"mode": "ANY"}),
        ({"type": "none"}, {"mode": "NONE"}),
        ({"type": "tool", "name": "Bash"}, {"mode": "ANY", "allowedFunctionNames": ["Bash"]}),
    ],
)
def test_tool_choice(choice: dict[str, Any], config: dict[str, Any]) -> None:
    sent = encode({"tools": [BASH], "tool_choice": choice, "messages": [user("x")]})
    assert sent["toolConfig"] == {"functionCallingConfig": config}


def test_tools_are_function_declarations_with_parameters_json_schema() -> None:
    server = {"type": "web_search_20250305", "name": "web_search"}
    sent = encode({"tools": [BASH, server], "messages": [user("x")]})
    # Google Search cannot go beside functions: the web search is a stub function there.
    declaration, stub = sent["tools"][0]["functionDeclarations"]
    assert stub["name"] == "web_search"
    assert declaration == {
        "name": "Bash",
        "description": "Run a command",
        "parametersJsonSchema": {
            "type": "object",
            "properties": {"command": {"type": "string"}},
            "required": ["command"],
            "additionalProperties": False,  # parametersJsonSchema takes it
        },
    }


# --- thought signatures --------------------------------------------------------------------


def test_signatures_go_back_where_gemini_put_them() -> None:
    tail = thought_signature("tail")
    sent = encode(
        {
            "tools": [BASH],
            "messages": [
                user("go"),
                {
                    "role": "assistant",
                    "content": [
                        # a thought's signature: on the next part; its text is not sent back
                        {"type": "thinking", "thinking": "plan", "signature": pack_thought(SIG_B)},
                        {"type": "text", "text": "Running."},
                        use(id_with_thought("toolu_1", SIG_A)),
                        use("toolu_2"),
                    ],
                },
                {
                    "role": "user",
                    "content": [result(id_with_thought("toolu_1", SIG_A)), result("toolu_2")],
                },
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Done."},
                        {"type": "thinking", "thinking": "", "signature": pack_thought(tail)},
                    ],
                },
                user("thanks"),
            ],
        }
    )
    first, second = sent["contents"][1]["parts"], sent["contents"][3]["parts"]
    assert first == [
        {"text": "Running.", "thoughtSignature": SIG_B},
        {"functionCall": {"name": "Bash", "args": {"command": "ls"}}, "thoughtSignature": SIG_A},
        {"functionCall": {"name": "Bash", "args": {"command": "ls"}}},  # parallel: unsigned
    ]
    # A signature-only thinking block at the end: the empty-text part Gemini sent.
    assert second == [{"text": "Done."}, {"text": "", "thoughtSignature": tail}]
    assert "plan" not in json.dumps(sent)


def test_other_thinking_blocks_are_not_sent() -> None:
    sent = encode(
        {
            "messages": [
                user("a"),
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "anthropic's", "signature": "EqQBCkYI"},
                        {"type": "thinking", "thinking": "chat's", "signature": "vdm-rc1"},
                        {"type": "redacted_thinking", "data": "xx"},
                        {"type": "text", "text": "B"},
                    ],
                },
                user("c"),
            ]
        }
    )
    assert sent["contents"][1] == {"role": "model", "parts": [{"text": "B"}]}


def _switched(model: str) -> dict[str, Any]:
    """A session that switched to Gemini: the calls were made by another model."""
    return encode(
        {
            "tools": [BASH],
            "messages": [
                user("old question"),
                {"role": "assistant", "content": [use("toolu_01Old")]},
                {"role": "user", "content": [result("toolu_01Old")]},
                {"role": "assistant", "content": "Old answer."},
                user("new question"),
                {"role": "assistant", "content": [use("toolu_01A"), use("toolu_01B")]},
                {"role": "user", "content": [result("toolu_01A"), result("toolu_01B")]},
            ],
        },
        model,
    )


def test_a_foreign_call_in_the_current_turn_gets_the_stand_in_on_its_first_call_only() -> None:
    contents = _switched(PRO3)["contents"]
    old, current = contents[1]["parts"], contents[5]["parts"]
    assert "thoughtSignature" not in old[0]  # an earlier turn: not validated
    assert current[0]["thoughtSignature"] == SKIP
    assert "thoughtSignature" not in current[1]


@pytest.mark.parametrize("model", ["gemini-flash-latest", "gemini-3.1-pro-preview"])
def test_the_stand_in_applies_to_every_gemini_3_name(model: str) -> None:
    assert _switched(model)["contents"][5]["parts"][0]["thoughtSignature"] == SKIP


def test_gemini_2_5_gets_no_stand_in() -> None:
    assert "thoughtSignature" not in json.dumps(_switched(FLASH25))


# --- generation config and thinking ----------------------------------------------------------


def test_generation_config() -> None:
    sent = encode(
        {
            "messages": [user("x")],
            "max_tokens": 32000,
            "temperature": 0.5,
            "top_p": 0.9,
            "top_k": 40,
            "stop_sequences": ["a", "b", "c", "d", "e", "f"],
        },
        max_tokens_limit=8192,
    )
    assert sent["generationConfig"] == {
        "maxOutputTokens": 8192,
        "temperature": 0.5,
        "topP": 0.9,
        "topK": 40,
        "stopSequences": ["a", "b", "c", "d", "e"],  # Gemini takes five
    }


THINKING = [
    # (model, thinking, effort, expected thinkingConfig)
    (PRO3, {"type": "adaptive"}, "high", {"thinkingLevel": "high", "includeThoughts": True}),
    (PRO3, {"type": "adaptive"}, "medium", {"thinkingLevel": "high", "includeThoughts": True}),
    (PRO3, {"type": "adaptive"}, "low", {"thinkingLevel": "low", "includeThoughts": True}),
    (PRO3, {"type": "adaptive"}, "max", {"thinkingLevel": "high", "includeThoughts": True}),
    (
        "gemini-3.1-pro-preview",
        {"type": "adaptive"},
        "medium",
        {"thinkingLevel": "medium", "includeThoughts": True},
    ),
    (
        PRO3,
        {"type": "enabled", "budget_tokens": 2000},
        None,
        {"thinkingLevel": "low", "includeThoughts": True},
    ),
    (PRO3, {"type": "adaptive", "display": "omitted"}, "high", {"thinkingLevel": "high"}),
    (PRO3, {"type": "adaptive"}, None, {"includeThoughts": True}),
    (PRO3, {"type": "disabled"}, None, {"thinkingLevel": "low"}),
    (PRO3, None, None, None),
    (FLASH25, {"type": "adaptive"}, "high", {"thinkingBudget": 24576, "includeThoughts": True}),
    (FLASH25, {"type": "adaptive"}, "low", {"thinkingBudget": 1024, "includeThoughts": True}),
    (
        FLASH25,
        {"type": "enabled", "budget_tokens": 31999},
        None,
        {"thinkingBudget": 24576, "includeThoughts": True},
    ),
    (
        FLASH25,
        {"type": "enabled", "budget_tokens": 100},
        None,
        {"thinkingBudget": 512, "includeThoughts": True},
    ),
    (FLASH25, {"type": "adaptive"}, None, {"thinkingBudget": -1, "includeThoughts": True}),
    (FLASH25, {"type": "disabled"}, None, None),
    ("gemini-2.0-flash", {"type": "adaptive"}, "high", None),
]


@pytest.mark.parametrize(("model", "thinking", "effort", "expected"), THINKING)
def test_thinking_config(
    model: str, thinking: dict[str, Any] | None, effort: str | None, expected: dict[str, Any] | None
) -> None:
    body: dict[str, Any] = {"messages": [user("x")]}
    if thinking is not None:
        body["thinking"] = thinking
    if effort is not None:
        body["output_config"] = {"effort": effort}
    config = encode(body, model)["generationConfig"]
    assert config.get("thinkingConfig") == expected
    if expected:
        assert not {"thinkingBudget", "thinkingLevel"} <= set(expected)


# --- schemas ---------------------------------------------------------------------------------


def test_native_schema_inlines_refs_prunes_required_and_drops_schema() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "task": {"$ref": "#/$defs/Task", "description": "the task"},
            "$defs": {"type": "string"},  # a property named like the keyword
            "tree": {"$ref": "#/$defs/Node"},
        },
        "required": ["task", "ghost"],
        "$defs": {
            "Task": {"type": "object", "properties": {"title": {"type": "string"}}},
            "Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}},
        },
    }
    original = copy.deepcopy(schema)
    cleaned = native_parameters(schema)
    assert schema == original  # the client's schema is untouched
    assert cleaned == {
        "type": "object",
        "properties": {
            "task": {
                "type": "object",
                "properties": {"title": {"type": "string"}},
                "description": "the task",
            },
            "$defs": {"type": "string"},
            "tree": {"type": "object", "properties": {"next": {}}},  # recursion cut
        },
        "required": ["task"],
    }


def test_a_missing_schema_is_an_empty_object() -> None:
    assert native_parameters(None) == {"type": "object", "properties": {}}


def _claude_code_body(name: str) -> dict[str, Any]:
    recorded = json.loads((PROTOCOL / "claude-code" / name).read_text())
    return restore(recorded["body"])


@pytest.mark.parametrize("model", [PRO3, FLASH25, "gemini-flash-latest"])
@pytest.mark.parametrize(
    "name",
    [
        "04_tool_roundtrip_req1.json",
        "05_tool_roundtrip_req2_tool_result.json",
        "07_thinking_roundtrip_req2.json",
    ],
)
def test_real_claude_code_requests_are_accepted(name: str, model: str) -> None:
    """Claude Code's own requests (its tool schemas with `$schema` and
    `additionalProperties`, system entries, foreign tool ids, Anthropic-signed thinking)."""
    path = PROTOCOL / "claude-code" / name
    if not path.exists():
        pytest.skip(f"no recorded Claude Code traffic at {path}")
    sent = encode(_claude_code_body(name), model)
    assert "$schema" not in json.dumps(sent["tools"])
    assert "x-anthropic-billing-header" not in json.dumps(sent)


# --- the fake's rules: what passing them proves -----------------------------------------------


def _base() -> dict[str, Any]:
    return {
        "contents": [
            {"role": "user", "parts": [{"text": "x"}]},
            {
                "role": "model",
                "parts": [
                    {"functionCall": {"name": "Bash", "args": {}}, "thoughtSignature": SIG_A}
                ],
            },
            {"role": "user", "parts": [{"functionResponse": {"name": "Bash", "response": {}}}]},
        ]
    }


def test_the_fake_accepts_a_well_formed_body() -> None:
    assert check_request(_base(), PRO3) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b.update(max_tokens=5), 'Unknown name "max_tokens": Cannot find field.'),
        (
            lambda b: b.update(generationConfig={"maxTokens": 5}),
            "Unknown name \"maxTokens\" at 'generation_config': Cannot find field.",
        ),
        (
            lambda b: b["contents"][0].update(role="assistant"),
            "Please use a valid role: user, model.",
        ),
        (lambda b: b["contents"][0].update(parts=[]), "contents.parts must not be empty"),
        (
            lambda b: b["contents"][2]["parts"].append(dict(b["contents"][2]["parts"][0])),
            "number of function response parts is equal to the number of function call parts",
        ),
        (
            lambda b: b["contents"][1]["parts"][0].pop("thoughtSignature"),
            "Function call is missing a thought_signature in functionCall parts",
        ),
        (
            lambda b: b["contents"][1]["parts"][0].update(thoughtSignature=SIG_A.rstrip("=")),
            "Corrupted thought signature.",
        ),
        (
            lambda b: b.update(
                generationConfig={"thinkingConfig": {"thinkingBudget": 1, "thinkingLevel": "low"}}
            ),
            "You can only set only one of thinking budget and thinking level.",
        ),
        (
            lambda b: b.update(generationConfig={"thinkingConfig": {"thinkingLevel": "medium"}}),
            "Thinking level MEDIUM is not supported for this model.",
        ),
        (
            lambda b: b.update(
                tools=[
                    {
                        "functionDeclarations": [
                            {
                                "name": "T",
                                "parametersJsonSchema": {
                                    "type": "object",
                                    "properties": {"a": {"$ref": "#/$defs/A"}},
                                },
                            }
                        ]
                    }
                ]
            ),
            "reference to undefined schema at properties.a",
        ),
        (
            lambda b: b.update(
                tools=[
                    {
                        "functionDeclarations": [
                            {
                                "name": "T",
                                "parametersJsonSchema": {"type": "object", "required": ["a"]},
                            }
                        ]
                    }
                ]
            ),
            "required[0]: property is not defined",
        ),
        (
            lambda b: b.update(
                tools=[
                    {
                        "functionDeclarations": [
                            {
                                "name": "T",
                                "parameters": {"type": "object", "additionalProperties": False},
                            }
                        ]
                    }
                ]
            ),
            'Unknown name "additionalProperties" at '
            "'tools[0].function_declarations[0].parameters'",
        ),
    ],
)
def test_the_fake_refuses_what_gemini_refuses(change: Any, message: str) -> None:
    body = _base()
    change(body)
    rejection = check_request(body, PRO3)
    assert rejection is not None and message in rejection[1], rejection


def test_the_fake_wants_a_budget_in_range_and_no_level_on_2_5() -> None:
    body = _base()
    body["contents"][1]["parts"][0].pop("thoughtSignature")  # 2.5 does not require them
    assert check_request(body, FLASH25) is None
    body["generationConfig"] = {"thinkingConfig": {"thinkingBudget": 30000}}
    assert check_request(body, FLASH25) == (400, "The thinking budget (30000) is invalid.")
    body["generationConfig"] = {"thinkingConfig": {"thinkingLevel": "low"}}
    assert check_request(body, FLASH25) == (400, "thinking_level is not supported by this model")


def test_a_name_gemini_refuses_is_renamed_and_mapped_back() -> None:
    odd = {"name": "1password-lookup", "input_schema": {"type": "object"}}
    tgt = target(PRO3, "gemini")
    req = MessagesRequest.model_validate(
        {
            "model": "m",
            "max_tokens": 10,
            "tools": [odd],
            "tool_choice": {"type": "tool", "name": "1password-lookup"},
            "messages": [
                user("x"),
                {
                    "role": "assistant",
                    "content": [use(id_with_thought("t1", SIG_A), "1password-lookup")],
                },
                {"role": "user", "content": [result(id_with_thought("t1", SIG_A))]},
            ],
        }
    )
    sent = gemini_request_from_messages(req, tgt)
    assert check_request(json.loads(json.dumps(sent)), PRO3) is None
    wire = sent["tools"][0]["functionDeclarations"][0]["name"]
    assert wire.startswith("t_1password-lookup_")
    assert sent["toolConfig"]["functionCallingConfig"]["allowedFunctionNames"] == [wire]
    assert sent["contents"][1]["parts"][0]["functionCall"]["name"] == wire
    assert sent["contents"][2]["parts"][0]["functionResponse"]["name"] == wire
    assert tgt.client_tool_name(wire) == "1password-lookup"
