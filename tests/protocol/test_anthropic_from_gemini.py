"""Gemini answers and streams -> Anthropic (vdm/protocol/anthropic_from_gemini.py).

Streams run through the Anthropic encoder as the server runs them (`Translation`), fed in
reads of every size, and what a client reconstructs is checked against the exact SSE grammar.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.fakes.gemini_upstream import (
    blocked_response,
    call_part,
    check_request,
    gemini_chunks,
    gemini_response,
    signature_part,
    sse_events,
    text_part,
    thought_part,
    thought_signature,
    usage_metadata,
)
from tests.protocol.grammar import Result, Translation, check_grammar
from tests.protocol.targets import target
from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.anthropic_from_gemini import GeminiStreamDecoder, message_from_gemini
from vdm.protocol.errors import VdmError
from vdm.protocol.events import MessageEnd
from vdm.protocol.gemini_from_anthropic import gemini_request_from_messages
from vdm.protocol.signatures import pack_thought, split_thought_id

MODEL = "gemini-3-pro-preview"
SIG_A = thought_signature("a")
SIG_B = thought_signature("b")
TOOL_ID = re.compile(r"^toolu_[0-9A-Za-z]{22}$")


def stream_bytes(chunks: list[dict[str, Any]]) -> bytes:
    return b"".join(sse_events(chunks))


def run(raw: bytes, read: int | None = None) -> Result:
    """Feed `raw` in reads of `read` bytes (all at once when None) and check the grammar."""
    translation = Translation(GeminiStreamDecoder(target(MODEL, "gemini")))
    out = [translation.start()]
    step = read or len(raw) or 1
    for start in range(0, len(raw), step):
        out.extend(translation.feed(raw[start : start + step]))
    out.extend(translation.finish())
    return check_grammar(b"".join(out))


def decode(parts: list[dict[str, Any]], **kw: Any) -> Result:
    return run(stream_bytes(gemini_chunks(parts, **kw)))


@pytest.mark.parametrize("read", [None, 1, 7, 64])
def test_text_streams_in_pieces_whatever_the_reads(read: int | None) -> None:
    result = run(stream_bytes(gemini_chunks([text_part("Hello there, how are you?")])), read)
    assert result.text == "Hello there, how are you?"
    assert [b.type for b in result.blocks] == ["text"]
    assert result.stop_reason == "end_turn"
    assert len(result.blocks[0].deltas) > 1  # streamed, not buffered


def test_thoughts_are_thinking_and_the_call_carries_the_signature() -> None:
    result = decode(
        [
            thought_part("I should list the files.", signature=SIG_A),
            call_part("Bash", {"command": "ls -la"}),
        ]
    )
    thinking, tool = result.blocks
    assert thinking.type == "thinking" and thinking.thinking == "I should list the files."
    assert thinking.deltas[-1] == {"type": "signature_delta", "signature": pack_thought(SIG_A)}
    assert tool.type == "tool_use" and tool.start["name"] == "Bash"
    base, signature = split_thought_id(tool.start["id"])
    assert TOOL_ID.match(base) and signature == SIG_A
    assert tool.input == {"command": "ls -la"}
    assert len(tool.partial_json) == 1  # a call arrives whole
    assert result.stop_reason == "tool_use"


def test_parallel_calls_only_the_first_is_signed() -> None:
    result = decode(
        [
            call_part("Read", {"path": "a"}, signature=SIG_A),
            call_part("Read", {"path": "b"}),
        ]
    )
    first, second = result.blocks
    assert split_thought_id(first.start["id"])[1] == SIG_A
    assert split_thought_id(second.start["id"])[1] is None
    assert first.start["id"] != second.start["id"]
    assert [b.input for b in result.blocks] == [{"path": "a"}, {"path": "b"}]


def test_a_signature_only_part_becomes_a_signature_only_thinking_block() -> None:
    result = decode([text_part("All done."), signature_part(SIG_B)])
    text, thinking = result.blocks
    assert text.text == "All done."
    assert thinking.type == "thinking" and thinking.thinking == ""
    assert thinking.deltas == [{"type": "signature_delta", "signature": pack_thought(SIG_B)}]
    assert result.stop_reason == "end_turn"


def test_a_signed_text_part_keeps_its_signature_in_front_of_it() -> None:
    result = decode([text_part("Answer.", signature=SIG_A)])
    assert [b.type for b in result.blocks] == ["thinking", "text"]
    assert result.blocks[0].deltas[-1]["signature"] == pack_thought(SIG_A)


def test_usage_excludes_cached_input_and_counts_thoughts_as_output() -> None:
    usage = usage_metadata(prompt=1000, candidates=20, thoughts=300, cached=800)
    result = decode([text_part("ok")], usage=usage)
    assert result.usage == {
        "input_tokens": 200,
        "output_tokens": 320,
        "cache_read_input_tokens": 800,
        "cache_creation_input_tokens": 0,
    }


@pytest.mark.parametrize(
    ("finish", "stop"),
    [
        ("STOP", "end_turn"),
        ("MAX_TOKENS", "max_tokens"),
        ("SAFETY", "refusal"),
        ("RECITATION", "refusal"),
        ("PROHIBITED_CONTENT", "refusal"),
        ("OTHER", "end_turn"),
        ("SOMETHING_NEW", "end_turn"),
    ],
)
def test_finish_reasons(finish: str, stop: str) -> None:
    assert decode([text_part("partial")], finish_reason=finish).stop_reason == stop


def test_a_malformed_call_ends_the_turn_with_a_visible_note() -> None:
    result = decode([], finish_reason="MALFORMED_FUNCTION_CALL", finish_message="bad args")
    assert result.stop_reason == "end_turn"
    assert result.text == "[Gemini stopped (MALFORMED_FUNCTION_CALL): bad args]"


def test_a_blocked_prompt_is_a_refusal() -> None:
    result = run(stream_bytes([blocked_response("PROHIBITED_CONTENT")]))
    assert result.stop_reason == "refusal"
    assert "PROHIBITED_CONTENT" in result.text


def test_an_error_in_the_stream_is_a_vdm_error() -> None:
    decoder = GeminiStreamDecoder(target(MODEL, "gemini"))
    chunks = gemini_chunks([text_part("Hel")], finish_reason=None)
    decoder.feed(stream_bytes(chunks))
    error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    with pytest.raises(VdmError) as caught:
        decoder.feed(stream_bytes([error]))
    assert caught.value.status == 529
    assert "The model is overloaded." in caught.value.message


def test_a_stream_cut_before_its_finish_reason_fails() -> None:
    decoder = GeminiStreamDecoder(target(MODEL, "gemini"))
    chunks = gemini_chunks([text_part("Hello there")], finish_reason=None)
    assert decoder.feed(stream_bytes(chunks))
    assert not decoder.done
    with pytest.raises(VdmError) as caught:
        decoder.finish()
    assert caught.value.status == 502


def test_done_once_the_finish_reason_and_usage_arrived() -> None:
    decoder = GeminiStreamDecoder(target(MODEL, "gemini"))
    chunks = gemini_chunks([text_part("Hello there")])
    decoder.feed(stream_bytes(chunks[:-1]))
    assert not decoder.done
    decoder.feed(stream_bytes(chunks[-1:]))
    assert decoder.done
    assert decoder.feed(stream_bytes(chunks)) == []  # the rest is only drained


def test_a_last_event_without_a_blank_line_still_counts() -> None:
    raw = stream_bytes(gemini_chunks([text_part("Hi")])).rstrip(b"\r\n")
    assert run(raw).stop_reason == "end_turn"


# --- non-streaming ------------------------------------------------------------------------------


def test_a_whole_answer_decodes_like_the_stream() -> None:
    parts = [
        thought_part("Plan.", signature=SIG_A),
        text_part("Let me look."),
        call_part("Bash", {"command": "ls"}),
        call_part("Read", {"path": "x"}),
    ]
    usage = usage_metadata(prompt=50, candidates=10, thoughts=5, cached=10)
    message = message_from_gemini(gemini_response(parts, usage=usage), target(MODEL, "gemini"))
    assert [b["type"] for b in message["content"]] == ["thinking", "text", "tool_use", "tool_use"]
    thinking, text, first, second = message["content"]
    assert thinking == {"type": "thinking", "thinking": "Plan.", "signature": pack_thought(SIG_A)}
    assert text == {"type": "text", "text": "Let me look."}
    assert first["input"] == {"command": "ls"} and second["input"] == {"path": "x"}
    assert split_thought_id(first["id"])[1] == SIG_A
    assert split_thought_id(second["id"])[1] is None
    assert message["stop_reason"] == "tool_use"
    assert message["usage"]["input_tokens"] == 40
    assert message["usage"]["cache_read_input_tokens"] == 10
    assert message["usage"]["output_tokens"] == 15
    assert message["model"] == MODEL


def test_a_whole_blocked_answer_is_a_refusal() -> None:
    message = message_from_gemini(blocked_response(), target(MODEL, "gemini"))
    assert message["stop_reason"] == "refusal"


def test_a_whole_answer_without_candidates_is_a_502() -> None:
    with pytest.raises(VdmError) as caught:
        message_from_gemini({"usageMetadata": {}}, target(MODEL, "gemini"))
    assert caught.value.status == 502


def test_an_error_body_is_a_vdm_error() -> None:
    body = [
        {"error": {"code": 429, "message": "Resource exhausted.", "status": "RESOURCE_EXHAUSTED"}}
    ]
    with pytest.raises(VdmError) as caught:
        message_from_gemini(body, target(MODEL, "gemini"))
    assert caught.value.status == 429


# --- the round trip: what the client sends back is what Gemini sent ------------------------


def _content(result: Result) -> list[dict[str, Any]]:
    """The assistant content a client rebuilds from a stream (as Claude Code stores it)."""
    blocks: list[dict[str, Any]] = []
    for block in result.blocks:
        if block.type == "text":
            blocks.append({"type": "text", "text": block.text})
        elif block.type == "thinking":
            signature = next((d["signature"] for d in block.deltas if "signature" in d), "")
            blocks.append({"type": "thinking", "thinking": block.thinking, "signature": signature})
        else:
            blocks.append(
                {
                    "type": "tool_use",
                    "id": block.start["id"],
                    "name": block.start["name"],
                    "input": block.input,
                }
            )
    return blocks


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_signatures_round_trip_to_the_parts_they_came_on(stream: bool) -> None:
    parts = [
        thought_part("Thinking it over.", signature=SIG_A),
        call_part("Bash", {"command": "ls"}),
        call_part("Read", {"path": "a"}),
    ]
    if stream:
        content = _content(decode(parts))
    else:
        content = message_from_gemini(gemini_response(parts), target(MODEL, "gemini"))["content"]
    ids = [b["id"] for b in content if b["type"] == "tool_use"]
    request = MessagesRequest.model_validate(
        {
            "model": MODEL,
            "max_tokens": 100,
            "tools": [
                {"name": "Bash", "input_schema": {"type": "object"}},
                {"name": "Read", "input_schema": {"type": "object"}},
            ],
            "messages": [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": content},
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": i, "content": "ok"} for i in ids
                    ],
                },
            ],
        }
    )
    sent = gemini_request_from_messages(request, target(MODEL, "gemini"))
    assert check_request(json.loads(json.dumps(sent)), MODEL) is None
    # The thought's text stays with the client; its signature sits on the call it preceded,
    # exactly as Gemini signed it; the parallel call stays unsigned.
    assert sent["contents"][1]["parts"] == [
        {"functionCall": {"name": "Bash", "args": {"command": "ls"}}, "thoughtSignature": SIG_A},
        {"functionCall": {"name": "Read", "args": {"path": "a"}}},
    ]


LAYOUTS = {
    # Gemini's parts -> the model parts vdm sends back (thought text stays with the client).
    "thought-signed, text, call": (
        [
            thought_part("Plan.", signature=SIG_A),
            text_part("Looking."),
            call_part("Bash", {"command": "ls"}),
        ],
        [
            {"text": "Looking."},
            {
                "functionCall": {"name": "Bash", "args": {"command": "ls"}},
                "thoughtSignature": SIG_A,
            },
        ],
    ),
    "signed text, unsigned call": (
        [text_part("Looking.", signature=SIG_B), call_part("Bash", {"command": "ls"})],
        [
            {"text": "Looking.", "thoughtSignature": SIG_B},
            # Unsigned first call of the current turn on Gemini 3: the stand-in.
            {
                "functionCall": {"name": "Bash", "args": {"command": "ls"}},
                "thoughtSignature": "skip_thought_signature_validator",
            },
        ],
    ),
    "text then signature-only part": (
        [text_part("Done."), signature_part(SIG_B)],
        [{"text": "Done."}, {"text": "", "thoughtSignature": SIG_B}],
    ),
    "two steps' worth of signatures": (
        [
            thought_part("One.", signature=SIG_B),
            call_part("Read", {"path": "a"}, signature=SIG_A),
        ],
        [
            {"text": "", "thoughtSignature": SIG_B},
            {"functionCall": {"name": "Read", "args": {"path": "a"}}, "thoughtSignature": SIG_A},
        ],
    ),
}


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_each_layout_of_signatures_comes_back_as_sent(layout: str, stream: bool) -> None:
    parts, expected = LAYOUTS[layout]
    if stream:
        content = _content(decode(parts))
    else:
        content = message_from_gemini(gemini_response(parts), target(MODEL, "gemini"))["content"]
    ids = [b["id"] for b in content if b["type"] == "tool_use"]
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": content},
    ]
    if ids:
        results = [{"type": "tool_result", "tool_use_id": i, "content": "ok"} for i in ids]
        messages.append({"role": "user", "content": results})
    else:
        messages.append({"role": "user", "content": "thanks"})
    request = MessagesRequest.model_validate(
        {
            "model": MODEL,
            "max_tokens": 100,
            "tools": [{"name": n, "input_schema": {"type": "object"}} for n in ("Bash", "Read")],
            "messages": messages,
        }
    )
    sent = gemini_request_from_messages(request, target(MODEL, "gemini"))
    assert sent["contents"][1]["parts"] == expected
    assert check_request(json.loads(json.dumps(sent)), MODEL) is None


def test_an_in_band_context_overflow_is_worded_for_compaction() -> None:
    decoder = GeminiStreamDecoder(target(MODEL, "gemini"))
    error = {
        "error": {
            "code": 400,
            "message": "The input token count (1200000) exceeds the maximum number of tokens "
            "allowed (1048576).",
            "status": "INVALID_ARGUMENT",
        }
    }
    with pytest.raises(VdmError) as caught:
        decoder.feed(stream_bytes([error]))
    assert caught.value.status == 400
    assert caught.value.message.startswith("prompt is too long: 1200000 tokens > 1048576")


def test_bytes_after_the_end_are_never_parsed() -> None:
    """The read that ends the answer may hold the start of something else: once done, the
    decoder ignores it (the relay only drains the rest)."""
    decoder = GeminiStreamDecoder(target(MODEL, "gemini"))
    decoder.feed(stream_bytes(gemini_chunks([text_part("Hi")])) + b'data: {"cand')
    assert decoder.done
    assert isinstance(decoder.finish()[-1], MessageEnd)


def test_an_error_read_with_text_before_it_lets_the_text_out_first() -> None:
    """One read holding a text chunk then an error (a fast upstream, large reads): the text
    reaches the client, then `finish` ends the stream with the error."""
    decoder = GeminiStreamDecoder(target(MODEL, "gemini"))
    chunks = gemini_chunks([text_part("Hel")], finish_reason=None)
    error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    events = decoder.feed(stream_bytes([*chunks, error]))
    assert "Hel" in [getattr(e, "text", None) for e in events]
    with pytest.raises(VdmError) as caught:
        decoder.finish()
    assert caught.value.status == 529
