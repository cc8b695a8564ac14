"""Where the provider cannot search, the client's web search goes as a `web_search` function,
and the model's calls of it come back answered as Anthropic reports a failed search
(vdm/protocol/search_stub.py): blocks renumbered, the stop reason `end_turn` unless a client
tool was called too, and the client never sees a `tool_use` of a tool it did not declare."""

from __future__ import annotations

from typing import Any

from tests.fakes.openai_upstream import completion, stream_chunks
from tests.protocol.grammar import Translation, check_grammar
from tests.protocol.targets import target
from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.anthropic_from_openai import ChatStreamDecoder, message_from_chat
from vdm.protocol.codec import Target
from vdm.protocol.openai_from_anthropic import chat_request_from_messages
from vdm.protocol.sse import dumps

MODEL = "deepseek-chat"
SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 8}
BASH = {"name": "Bash", "input_schema": {"type": "object", "properties": {}}}
QUERY = '{"query": "python 3.14"}'


def encoded(tools: list[dict[str, Any]]) -> tuple[dict[str, Any], Target]:
    tgt = target(MODEL, "deepseek")
    req = MessagesRequest.model_validate(
        {
            "model": MODEL,
            "max_tokens": 100,
            "messages": [{"role": "user", "content": "search python 3.14"}],
            "tools": tools,
        }
    )
    return chat_request_from_messages(req, tgt), tgt


def test_the_search_goes_as_a_function_the_model_can_call() -> None:
    body, tgt = encoded([SEARCH])
    (tool,) = body["tools"]
    assert tool["function"]["name"] == "web_search"
    assert tool["function"]["parameters"]["required"] == ["query"]
    assert tgt.web_search_stub


def test_a_whole_answer_reports_the_search_as_unavailable() -> None:
    _, tgt = encoded([SEARCH])
    message = message_from_chat(
        completion("Let me search.", tool_calls=[("web_search", QUERY)]), tgt
    )
    text, use, result, note = message["content"]
    assert text == {"type": "text", "text": "Let me search."}
    assert use["type"] == "server_tool_use" and use["input"] == {"query": "python 3.14"}
    assert result["tool_use_id"] == use["id"]
    assert result["content"] == {
        "type": "web_search_tool_result_error",
        "error_code": "unavailable",
    }
    assert "not available" in note["text"] and MODEL in note["text"]
    assert message["stop_reason"] == "end_turn"


def run(tgt: Target, chunks: list[dict[str, Any]]) -> Any:
    stream = Translation(ChatStreamDecoder(tgt), MODEL)
    out = [stream.start()]
    for chunk in chunks:
        out.extend(stream.feed(f"data: {dumps(chunk)}\n\n".encode()))
    out.extend(stream.feed(b"data: [DONE]\n\n"))
    out.extend(stream.finish())
    return check_grammar(b"".join(out))


def test_a_stream_renumbers_the_blocks_after_the_answer_and_keeps_client_calls() -> None:
    _, tgt = encoded([SEARCH, BASH])
    calls = [("web_search", QUERY), ("Bash", "{}")]
    result = run(tgt, stream_chunks("Hm.", tool_calls=calls, model=MODEL))
    kinds = [b.type for b in result.blocks]
    assert kinds == ["text", "server_tool_use", "web_search_tool_result", "text", "tool_use"]
    assert [b.index for b in result.blocks] == [0, 1, 2, 3, 4]
    assert result.blocks[1].input == {"query": "python 3.14"}
    assert result.blocks[4].start["name"] == "Bash"
    assert result.stop_reason == "tool_use"  # the client has Bash to run


def test_a_stream_with_only_the_search_call_ends_the_turn() -> None:
    _, tgt = encoded([SEARCH])
    result = run(tgt, stream_chunks("", tool_calls=[("web_search", QUERY)], model=MODEL))
    assert [b.type for b in result.blocks] == ["server_tool_use", "web_search_tool_result", "text"]
    assert result.stop_reason == "end_turn"


def test_without_a_search_tool_a_web_search_call_is_the_clients() -> None:
    _, tgt = encoded([{**BASH, "name": "web_search"}])
    assert not tgt.web_search_stub
    result = run(tgt, stream_chunks("", tool_calls=[("web_search", QUERY)], model=MODEL))
    assert [b.type for b in result.blocks] == ["tool_use"]
    assert result.stop_reason == "tool_use"
