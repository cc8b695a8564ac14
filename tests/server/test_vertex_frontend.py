"""Clients in Vertex mode end to end: the official `anthropic` SDK's `AnthropicVertex` client
(rawPredict / streamRawPredict / count-tokens paths, the body without `model`, the model id
with `@date`) against vdm (real Hypercorn on loopback), vdm routing the model to the strict
fake OpenAI upstream (translated) or the fake Anthropic one (forwarded). Answers and errors
are Anthropic's own shape, as Vertex gives Claude's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from tests.fakes.anthropic_upstream import (
    AnthropicSseReply,
    FakeAnthropic,
    anthropic_stream_events,
)
from tests.fakes.openai_upstream import FakeOpenAI, SseReply, stream_chunks
from tests.fakes.scripts import reply_to
from tests.harness import RunningVdm, running_vdm

MODEL = "claude-sonnet-4-5@20250929"
TOOLS = [
    {
        "name": "Bash",
        "description": "Run a command",
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
    }
]
HELLO = [{"role": "user", "content": "hello"}]


def vertex_client(vdm: RunningVdm) -> anthropic.AnthropicVertex:
    return anthropic.AnthropicVertex(
        access_token="ya29.token",
        region="us-east5",
        project_id="my-project",
        base_url=f"{vdm.url}/v1",
        max_retries=0,
    )


@pytest.fixture
def openai_vdm(fake: FakeOpenAI) -> Iterator[RunningVdm]:
    env = {
        "OPENAI_API_KEY": "sk-up",
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_ALIAS_SONNET": "gpt-4o",
        "MAX_RETRIES": "0",
    }
    with running_vdm(env) as server:
        yield server


@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_to_openai(fake: FakeOpenAI, openai_vdm: RunningVdm, stream: bool) -> None:
    call = ("Bash", '{"command":"ls"}', "call_vertexTool0001")
    fake.default = lambda r: reply_to(r.json, "Running it.", tool_calls=[call])
    kwargs: dict[str, Any] = {"model": MODEL, "max_tokens": 100, "messages": HELLO, "tools": TOOLS}
    with vertex_client(openai_vdm) as client:
        if stream:
            with client.messages.stream(**kwargs) as s:
                message = s.get_final_message()
        else:
            message = client.messages.create(**kwargs)
    assert message.content[0].type == "text" and message.content[0].text == "Running it."
    (block,) = [b for b in message.content if b.type == "tool_use"]
    assert block.name == "Bash" and block.input == {"command": "ls"}
    assert message.stop_reason == "tool_use"
    (request,) = fake.requests
    assert request.json["model"] == "gpt-4o"
    assert request.json.get("stream", False) is stream
    assert "anthropic_version" not in request.json


def test_errors_are_anthropic_shaped(openai_vdm: RunningVdm) -> None:
    with vertex_client(openai_vdm) as client:
        with pytest.raises(anthropic.BadRequestError) as caught:
            client.messages.create(model="nope:x", max_tokens=10, messages=HELLO)
    body = caught.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "unknown provider 'nope'" in body["error"]["message"]


def test_stream_broken_midway_ends_with_an_error_event(
    fake: FakeOpenAI, openai_vdm: RunningVdm
) -> None:
    fake.default = lambda r: SseReply(stream_chunks("never finished", pieces=4), cut_after=2)
    with vertex_client(openai_vdm) as client:
        with pytest.raises(anthropic.APIStatusError):
            with client.messages.stream(model=MODEL, max_tokens=10, messages=HELLO) as s:
                for _ in s:
                    pass


def test_count_tokens_offline(openai_vdm: RunningVdm) -> None:
    with vertex_client(openai_vdm) as client:
        counted = client.messages.count_tokens(model=MODEL, messages=HELLO)
    assert counted.input_tokens > 0


def test_other_publishers_are_not_found(openai_vdm: RunningVdm) -> None:
    path = "/v1/projects/p/locations/us-east5/publishers/google/models/gemini-2.5-pro:rawPredict"
    response = httpx.post(f"{openai_vdm.url}{path}", json={"max_tokens": 1}, timeout=10)
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


@pytest.fixture
def ant_vdm(ant: FakeAnthropic) -> Iterator[RunningVdm]:
    env = {"ANTHROPIC_API_KEY": "sk-ant", "ANTHROPIC_BASE_URL": ant.base_url, "MAX_RETRIES": "0"}
    with running_vdm(env) as server:
        yield server


@pytest.mark.parametrize("stream", [False, True])
def test_forwarded_to_anthropic(ant: FakeAnthropic, ant_vdm: RunningVdm, stream: bool) -> None:
    spec = ("Bash", '{"command":"pwd"}', "toolu_01VertexForward001")
    if stream:
        ant.enqueue(AnthropicSseReply(anthropic_stream_events("", tool_use=spec)))
    kwargs: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 100,
        "messages": HELLO,
        "tools": TOOLS,
        "betas": ["interleaved-thinking-2025-05-14"],
    }
    with vertex_client(ant_vdm) as client:
        if stream:
            with client.beta.messages.stream(**kwargs) as s:
                message = s.get_final_message()
            assert message.content[-1].type == "tool_use"
        else:
            message = client.beta.messages.create(**kwargs)
            assert message.content[0].type == "text"
    (request,) = ant.requests
    body = request.json
    assert body["model"] == "claude-sonnet-4-5-20250929"
    assert "anthropic_version" not in body
    assert body.get("stream", False) is stream
    assert "interleaved-thinking-2025-05-14" in request.headers["anthropic-beta"]
    assert request.headers["x-api-key"] == "sk-ant"
    assert "ya29.token" not in str(request.headers)


def test_count_tokens_by_the_provider(ant: FakeAnthropic, ant_vdm: RunningVdm) -> None:
    ant.count_tokens_result = 77
    with vertex_client(ant_vdm) as client:
        counted = client.messages.count_tokens(model=MODEL, messages=HELLO)
    assert counted.input_tokens == 77
    (request,) = ant.requests
    assert request.path == "/v1/messages/count_tokens"
    assert request.json["model"] == "claude-sonnet-4-5-20250929"
    assert "anthropic_version" not in request.json
