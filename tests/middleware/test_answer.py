"""A middleware's `Answer` as a whole message and as the canonical events of a stream."""

from __future__ import annotations

from vdm.middleware import Answer
from vdm.middleware.answer import events_of, message_of
from vdm.protocol.events import (
    BlockStop,
    InputJsonDelta,
    MessageEnd,
    SignatureDelta,
    TextDelta,
    TextStart,
    ThinkingDelta,
    ThinkingStart,
    ToolUseStart,
)


def test_a_text_answer_is_a_whole_message_under_the_clients_model() -> None:
    message = message_of(Answer.text("hi"), "fast")
    assert message["model"] == "fast" and message["type"] == "message"
    assert message["content"] == [{"type": "text", "text": "hi"}]
    assert message["stop_reason"] == "end_turn"
    assert message["usage"] == {"input_tokens": 0, "output_tokens": 0}
    assert message["id"].startswith("msg_")


def test_blocks_become_gap_free_events_and_empty_ones_are_left_out() -> None:
    answer = Answer(
        (
            {"type": "thinking", "thinking": "plan", "signature": "sig"},
            {"type": "text", "text": ""},
            {"type": "server_tool_use", "id": "s", "name": "x"},
            {"type": "text", "text": "calling"},
            {"type": "tool_use", "name": "Bash", "input": {"command": "ls"}},
        ),
        stop_reason="tool_use",
        usage={"output_tokens": 5},
    )
    message = message_of(answer, "m")
    tool_id = message["content"][4]["id"]
    assert tool_id.startswith("toolu_")
    assert events_of(message) == [
        ThinkingStart(0),
        ThinkingDelta(0, "plan"),
        SignatureDelta(0, "sig"),
        BlockStop(0),
        TextStart(1),
        TextDelta(1, "calling"),
        BlockStop(1),
        ToolUseStart(2, tool_id, "Bash"),
        InputJsonDelta(2, '{"command": "ls"}'),
        BlockStop(2),
        MessageEnd("tool_use", None, {"input_tokens": 0, "output_tokens": 5}),
    ]
