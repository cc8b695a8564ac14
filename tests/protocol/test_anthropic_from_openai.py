"""OpenAI Chat Completions response/stream -> Anthropic Message/SSE (`anthropic_from_openai`).

The stream tests check the exact Anthropic SSE grammar with `Grammar` below, then what a
client would reconstruct from it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.protocol.grammar import Result, Translation, check_grammar, parse_sse
from tests.protocol.targets import target
from vdm.protocol.anthropic_from_openai import ChatStreamDecoder, message_from_chat
from vdm.protocol.errors import VdmError
from vdm.protocol.signatures import restore_tool_id, safe_tool_id, split_thought_id
from vdm.protocol.sse import SseDecoder

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openai_streams"


def sse(chunk: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


class MessagesStreamFromChat(Translation):
    """The Chat decoder fed parsed chunks, through the Anthropic encoder."""

    def __init__(self, model: str = "m", stop_sequences: list[str] | None = None) -> None:
        super().__init__(ChatStreamDecoder(target(model), stop_sequences), model)

    def feed(self, chunk: dict[str, Any] | bytes) -> list[bytes]:  # type: ignore[override]
        return super().feed(chunk if isinstance(chunk, bytes) else sse(chunk))


def run(
    chunks: list[dict[str, Any]], *, stop_sequences: list[str] | None = None, model: str = "m"
) -> Result:
    stream = MessagesStreamFromChat(model=model, stop_sequences=stop_sequences)
    out = [stream.start()]
    for chunk in chunks:
        out.extend(stream.feed(chunk))
    out.extend(stream.finish())
    return check_grammar(b"".join(out))


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any):
    choice: dict[str, Any] = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [choice], **extra}


def call(index: int, *, id: str | None = None, name: str | None = None, args: str | None = None):
    function: dict[str, Any] = {}
    if name is not None:
        function["name"] = name
    if args is not None:
        function["arguments"] = args
    fragment: dict[str, Any] = {"index": index, "function": function}
    if id is not None:
        fragment.update(id=id, type="function")
    return chunk({"tool_calls": [fragment]})


def completion(message: dict[str, Any], finish: str = "stop", **extra: Any) -> dict[str, Any]:
    choice = {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
    return {"id": "chatcmpl-1", "object": "chat.completion", "choices": [choice], **extra}


# --- the checker itself must catch violations ---------------------------------------------------


def _frame(name: str, **data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()


_MSG = {"type": "message", "role": "assistant", "content": []}
_START = _frame("message_start", message=_MSG)
_END = _frame("message_delta", delta={"stop_reason": "end_turn"}) + _frame("message_stop")


@pytest.mark.parametrize(
    "body",
    [
        _frame("content_block_start", index=1, content_block={"type": "text", "text": ""}),
        _frame("content_block_start", index=0, content_block={"type": "text", "text": ""})
        + _frame("content_block_stop", index=0),
        _frame("content_block_start", index=0, content_block={"type": "text", "text": ""})
        + _frame("content_block_delta", index=0, delta={"type": "input_json_delta"}),
        _frame("content_block_delta", index=0, delta={"type": "text_delta", "text": "x"}),
    ],
    ids=["gap", "empty-text", "wrong-delta", "delta-outside"],
)
def test_checker_rejects_bad_streams(body: bytes) -> None:
    with pytest.raises(AssertionError):
        check_grammar(_START + body + _END)


# --- non-streaming ----------------------------------------------------------------------------


def test_text_message() -> None:
    msg = message_from_chat(completion({"content": "Hello!"}), target("gpt-4o"))
    assert msg["type"] == "message" and msg["role"] == "assistant"
    assert msg["model"] == "gpt-4o"
    assert msg["id"].startswith("msg_")
    assert msg["content"] == [{"type": "text", "text": "Hello!"}]
    assert msg["stop_reason"] == "end_turn"
    assert msg["stop_sequence"] is None


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning"])
def test_reasoning_becomes_thinking_block_before_text(key: str) -> None:
    msg = message_from_chat(completion({key: "Let me think.", "content": "42"}), target("m"))
    thinking, text = msg["content"]
    assert thinking["type"] == "thinking"
    assert thinking["thinking"] == "Let me think."
    # vdm's own marker, never one Anthropic could mistake for its own: the client sends the
    # block back and vdm knows it for reasoning to return to the provider.
    assert thinking["signature"] == "vdm-rc1"
    assert text == {"type": "text", "text": "42"}


def test_tool_calls_become_tool_use_blocks() -> None:
    calls = [
        {
            "id": "call_abc",
            "type": "function",
            "function": {"name": "Bash", "arguments": '{"command": "ls -la"}'},
        },
        {"id": "call_def", "type": "function", "function": {"name": "Read", "arguments": "{}"}},
    ]
    msg = message_from_chat(
        completion({"content": "Checking.", "tool_calls": calls}, "tool_calls"), target("m")
    )
    assert msg["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "call_abc", "name": "Bash", "input": {"command": "ls -la"}},
        {"type": "tool_use", "id": "call_def", "name": "Read", "input": {}},
    ]
    assert msg["stop_reason"] == "tool_use"


def test_invalid_json_arguments_are_kept_as_an_object() -> None:
    raw = '{"command": "ls'
    calls = [{"id": "call_1", "type": "function", "function": {"name": "Bash", "arguments": raw}}]
    msg = message_from_chat(completion({"tool_calls": calls}, "tool_calls"), target("m"))
    (block,) = msg["content"]
    assert block["type"] == "tool_use" and block["id"] == "call_1"
    assert isinstance(block["input"], dict)  # Anthropic requires an object
    assert raw in block["input"].values()  # not silently lost


@pytest.mark.parametrize(
    ("finish", "expected"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("function_call", "tool_use"),
        ("content_filter", "refusal"),
    ],
)
def test_finish_reasons(finish: str, expected: str) -> None:
    msg = message_from_chat(completion({"content": "x"}, finish), target("m"))
    assert msg["stop_reason"] == expected


def test_stop_with_tool_calls_is_tool_use() -> None:
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    msg = message_from_chat(completion({"content": None, "tool_calls": calls}, "stop"), target("m"))
    assert msg["stop_reason"] == "tool_use"


def test_vllm_matched_stop_sequence() -> None:
    resp = completion({"content": "the answer is 4"}, "stop")
    resp["choices"][0]["stop_reason"] = "</answer>"
    msg = message_from_chat(resp, target("m"), stop_sequences=["</answer>", "END"])
    assert msg["stop_reason"] == "stop_sequence"
    assert msg["stop_sequence"] == "</answer>"


@pytest.mark.parametrize("matched", [None, 151645, "</other>"], ids=["none", "token-id", "other"])
def test_stop_without_a_requested_sequence_is_end_turn(matched: Any) -> None:
    resp = completion({"content": "done"}, "stop")
    resp["choices"][0]["stop_reason"] = matched
    msg = message_from_chat(resp, target("m"), stop_sequences=["</answer>"])
    assert msg["stop_reason"] == "end_turn"
    assert msg["stop_sequence"] is None


def test_usage_openai_cached_tokens() -> None:
    usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 50,
        "total_tokens": 1050,
        "prompt_tokens_details": {"cached_tokens": 800},
    }
    msg = message_from_chat(completion({"content": "x"}, usage=usage), target("m"))
    assert msg["usage"]["input_tokens"] == 200
    assert msg["usage"]["cache_read_input_tokens"] == 800
    assert msg["usage"]["output_tokens"] == 50


def test_usage_deepseek_cache_hit_tokens() -> None:
    usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 7,
        "prompt_cache_hit_tokens": 600,
        "prompt_cache_miss_tokens": 400,
    }
    msg = message_from_chat(completion({"content": "x"}, usage=usage), target("m"))
    assert msg["usage"]["input_tokens"] == 400
    assert msg["usage"]["cache_read_input_tokens"] == 600
    assert msg["usage"]["output_tokens"] == 7


def test_usage_without_cache() -> None:
    usage = {"prompt_tokens": 12, "completion_tokens": 3}
    msg = message_from_chat(completion({"content": "x"}, usage=usage), target("m"))
    assert msg["usage"]["input_tokens"] == 12
    assert msg["usage"]["output_tokens"] == 3
    assert not msg["usage"].get("cache_read_input_tokens")


@pytest.mark.parametrize("content", ["", None])
def test_no_empty_text_block(content: str | None) -> None:
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    msg = message_from_chat(completion({"content": content, "tool_calls": calls}), target("m"))
    assert [b["type"] for b in msg["content"]] == ["tool_use"]
    empty = message_from_chat(completion({"content": content}), target("m"))
    assert all(b["type"] != "text" or b["text"] for b in empty["content"])
    assert empty["content"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"error": {"message": "Rate limit exceeded", "code": 429}},
        {"id": "x", "object": "chat.completion"},
        {"id": "x", "object": "chat.completion", "choices": []},
    ],
    ids=["error", "no-choices", "empty-choices"],
)
def test_bad_bodies_raise_vdm_error(body: dict[str, Any]) -> None:
    with pytest.raises(VdmError):
        message_from_chat(body, target("m"))


def test_error_body_keeps_status_and_message() -> None:
    with pytest.raises(VdmError) as info:
        message_from_chat({"error": {"message": "slow down", "code": 429}}, target("m"))
    assert info.value.status == 429
    assert "slow down" in info.value.message


# --- streaming --------------------------------------------------------------------------------


def test_stream_plain_text() -> None:
    result = run(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hel"}),
            chunk({"content": "lo"}),
            chunk({"content": " 😀"}),
            chunk({}, "stop"),
        ],
        model="gpt-4o",
    )
    assert [b.type for b in result.blocks] == ["text"]
    assert result.text == "Hello 😀"
    assert [d["text"] for d in result.blocks[0].deltas] == ["Hel", "lo", " 😀"]
    assert result.stop_reason == "end_turn"
    assert result.message["model"] == "gpt-4o"


def test_stream_empty_role_chunk_opens_no_block() -> None:
    stream = MessagesStreamFromChat(model="m")
    out = [stream.start()]
    for empty in (chunk({"role": "assistant", "content": ""}), chunk({"content": None})):
        produced = stream.feed(empty)
        assert produced == [], produced
    out += stream.feed(chunk({"content": "x"}, "stop"))
    out += stream.finish()
    result = check_grammar(b"".join(out))
    assert [(b.index, b.text) for b in result.blocks] == [(0, "x")]


def test_stream_with_no_content_still_well_formed() -> None:
    result = run([chunk({"role": "assistant"}), chunk({}, "stop")])
    assert result.blocks == []
    assert result.stop_reason == "end_turn"


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning"])
def test_stream_reasoning_then_text(key: str) -> None:
    result = run(
        [
            chunk({"role": "assistant", key: "Think"}),
            chunk({key: "ing..."}),
            chunk({"content": "Answer"}),
            chunk({}, "stop"),
        ]
    )
    thinking, text = result.blocks
    assert (thinking.index, thinking.type) == (0, "thinking")
    assert (text.index, text.type) == (1, "text")
    assert thinking.thinking == "Thinking..."
    assert thinking.start.get("signature", "") == ""
    # The signature arrives once, as the last delta before the block stops.
    signatures = [d for d in thinking.deltas if d["type"] == "signature_delta"]
    assert signatures == [{"type": "signature_delta", "signature": "vdm-rc1"}]
    assert thinking.deltas[-1] == signatures[0]
    assert text.text == "Answer"


def test_stream_tool_arguments_are_emitted_as_they_arrive() -> None:
    fragments = ['{"comm', 'and": "ls', ' -la"', "}"]
    stream = MessagesStreamFromChat(model="m")
    out = [stream.start()]
    out += stream.feed(call(0, id="call_1", name="Bash", args=""))
    for fragment in fragments:
        produced = stream.feed(call(0, args=fragment))
        deltas = [d for _, d in parse_sse(b"".join(produced))]
        assert [d["delta"] for d in deltas] == [
            {"type": "input_json_delta", "partial_json": fragment}
        ], "each fragment must be streamed when it arrives"
        out += produced
    out += stream.feed(chunk({}, "tool_calls"))
    out += stream.finish()
    result = check_grammar(b"".join(out))
    (tool,) = result.blocks
    assert tool.type == "tool_use"
    assert tool.start["id"] == "call_1" and tool.start["name"] == "Bash"
    assert tool.start["input"] == {}
    assert tool.partial_json == fragments
    assert tool.input == {"command": "ls -la"}
    assert result.stop_reason == "tool_use"


def test_stream_parallel_tool_calls_are_separate_blocks() -> None:
    result = run(
        [
            call(0, id="call_a", name="Read", args=""),
            call(0, args='{"path": "a.txt"}'),
            call(1, id="call_b", name="Read", args='{"path"'),
            call(1, args=': "b.txt"}'),
            chunk({}, "tool_calls"),
        ]
    )
    first, second = result.blocks
    assert (first.index, first.start["id"], first.input) == (0, "call_a", {"path": "a.txt"})
    assert (second.index, second.start["id"], second.input) == (1, "call_b", {"path": "b.txt"})
    assert result.stop_reason == "tool_use"


def test_stream_interleaved_parallel_tool_fragments_fail_loudly() -> None:
    """Interleaved fragments cannot be streamed faithfully: the stream fails (the client then
    retries without streaming) instead of handing over truncated arguments."""
    with pytest.raises(VdmError, match="interleaved"):
        run(
            [
                call(0, id="call_a", name="f", args='{"x": '),
                call(1, id="call_b", name="g", args='{"y": '),
                call(0, args="1}"),
                call(1, args="2}"),
                chunk({}, "tool_calls"),
            ]
        )


def test_stream_tool_name_after_arguments_is_buffered_then_flushed() -> None:
    result = run(
        [
            call(0, id="call_x", args='{"q": '),
            call(0, name="search", args='"cats"'),
            call(0, args="}"),
            chunk({}, "tool_calls"),
        ]
    )
    (tool,) = result.blocks
    assert tool.start["name"] == "search"
    assert tool.start["id"] == "call_x"
    assert "".join(tool.partial_json) == '{"q": "cats"}'


def test_stream_text_then_tool() -> None:
    result = run(
        [
            chunk({"role": "assistant", "content": "Let me check."}),
            call(0, id="call_1", name="Bash", args='{"command": "date"}'),
            chunk({}, "stop"),  # some providers say "stop" after tool calls
        ]
    )
    assert [(b.index, b.type) for b in result.blocks] == [(0, "text"), (1, "tool_use")]
    assert result.blocks[0].text == "Let me check."
    assert result.blocks[1].input == {"command": "date"}
    assert result.stop_reason == "tool_use"


@pytest.mark.parametrize(
    ("finish", "expected"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal")],
)
def test_stream_finish_reasons(finish: str, expected: str) -> None:
    result = run([chunk({"content": "x"}), chunk({}, finish)])
    assert result.stop_reason == expected


def test_stream_vllm_stop_sequence() -> None:
    last = chunk({}, "stop")
    last["choices"][0]["stop_reason"] = "</answer>"
    result = run([chunk({"content": "4"}), last], stop_sequences=["</answer>"])
    assert result.stop_reason == "stop_sequence"
    assert result.stop_sequence == "</answer>"


def test_stream_usage_in_trailing_chunk_without_choices() -> None:
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 9,
        "prompt_tokens_details": {"cached_tokens": 64},
    }
    trailing = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [],
        "usage": usage,
    }
    result = run([chunk({"content": "hi"}), chunk({}, "stop"), trailing])
    assert result.usage["input_tokens"] == 36
    assert result.usage["output_tokens"] == 9
    assert result.usage["cache_read_input_tokens"] == 64


def test_stream_groq_usage() -> None:
    last = chunk(
        {}, "stop", x_groq={"id": "req_1", "usage": {"prompt_tokens": 20, "completion_tokens": 4}}
    )
    result = run([chunk({"content": "hi"}), last])
    assert result.usage["input_tokens"] == 20
    assert result.usage["output_tokens"] == 4


def test_stream_finish_is_idempotent() -> None:
    stream = MessagesStreamFromChat(model="m")
    first = stream.start() + b"".join(stream.feed(chunk({"content": "a"}, "stop")))
    first += b"".join(stream.finish())
    check_grammar(first)
    assert b"".join(stream.finish()) == b""


def test_stream_finish_without_start_is_well_formed() -> None:
    stream = MessagesStreamFromChat(model="m")
    out = stream.feed(b"data: [DONE]\n\n")
    result = check_grammar(b"".join(out + stream.finish()))
    assert result.blocks == []


def test_stream_cut_before_the_end_raises() -> None:
    stream = MessagesStreamFromChat(model="m")
    stream.feed(chunk({"content": "partial"}))
    with pytest.raises(VdmError, match="ended before the response was complete"):
        stream.finish()


def test_stream_error_chunk_raises() -> None:
    stream = MessagesStreamFromChat(model="m")
    stream.start()
    stream.feed(chunk({"content": "partial"}))
    with pytest.raises(VdmError) as info:
        stream.feed({"error": {"message": "upstream overloaded", "code": 503}})
    assert "upstream overloaded" in info.value.message


def test_an_error_chunk_read_with_text_before_it_lets_the_text_out_first() -> None:
    """One upstream read holding text chunks then an error chunk (a fast upstream, large
    reads): the text reaches the client, then the error ends the stream."""
    decoder = ChatStreamDecoder(target("m"))
    text = {"choices": [{"index": 0, "delta": {"content": "partial"}}]}
    error = {"error": {"message": "upstream overloaded", "code": 503}}
    events = decoder.feed(
        b"data: %s\n\ndata: %s\n\n" % (json.dumps(text).encode(), json.dumps(error).encode())
    )
    assert [getattr(e, "text", None) for e in events] == [None, "partial"]
    assert decoder.done
    with pytest.raises(VdmError, match="upstream overloaded"):
        decoder.finish()


# --- recorded provider streams ----------------------------------------------------------------


def _fixtures() -> list[Any]:
    paths = sorted(FIXTURES.glob("*.sse")) if FIXTURES.is_dir() else []
    if not paths:
        reason = f"no recorded streams in {FIXTURES}"
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="absent")]
    return [pytest.param(p, id=p.stem) for p in paths]


def decode_chunks(raw: bytes) -> list[dict[str, Any]]:
    """The JSON chunks of a recorded stream, up to `[DONE]`, read in small uneven pieces."""
    decoder = SseDecoder()
    events = []
    for start in range(0, len(raw), 37):
        events += decoder.feed(raw[start : start + 37])
    events += decoder.flush()
    chunks = []
    for event in events:
        if event.data == "[DONE]":
            break
        chunks.append(json.loads(event.data))
    return chunks


def argument_fragments(chunks: list[dict[str, Any]]) -> list[int]:
    """How many non-empty argument fragments each tool call (in order) was sent in."""
    counts: dict[int, int] = {}
    for item in chunks:
        for choice in item.get("choices") or ():
            for position, fragment in enumerate(
                (choice.get("delta") or {}).get("tool_calls") or ()
            ):
                key = fragment.get("index", position)
                counts.setdefault(key, 0)
                if (fragment.get("function") or {}).get("arguments"):
                    counts[key] += 1
    return [counts[k] for k in sorted(counts)]


@pytest.mark.parametrize("path", _fixtures())
def test_replay_recorded_stream(path: Path) -> None:
    sidecar = json.loads(path.with_suffix(".json").read_text())
    expected = sidecar["expected"]
    chunks = decode_chunks(path.read_bytes())
    assert chunks, "fixture holds no JSON chunks"
    matched = expected.get("stop_reason")
    stream = MessagesStreamFromChat(
        model=sidecar["model"], stop_sequences=[matched] if isinstance(matched, str) else None
    )
    out = [stream.start()]
    if expected.get("error"):
        with pytest.raises(VdmError) as info:
            for item in chunks:
                out += stream.feed(item)
        assert expected["error"]["message"] in info.value.message
        assert info.value.status >= 500 or info.value.status == 429
        return
    for item in chunks:
        out += stream.feed(item)
    out += stream.finish()
    result = check_grammar(b"".join(out))

    assert result.text == expected["text"]
    assert result.thinking == (expected["reasoning"] or "")
    if expected["reasoning"]:
        assert result.blocks[0].type == "thinking", "thinking comes before the answer"
    tools = result.of_type("tool_use")
    # A Gemini thought signature travels inside the id (vdm/protocol/signatures.py).
    assert [
        {
            "id": split_thought_id(b.start["id"])[0],
            "name": b.start["name"],
            "arguments": "".join(b.partial_json),
        }
        for b in tools
    ] == expected["tool_calls"]
    raw = path.read_text()
    for b in tools:
        signature = split_thought_id(b.start["id"])[1]
        assert (signature is not None) == ("thought_signature" in raw)
        assert signature is None or f'"thought_signature":"{signature}"' in raw
    assert [len(b.partial_json) for b in tools] == argument_fragments(chunks), (
        "one input_json_delta per argument fragment, as they arrive"
    )
    for tool, call in zip(tools, expected["tool_calls"], strict=True):
        assert tool.input == json.loads(call["arguments"])

    if expected["tool_calls"]:
        assert result.stop_reason == "tool_use"
        assert result.stop_sequence is None
    elif isinstance(matched, str):
        assert (result.stop_reason, result.stop_sequence) == ("stop_sequence", matched)
    else:
        anthropic = {"stop": "end_turn", "length": "max_tokens", "content_filter": "refusal"}
        assert result.stop_reason == anthropic[expected["finish_reason"]]
        assert result.stop_sequence is None

    usage = expected["usage"]
    if usage is not None:
        cached = usage["cached_tokens"] or 0
        assert result.usage["input_tokens"] == usage["prompt_tokens"] - cached
        assert result.usage["output_tokens"] == usage["completion_tokens"]
        assert result.usage.get("cache_read_input_tokens", 0) == cached


# --- review fixes: Gemini parallel calls, failed finishes, Mistral chunks, Kimi ids -------------


def test_stream_gemini_parallel_calls_all_at_index_zero_stay_separate() -> None:
    """Gemini's compat endpoint sends each parallel call whole, with its own id, all at
    `index: 0`: two calls, never one with both argument objects glued together."""
    result = run(
        [
            call(0, id="function-call-1", name="Read", args='{"file_path":"a"}'),
            call(0, id="function-call-2", name="Read", args='{"file_path":"b"}'),
            chunk({}, "tool_calls"),
        ]
    )
    first, second = result.blocks
    assert (first.start["id"], first.input) == ("function-call-1", {"file_path": "a"})
    assert (second.start["id"], second.input) == ("function-call-2", {"file_path": "b"})
    assert (first.index, second.index) == (0, 1)


def test_stream_reused_index_continues_the_new_call() -> None:
    """Fragments after a new id at a reused index belong to that new call."""
    result = run(
        [
            call(0, id="call_a", name="Read", args='{"file_path":'),
            call(0, args='"a"}'),
            call(0, id="call_b", name="Read", args='{"file_path":'),
            call(0, args='"b"}'),
            chunk({}, "tool_calls"),
        ]
    )
    assert [b.input for b in result.blocks] == [{"file_path": "a"}, {"file_path": "b"}]


def test_stream_the_same_id_repeated_on_every_fragment_is_one_call() -> None:
    result = run(
        [
            call(0, id="call_a", name="Read", args='{"file_path":'),
            call(0, id="call_a", args='"a"}'),
            chunk({}, "tool_calls"),
        ]
    )
    assert [b.input for b in result.blocks] == [{"file_path": "a"}]


def test_mistral_model_length_is_max_tokens() -> None:
    msg = message_from_chat(completion({"content": "x"}, "model_length"), target("m"))
    assert msg["stop_reason"] == "max_tokens"
    assert run([chunk({"content": "x"}), chunk({}, "model_length")]).stop_reason == "max_tokens"


@pytest.mark.parametrize(
    ("finish", "status"), [("insufficient_system_resource", 529), ("error", 502)]
)
def test_failed_finish_reasons_are_errors_not_end_turn(finish: str, status: int) -> None:
    """DeepSeek cut off for lack of capacity, Mistral/OpenRouter `error`: the client must
    not take the partial answer for a complete one."""
    with pytest.raises(VdmError) as raised:
        message_from_chat(completion({"content": "partial"}, finish), target("m"))
    assert raised.value.status == status
    decoder = ChatStreamDecoder(target("m"))
    decoder.feed(sse(chunk({"content": "partial"})) + sse(chunk({}, finish)))
    with pytest.raises(VdmError) as raised:
        decoder.finish()
    assert raised.value.status == status


MAGISTRAL = [
    {"type": "thinking", "thinking": [{"type": "text", "text": "Two plus two. "}]},
    {"type": "thinking", "thinking": [{"type": "text", "text": "That is four."}]},
    {"type": "text", "text": "The answer is 4."},
]


def test_magistral_content_chunks_become_thinking_and_text() -> None:
    msg = message_from_chat(completion({"content": MAGISTRAL}), target("magistral-medium-latest"))
    assert msg["content"] == [
        {"type": "thinking", "thinking": "Two plus two. That is four.", "signature": "vdm-rc1"},
        {"type": "text", "text": "The answer is 4."},
    ]


def test_stream_magistral_content_chunks_become_thinking_and_text() -> None:
    result = run(
        [
            chunk({"role": "assistant", "content": ""}),
            *(chunk({"content": [part]}) for part in MAGISTRAL),
            chunk({"content": " Done."}),
            chunk({}, "stop"),
        ]
    )
    thinking, text = result.blocks
    assert (thinking.type, thinking.thinking) == ("thinking", "Two plus two. That is four.")
    assert text.text == "The answer is 4. Done."


KIMI_ID = "functions.Bash:0"


def test_kimi_tool_ids_reach_the_client_in_anthropics_alphabet() -> None:
    calls = [{"id": KIMI_ID, "type": "function", "function": {"name": "Bash", "arguments": "{}"}}]
    msg = message_from_chat(completion({"content": None, "tool_calls": calls}, "tool_calls"), T())
    streamed = run([call(0, id=KIMI_ID, name="Bash", args="{}"), chunk({}, "tool_calls")])
    ids = [msg["content"][0]["id"], streamed.blocks[0].start["id"]]
    assert ids[0] == ids[1] == safe_tool_id(KIMI_ID)
    assert re.fullmatch(r"[a-zA-Z0-9_-]+", ids[0])
    assert restore_tool_id(ids[0]) == KIMI_ID


def T() -> Any:
    return target("kimi-k2-thinking", "moonshot")


@pytest.mark.parametrize(
    "tool_id",
    ["functions.Bash:0", "vdmid_x", "call:1/2+3=", "toolu_01XyZ", "a b", "ünï"],
)
def test_safe_tool_id_round_trip(tool_id: str) -> None:
    safe = safe_tool_id(tool_id)
    assert re.fullmatch(r"[a-zA-Z0-9_-]+", safe)
    assert restore_tool_id(safe) == tool_id
    if re.fullmatch(r"[a-zA-Z0-9_-]+", tool_id) and not tool_id.startswith("vdmid_"):
        assert safe == tool_id  # valid ids are untouched


def test_a_new_id_without_a_name_continues_the_call() -> None:
    """Some servers change the id between fragments of one call (poolsideai/pool#9): only a
    fragment that names a tool starts a new call at a used index."""
    result = run(
        [
            call(0, id="call_A", name="Bash", args='{"comm'),
            call(0, id="call_B", args='and":"ls"}'),
            chunk({}, "tool_calls"),
        ]
    )
    (tool,) = result.of_type("tool_use")
    assert (tool.start["name"], tool.input) == ("Bash", {"command": "ls"})
