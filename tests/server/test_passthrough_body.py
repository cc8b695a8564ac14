"""The request body an Anthropic-format provider gets: the client's, `model` aside."""

from __future__ import annotations

import json

import pytest

from vdm.protocol.capabilities import caps_for
from vdm.protocol.codec import Target
from vdm.protocol.signatures import CHAT_REASONING, pack_reasoning, pack_thought
from vdm.server.passthrough import forwarded_headers, with_model

SIGNED = {"type": "thinking", "thinking": "hmm", "signature": "EqQBCkgIARABGAIiQ"}
FOREIGN = {"type": "thinking", "thinking": "from gpt-5", "signature": ""}


def _body(**extra: object) -> bytes:
    data = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
            },
            {"role": "assistant", "content": [SIGNED, {"type": "text", "text": "ok"}]},
        ],
        "some_future_field": {"x": 1},
        **extra,
    }
    return json.dumps(data, indent=1).encode()  # formatting a re-encode would not keep


def test_same_model_keeps_the_very_same_bytes() -> None:
    body = _body()
    assert with_model(body, "claude-sonnet-4-5", "claude-sonnet-4-5") is body


def test_renamed_model_changes_only_the_model() -> None:
    body = _body()
    sent = json.loads(with_model(body, "claude-sonnet-4-5", "claude-opus-4-1"))
    assert sent == {**json.loads(body), "model": "claude-opus-4-1"}


def test_foreign_thinking_blocks_are_dropped_signed_ones_kept() -> None:
    data = json.loads(_body())
    data["messages"].append(
        {"role": "assistant", "content": [FOREIGN, {"type": "text", "text": "x"}]}
    )
    sent = json.loads(with_model(json.dumps(data).encode(), "m", "m"))
    assert sent["messages"][1]["content"][0] == SIGNED
    assert sent["messages"][2]["content"] == [{"type": "text", "text": "x"}]
    assert sent["some_future_field"] == {"x": 1}


@pytest.mark.parametrize(
    "signature",
    [CHAT_REASONING, pack_reasoning("rs_1", "gAAAAB-encrypted"), pack_thought("Cs0BAdHtim+/="), ""],
    ids=["chat-reasoning", "responses-item", "gemini-thought", "unsigned"],
)
@pytest.mark.parametrize("indent", [None, 1], ids=["compact", "spaced"])
def test_vdm_signed_thinking_is_dropped_before_anthropic(
    signature: str, indent: int | None
) -> None:
    """A session that went through another provider carries vdm's thinking blocks; Anthropic
    would answer `Invalid signature in thinking block`, so they never reach it."""
    data = json.loads(_body())
    own = {"type": "thinking", "thinking": "from deepseek", "signature": signature}
    tool = {"type": "tool_use", "id": "toolu_9", "name": "Bash", "input": {"command": "ls"}}
    data["messages"].append({"role": "assistant", "content": [own, tool]})
    sent = json.loads(with_model(json.dumps(data, indent=indent).encode(), "m", "m"))
    assert sent["messages"][1]["content"][0] == SIGNED
    assert sent["messages"][2]["content"] == [tool]
    assert "from deepseek" not in json.dumps(sent)


def test_vdm_looking_text_elsewhere_keeps_the_very_same_bytes() -> None:
    data = json.loads(_body())
    data["messages"][0]["content"][0]["text"] = 'the field "vdm-rc1" and "signature" are words'
    body = json.dumps(data).encode()
    assert with_model(body, "m", "m") is body


def test_only_thinking_blocks_lose_a_vdm_signature() -> None:
    """A text block quoting a vdm signature is the user's text, never dropped."""
    data = json.loads(_body())
    quoted = {"type": "text", "text": "x", "signature": CHAT_REASONING}
    data["messages"].append({"role": "assistant", "content": [quoted]})
    sent = json.loads(with_model(json.dumps(data).encode(), "m", "m"))
    assert sent["messages"][2]["content"] == [quoted]
    assert sent["messages"][1]["content"][0] == SIGNED


def test_anthropic_version_defaults_and_betas_are_joined() -> None:
    assert forwarded_headers([]) == {"anthropic-version": "2023-06-01"}
    headers = [
        (b"anthropic-version", b"2023-01-01"),
        (b"anthropic-beta", b"a-1"),
        (b"anthropic-beta", b"b-2"),
        (b"x-api-key", b"secret"),
    ]
    assert forwarded_headers(headers) == {
        "anthropic-version": "2023-01-01",
        "anthropic-beta": "a-1,b-2",
    }


def test_an_assistant_turn_of_vdm_thinking_only_is_left_out() -> None:
    """A turn cut by max_tokens while another provider reasoned holds nothing Anthropic
    takes; an empty message would be a 400 ("all messages must have non-empty content")."""
    body = json.dumps(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 10,
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": [{"type": "thinking", "thinking": "hm", "signature": "vdm-rc1"}],
                },
                {"role": "user", "content": "go on"},
            ],
        }
    ).encode()
    sent = json.loads(with_model(body, "claude-sonnet-4-5", "claude-sonnet-4-5"))
    assert [m["role"] for m in sent["messages"]] == ["user", "user"]
    assert all(m["content"] for m in sent["messages"])


def _target(model: str) -> Target:
    return Target(
        family="anthropic", model=model, caps=caps_for("anthropic", model), requested="opus"
    )


def _renamed(data: dict[str, object], model: str) -> dict[str, object]:
    sent = with_model(json.dumps(data).encode(), "opus", model, None, _target(model))
    result = json.loads(sent)
    assert isinstance(result, dict)
    return result


def test_a_renamed_model_keeps_what_it_takes() -> None:
    """Opus 4.8 takes adaptive thinking and every effort: the body is the client's."""
    data = {**json.loads(_body()), "thinking": {"type": "adaptive"}}
    data["output_config"] = {"effort": "max", "format": {"type": "json_schema"}}
    assert _renamed(data, "claude-opus-4-8") == {**data, "model": "claude-opus-4-8"}


def test_a_budget_becomes_adaptive_where_budgets_are_refused() -> None:
    data = {**json.loads(_body()), "max_tokens": 8000}
    data["thinking"] = {"type": "enabled", "budget_tokens": 4096}
    sent = _renamed(data, "claude-opus-4-8")
    assert sent["thinking"] == {"type": "adaptive"}


def test_adaptive_thinking_becomes_a_budget_within_max_tokens() -> None:
    data = {**json.loads(_body()), "max_tokens": 10000, "thinking": {"type": "adaptive"}}
    data["output_config"] = {"effort": "high", "format": {"type": "json_schema"}}
    sent = _renamed(data, "claude-sonnet-4-5")
    # high asks 16384; 10000 leaves room for 8976 and the answer's 1024
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 8976}
    assert sent["output_config"] == {"format": {"type": "json_schema"}}


def test_adaptive_thinking_without_room_for_a_budget_is_off() -> None:
    data = {**json.loads(_body()), "max_tokens": 1500, "thinking": {"type": "adaptive"}}
    data["output_config"] = {"effort": "max"}
    sent = _renamed(data, "claude-haiku-4-5")
    assert "thinking" not in sent and "output_config" not in sent


def test_same_name_never_fits_to_the_table() -> None:
    """The client named the model itself: it knows what the model takes, vdm's table may
    be older than the model."""
    data = {**json.loads(_body()), "thinking": {"type": "adaptive"}}
    data["output_config"] = {"effort": "xhigh"}
    body = json.dumps(data).encode()
    model = "claude-sonnet-4-5"
    assert with_model(body, model, model, None, _target(model)) is body
