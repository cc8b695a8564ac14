"""Anthropic's `web_search` server tool on the OpenAI Responses API (vdm/protocol/web_search.py):
the request carries OpenAI's `web_search` tool, and its `web_search_call` items and
`url_citation` annotations come back as Anthropic's `server_tool_use` /
`web_search_tool_result` blocks and text citations, whole and streamed (every stream shape the
fake sends), checked against the strict fake and the Anthropic SSE grammar."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fakes.responses_upstream import (
    check_request,
    message_item,
    response_events,
    response_object,
    url_citation,
    web_search_call_item,
)
from tests.protocol.grammar import Translation, check_grammar
from tests.protocol.targets import target
from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.anthropic_from_responses import ResponsesStreamDecoder, message_from_response
from vdm.protocol.responses_from_anthropic import responses_request_from_messages

MODEL = "gpt-5.6-terra"
#: Claude Code's WebSearch tool, as it sends it.
SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 8}
ANSWER = "Python 3.14 is out. See the notes."
URL_A, URL_B = "https://python.org/downloads/", "https://docs.python.org/3.14/whatsnew/"


def encode(tools: list[dict[str, Any]], model: str = MODEL, **extra: Any) -> dict[str, Any]:
    req = MessagesRequest.model_validate(
        {
            "model": model,
            "max_tokens": 1000,
            "messages": [{"role": "user", "content": "Perform a web search for: python 3.14"}],
            "tools": tools,
            **extra,
        }
    )
    body = responses_request_from_messages(req, target(model))
    rejection = check_request(json.loads(json.dumps(body)))
    assert rejection is None, rejection.message
    return body


def searched_output() -> list[dict[str, Any]]:
    note = url_citation(URL_B, "What's new in Python 3.14", 0, 19)
    return [
        web_search_call_item("python 3.14 release", [URL_A, URL_B], sources=True, id="ws_abc"),
        message_item(ANSWER, id="msg_1", annotations=[note]),
    ]


# --- request ----------------------------------------------------------------------------------


def test_web_search_becomes_openais_tool_with_its_sources_included() -> None:
    body = encode([SEARCH])
    assert body["tools"] == [{"type": "web_search"}]
    assert "web_search_call.action.sources" in body["include"]


def test_domains_and_location_map_and_blocked_domains_are_left_out() -> None:
    tool = {
        **SEARCH,
        "allowed_domains": ["python.org"],
        "blocked_domains": ["example.com"],
        "user_location": {"type": "approximate", "city": "Paris", "country": "FR"},
    }
    assert encode([tool])["tools"] == [
        {
            "type": "web_search",
            "filters": {"allowed_domains": ["python.org"]},
            "user_location": {"type": "approximate", "city": "Paris", "country": "FR"},
        }
    ]


def test_minimal_effort_is_raised_for_search_and_a_forced_search_is_required() -> None:
    body = encode([SEARCH], "gpt-5", output_config={"effort": "minimal"})
    assert body["reasoning"]["effort"] == "low"
    forced = encode([SEARCH], tool_choice={"type": "tool", "name": "web_search"})
    assert forced["tool_choice"] == "required"


def test_the_fake_refuses_what_openai_refuses() -> None:
    base = {"model": "gpt-5", "input": "hi"}
    anthropic_tool = check_request({**base, "tools": [SEARCH]})
    assert anthropic_tool is not None and "web_search_20250305" in anthropic_tool.message
    minimal = {**base, "tools": [{"type": "web_search"}], "reasoning": {"effort": "minimal"}}
    refused = check_request(minimal)
    assert refused is not None and "minimal" in refused.message
    assert check_request({**base, "include": ["web_search_call.sources"]}) is not None


def test_a_model_without_search_gets_the_stub_function() -> None:
    (stub,) = encode([SEARCH], "gpt-4.1-nano")["tools"]
    assert stub["type"] == "function" and stub["name"] == "web_search"


# --- whole answer -----------------------------------------------------------------------------


def test_a_whole_answer_has_the_search_its_results_and_cited_text() -> None:
    message = message_from_response(response_object(searched_output()), target(MODEL))
    use, result, text = message["content"]
    assert use == {
        "type": "server_tool_use",
        "id": "srvtoolu_abc",
        "name": "web_search",
        "input": {"query": "python 3.14 release"},
    }
    assert result["type"] == "web_search_tool_result"
    assert result["tool_use_id"] == "srvtoolu_abc"
    assert [(r["type"], r["url"], r["title"]) for r in result["content"]] == [
        ("web_search_result", URL_A, URL_A),
        ("web_search_result", URL_B, "What's new in Python 3.14"),
    ]
    assert text["text"] == ANSWER
    assert text["citations"] == [
        {
            "type": "web_search_result_location",
            "url": URL_B,
            "title": "What's new in Python 3.14",
            "cited_text": "Python 3.14 is out.",
            "encrypted_index": "",
        }
    ]
    assert message["usage"]["server_tool_use"] == {"web_search_requests": 1}
    assert message["stop_reason"] == "end_turn"


def test_an_answer_without_search_has_no_search_usage() -> None:
    message = message_from_response(response_object([message_item("hi")]), target(MODEL))
    assert "server_tool_use" not in message["usage"]
    assert "citations" not in message["content"][0]


# --- stream -----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["streamed", "whole", "completed-only"])
def test_a_stream_has_the_search_blocks_then_cited_text(shape: str) -> None:
    stream = Translation(ResponsesStreamDecoder(target(MODEL)), MODEL)
    out = [stream.start()]
    for event in response_events(searched_output(), shape=shape, pieces=4):
        frame = f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
        out.extend(stream.feed(frame))
    out.extend(stream.finish())
    result = check_grammar(b"".join(out))

    use, search, text = result.blocks
    assert use.type == "server_tool_use" and use.start["id"] == "srvtoolu_abc"
    assert use.start["name"] == "web_search"
    assert use.input == {"query": "python 3.14 release"}
    assert search.type == "web_search_tool_result"
    assert search.start["tool_use_id"] == "srvtoolu_abc"
    assert [r["url"] for r in search.start["content"]] == [URL_A, URL_B]
    assert text.type == "text" and text.text == ANSWER
    citations = [d["citation"] for d in text.deltas if d["type"] == "citations_delta"]
    assert [(c["url"], c["cited_text"]) for c in citations] == [(URL_B, "Python 3.14 is out.")]
    assert result.usage["server_tool_use"] == {"web_search_requests": 1}


def test_a_page_visit_is_not_a_search() -> None:
    visit = {
        "id": "ws_open",
        "type": "web_search_call",
        "status": "completed",
        "action": {"type": "open_page", "url": URL_A},
    }
    message = message_from_response(response_object([visit, message_item("done")]), target(MODEL))
    assert [b["type"] for b in message["content"]] == ["text"]
    assert "server_tool_use" not in message["usage"]
