"""A forwarded OpenAI body loses the state vdm handed the client on turns another provider
answered (vdm/protocol/forward_clean.py). Each case is checked against the strict fakes'
rules: the body as the client sent it is refused, the cleaned one accepted."""

from __future__ import annotations

import copy
from typing import Any

from tests.fakes.chat_rules import check
from tests.fakes.responses_upstream import check_request, encrypted_content
from tests.protocol.targets import target
from vdm.protocol.chat_messages import alnum9
from vdm.protocol.forward_clean import CHAT_TOOL_ID_MAX, clean_forwarded, short_call_id
from vdm.protocol.signatures import id_with_thought, pack_thinking

TOOLU = "toolu_01A09q90qw90lq917835lq9"
#: A Gemini call id carrying its thought signature, as vdm hands it to a client.
GEMINI_ID = id_with_thought("get_weather_0", "CiQBVKhc7" + "x" * 200)
VDM_REASONING = pack_thinking({"type": "thinking", "thinking": "Hmm.", "signature": "EqQB" * 20})
TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Weather.",
        "strict": False,
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


def _responses_body(call_id: str) -> dict[str, Any]:
    own = "rs_own01"
    theirs = {"type": "reasoning", "summary": [], "encrypted_content": encrypted_content(own)}
    answer = [{"type": "output_text", "text": "Sunny."}]
    ours = {"type": "reasoning", "summary": [], "encrypted_content": VDM_REASONING}
    return {
        "model": "gpt-5.6-terra",
        "store": False,
        "tools": TOOLS,
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Paris?"}]},
            {**ours, "id": "rs_vdm01"},
            {"type": "function_call", "call_id": call_id, "name": "get_weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": call_id, "output": "sunny"},
            {**theirs, "id": own},
            {"type": "message", "role": "assistant", "content": answer},
        ],
    }  # fmt: skip


def _clean(body: dict[str, Any], dialect: str, family: str, model: str) -> dict[str, Any]:
    return clean_forwarded(body, dialect, target(model, family))


def test_responses_vdm_reasoning_is_left_out_and_the_providers_own_kept() -> None:
    body = _responses_body(TOOLU)
    rejection = check_request(body)
    assert rejection is not None and rejection.code == "invalid_encrypted_content"
    cleaned = _clean(body, "responses", "openai", "gpt-5.6-terra")
    assert check_request(cleaned) is None
    kinds = [(i.get("type"), i.get("id")) for i in cleaned["input"]]
    assert ("reasoning", "rs_vdm01") not in kinds and ("reasoning", "rs_own01") in kinds
    # An id the provider takes is not renamed.
    assert [i["call_id"] for i in cleaned["input"] if "call_id" in i] == [TOOLU, TOOLU]


def test_responses_long_call_ids_are_renamed_alike_in_call_and_output() -> None:
    body = _responses_body(GEMINI_ID)
    body["input"].pop(1)  # only the id is at fault here
    rejection = check_request(body)
    assert rejection is not None and rejection.code == "string_above_max_length"
    cleaned = _clean(body, "responses", "openai", "gpt-5.6-terra")
    assert check_request(cleaned) is None
    ids = [i["call_id"] for i in cleaned["input"] if "call_id" in i]
    assert ids == [short_call_id(GEMINI_ID)] * 2 and len(ids[0]) <= 64
    # The same client id gives the same id on every later turn (pairs, prompt cache).
    again = _clean(_responses_body(GEMINI_ID), "responses", "openai", "gpt-5.6-terra")
    assert [i["call_id"] for i in again["input"] if "call_id" in i] == ids


def test_the_clients_body_is_never_changed_and_only_what_changes_is_copied() -> None:
    body = _responses_body(GEMINI_ID)
    before = copy.deepcopy(body)
    cleaned = _clean(body, "responses", "openai", "gpt-5.6-terra")
    assert body == before
    assert cleaned["input"][0] is body["input"][0]  # the user message, untouched
    assert cleaned["tools"] is body["tools"]
    chat = _chat_body(TOOLU)
    before = copy.deepcopy(chat)
    _clean(chat, "openai", "mistral", "mistral-large-latest")
    assert chat == before


def _chat_body(tool_id: str) -> dict[str, Any]:
    thinking = [{"type": "thinking", "thinking": "Hmm.", "signature": "EqQB" * 20}]
    call = {
        "id": tool_id,
        "type": "function",
        "function": {"name": "get_weather", "arguments": "{}"},
    }
    return {
        "model": "m",
        "messages": [
            {"role": "user", "content": "Paris?"},
            {"role": "assistant", "content": None, "reasoning_content": "Hmm.",
             "thinking_blocks": thinking, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": tool_id, "content": "sunny"},
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
    }  # fmt: skip


def test_chat_to_openai_loses_thinking_blocks_and_reasoning_content() -> None:
    body = _chat_body(TOOLU)
    refused = check("openai", body, "/v1/chat/completions")
    assert refused is not None and refused[1]["error"]["code"] == "unknown_parameter"
    cleaned = _clean(body, "openai", "openai", "gpt-4o")
    assert check("openai", cleaned, "/v1/chat/completions") is None
    assistant = cleaned["messages"][1]
    assert "thinking_blocks" not in assistant and "reasoning_content" not in assistant
    assert assistant["tool_calls"][0]["id"] == TOOLU  # 29 chars: OpenAI takes it


def test_chat_to_openai_shortens_ids_over_forty_characters() -> None:
    long_id = "toolu_vrtx_" + "A" * 40
    body = _chat_body(long_id)
    for key in ("reasoning_content", "thinking_blocks"):
        del body["messages"][1][key]  # only the id is at fault here
    refused = check("openai", body, "/v1/chat/completions")
    assert refused is not None and refused[1]["error"]["code"] == "string_above_max_length"
    cleaned = _clean(body, "openai", "openai", "gpt-4o")
    assert check("openai", cleaned, "/v1/chat/completions") is None
    call_id = cleaned["messages"][1]["tool_calls"][0]["id"]
    assert len(call_id) <= CHAT_TOOL_ID_MAX and cleaned["messages"][2]["tool_call_id"] == call_id


def test_chat_to_mistral_gets_the_translators_nine_character_ids() -> None:
    body = _chat_body(TOOLU)
    refused = check("mistral", body, "/v1/chat/completions")
    assert refused is not None
    cleaned = _clean(body, "openai", "mistral", "mistral-large-latest")
    assert check("mistral", cleaned, "/v1/chat/completions") is None
    # The very id the translating encoder gives Mistral for the same tool_use id.
    assert cleaned["messages"][1]["tool_calls"][0]["id"] == alnum9(TOOLU)
    assert cleaned["messages"][2]["tool_call_id"] == alnum9(TOOLU)


def test_chat_keeps_reasoning_content_where_the_provider_needs_it() -> None:
    cleaned = _clean(_chat_body(TOOLU), "openai", "deepseek", "deepseek-v4-pro")
    assistant = cleaned["messages"][1]
    assert assistant["reasoning_content"] == "Hmm." and "thinking_blocks" not in assistant
    assert check("deepseek", cleaned, "/v1/chat/completions") is None


def test_chat_rejected_fields_are_still_dropped() -> None:
    """What `ModelCaps.rejects` names goes, at the top level and on messages (Groq)."""
    body = {**_chat_body(TOOLU), "prompt_cache_key": "k", "store": True}
    assert check("groq", body, "/openai/v1/chat/completions") is not None
    cleaned = _clean(body, "openai", "groq", "llama-3.3-70b-versatile")
    assert "prompt_cache_key" not in cleaned and "store" not in cleaned
    assert "reasoning_content" not in cleaned["messages"][1]
    assert check("groq", cleaned, "/openai/v1/chat/completions") is None


def test_chat_gemini_id_loses_its_signature_or_carries_it_where_gemini_reads_it() -> None:
    cleaned = _clean(_chat_body(GEMINI_ID), "openai", "openai", "gpt-4o")
    call = cleaned["messages"][1]["tool_calls"][0]
    assert call["id"] == "get_weather_0" and "extra_content" not in call
    assert cleaned["messages"][2]["tool_call_id"] == "get_weather_0"
    gemini = _clean(_chat_body(GEMINI_ID), "openai", "gemini", "gemini-3-flash-preview")
    call = gemini["messages"][1]["tool_calls"][0]
    assert call["id"] == "get_weather_0"
    assert call["extra_content"]["google"]["thought_signature"].startswith("CiQBVKhc7")


def test_a_limit_above_the_model_ceiling_is_lowered_and_none_is_left_out() -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    assert "max_completion_tokens" not in _clean(body, "openai", "openai", "gpt-4o")
    for name in ("max_completion_tokens", "max_tokens"):
        sent = _clean({**body, name: 100000}, "openai", "openai", "gpt-4o")
        assert sent[name] == 16384
    small = _clean({**body, "max_tokens": 500}, "openai", "openai", "gpt-4o")
    assert small["max_tokens"] == 500


def test_max_tokens_limit_applies_where_the_client_set_none() -> None:
    body = {"model": "gpt-5", "input": "hi"}
    sent = clean_forwarded(body, "responses", target("gpt-5", max_tokens_limit=4000))
    assert sent["max_output_tokens"] == 4000
    chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    sent = clean_forwarded(chat, "openai", target("gpt-4o", max_tokens_limit=4000))
    assert sent["max_completion_tokens"] == 4000


def test_effort_is_fitted_to_the_model_or_dropped() -> None:
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert "reasoning_effort" not in _clean(
        {**chat, "reasoning_effort": "high"}, "openai", "openai", "gpt-4o"
    )
    assert (
        _clean({**chat, "reasoning_effort": "none"}, "openai", "openai", "gpt-5")[
            "reasoning_effort"
        ]
        == "minimal"
    )
    assert (
        _clean({**chat, "reasoning_effort": "someday"}, "openai", "openai", "gpt-5")[
            "reasoning_effort"
        ]
        == "someday"
    )
    responses = {"model": "m", "input": "hi", "reasoning": {"effort": "high", "summary": "auto"}}
    assert "reasoning" not in _clean(responses, "responses", "openai", "gpt-4o")
    none = {**responses, "reasoning": {"effort": "none", "summary": "auto"}}
    assert _clean(none, "responses", "openai", "gpt-5")["reasoning"] == {
        "effort": "minimal",
        "summary": "auto",
    }
    assert _clean(none, "responses", "openai", "gpt-5.1")["reasoning"] == none["reasoning"]
