"""The declarative per-model capability table (`vdm.protocol.capabilities.caps_for`)."""

from __future__ import annotations

import pytest

from vdm.protocol.capabilities import ModelCaps, caps_for

MCT = "max_completion_tokens"
MT = "max_tokens"

# model: (reasoning, max_tokens_field, sampling, prompt_cache_key, max_effort)
TABLE: dict[str, tuple[bool, str, bool, bool, str]] = {
    "gpt-4o": (False, MCT, True, True, "high"),
    "gpt-4o-mini": (False, MCT, True, True, "high"),
    "GPT-4o": (False, MCT, True, True, "high"),
    "gpt-4.1": (False, MCT, True, True, "high"),
    "chatgpt-4o-latest": (False, MCT, True, True, "high"),
    "o1": (True, MCT, False, True, "high"),
    "o3": (True, MCT, False, True, "high"),
    "o3-mini": (True, MCT, False, True, "high"),
    "o4-mini": (True, MCT, False, True, "high"),
    "gpt-5": (True, MCT, False, True, "high"),
    "gpt-5-mini": (True, MCT, False, True, "high"),
    "gpt-5.2": (True, MCT, False, True, "xhigh"),
    "gpt-5.1-codex-max": (True, MCT, False, True, "xhigh"),
    "gpt-5-chat-latest": (False, MCT, True, True, "high"),
    "llama-3.1-70b": (False, MT, True, False, "high"),
    "deepseek-chat": (False, MT, True, False, "high"),
    # Their endpoints reject or ignore low/medium/high reasoning_effort.
    "deepseek-reasoner": (False, MT, True, False, "high"),
    "qwen/qwen3-32b": (False, MT, True, False, "high"),
    "grok-4": (False, MT, True, False, "high"),
    "grok-3-mini": (True, MT, True, False, "high"),
    "gemini-2.5-flash": (True, MT, True, False, "high"),
    "openai/gpt-oss-120b": (True, MT, True, False, "high"),
    "omni-something": (False, MT, True, False, "high"),
    "claude-sonnet-4-5": (False, MT, True, False, "high"),
}


@pytest.mark.parametrize("model", list(TABLE))
def test_caps_for(model: str) -> None:
    reasoning, field, sampling, cache_key, max_effort = TABLE[model]
    caps = caps_for("openai", model)
    got = (caps.reasoning, caps.max_tokens_field, caps.sampling, caps.prompt_cache_key)
    assert got == (reasoning, field, sampling, cache_key)
    assert caps.max_effort == max_effort


def test_unknown_model_gets_conservative_defaults() -> None:
    caps = caps_for("mycorp", "some-brand-new-model")
    assert caps == ModelCaps()
    assert caps.max_tokens_field == "max_tokens"
    assert caps.sampling and not caps.reasoning and not caps.prompt_cache_key


@pytest.mark.parametrize("model", ["gpt-5.1", "gpt-5.1-codex", "gpt-5.1-codex-mini"])
def test_gpt_5_1_max_effort_is_high(model: str) -> None:
    assert caps_for("openai", model).max_effort == "high"


# On OpenAI and Azure, reasoning models go to /v1/responses: Chat Completions rejects function
# tools with reasoning on gpt-5.4+, and reasoning summaries exist only there.
RESPONSES_MODELS = [
    "o1",
    "o3",
    "o4-mini",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5.2",
    "gpt-5.4",
    "gpt-5.6-terra",
    "gpt-5.6-sol",
    "gpt-6",
    "gpt-10-preview",
    "gpt-5.1-codex-max",
    "codex-mini-latest",
    "GPT-5.6-Luna",
]
CHAT_MODELS = [
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "chatgpt-4o-latest",
    "gpt-5-chat-latest",
    "gpt-5.1-chat-latest",
    "omni-something",
]


@pytest.mark.parametrize("family", ["openai", "azure"])
@pytest.mark.parametrize("model", RESPONSES_MODELS)
def test_openai_reasoning_models_use_the_responses_api(family: str, model: str) -> None:
    assert caps_for(family, model).wire == "responses"


@pytest.mark.parametrize("family", ["openai", "azure"])
@pytest.mark.parametrize("model", CHAT_MODELS)
def test_openai_chat_models_keep_chat_completions(family: str, model: str) -> None:
    assert caps_for(family, model).wire == "chat"


@pytest.mark.parametrize("family", ["openrouter", "groq", "mycorp", "together"])
def test_other_providers_keep_chat_completions_for_the_same_names(family: str) -> None:
    # Their OpenAI-compatible endpoints are Chat Completions; /responses is opt-in per provider.
    for model in ("gpt-5.6-terra", "o3", "gpt-5.1-codex"):
        assert caps_for(family, model).wire == "chat"
