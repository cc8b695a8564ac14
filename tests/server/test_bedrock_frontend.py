"""Clients in Bedrock mode end to end: the official `anthropic` SDK's `AnthropicBedrock`
client (what Claude Code's Bedrock SDK does in Python: InvokeModel paths, the body without
`model`/`stream`, betas in `anthropic_beta`, answers read as AWS event-stream frames by
botocore's parser) against vdm (real Hypercorn on loopback), vdm routing the Bedrock model id
to the strict fake OpenAI upstream (translated) or the fake Anthropic one (forwarded).

The client signs nothing (`api_key`: a bearer token, which vdm ignores as it ignores SigV4).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import anthropic
import httpx
import pytest

from tests.fakes.anthropic_upstream import (
    AnthropicSseReply,
    FakeAnthropic,
    anthropic_error,
    anthropic_stream_events,
)
from tests.fakes.openai_upstream import FakeOpenAI, SseReply, stream_chunks
from tests.fakes.scripts import reply_to
from tests.harness import RunningVdm, running_vdm
from vdm.protocol.aws_eventstream import EventStreamDecoder

SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
ARN = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5"
TOOLS = [
    {
        "name": "Bash",
        "description": "Run a command",
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
    }
]
HELLO = [{"role": "user", "content": "hello"}]


def bedrock_client(vdm: RunningVdm) -> anthropic.AnthropicBedrock:
    return anthropic.AnthropicBedrock(
        api_key="bedrock-token", aws_region="us-east-1", base_url=vdm.url, max_retries=0
    )


# --- to an OpenAI-format provider: translated ----------------------------------------------


@pytest.fixture
def openai_vdm(fake: FakeOpenAI) -> Iterator[RunningVdm]:
    env = {
        "OPENAI_API_KEY": "sk-up",
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_ALIAS_SONNET": "gpt-4o",
        "OPENAI_ALIAS_PROFILE": "gpt-4o-mini",
        "MAX_RETRIES": "0",
    }
    with running_vdm(env) as server:
        yield server


@pytest.mark.parametrize("stream", [False, True])
def test_text_to_openai(fake: FakeOpenAI, openai_vdm: RunningVdm, stream: bool) -> None:
    fake.default = lambda r: reply_to(r.json, "Hi from gpt-4o")
    with bedrock_client(openai_vdm) as client:
        if stream:
            with client.messages.stream(model=SONNET, max_tokens=100, messages=HELLO) as s:
                kinds = [event.type for event in s]
                message = s.get_final_message()
            assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
        else:
            message = client.messages.create(model=SONNET, max_tokens=100, messages=HELLO)
    assert message.content[0].type == "text" and message.content[0].text == "Hi from gpt-4o"
    assert message.stop_reason == "end_turn"
    (request,) = fake.requests
    # The id's `sonnet` hit the user's alias; the request went out in OpenAI's dialect.
    assert request.path == "/v1/chat/completions"
    assert request.json["model"] == "gpt-4o"
    assert request.json["messages"][-1] == {"role": "user", "content": "hello"}


@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_to_openai(fake: FakeOpenAI, openai_vdm: RunningVdm, stream: bool) -> None:
    call = ("Bash", '{"command":"ls"}', "call_bedrockTool01")
    fake.default = lambda r: reply_to(r.json, tool_calls=[call])
    with bedrock_client(openai_vdm) as client:
        kwargs: dict[str, Any] = {
            "model": SONNET,
            "max_tokens": 100,
            "messages": HELLO,
            "tools": TOOLS,
        }
        if stream:
            with client.messages.stream(**kwargs) as s:
                message = s.get_final_message()
        else:
            message = client.messages.create(**kwargs)
    (block,) = [b for b in message.content if b.type == "tool_use"]
    assert block.name == "Bash" and block.input == {"command": "ls"}
    assert message.stop_reason == "tool_use"
    assert fake.requests[0].json["tools"][0]["function"]["name"] == "Bash"


def test_arn_through_an_alias(fake: FakeOpenAI, openai_vdm: RunningVdm) -> None:
    """An application inference profile's ARN (its `/` sent as `%2F`) is a model name: here
    it contains the user's alias `profile`."""
    fake.default = lambda r: reply_to(r.json, "from the profile")
    with bedrock_client(openai_vdm) as client:
        message = client.messages.create(model=ARN, max_tokens=10, messages=HELLO)
    assert message.content[0].text == "from the profile"
    assert fake.requests[0].json["model"] == "gpt-4o-mini"


def test_error_before_the_stream_is_aws_shaped(openai_vdm: RunningVdm) -> None:
    with bedrock_client(openai_vdm) as client:
        with pytest.raises(anthropic.BadRequestError) as caught:
            client.messages.create(model="nope:x", max_tokens=10, messages=HELLO)
    response = caught.value.response
    assert response.headers["x-amzn-errortype"] == "ValidationException"
    assert response.json() == {
        "message": "unknown provider 'nope' in model 'nope:x'; configured providers: openai"
    }


def test_upstream_rate_limit_is_a_throttling_exception(
    fake: FakeOpenAI, openai_vdm: RunningVdm
) -> None:
    fake.default = lambda r: fake_error(429)
    with bedrock_client(openai_vdm) as client:
        with pytest.raises(anthropic.RateLimitError) as caught:
            client.messages.create(model=SONNET, max_tokens=10, messages=HELLO)
    assert caught.value.response.headers["x-amzn-errortype"] == "ThrottlingException"
    assert "message" in caught.value.response.json()


def fake_error(status: int) -> Any:
    from tests.fakes.openai_upstream import JsonReply

    body = {"error": {"message": "slow down", "type": "rate_limit_error", "code": None}}
    return JsonReply(body, status=status)


def test_stream_broken_midway_ends_with_an_exception_frame(
    fake: FakeOpenAI, openai_vdm: RunningVdm
) -> None:
    fake.default = lambda r: SseReply(stream_chunks("never finished", pieces=4), cut_after=2)
    with bedrock_client(openai_vdm) as client:
        with pytest.raises(anthropic.APIStatusError) as caught:
            with client.messages.stream(model=SONNET, max_tokens=10, messages=HELLO) as s:
                for _ in s:
                    pass
    assert "stream" in str(caught.value.message).lower()
    # The raw answer: chunk frames, then one exception frame, no message_stop.
    response = httpx.post(
        f"{openai_vdm.url}/model/{SONNET}/invoke-with-response-stream",
        json={"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10, "messages": HELLO},
        timeout=10,
    )
    assert response.headers["content-type"] == "application/vnd.amazon.eventstream"
    frames = EventStreamDecoder().feed(response.content)
    kinds = [f.text_header(":message-type") for f in frames]
    assert kinds[:-1] == ["event"] * (len(kinds) - 1) and kinds[-1] == "exception"
    assert frames[-1].text_header(":exception-type") == "internalServerException"
    assert b"message_stop" not in b"".join(f.payload for f in frames)


def test_count_tokens(openai_vdm: RunningVdm) -> None:
    import base64

    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10, "messages": HELLO}
    wrapped = {"input": {"invokeModel": {"body": base64.b64encode(json.dumps(body).encode())}}}
    wrapped["input"]["invokeModel"]["body"] = wrapped["input"]["invokeModel"]["body"].decode()
    response = httpx.post(f"{openai_vdm.url}/model/{SONNET}/count-tokens", json=wrapped)
    assert response.status_code == 200, response.text
    tokens = response.json()["inputTokens"]
    assert isinstance(tokens, int) and tokens > 0
    bad = httpx.post(f"{openai_vdm.url}/model/{SONNET}/count-tokens", json={"input": {}})
    assert bad.status_code == 400
    assert bad.headers["x-amzn-errortype"] == "ValidationException"


def test_inference_profiles_are_an_empty_list(openai_vdm: RunningVdm) -> None:
    response = httpx.get(f"{openai_vdm.url}/inference-profiles", params={"maxResults": 1000})
    assert response.status_code == 200
    assert response.json() == {"inferenceProfileSummaries": []}


# --- to an Anthropic-format provider: forwarded --------------------------------------------


@pytest.fixture
def ant_vdm(ant: FakeAnthropic) -> Iterator[RunningVdm]:
    env = {"ANTHROPIC_API_KEY": "sk-ant", "ANTHROPIC_BASE_URL": ant.base_url, "MAX_RETRIES": "0"}
    with running_vdm(env) as server:
        yield server


@pytest.mark.parametrize("stream", [False, True])
def test_forwarded_to_anthropic(ant: FakeAnthropic, ant_vdm: RunningVdm, stream: bool) -> None:
    spec = ("Bash", '{"command":"pwd"}', "toolu_01BedrockForward01")
    if stream:
        ant.enqueue(AnthropicSseReply(anthropic_stream_events("", tool_use=spec)))
    with bedrock_client(ant_vdm) as client:
        kwargs: dict[str, Any] = {
            "model": SONNET,
            "max_tokens": 100,
            "messages": HELLO,
            "tools": TOOLS,
            "betas": ["interleaved-thinking-2025-05-14"],
        }
        if stream:
            with client.beta.messages.stream(**kwargs) as s:
                message = s.get_final_message()
            assert message.content[-1].type == "tool_use"
            assert message.content[-1].input == {"command": "pwd"}
        else:
            message = client.beta.messages.create(**kwargs)
            assert message.content[0].type == "text"
    (request,) = ant.requests
    body = request.json
    # The Anthropic request: the id's Claude model, no Bedrock fields, the betas a header.
    assert body["model"] == "claude-sonnet-4-5-20250929"
    assert "anthropic_version" not in body and "anthropic_beta" not in body
    assert body.get("stream", False) is stream
    assert body["tools"] == TOOLS
    assert "interleaved-thinking-2025-05-14" in request.headers["anthropic-beta"]


def test_upstream_error_mid_stream_is_an_exception_frame(
    ant: FakeAnthropic, ant_vdm: RunningVdm
) -> None:
    events = [
        *anthropic_stream_events("partial", pieces=2)[:3],
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        b'"message":"Overloaded"}}\n\n',
    ]
    ant.enqueue(AnthropicSseReply(events))
    response = httpx.post(
        f"{ant_vdm.url}/model/{SONNET}/invoke-with-response-stream",
        json={"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10, "messages": HELLO},
        timeout=10,
    )
    frames = EventStreamDecoder().feed(response.content)
    assert [f.text_header(":message-type") for f in frames][-1] == "exception"
    assert frames[-1].text_header(":exception-type") == "serviceUnavailableException"
    assert json.loads(frames[-1].payload) == {"message": "Overloaded"}


def test_upstream_refusal_keeps_its_status(ant: FakeAnthropic, ant_vdm: RunningVdm) -> None:
    ant.enqueue(anthropic_error(404, "not_found_error", "model: claude-sonnet-4-5-20250929"))
    with bedrock_client(ant_vdm) as client:
        with pytest.raises(anthropic.NotFoundError) as caught:
            client.messages.create(model=SONNET, max_tokens=10, messages=HELLO)
    response = caught.value.response
    assert response.headers["x-amzn-errortype"] == "ResourceNotFoundException"
    assert response.json() == {"message": "model: claude-sonnet-4-5-20250929"}


def test_the_proxy_key_is_asked_in_aws_shape(fake: FakeOpenAI) -> None:
    env = {
        "OPENAI_API_KEY": "sk-up",
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_ALIAS_SONNET": "gpt-4o",
        "PROXY_API_KEY": "pk-1",
    }
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10, "messages": HELLO}
    with running_vdm(env) as server:
        url = f"{server.url}/model/{SONNET}/invoke"
        refused = httpx.post(url, json=body, timeout=10)
        fake.default = lambda r: reply_to(r.json, "let in")
        allowed = httpx.post(url, json=body, headers={"x-api-key": "pk-1"}, timeout=10)
    assert refused.status_code == 401
    assert refused.headers["x-amzn-errortype"] == "AccessDeniedException"
    assert refused.headers["x-should-retry"] == "false"
    assert "message" in refused.json()
    assert allowed.status_code == 200 and allowed.json()["content"][0]["text"] == "let in"


# --- to a Bedrock provider: Bedrock mode on both sides -------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_bedrock_mode_to_a_bedrock_provider_keeps_the_id(stream: bool) -> None:
    """The client's Bedrock id reaches the (strict fake) Bedrock runtime as it chose it, not
    rewritten by the preset's `sonnet` fallback; betas of the body go back into the body."""
    from tests.fakes.bedrock_upstream import API_KEY, FakeBedrock

    with FakeBedrock(auth="bearer") as upstream:
        env = {
            "BEDROCK_BASE_URL": upstream.base_url,
            "AWS_REGION": "us-east-1",
            "AWS_BEARER_TOKEN_BEDROCK": API_KEY,
            "VDM_DEFAULT_PROVIDER": "bedrock",
            "MAX_RETRIES": "0",
        }
        with running_vdm(env) as server, bedrock_client(server) as client:
            kwargs: dict[str, Any] = {
                "model": SONNET,
                "max_tokens": 50,
                "messages": HELLO,
                "betas": ["interleaved-thinking-2025-05-14"],
            }
            if stream:
                with client.beta.messages.stream(**kwargs) as s:
                    message = s.get_final_message()
            else:
                message = client.beta.messages.create(**kwargs)
        assert message.content[0].type == "text" and message.content[0].text
        (request,) = upstream.requests
    operation = "invoke-with-response-stream" if stream else "invoke"
    assert unquote(request.path) == f"/model/{SONNET}/{operation}"
    assert request.json["anthropic_beta"] == ["interleaved-thinking-2025-05-14"]
    assert "model" not in request.json and "stream" not in request.json
