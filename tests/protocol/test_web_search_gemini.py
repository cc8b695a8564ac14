"""Anthropic's `web_search` server tool on native Gemini (vdm/protocol/web_search.py): the
request carries `googleSearch` (never beside function tools, which Gemini refuses), and the
answer's `groundingMetadata` becomes citations on the text and `server_tool_use` /
`web_search_tool_result` blocks, whole and streamed, checked against the strict fake."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fakes.gemini_upstream import (
    GeminiReply,
    check_request,
    grounding_metadata,
    sse_events,
    text_part,
)
from tests.fakes.openai_upstream import JsonReply
from tests.protocol.grammar import Translation, check_grammar
from tests.protocol.targets import target
from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.anthropic_from_gemini import GeminiStreamDecoder, message_from_gemini
from vdm.protocol.gemini_from_anthropic import gemini_request_from_messages

MODEL = "gemini-3-pro-preview"
SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 8}
BASH = {"name": "Bash", "input_schema": {"type": "object", "properties": {}}}
ANSWER = "Python 3.14 is out. See the notes."
REDIRECT = "https://vertexaisearch.cloud.google.com/grounding-api-redirect/AbC"
GROUNDING = grounding_metadata(
    ["python 3.14 release", "python 3.14 notes"],
    [(REDIRECT + "1", "python.org"), (REDIRECT + "2", "docs.python.org")],
    [("Python 3.14 is out.", 0, 19, [0, 1])],
)


def encode(tools: list[dict[str, Any]], model: str = MODEL) -> dict[str, Any]:
    req = MessagesRequest.model_validate(
        {
            "model": model,
            "max_tokens": 1000,
            "messages": [{"role": "user", "content": "Perform a web search for: python 3.14"}],
            "tools": tools,
        }
    )
    body = gemini_request_from_messages(req, target(model, "gemini"))
    assert check_request(json.loads(json.dumps(body)), model) is None
    return body


def test_web_search_becomes_google_search() -> None:
    assert encode([SEARCH])["tools"] == [{"googleSearch": {}}]


def test_search_is_left_out_beside_function_tools_which_gemini_refuses() -> None:
    body = encode([BASH, SEARCH])
    assert [list(t) for t in body["tools"]] == [["functionDeclarations"]]
    both = {**body, "tools": [*body["tools"], {"googleSearch": {}}]}
    refused = check_request(both, MODEL)
    assert refused is not None and "function calling is unsupported" in refused[1]


def check_blocks(content: list[dict[str, Any]]) -> None:
    kinds = [b["type"] for b in content]
    assert kinds == [
        "text",
        "server_tool_use",
        "web_search_tool_result",
        "server_tool_use",
        "web_search_tool_result",
    ], kinds
    text, use, result, use2, result2 = content
    assert text["text"] == ANSWER
    assert [(c["url"], c["title"], c["cited_text"]) for c in text["citations"]] == [
        (REDIRECT + "1", "python.org", "Python 3.14 is out."),
        (REDIRECT + "2", "docs.python.org", "Python 3.14 is out."),
    ]
    assert use["input"] == {"query": "python 3.14 release"}
    assert use["id"].startswith("srvtoolu_") and result["tool_use_id"] == use["id"]
    assert [r["title"] for r in result["content"]] == ["python.org", "docs.python.org"]
    assert use2["input"] == {"query": "python 3.14 notes"} and result2["content"] == []


def test_a_whole_grounded_answer() -> None:
    reply = GeminiReply([text_part(ANSWER)], grounding=GROUNDING).render(False, False)
    assert isinstance(reply, JsonReply)
    message = message_from_gemini(reply.body, target(MODEL, "gemini"))
    check_blocks(message["content"])
    assert message["usage"]["server_tool_use"] == {"web_search_requests": 2}


@pytest.mark.parametrize("pieces", [1, 4])
def test_a_grounded_stream(pieces: int) -> None:
    chunks = GeminiReply([text_part(ANSWER)], grounding=GROUNDING, pieces=pieces).chunks()
    translation = Translation(GeminiStreamDecoder(target(MODEL, "gemini")))
    out = [translation.start(), *translation.feed(b"".join(sse_events(chunks)))]
    out.extend(translation.finish())
    result = check_grammar(b"".join(out))
    content: list[dict[str, Any]] = []
    for block in result.blocks:
        if block.type == "text":
            cites = [d["citation"] for d in block.deltas if d["type"] == "citations_delta"]
            content.append({"type": "text", "text": block.text, "citations": cites})
        elif block.type == "server_tool_use":
            content.append({**block.start, "input": block.input})
        else:
            content.append(block.start)
    check_blocks(content)
    assert result.usage["server_tool_use"] == {"web_search_requests": 2}
