"""Per-provider rules of the Chat Completions encoder, and the strict fake rules they meet.

Each rule is tested twice: what `chat_request_from_messages` sends for that (provider,
model), and the fake provider's validator (tests/fakes/chat_rules.py) rejecting the request
without the rule and accepting vdm's.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from tests.fakes.chat_rules import SKIP_SIGNATURE, check
from tests.protocol.targets import target
from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.anthropic_from_openai import ChatStreamDecoder, message_from_chat
from vdm.protocol.chat_messages import alnum9
from vdm.protocol.codec import ReasoningCache, Target
from vdm.protocol.openai_chat import ChatRequest
from vdm.protocol.openai_from_anthropic import chat_request_from_messages
from vdm.protocol.rejected_fields import drop_rejected
from vdm.protocol.signatures import id_with_thought

PATH = "/v1/chat/completions"
SIG = "CsIBAdHtim9+Yb0/Qx7r2k3T1Ma4+fUQ0xg9m0VYzZ9d8QO1w7Vv/wJjQbS2cA=="
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


def thinking(text: str, signature: str | None = "vdm-rc1") -> dict[str, Any]:
    block: dict[str, Any] = {"type": "thinking", "thinking": text}
    if signature is not None:
        block["signature"] = signature
    return block


def call(tool_id: str, command: str = "ls") -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": "Bash", "input": {"command": command}}


def result(tool_id: str, content: str = "a.txt") -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": tool_id, "content": content}


def loop(*assistant: dict[str, Any], ids: tuple[str, ...] = ("toolu_1",)) -> list[Any]:
    """user, the assistant turn made of `assistant` blocks, the results of `ids`."""
    return [
        {"role": "user", "content": "list files"},
        {"role": "assistant", "content": list(assistant)},
        {"role": "user", "content": [result(i) for i in ids]},
    ]


def encode(
    model: str,
    family: str,
    messages: list[Any],
    *,
    cache: ReasoningCache | None = None,
    **fields: Any,
) -> dict[str, Any]:
    return encode_for(target(model, family, cache=cache), messages, **fields)


def encode_for(tgt: Target, messages: list[Any], **fields: Any) -> dict[str, Any]:
    body = {
        "model": "claude-x",
        "max_tokens": 1024,
        "messages": messages,
        "tools": [BASH],
        **fields,
    }
    out = chat_request_from_messages(MessagesRequest.model_validate(body), tgt)
    ChatRequest.model_validate(out)
    return out


def assistants(out: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in out["messages"] if m["role"] == "assistant"]


def accepted(family: str, out: dict[str, Any]) -> bool:
    return check(family, out, PATH) is None


# --- reasoning that travels back (DeepSeek V4, Kimi) ------------------------------------------

ECHO = [
    ("deepseek", "deepseek-v4-pro"),
    ("deepseek", "deepseek-reasoner"),
    ("moonshot", "kimi-k2-thinking"),
    ("moonshot", "kimi-k2.6"),
]


@pytest.mark.parametrize(("family", "model"), ECHO)
def test_thinking_blocks_become_reasoning_content(family: str, model: str) -> None:
    messages = loop(thinking("First I look."), thinking(" Then I run ls.", None), call("toolu_1"))
    out = encode(model, family, messages)
    (assistant,) = assistants(out)
    assert assistant["reasoning_content"] == "First I look. Then I run ls."
    assert accepted(family, out)
    del assistant["reasoning_content"]
    assert not accepted(family, out), "the provider refuses the turn without it"


@pytest.mark.parametrize(
    "signature", ["EqQBCkgIARABGAIiQ", "vdm-rs1:eyJpZCI6InJzXzEifQ", "vdm-g1:Cs0B"]
)
def test_thinking_that_is_not_reasoning_content_is_not_sent(signature: str) -> None:
    """Anthropic's own thinking, or Responses/Gemini state, is not DeepSeek's reasoning."""
    out = encode(
        "deepseek-v4-pro", "deepseek", loop(thinking("SECRET", signature), call("toolu_1"))
    )
    assert "SECRET" not in json.dumps(out)
    assert assistants(out)[0]["reasoning_content"] == ""
    assert accepted("deepseek", out)


A_ID = "toolu_01XyZ9aBcDeFgHiJkLmNoP"
B_ID = "call_00_q2VxR8mZcT4bW1nL6yJ3hK0d"


def test_dropped_thinking_is_restored_from_the_cache_by_tool_call() -> None:
    cache = ReasoningCache()
    cache.put(B_ID, "Bash", {"command": "ls"}, "remembered reasoning")
    out = encode(
        "deepseek-v4-pro",
        "deepseek",
        loop(call(A_ID), call(B_ID), ids=(A_ID, B_ID)),
        cache=cache,
    )
    assert assistants(out)[0]["reasoning_content"] == "remembered reasoning"


def test_thinking_in_the_history_wins_over_the_cache() -> None:
    cache = ReasoningCache()
    cache.put(A_ID, "Bash", {"command": "ls"}, "stale")
    out = encode(
        "kimi-k2-thinking",
        "moonshot",
        loop(thinking("fresh"), call(A_ID), ids=(A_ID,)),
        cache=cache,
    )
    assert assistants(out)[0]["reasoning_content"] == "fresh"


@pytest.mark.parametrize(("family", "model"), ECHO)
def test_nothing_to_restore_sends_it_empty(family: str, model: str) -> None:
    out = encode(
        model,
        family,
        [
            *loop(call("toolu_1")),
            {"role": "assistant", "content": "Done."},
            {"role": "user", "content": "thanks"},
        ],
    )
    first, text_only = assistants(out)
    assert first["reasoning_content"] == "" and text_only["reasoning_content"] == ""
    assert accepted(family, out)


def test_deepseek_thinking_switch_and_effort() -> None:
    out = encode(
        "deepseek-v4-flash",
        "deepseek",
        loop(call("toolu_1")),
        thinking={"type": "adaptive"},
        output_config={"effort": "medium"},
    )
    assert out["thinking"] == {"type": "enabled"}
    assert out["reasoning_effort"] == "high"  # DeepSeek takes low, high, max


@pytest.mark.parametrize(
    ("effort", "sent"),
    [
        ("minimal", "low"),
        ("low", "low"),
        ("medium", "high"),
        ("high", "high"),
        ("xhigh", "max"),
        ("max", "max"),
    ],
)
def test_deepseek_efforts(effort: str, sent: str) -> None:
    out = encode(
        "deepseek-v4-pro", "deepseek", loop(call("toolu_1")), output_config={"effort": effort}
    )
    assert out["reasoning_effort"] == sent


def test_deepseek_budget_maps_through_its_efforts() -> None:
    out = encode(
        "deepseek-v4-pro",
        "deepseek",
        loop(call("toolu_1")),
        thinking={"type": "enabled", "budget_tokens": 10000},
    )
    assert out["reasoning_effort"] == "high"  # medium is not one of DeepSeek's


def test_deepseek_thinking_disabled_sends_no_reasoning() -> None:
    messages = loop(thinking("old reasoning"), call("toolu_1"))
    out = encode(
        "deepseek-v4-pro",
        "deepseek",
        messages,
        thinking={"type": "disabled"},
        output_config={"effort": "high"},
    )
    assert out["thinking"] == {"type": "disabled"}
    assert "reasoning_effort" not in out
    assert "reasoning_content" not in assistants(out)[0]
    assert accepted("deepseek", out)


def test_no_thinking_field_leaves_the_providers_default() -> None:
    out = encode("deepseek-v4-pro", "deepseek", loop(call("toolu_1")))
    assert "thinking" not in out and "reasoning_effort" not in out
    assert assistants(out)[0]["reasoning_content"] == ""  # thinking is on by default


def test_kimi_switch_only_where_it_exists() -> None:
    on = encode("kimi-k2.6", "moonshot", loop(call("toolu_1")), thinking={"type": "disabled"})
    assert on["thinking"] == {"type": "disabled"} and "reasoning_content" not in assistants(on)[0]
    forced = encode(
        "kimi-k2-thinking", "moonshot", loop(call("toolu_1")), thinking={"type": "disabled"}
    )
    assert "thinking" not in forced and assistants(forced)[0]["reasoning_content"] == ""


@pytest.mark.parametrize(
    ("family", "model"),
    [
        ("deepseek", "deepseek-chat"),
        ("moonshot", "kimi-k2-0905-preview"),
        ("openai", "deepseek-v4-pro"),
        ("groq", "openai/gpt-oss-120b"),
        ("openai", "gpt-4o"),
    ],
)
def test_no_reasoning_content_where_the_model_does_not_need_it(family: str, model: str) -> None:
    out = encode(model, family, loop(thinking("private"), call("toolu_1")))
    assert "reasoning_content" not in json.dumps(out)
    assert "private" not in json.dumps(out)


# --- Gemini thought signatures ----------------------------------------------------------------


def test_gemini_signature_in_the_id_goes_back_as_extra_content() -> None:
    signed = id_with_thought("function-call-1", SIG)
    out = encode("gemini-3-pro-preview", "gemini", loop(call(signed), ids=(signed,)))
    (assistant,) = assistants(out)
    (tool_call,) = assistant["tool_calls"]
    assert tool_call["id"] == "function-call-1"
    assert tool_call["extra_content"] == {"google": {"thought_signature": SIG}}
    tool = next(m for m in out["messages"] if m["role"] == "tool")
    assert tool["tool_call_id"] == "function-call-1"
    assert accepted("gemini", out)
    del tool_call["extra_content"]
    assert not accepted("gemini", out)


def test_gemini_stand_in_on_the_first_unsigned_call_of_current_steps_only() -> None:
    messages = [
        {"role": "user", "content": "earlier"},
        {"role": "assistant", "content": [call("toolu_old")]},
        {"role": "user", "content": [result("toolu_old")]},
        {"role": "assistant", "content": "done"},
        {"role": "user", "content": [{"type": "text", "text": "now this"}]},
        {"role": "assistant", "content": [call("toolu_a"), call("toolu_b")]},
        {
            "role": "user",
            "content": [result("toolu_a"), result("toolu_b"), {"type": "text", "text": "note"}],
        },
        {"role": "assistant", "content": [call(id_with_thought("fc-2", SIG)), call("toolu_c")]},
        {"role": "user", "content": [result(id_with_thought("fc-2", SIG)), result("toolu_c")]},
    ]
    out = encode("gemini-3-flash-preview", "gemini", messages)
    old, step1, step2 = (a["tool_calls"] for a in assistants(out) if a.get("tool_calls"))
    assert "extra_content" not in old[0]  # an earlier turn: Gemini does not check it
    assert step1[0]["extra_content"] == {"google": {"thought_signature": SKIP_SIGNATURE}}
    assert "extra_content" not in step1[1]  # parallel calls are never stamped
    assert step2[0]["extra_content"] == {"google": {"thought_signature": SIG}}
    assert "extra_content" not in step2[1]
    assert accepted("gemini", out)


def test_gemini_2_5_and_other_providers_get_the_base_id_only() -> None:
    signed = id_with_thought("fc-9", SIG)
    for model, family in (("gemini-2.5-pro", "gemini"), ("gpt-4o", "openai")):
        out = encode(model, family, loop(call(signed), ids=(signed,)))
        assert assistants(out)[0]["tool_calls"][0]["id"] == "fc-9"
        assert "extra_content" not in json.dumps(out)
        assert next(m for m in out["messages"] if m["role"] == "tool")["tool_call_id"] == "fc-9"


def test_gemini_tool_schemas_are_cut_to_its_subset() -> None:
    gemini = encode("gemini-3-pro-preview", "gemini", [{"role": "user", "content": "hi"}])
    params = gemini["tools"][0]["function"]["parameters"]
    assert params == {
        "type": "object",
        "properties": {"command": {"type": "string"}},
        "required": ["command"],
    }
    assert accepted("gemini", gemini)
    openai = encode("gpt-4o", "openai", [{"role": "user", "content": "hi"}])
    assert openai["tools"][0]["function"]["parameters"] == BASH["input_schema"]
    assert not accepted("gemini", {**gemini, "tools": openai["tools"]})


# --- Mistral tool ids -------------------------------------------------------------------------


def test_mistral_ids_are_nine_alphanumerics_both_ways() -> None:
    ids = ("toolu_01XyZ9aBcDeFgHiJkLmN", "call_abc", "Zz9Yy8Xx7")
    tgt = target("devstral-medium-latest", "mistral")
    out = encode_for(tgt, loop(*(call(i) for i in ids), ids=ids))
    calls = [c["id"] for c in assistants(out)[0]["tool_calls"]]
    tools = [m["tool_call_id"] for m in out["messages"] if m["role"] == "tool"]
    assert calls == tools == [alnum9(ids[0]), alnum9(ids[1]), "Zz9Yy8Xx7"]
    assert all(len(i) == 9 and i.isascii() and i.isalnum() for i in calls)
    assert accepted("mistral", out)
    assert tgt.tool_ids == {alnum9(ids[0]): ids[0], alnum9(ids[1]): ids[1]}
    # An id the model echoes maps back to the client's.
    answer = {
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": calls[0],
                            "type": "function",
                            "function": {"name": "Bash", "arguments": "{}"},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ]
    }
    assert message_from_chat(answer, tgt)["content"][0]["id"] == ids[0]


def test_mistral_hash_is_stable_and_distinct() -> None:
    assert alnum9("toolu_1") == alnum9("toolu_1")
    assert len({alnum9(f"toolu_{n}") for n in range(2000)}) == 2000


def test_mistral_never_gets_fields_it_forbids() -> None:
    out = encode(
        "devstral-medium-latest",
        "mistral",
        [{"role": "user", "content": "hi"}],
        stream=True,
        metadata={"user_id": "someone"},
    )
    assert "user" not in out and "stream_options" not in out
    assert out["stream"] is True
    assert accepted("mistral", out)


# --- fields a provider refuses ----------------------------------------------------------------


def test_drop_rejected_at_top_level_and_on_messages() -> None:
    body = {
        "model": "m",
        "stop": ["x"],
        "user": "u",
        "messages": [
            {"role": "assistant", "content": "x", "reasoning_content": "r"},
            {"role": "user", "content": "y"},
        ],
    }
    drop_rejected(body, frozenset({"stop", "reasoning_content"}))
    assert body == {
        "model": "m",
        "user": "u",
        "messages": [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}],
    }


def test_rejects_come_from_the_caps_and_are_applied_last() -> None:
    tgt = target("gpt-4o", "openai")
    tgt = replace(
        tgt,
        caps=replace(
            tgt.caps, rejects=frozenset({"prompt_cache_key", "user", "reasoning_content"})
        ),
    )
    out = encode_for(
        tgt,
        [{"role": "user", "content": "hi"}],
        metadata={"user_id": '{"session_id":"s1","device_id":"d"}'},
    )
    assert "prompt_cache_key" not in out and "user" not in out


@pytest.mark.parametrize("model", ["grok-4", "grok-code-fast-1", "grok-3-mini"])
def test_xai_reasoning_models_get_no_stop(model: str) -> None:
    out = encode(model, "xai", [{"role": "user", "content": "hi"}], stop_sequences=["END"])
    assert "stop" not in out
    assert accepted("xai", out)
    assert not accepted("xai", {**out, "stop": ["END"]})
    assert encode("grok-2", "xai", [{"role": "user", "content": "hi"}], stop_sequences=["END"])[
        "stop"
    ] == ["END"]


def test_grok_3_mini_effort_is_low_or_high() -> None:
    out = encode(
        "grok-3-mini",
        "xai",
        [{"role": "user", "content": "hi"}],
        output_config={"effort": "medium"},
    )
    assert out["reasoning_effort"] == "high"


def test_groq_gets_no_reasoning_content_even_from_a_deepseek_session() -> None:
    messages = loop(thinking("from DeepSeek"), call("toolu_1"))
    out = encode("openai/gpt-oss-120b", "groq", messages, metadata={"user_id": "u"}, stream=True)
    assert "reasoning_content" not in json.dumps(out)
    assert accepted("groq", out)
    assistants(out)[0]["reasoning_content"] = "x"
    assert not accepted("groq", out)


# --- the decoder's half: signature and cache ----------------------------------------------------


def _reasoning_stream(call_id: str) -> bytes:
    chunks = [
        {
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "reasoning_content": "Plan: ls."}}
            ]
        },
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": call_id,
                                "type": "function",
                                "function": {"name": "Bash", "arguments": "{}"},
                            }
                        ]
                    },
                }
            ]
        },
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
    return (
        b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    )


@pytest.mark.parametrize(
    ("family", "model", "cached"),
    [("deepseek", "deepseek-v4-pro", True), ("openai", "gpt-4o", False)],
)
def test_stream_decoder_fills_the_cache_only_where_reasoning_travels_back(
    family: str, model: str, cached: bool
) -> None:
    cache = ReasoningCache()
    decoder = ChatStreamDecoder(target(model, family, cache=cache))
    decoder.feed(_reasoning_stream(B_ID))
    decoder.finish()
    assert cache.get(B_ID, "Bash", {}) == ("Plan: ls." if cached else None)


def test_round_trip_through_the_cache_with_a_gemini_style_id() -> None:
    """What the decoder stores under the client's id is what the encoder looks up."""
    cache = ReasoningCache()
    tgt = target("deepseek-v4-pro", "deepseek", cache=cache)
    answer = {
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "reasoning_content": "Because.",
                    "tool_calls": [
                        {
                            "id": B_ID,
                            "type": "function",
                            "function": {"name": "Bash", "arguments": '{"command": "ls"}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ]
    }
    message = message_from_chat(answer, tgt)
    assert message["content"][0] == {
        "type": "thinking",
        "thinking": "Because.",
        "signature": "vdm-rc1",
    }
    tool_use = message["content"][1]
    out = encode("deepseek-v4-pro", "deepseek", loop(tool_use, ids=(tool_use["id"],)), cache=cache)
    assert assistants(out)[0]["reasoning_content"] == "Because."


# --- the strict fake's other rules ------------------------------------------------------------


def test_openai_tools_with_reasoning_need_responses() -> None:
    body: dict[str, Any] = {
        "model": "gpt-5.6-terra",
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "t"}}],
    }
    status, error = check("openai", body, PATH) or (0, {})
    assert status == 400
    assert error["error"]["message"] == (
        "Function tools with reasoning_effort are not supported for gpt-5.6-terra in "
        "/v1/chat/completions. To use function tools, use /v1/responses or set "
        "reasoning_effort to 'none'."
    )
    assert check("openai", {**body, "reasoning_effort": "high"}, PATH) is not None
    assert check("openai", {**body, "reasoning_effort": "none"}, PATH) is None
    assert check("openai", {**body, "model": "gpt-4o"}, PATH) is None
    assert check("openai", {**body, "model": "gpt-5.2-chat-latest"}, PATH) is None
    assert check("openai", {k: v for k, v in body.items() if k != "tools"}, PATH) is None
    assert check("openai", body, "/v1/responses") is None


def test_gemini_fake_refuses_unknown_schema_keywords_and_bad_signatures() -> None:
    base: dict[str, Any] = {
        "model": "gemini-3-pro-preview",
        "messages": [{"role": "user", "content": "x"}],
    }
    tools = [
        {
            "type": "function",
            "function": {
                "name": "t",
                "parameters": {"type": "object", "properties": {"a": {"type": ["string", "null"]}}},
            },
        }
    ]
    status, error = check("gemini", {**base, "tools": tools}, PATH) or (0, [])
    assert status == 400 and "Proto field is not repeating" in error[0]["error"]["message"]
    history = [
        *base["messages"],
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "f",
                    "type": "function",
                    "function": {"name": "t", "arguments": "{}"},
                    "extra_content": {"google": {"thought_signature": "not base64!"}},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "f", "content": "r"},
    ]
    status, error = check("gemini", {**base, "messages": history}, PATH) or (0, [])
    assert status == 400 and error[0]["error"]["message"] == "Corrupted thought signature."


def test_mistral_fake_refuses_bad_ids_with_its_message() -> None:
    body = {
        "model": "devstral",
        "messages": [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_0fypS1hVX",
                        "type": "function",
                        "function": {"name": "t", "arguments": "{}"},
                    }
                ],
            }
        ],
    }
    status, error = check("mistral", body, PATH) or (0, {})
    assert status == 400
    assert (
        error["message"]
        == "Tool call id was call_0fypS1hVX but must be a-z, A-Z, 0-9, with a length of 9."
    )
    body["messages"][0]["tool_calls"][0]["id"] = "0fypS1hVX"
    assert check("mistral", body, PATH) is None


def test_groq_fake_refuses_unknown_top_level_properties() -> None:
    body = {
        "model": "llama-3.1-8b-instant",
        "messages": [{"role": "user", "content": "x"}],
        "store": False,
    }
    status, error = check("groq", body, PATH) or (0, {})
    assert (status, error["error"]["message"]) == (400, "property 'store' is unsupported")
    del body["store"]
    assert check("groq", body, PATH) is None


def test_xai_fake_refuses_penalties_and_effort_where_real_xai_does() -> None:
    base = {"model": "grok-4", "messages": [{"role": "user", "content": "x"}]}
    status, error = check("xai", {**base, "presence_penalty": 0}, PATH) or (0, {})
    assert (status, error["error"]) == (
        400,
        "Model grok-4 does not support parameter presencePenalty.",
    )
    assert check("xai", {**base, "reasoning_effort": "low"}, PATH) is not None
    assert check("xai", {**base, "model": "grok-3-mini", "reasoning_effort": "low"}, PATH) is None
    assert check("xai", {**base, "model": "grok-2", "presence_penalty": 0}, PATH) is None


def test_unknown_family_is_a_test_bug() -> None:
    with pytest.raises(ValueError, match="no rules"):
        check("nonesuch", {}, PATH)


# --- text-only models (DeepSeek) ---------------------------------------------------------------

_PNG = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}}
_PDF = {
    "type": "document",
    "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"},
}


def _with_images() -> MessagesRequest:
    return MessagesRequest.model_validate(
        {
            "model": "deepseek-v4-pro",
            "max_tokens": 100,
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "look"}, _PNG, _PDF]},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {}}],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": [_PNG]},
                        {"type": "text", "text": "and this?"},
                    ],
                },
            ],
        }
    )


def test_a_text_only_model_gets_a_note_where_an_image_was() -> None:
    body = chat_request_from_messages(_with_images(), target("deepseek-v4-pro", "deepseek"))
    sent = json.dumps(body)
    assert "iVBOR" not in sent and "JVBER" not in sent
    assert check("deepseek", body, "/v1/chat/completions") is None, "DeepSeek would refuse it"
    first = body["messages"][0]["content"]
    assert first.startswith("look")
    assert "[image not shown: deepseek-v4-pro accepts text only]" in first
    assert "[file not shown: deepseek-v4-pro accepts text only]" in first
    last = body["messages"][-1]
    assert last["role"] == "user" and "and this?" in last["content"]
    assert "[image not shown" in last["content"], "the tool result's image is noted too"


def test_the_strict_fake_refuses_images_for_deepseek() -> None:
    body = chat_request_from_messages(_with_images(), target("deepseek-v4-pro", "openai"))
    assert "iVBOR" in json.dumps(body), "a model that takes images gets them"
    refused = check("deepseek", body, "/v1/chat/completions")
    assert refused is not None and "unknown variant `image_url`" in json.dumps(refused[1])


# --- review fixes: long tool names, Kimi ids, the cache across users ---------------------------

#: A Claude Code plugin MCP tool: 77 characters (Anthropic allows 128).
MCP = "mcp__plugin_chrome-devtools-mcp_chrome-devtools__performance_analyze_insight"


@pytest.mark.parametrize(
    ("family", "model"),
    [("openai", "gpt-4o"), ("groq", "openai/gpt-oss-120b"), ("gemini", "gemini-3-pro-preview")],
)
def test_long_tool_names_are_aliased_everywhere_and_map_back(family: str, model: str) -> None:
    tool = {"name": MCP, "description": "Analyze", "input_schema": {"type": "object"}}
    tool_use = {"type": "tool_use", "id": A_ID, "name": MCP, "input": {}}
    messages = [
        {"role": "user", "content": "profile it"},
        {"role": "assistant", "content": [tool_use]},
        {"role": "user", "content": [result(A_ID)]},
    ]
    tgt = target(model, family)
    body = {
        "model": "claude-x",
        "max_tokens": 1024,
        "messages": messages,
        "tools": [BASH, tool],
        "tool_choice": {"type": "tool", "name": MCP},
    }
    out = chat_request_from_messages(MessagesRequest.model_validate(body), tgt)
    alias = out["tools"][1]["function"]["name"]
    assert len(alias) <= 64 and alias != MCP
    assert out["tool_choice"]["function"]["name"] == alias
    assert assistants(out)[0]["tool_calls"][0]["function"]["name"] == alias
    assert out["tools"][0]["function"]["name"] == "Bash"  # a fitting name is untouched
    assert accepted(family, out)
    out["tools"][1]["function"]["name"] = MCP
    assert not accepted(family, out), "the provider refuses the long name"
    answer = completion_with_call("call_9", alias)
    assert message_from_chat(answer, tgt)["content"][0]["name"] == MCP


def completion_with_call(call_id: str, name: str) -> dict[str, Any]:
    call_ = {"id": call_id, "type": "function", "function": {"name": name, "arguments": "{}"}}
    message = {"role": "assistant", "content": None, "tool_calls": [call_]}
    return {"choices": [{"message": message, "finish_reason": "tool_calls"}]}


def test_the_responses_encoder_shares_the_alias() -> None:
    from vdm.protocol import openai_from_anthropic, responses_from_anthropic

    assert responses_from_anthropic.tool_name is openai_from_anthropic.tool_name


def test_kimi_ids_go_back_to_kimi_as_its_own() -> None:
    """The client holds `vdmid_…`; Kimi gets `functions.Bash:0` in the call and the result."""
    tgt = target("kimi-k2-thinking", "moonshot")
    client_id = message_from_chat(completion_with_call("functions.Bash:0", "Bash"), tgt)["content"][
        0
    ]["id"]
    assert client_id.startswith("vdmid_")
    out = encode_for(
        target("kimi-k2-thinking", "moonshot"),
        loop(thinking("ok"), call(client_id), ids=(client_id,)),
    )
    assert assistants(out)[0]["tool_calls"][0]["id"] == "functions.Bash:0"
    tool_message = next(m for m in out["messages"] if m["role"] == "tool")
    assert tool_message["tool_call_id"] == "functions.Bash:0"


def test_kimi_ids_to_mistral_become_nine_characters() -> None:
    client_id = "vdmid_ZnVuY3Rpb25zLkJhc2g6MA"
    out = encode("devstral-medium-latest", "mistral", loop(call(client_id), ids=(client_id,)))
    assert assistants(out)[0]["tool_calls"][0]["id"] == alnum9("functions.Bash:0")
    assert accepted("mistral", out)


def test_reasoning_of_one_user_never_reaches_another_with_a_predictable_id() -> None:
    """Kimi numbers its ids (`functions.Bash:0`): user B's history holds the same id, name
    and input as user A's call. B's turn must not carry A's reasoning."""
    cache = ReasoningCache()  # one per gateway, shared by its users
    answer = completion_with_call("functions.Bash:0", "Bash")
    answer["choices"][0]["message"]["reasoning_content"] = "A's private plan"
    a_id = message_from_chat(answer, target("kimi-k2-thinking", "moonshot", cache=cache))[
        "content"
    ][1]["id"]
    decoder = ChatStreamDecoder(target("kimi-k2-thinking", "moonshot", cache=cache))
    decoder.feed(_reasoning_stream("functions.Bash:0"))
    decoder.finish()
    b_call = {"type": "tool_use", "id": a_id, "name": "Bash", "input": {}}
    out = encode("kimi-k2-thinking", "moonshot", loop(b_call, ids=(a_id,)), cache=cache)
    assert assistants(out)[0]["reasoning_content"] == ""
    assert len(cache) == 0


def test_cached_reasoning_needs_the_same_call_not_just_its_id() -> None:
    cache = ReasoningCache()
    cache.put(A_ID, "Bash", {"command": "ls"}, "A's plan")
    assert cache.get(A_ID, "Bash", {"command": "ls"}) == "A's plan"
    assert cache.get(A_ID, "Bash", {"command": "rm -rf /"}) is None
    assert cache.get(A_ID, "Read", {"command": "ls"}) is None
    assert cache.get(B_ID, "Bash", {"command": "ls"}) is None


@pytest.mark.parametrize(
    ("tool_id", "name", "cached"),
    [
        ("functions.Bash:0", "Bash", False),
        ("functions.getWeatherForecastForCity:12", "getWeatherForecastForCity", False),
        ("call_0", "Bash", False),
        (B_ID, "Bash", True),
        (A_ID, "Bash", True),
        ("function-call-7215930731548151734", "Bash", True),
        ("call_abc123DEF456ghi789", "Bash", True),
    ],
)
def test_only_random_ids_are_cached(tool_id: str, name: str, cached: bool) -> None:
    cache = ReasoningCache()
    cache.put(tool_id, name, {}, "plan")
    assert (cache.get(tool_id, name, {}) == "plan") is cached


# --- Kimi's current models ----------------------------------------------------------------------


def _kimi(model: str, **fields: Any) -> dict[str, Any]:
    request = MessagesRequest.model_validate(
        {
            "model": model,
            "max_tokens": 100,
            "messages": [{"role": "user", "content": "hi"}],
            **fields,
        }
    )
    return chat_request_from_messages(request, target(model, "moonshot"))


@pytest.mark.parametrize("model", ["kimi-k2.7-code", "kimi-k2.7-code-highspeed", "kimi-k3"])
def test_kimi_models_that_always_think_never_get_thinking_disabled(model: str) -> None:
    body = _kimi(model, thinking={"type": "disabled"})
    assert "thinking" not in body
    assert check("moonshot", body, "/v1/chat/completions") is None
    sent = dict(body, thinking={"type": "disabled"})
    assert check("moonshot", sent, "/v1/chat/completions") is not None, "the fake refuses it"


def test_kimi_k2_6_thinking_is_switched_off_when_asked() -> None:
    assert _kimi("kimi-k2.6", thinking={"type": "disabled"})["thinking"] == {"type": "disabled"}


@pytest.mark.parametrize(("effort", "sent"), [("low", "low"), ("medium", "high"), ("max", "max")])
def test_kimi_k3_effort(effort: str, sent: str) -> None:
    body = _kimi("kimi-k3", output_config={"effort": effort})
    assert body["reasoning_effort"] == sent


def test_an_id_built_from_a_shortened_tool_name_is_not_random() -> None:
    """Kimi's id holds the alias sent upstream (the name cut to fit): no random part."""
    from vdm.protocol.codec import unpredictable
    from vdm.protocol.signatures import safe_tool_id

    name = "mcp__claude_ai_Atlassian__getConfluencePageFooterComments_with_extra_long_suffix_x"
    alias = name[:55] + "_cc48c660"
    assert not unpredictable(safe_tool_id(f"functions.{alias}:0"), name)
    assert unpredictable("call_Xq83hZ0pLk2vB7nW5tYdR1", name)


# --- structured outputs -----------------------------------------------------------------------


def _formatted(schema: dict[str, Any], family: str, model: str) -> dict[str, Any]:
    req = MessagesRequest.model_validate(
        {
            "model": model,
            "max_tokens": 100,
            "messages": [{"role": "user", "content": "weather?"}],
            "output_config": {"format": {"type": "json_schema", "schema": schema}},
        }
    )
    return chat_request_from_messages(req, target(model, family))


def test_openai_fake_refuses_strict_schemas_and_json_mode_as_openai_does() -> None:
    open_object = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    sent = _formatted(open_object, "openai", "gpt-4o")
    assert sent["response_format"]["json_schema"]["strict"] is False
    assert check("openai", sent, PATH) is None
    sent["response_format"]["json_schema"]["strict"] = True
    refused = check("openai", sent, PATH)
    assert refused is not None and refused[0] == 400
    assert refused[1]["error"]["message"] == (
        "Invalid schema for response_format 'output': In context=(), 'additionalProperties' "
        "is required to be supplied and to be false."
    )
    json_mode = {"model": "gpt-4o", "messages": [{"role": "user", "content": "weather?"}]}
    json_mode["response_format"] = {"type": "json_object"}
    refused = check("openai", json_mode, PATH)
    assert refused is not None
    assert refused[1]["error"]["message"] == (
        "'messages' must contain the word 'json' in some form, to use 'response_format' of "
        "type 'json_object'."
    )


def test_gemini_compat_gets_its_schema_subset_and_no_strict_mode() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "required": ["a"],
        "additionalProperties": False,
    }
    sent = _formatted(schema, "gemini", "gemini-2.5-flash")
    spec = sent["response_format"]["json_schema"]
    assert spec["strict"] is False
    assert "additionalProperties" not in json.dumps(spec["schema"])
    assert "$schema" not in json.dumps(spec["schema"])


def test_deepseek_json_mode_adds_a_system_message_when_there_is_none() -> None:
    sent = _formatted({"type": "object"}, "deepseek", "deepseek-v4-pro")
    assert sent["response_format"] == {"type": "json_object"}
    assert sent["messages"][0]["role"] == "system"
    assert "json" in sent["messages"][0]["content"]
    assert check("deepseek", sent, PATH) is None
