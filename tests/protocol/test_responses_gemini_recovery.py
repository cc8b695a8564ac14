"""Recovering from provider rejections that would break every later turn: the upstream error's
code and param as the client parses them, each backend's `recover`, and each encoder honouring
the degradation it names (`Target.degraded`). End to end: tests/server/test_responses_backend.py
and tests/server/test_gemini_backend.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fakes.gemini_upstream import check_request as gemini_check
from tests.fakes.gemini_upstream import thought_signature
from tests.fakes.responses_upstream import (
    UNVERIFIED_SUMMARY,
    check_request,
    encrypted_content,
)
from tests.protocol.targets import target
from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.codec import DEGRADATIONS
from vdm.protocol.current_turn import SKIP_SIGNATURE
from vdm.protocol.errors import VdmError
from vdm.protocol.gemini_from_anthropic import gemini_request_from_messages
from vdm.protocol.openai_from_anthropic import chat_request_from_messages
from vdm.protocol.responses_from_anthropic import responses_request_from_messages
from vdm.protocol.signatures import id_with_thought, pack_reasoning, pack_thought
from vdm.upstream.backends import backend
from vdm.upstream.failures import error_from_response

GPT = "gpt-5.6-terra"
PRO3 = "gemini-3-pro-preview"
FOREIGN = "AAAAforeign+signature/from=another+key=="
THINKING = {"type": "adaptive", "display": "summarized"}


def request(messages: list[dict[str, Any]], **extra: Any) -> MessagesRequest:
    body = {"model": "m", "max_tokens": 1000, "messages": messages, "thinking": THINKING}
    return MessagesRequest.model_validate({**body, **extra})


def tool_turn(thinking: dict[str, Any], tool_id: str) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "run it"},
        {
            "role": "assistant",
            "content": [
                thinking,
                {"type": "tool_use", "id": tool_id, "name": "Bash", "input": {"c": 1}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id}]},
    ]


# --- the upstream error, parsed once --------------------------------------------------------------


def test_openai_errors_keep_their_code_and_param() -> None:
    body = {
        "error": {
            "message": UNVERIFIED_SUMMARY,
            "type": "invalid_request_error",
            "param": "reasoning.summary",
            "code": "unsupported_value",
        }
    }
    error = error_from_response("openai", 400, json.dumps(body).encode(), {})
    assert (error.status, error.code, error.param) == (
        400,
        "unsupported_value",
        "reasoning.summary",
    )
    assert error.message == f"openai returned HTTP 400: {UNVERIFIED_SUMMARY}"


def test_google_errors_keep_their_status_as_the_code() -> None:
    body = {"error": {"code": 400, "message": "Corrupted thought signature.", "status": "x"}}
    error = error_from_response("gemini", 400, json.dumps(body).encode(), {})
    assert error.code == "x" and error.param is None
    listed = error_from_response("gemini", 400, json.dumps([body]).encode(), {})
    assert listed.message.endswith("Corrupted thought signature.")
    plain = error_from_response("p", 400, b"nope", {})
    assert (plain.message, plain.code, plain.param) == ("p returned HTTP 400: nope", None, None)


# --- which rejection names which degradation ------------------------------------------------------


BAD = "gemini returned HTTP 400: Corrupted thought signature."
INVALID = "gemini returned HTTP 400: Invalid thought signature"
MISSING = "Function call is missing a thought_signature in functionCall parts."


@pytest.mark.parametrize(
    ("fmt", "error", "model", "family", "expected"),
    [
        (
            "responses",
            VdmError(400, "must be verified to summarize", param="reasoning.summary"),
            GPT,
            "openai",
            "no-summary",
        ),
        # Another complaint about the summary is not the org gate: nothing to remember.
        ("responses", VdmError(400, "x", param="reasoning.summary"), GPT, "openai", None),
        ("responses", VdmError(400, "x", code="invalid_encrypted_content"), GPT, "openai",
         "no-replay"),
        ("responses", VdmError(400, "x", code="unsupported_value"), GPT, "openai", None),
        ("responses", VdmError(429, "x", param="reasoning.summary"), GPT, "openai", None),
        ("gemini", VdmError(400, BAD), PRO3, "gemini", "skip-signatures"),
        ("gemini", VdmError(400, INVALID), PRO3, "gemini", "skip-signatures"),
        ("gemini", VdmError(400, MISSING), PRO3, "gemini", None),
        ("gemini", VdmError(500, BAD), PRO3, "gemini", None),
        ("openai", VdmError(400, BAD), PRO3, "gemini", "skip-signatures"),
        ("openai", VdmError(400, BAD), "gpt-4o", "openai", None),
        ("anthropic", VdmError(400, BAD), "c", "anthropic", None),
    ],
)  # fmt: skip
def test_recover_names_the_degradation(
    fmt: str, error: VdmError, model: str, family: str, expected: str | None
) -> None:
    found = backend(fmt).recover(error, target(model, family))
    assert found == expected
    assert found is None or found in DEGRADATIONS


def test_only_the_missing_entitlement_is_remembered() -> None:
    assert {name for name, lasting in DEGRADATIONS.items() if lasting} == {"no-summary"}


# --- Responses ------------------------------------------------------------------------------------


def test_no_summary_drops_the_summary_only() -> None:
    messages = tool_turn(pack_reasoning_block("rs_1"), "call_1")
    tgt = target(GPT)
    sent = responses_request_from_messages(request(messages), tgt)
    assert sent["reasoning"]["summary"] == "auto"
    assert check_request(sent, verified=False) is not None
    tgt.degraded.add("no-summary")
    sent = responses_request_from_messages(request(messages), tgt)
    assert sent["reasoning"] == {"effort": "medium"}
    assert sent["input"][1]["type"] == "reasoning"  # still replayed
    assert check_request(json.loads(json.dumps(sent)), verified=False) is None


def test_no_replay_leaves_the_reasoning_items_out() -> None:
    block = {"type": "thinking", "thinking": "x", "signature": pack_reasoning("rs_9", "gAAAAx")}
    messages = tool_turn(block, "call_1")
    tgt = target(GPT)
    sent = responses_request_from_messages(request(messages), tgt)
    rejection = check_request(json.loads(json.dumps(sent)))
    assert rejection is not None and rejection.code == "invalid_encrypted_content"
    tgt.degraded.add("no-replay")
    sent = responses_request_from_messages(request(messages), tgt)
    assert [i["type"] for i in sent["input"]] == [
        "message",
        "function_call",
        "function_call_output",
    ]
    assert sent["include"] == ["reasoning.encrypted_content"]  # new reasoning still comes back
    assert check_request(json.loads(json.dumps(sent))) is None


def pack_reasoning_block(item_id: str) -> dict[str, Any]:
    signature = pack_reasoning(item_id, encrypted_content(item_id))
    return {"type": "thinking", "thinking": "Plan.", "signature": signature}


# --- Gemini, native and compat --------------------------------------------------------------------


def test_native_skip_signatures_replays_none_and_stamps_the_first_call() -> None:
    messages = tool_turn(
        {"type": "thinking", "thinking": "x", "signature": pack_thought(FOREIGN)},
        id_with_thought("call_1", FOREIGN),
    )
    messages[1]["content"].append(
        {"type": "tool_use", "id": id_with_thought("call_2", FOREIGN), "name": "Bash", "input": {}}
    )
    messages[2]["content"].append({"type": "tool_result", "tool_use_id": "call_2"})
    tgt = target(PRO3, "gemini")
    sent = gemini_request_from_messages(request(messages), tgt)
    assert gemini_check(json.loads(json.dumps(sent)), PRO3) == (
        400,
        "Corrupted thought signature.",
    )
    tgt.degraded.add("skip-signatures")
    sent = gemini_request_from_messages(request(messages), tgt)
    model = sent["contents"][1]["parts"]
    assert [p.get("thoughtSignature") for p in model] == [SKIP_SIGNATURE, None]
    assert gemini_check(json.loads(json.dumps(sent)), PRO3) is None


def test_native_skip_signatures_leaves_earlier_turns_unsigned() -> None:
    own = thought_signature("own")
    messages = [*tool_turn({"type": "text", "text": "a"}, id_with_thought("c1", own))]
    messages += [{"role": "assistant", "content": "done"}, {"role": "user", "content": "more"}]
    tgt = target(PRO3, "gemini")
    tgt.degraded.add("skip-signatures")
    sent = gemini_request_from_messages(request(messages), tgt)
    assert "thoughtSignature" not in json.dumps(sent)  # past turns are not validated
    assert gemini_check(json.loads(json.dumps(sent)), PRO3) is None


def test_compat_skip_signatures_sends_the_stand_in_instead() -> None:
    messages = tool_turn({"type": "text", "text": "Listing."}, id_with_thought("call_1", FOREIGN))
    tgt = target(PRO3, "gemini")
    sent = chat_request_from_messages(request(messages), tgt)
    call = sent["messages"][1]["tool_calls"][0]
    assert call["extra_content"]["google"]["thought_signature"] == FOREIGN
    tgt.degraded.add("skip-signatures")
    sent = chat_request_from_messages(request(messages), tgt)
    call = sent["messages"][1]["tool_calls"][0]
    assert call["id"] == "call_1"
    assert call["extra_content"] == {"google": {"thought_signature": SKIP_SIGNATURE}}


def test_vertex_wording_of_a_bad_signature_is_recovered() -> None:
    from vdm.upstream.backends import signature_rejected

    error = VdmError(
        400,
        "vertex returned HTTP 400: Unable to submit request because Thought signature is not "
        "valid.",
    )
    assert signature_rejected(error, target("gemini-3-pro-preview", "gemini")) == "skip-signatures"
