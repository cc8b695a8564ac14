"""Claude Code's WebSearch through vdm to a provider with its own search, end to end: the
anthropic SDK (as Claude Code's WebSearch tool calls it) drives vdm on loopback, vdm calls the
strict fake Responses API, which searches only when it was given OpenAI's `web_search` tool and
lists sources only when asked. The SDK must see Anthropic's search blocks and citations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from tests.fakes.gemini_upstream import FakeGemini, grounded_reply, grounding_metadata
from tests.fakes.openai_upstream import (
    FakeOpenAI,
    JsonReply,
    SseReply,
    completion,
    openrouter_search_reply,
    stream_chunks,
)
from tests.fakes.responses_upstream import FakeResponses, responses_reply, url_citation
from tests.harness import RunningVdm, running_vdm

KEY = "sk-upstream-secret-5678"
MODEL = "gpt-5.6-terra"
ANSWER = "Python 3.14 is out. See the notes."
URLS = ["https://python.org/downloads/", "https://docs.python.org/3.14/whatsnew/"]
#: The request Claude Code's WebSearch tool sends (its own small conversation).
REQUEST: dict[str, Any] = {
    "model": MODEL,
    "max_tokens": 4096,
    "system": "You are an assistant for performing a web search tool use",
    "messages": [{"role": "user", "content": "Perform a web search for the query: python 3.14"}],
    "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 8}],
}


@pytest.fixture
def fake() -> Iterator[FakeResponses]:
    with FakeResponses() as upstream:
        upstream.default = responses_reply(
            ANSWER,
            searches=[("python 3.14 release", URLS)],
            citations=[url_citation(URLS[1], "What's new", 0, 19)],
        )
        yield upstream


@pytest.fixture
def vdm(fake: FakeResponses) -> Iterator[RunningVdm]:
    env = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": fake.base_url, "MAX_RETRIES": "0"}
    with running_vdm(env) as server:
        yield server


@pytest.fixture
def client(vdm: RunningVdm) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=vdm.url, api_key="sk-client", max_retries=0) as c:
        yield c


def check(content: list[Any], usage: Any) -> None:
    kinds = [block.type for block in content]
    assert kinds == ["server_tool_use", "web_search_tool_result", "text"], kinds
    use, result, text = content
    assert use.name == "web_search" and use.id.startswith("srvtoolu_")
    assert use.input == {"query": "python 3.14 release"}
    assert result.tool_use_id == use.id
    assert [r.url for r in result.content] == URLS
    assert text.text == ANSWER
    assert [(c.url, c.cited_text) for c in text.citations] == [(URLS[1], "Python 3.14 is out.")]
    assert usage.server_tool_use.web_search_requests == 1


def test_a_search_answer_arrives_whole(client: anthropic.Anthropic, fake: FakeResponses) -> None:
    message = client.messages.create(**REQUEST)
    check(message.content, message.usage)
    sent = fake.responses_requests[-1].json
    assert {"type": "web_search"} in sent["tools"]
    assert "web_search_call.action.sources" in sent["include"]


def test_a_search_answer_streams(client: anthropic.Anthropic) -> None:
    with client.messages.stream(**REQUEST) as stream:
        message = stream.get_final_message()
    check(message.content, message.usage)


@pytest.mark.parametrize("stream", [False, True])
def test_gpt_4o_searches_through_the_responses_api(
    client: anthropic.Anthropic, fake: FakeResponses, stream: bool
) -> None:
    """gpt-4o's Chat Completions has no search tool, its Responses API has: a request with
    web search goes there, one without stays on Chat (`select`)."""
    request = {**REQUEST, "model": "gpt-4o"}
    if stream:
        with client.messages.stream(**request) as events:
            message = events.get_final_message()
    else:
        message = client.messages.create(**request)
    check(message.content, message.usage)
    assert fake.responses_requests[-1].json["model"] == "gpt-4o"


def test_only_a_search_request_moves_gpt_4o_to_responses(tmp_path: Path) -> None:
    from vdm.config.settings import Settings
    from vdm.upstream.backends import select

    settings = Settings.load({"OPENAI_API_KEY": "sk-x", "HOME": str(tmp_path)}, cwd=tmp_path)
    provider = settings.providers["openai"]
    assert select(provider, "gpt-4o", "gpt-4o")[0].name == "openai"
    assert select(provider, "gpt-4o", "gpt-4o", web_search=True)[0].name == "responses"
    # A model whose search is not the Responses API's stays where it was.
    assert select(provider, "gpt-4.1-nano", "x", web_search=True)[0].name == "openai"


# --- native Gemini ----------------------------------------------------------------------------

GEMINI_KEY = "AIza-upstream-secret"
REDIRECT = "https://vertexaisearch.cloud.google.com/grounding-api-redirect/AbC"


@pytest.fixture
def gemini_client() -> Iterator[tuple[anthropic.Anthropic, FakeGemini]]:
    grounding = grounding_metadata(
        ["python 3.14 release"],
        [(REDIRECT + "1", "python.org")],
        [("Python 3.14 is out.", 0, 19, [0])],
    )
    with FakeGemini(api_key=GEMINI_KEY) as fake:
        fake.default = grounded_reply(ANSWER, grounding)
        env = {"GEMINI_API_KEY": GEMINI_KEY, "GEMINI_BASE_URL": fake.base_url, "MAX_RETRIES": "0"}
        with running_vdm(env) as server:
            with anthropic.Anthropic(base_url=server.url, api_key="sk-cc", max_retries=0) as c:
                yield c, fake


@pytest.mark.parametrize("stream", [False, True])
def test_gemini_grounds_the_answer(
    gemini_client: tuple[anthropic.Anthropic, FakeGemini], stream: bool
) -> None:
    client, fake = gemini_client
    request = {**REQUEST, "model": "gemini:gemini-3-pro-preview"}
    if stream:
        with client.messages.stream(**request) as events:
            message = events.get_final_message()
    else:
        message = client.messages.create(**request)
    assert [b.type for b in message.content] == [
        "text",
        "server_tool_use",
        "web_search_tool_result",
    ]
    text, use, result = message.content
    assert text.text == ANSWER
    assert [(c.url, c.title) for c in text.citations] == [(REDIRECT + "1", "python.org")]
    assert use.input == {"query": "python 3.14 release"} and result.tool_use_id == use.id
    assert [r.title for r in result.content] == ["python.org"]
    assert message.usage.server_tool_use.web_search_requests == 1
    assert fake.served()[-1]["tools"] == [{"googleSearch": {}}]


# --- OpenRouter (Chat Completions, the `web` plugin) ------------------------------------------

OPENROUTER_KEY = "sk-or-upstream-secret"
PAGE = "https://python.org/downloads/release/python-3140/"


@pytest.fixture
def openrouter_client() -> Iterator[tuple[anthropic.Anthropic, FakeOpenAI]]:
    with FakeOpenAI(rules="openrouter") as fake:
        fake.default = openrouter_search_reply(ANSWER, [(PAGE, "Python 3.14.0", "3.14.0 is out")])
        env = {
            "OPENROUTER_API_KEY": OPENROUTER_KEY,
            "OPENROUTER_BASE_URL": fake.base_url,
            "MAX_RETRIES": "0",
        }
        with running_vdm(env) as server:
            with anthropic.Anthropic(base_url=server.url, api_key="sk-cc", max_retries=0) as c:
                yield c, fake


@pytest.mark.parametrize("stream", [False, True])
def test_openrouter_searches_with_its_web_plugin(
    openrouter_client: tuple[anthropic.Anthropic, FakeOpenAI], stream: bool
) -> None:
    client, fake = openrouter_client
    request = {**REQUEST, "model": "openrouter:openai/gpt-4o"}
    if stream:
        with client.messages.stream(**request) as events:
            message = events.get_final_message()
    else:
        message = client.messages.create(**request)
    assert [b.type for b in message.content] == [
        "text",
        "server_tool_use",
        "web_search_tool_result",
    ]
    text, use, result = message.content
    assert text.text == ANSWER
    assert [(c.url, c.cited_text) for c in text.citations] == [(PAGE, "3.14.0 is out")]
    assert use.input == {"query": "Perform a web search for the query: python 3.14"}
    assert [(r.url, r.title) for r in result.content] == [(PAGE, "Python 3.14.0")]
    assert message.usage.server_tool_use.web_search_requests == 1
    sent = fake.requests[-1].json
    assert sent["plugins"] == [{"id": "web"}]
    assert "tools" not in sent


# --- a provider without search (DeepSeek): the model's call answered with an error ----------


@pytest.fixture
def deepseek_client() -> Iterator[tuple[anthropic.Anthropic, FakeOpenAI]]:
    with FakeOpenAI(rules="deepseek") as fake:
        env = {"DEEPSEEK_API_KEY": "sk-ds-secret", "DEEPSEEK_BASE_URL": fake.base_url}
        with running_vdm({**env, "MAX_RETRIES": "0"}) as server:
            with anthropic.Anthropic(base_url=server.url, api_key="sk-cc", max_retries=0) as c:
                yield c, fake


@pytest.mark.parametrize("stream", [False, True])
def test_without_search_the_call_is_answered_with_an_error_the_model_reads(
    deepseek_client: tuple[anthropic.Anthropic, FakeOpenAI], stream: bool
) -> None:
    client, fake = deepseek_client
    query = '{"query": "python 3.14"}'
    if stream:
        fake.enqueue(SseReply(stream_chunks("", tool_calls=[("web_search", query)])))
    else:
        fake.enqueue(JsonReply(completion(None, tool_calls=[("web_search", query)])))
    request = {**REQUEST, "model": "deepseek:deepseek-chat"}
    if stream:
        with client.messages.stream(**request) as events:
            message = events.get_final_message()
    else:
        message = client.messages.create(**request)
    assert [b.type for b in message.content] == [
        "server_tool_use",
        "web_search_tool_result",
        "text",
    ]
    use, result, note = message.content
    assert use.input == {"query": "python 3.14"} and result.tool_use_id == use.id
    assert result.content.error_code == "unavailable"
    assert "Web search is not available" in note.text
    assert message.stop_reason == "end_turn"
    (tool,) = fake.requests[-1].json["tools"]
    assert tool["function"]["name"] == "web_search"
