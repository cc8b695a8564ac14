"""/v1/messages end to end: the anthropic SDK drives vdm (real Hypercorn on loopback), vdm
calls a fake OpenAI upstream (a real HTTP server); assertions on what the client sees and on
what the upstream received."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from tests.fakes.openai_upstream import (
    FakeOpenAI,
    HangReply,
    JsonReply,
    SseReply,
    completion,
    stream_chunks,
)
from tests.harness import RunningVdm, running_vdm
from vdm.config.secrets import mask
from vdm.protocol.openai_chat import ChatRequest

UPSTREAM_KEY = "sk-upstream-secret-1234"


@pytest.fixture
def vdm(fake: FakeOpenAI) -> Iterator[RunningVdm]:
    env = {"OPENAI_API_KEY": UPSTREAM_KEY, "OPENAI_BASE_URL": fake.base_url, "MAX_RETRIES": "1"}
    with running_vdm(env, ping_interval=0.2) as server:
        yield server


@pytest.fixture(params=["httptools", "h11"])
def either_vdm(fake: FakeOpenAI, request: pytest.FixtureRequest) -> Iterator[RunningVdm]:
    """vdm on each HTTP/1.1 protocol: httptools tells the app of a disconnect through its
    scope extension, h11 only by the `http.disconnect` a watcher task reads."""
    env = {
        "OPENAI_API_KEY": UPSTREAM_KEY,
        "OPENAI_BASE_URL": fake.base_url,
        "MAX_RETRIES": "1",
        "HTTP_PARSER": request.param,
    }
    with running_vdm(env, ping_interval=0.2) as server:
        yield server


@pytest.fixture
def client(vdm: RunningVdm) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=vdm.url, api_key="sk-client", max_retries=0) as c:
        yield c


def _hello(**kw: Any) -> dict[str, Any]:
    return {
        "model": "gpt-4o",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
        **kw,
    }


# --- success paths --------------------------------------------------------------------------


def test_non_streaming_text_and_usage(client: anthropic.Anthropic, fake: FakeOpenAI) -> None:
    fake.enqueue(
        JsonReply(
            completion("Hello there", prompt_tokens=120, completion_tokens=7, cached_tokens=100)
        )
    )
    message = client.messages.create(**_hello(system="Be brief."))
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "Hello there"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.model == "gpt-4o"
    assert message.usage.input_tokens == 20
    assert message.usage.cache_read_input_tokens == 100
    assert message.usage.output_tokens == 7
    sent = fake.last
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    body = sent.json
    ChatRequest.model_validate(body)
    assert body["model"] == "gpt-4o"
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert "stream" not in body


def test_streaming_text_through_the_sdk(client: anthropic.Anthropic, fake: FakeOpenAI) -> None:
    fake.enqueue(
        SseReply(
            stream_chunks(
                "One two three four",
                pieces=4,
                prompt_tokens=50,
                completion_tokens=4,
                cached_tokens=30,
            )
        )
    )
    with client.messages.stream(**_hello()) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "One two three four"
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == 20
    assert final.usage.cache_read_input_tokens == 30
    assert final.usage.output_tokens == 4
    body = fake.last.json
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_streamed_tool_call_arrives_as_input_json_deltas(
    client: anthropic.Anthropic, fake: FakeOpenAI
) -> None:
    args = json.dumps({"command": "echo hello", "description": "Print hello"})
    fake.enqueue(
        SseReply(
            stream_chunks(
                "Let me run that.", tool_calls=[("Bash", args)], finish_reason="tool_calls"
            )
        )
    )
    partials: list[str] = []
    tools = [
        {
            "name": "Bash",
            "description": "run",
            "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
        }
    ]
    with client.messages.stream(**_hello(tools=tools)) as stream:
        for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                partials.append(event.delta.partial_json)
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    kinds = [b.type for b in final.content]
    assert kinds == ["text", "tool_use"]
    tool = final.content[1]
    assert tool.type == "tool_use"
    assert tool.name == "Bash"
    assert tool.input == {"command": "echo hello", "description": "Print hello"}
    assert "".join(partials) == args
    assert len(partials) > 1, "arguments must stream as they arrive, not in one piece"
    assert fake.last.json["tools"][0]["function"]["name"] == "Bash"


def test_beta_query_is_routed_like_the_plain_path(vdm: RunningVdm, fake: FakeOpenAI) -> None:
    response = httpx.post(f"{vdm.url}/v1/messages?beta=true", json=_hello(), timeout=10)
    assert response.status_code == 200
    assert response.json()["content"][0]["text"]
    assert len(fake.requests) == 1


def test_tool_result_turn_keeps_text_next_to_results(
    client: anthropic.Anthropic, fake: FakeOpenAI
) -> None:
    fake.enqueue(JsonReply(completion("Done.")))
    client.messages.create(
        model="openai:gpt-4o",
        max_tokens=50,
        messages=[
            {"role": "user", "content": "run it"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Running."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "Bash",
                        "input": {"command": "ls"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": "a.txt",
                        "is_error": False,
                    },
                    {"type": "text", "text": "also check b"},
                ],
            },
        ],
    )
    messages = fake.last.json["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "user"]
    assert messages[1]["tool_calls"][0]["id"] == "toolu_1"
    assert messages[2] == {"role": "tool", "tool_call_id": "toolu_1", "content": "a.txt"}
    assert messages[3]["content"] == "also check b"


def test_max_tokens_is_not_capped_by_default(client: anthropic.Anthropic, fake: FakeOpenAI) -> None:
    with client.messages.stream(**{**_hello(), "max_tokens": 128000}) as stream:
        stream.get_final_message()
    # No MAX_TOKENS_LIMIT clamp, but gpt-4o's own ceiling (16384): more is OpenAI's 400.
    assert fake.last.json["max_completion_tokens"] == 16384


def test_max_tokens_limit_clamps_when_set(fake: FakeOpenAI) -> None:
    env = {"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": fake.base_url, "MAX_TOKENS_LIMIT": "4096"}
    with running_vdm(env) as server:
        httpx.post(f"{server.url}/v1/messages", json=_hello(max_tokens=100000), timeout=10)
    assert fake.last.json["max_completion_tokens"] == 4096


def test_thinking_from_reasoning_content_streams_first(
    client: anthropic.Anthropic, fake: FakeOpenAI
) -> None:
    fake.enqueue(SseReply(stream_chunks("Answer.", reasoning_content="Let me think.")))
    with client.messages.stream(**_hello(model="deepseek-reasoner")) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "Let me think."  # type: ignore[union-attr]


def test_count_tokens(client: anthropic.Anthropic, fake: FakeOpenAI) -> None:
    small = client.messages.count_tokens(
        model="gpt-4o", messages=[{"role": "user", "content": "hello world"}]
    )
    tools = [
        {
            "name": "Bash",
            "description": "Run a shell command",
            "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
        }
    ]
    bigger = client.messages.count_tokens(
        model="gpt-4o", messages=[{"role": "user", "content": "hello world"}], tools=tools
    )
    assert 0 < small.input_tokens < bigger.input_tokens
    assert fake.requests == []


# --- pings, disconnects, mid-stream failures ------------------------------------------------


def test_ping_during_upstream_silence(vdm: RunningVdm, fake: FakeOpenAI) -> None:
    fake.enqueue(SseReply(stream_chunks("slow answer", pieces=2), pauses={2: 1.0}))
    with httpx.stream(
        "POST", f"{vdm.url}/v1/messages", json=_hello(stream=True), timeout=10
    ) as response:
        raw = response.read().decode()
    assert "event: ping" in raw
    assert raw.index("event: ping") > raw.index("event: message_start")
    assert raw.rstrip().endswith('data: {"type":"message_stop"}')


def test_upstream_dying_mid_stream_is_an_error_event(
    client: anthropic.Anthropic, fake: FakeOpenAI
) -> None:
    fake.enqueue(SseReply(stream_chunks("partial answer that never ends", pieces=6), cut_after=3))
    with pytest.raises(anthropic.APIStatusError) as caught:  # noqa: PT012
        with client.messages.stream(**_hello()) as stream:
            for _ in stream:
                pass
    assert "ended before the response was complete" in str(caught.value) or "closed" in str(
        caught.value
    )


def test_mid_stream_error_never_looks_like_a_normal_end(vdm: RunningVdm, fake: FakeOpenAI) -> None:
    fake.enqueue(SseReply(stream_chunks("partial", pieces=2), cut_after=2))
    with httpx.stream(
        "POST", f"{vdm.url}/v1/messages", json=_hello(stream=True), timeout=10
    ) as response:
        raw = response.read().decode()
    assert response.status_code == 200
    assert "event: error" in raw
    assert "message_stop" not in raw


def test_client_disconnect_cancels_the_upstream_stream(
    either_vdm: RunningVdm, fake: FakeOpenAI
) -> None:
    fake.enqueue(SseReply(stream_chunks("x " * 100, pieces=100), delay=0.05))
    with httpx.stream(
        "POST", f"{either_vdm.url}/v1/messages", json=_hello(stream=True), timeout=10
    ) as response:
        for line in response.iter_lines():
            if "content_block_delta" in line:
                break
    assert fake.wait_for_disconnect(5), "vdm kept reading the upstream after the client left"


# --- errors ---------------------------------------------------------------------------------


def test_invalid_json_is_a_400_and_reaches_no_upstream(vdm: RunningVdm, fake: FakeOpenAI) -> None:
    response = httpx.post(
        f"{vdm.url}/v1/messages",
        content=b"{not json",
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "invalid JSON" in response.json()["error"]["message"]
    assert fake.requests == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"model": "gpt-4o", "max_tokens": 5, "messages": []}, "messages"),
        (
            {"model": "gpt-4o", "max_tokens": 5, "messages": [{"role": "bot", "content": "x"}]},
            "messages.0.role",
        ),
        (
            {"model": "gpt-4o", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]},
            "max_tokens",
        ),
        (
            {
                "model": "gpt-4o",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": [{"type": "tool_use", "id": "t"}]}],
            },
            "messages.0.content",
        ),
    ],
)
def test_schema_errors_name_the_field(
    vdm: RunningVdm, fake: FakeOpenAI, body: dict[str, Any], field: str
) -> None:
    response = httpx.post(f"{vdm.url}/v1/messages", json=body, timeout=10)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith(field) or f"{field}" in error["message"]
    assert "detail" not in response.json()
    assert fake.requests == []


def test_unknown_provider_prefix(client: anthropic.Anthropic, fake: FakeOpenAI) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(**_hello(model="nope:gpt-4o"))
    assert "nope" in caught.value.message and "openai" in caught.value.message
    assert fake.requests == []


@pytest.mark.parametrize(
    ("status", "error_class", "error_type"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (403, anthropic.PermissionDeniedError, "permission_error"),
        (404, anthropic.NotFoundError, "not_found_error"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
    ],
)
def test_upstream_errors_are_mapped_with_their_message(
    client: anthropic.Anthropic,
    fake: FakeOpenAI,
    status: int,
    error_class: type[Exception],
    error_type: str,
) -> None:
    # A 429 asking for longer than RETRY_AFTER_CAP (60 s) is relayed at once, not retried.
    wait = {"retry-after": "3600"} if status == 429 else None
    fake.enqueue(
        JsonReply(
            {"error": {"message": f"upstream says {status}", "type": "x"}},
            status=status,
            headers=wait,
        )
    )
    with pytest.raises(error_class) as caught:
        client.messages.create(**_hello())
    assert f"upstream says {status}" in str(caught.value)
    assert caught.value.body["error"]["type"] == error_type  # type: ignore[attr-defined]
    assert len(fake.requests) == 1, "4xx must not be retried"


@pytest.mark.parametrize(
    ("error", "status", "expected"),
    [
        (  # OpenAI, DeepSeek, vLLM
            {
                "message": "This model's maximum context length is 131072 tokens. However, you "
                "requested 140000 tokens (139000 in the messages, 1000 in the completion). "
                "Please reduce the length of the messages or completion.",
                "type": "invalid_request_error",
                "code": "context_length_exceeded",
            },
            400,
            "prompt is too long: 140000 tokens > 131072 maximum",
        ),
        (  # Gemini
            {
                "code": 400,
                "message": "The input token count (1200000) exceeds the maximum number of "
                "tokens allowed (1048576).",
                "status": "INVALID_ARGUMENT",
            },
            400,
            "prompt is too long: 1200000 tokens > 1048576 maximum",
        ),
        (  # a provider that says it with a code only, as a 413
            {"message": "request too big", "code": "context_length_exceeded"},
            413,
            "prompt is too long: request too big",
        ),
    ],
    ids=["openai", "gemini", "code-only"],
)
def test_context_overflow_is_worded_so_claude_code_compacts(
    client: anthropic.Anthropic,
    fake: FakeOpenAI,
    error: dict[str, Any],
    status: int,
    expected: str,
) -> None:
    """Claude Code compacts the conversation when an error starts with Anthropic's wording."""
    fake.enqueue(JsonReply({"error": error}, status=status))
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(**_hello())
    message = caught.value.body["error"]["message"]  # type: ignore[index]
    assert message.startswith(expected), message
    assert error["message"] in message
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


def test_other_errors_do_not_look_like_an_overflow(
    client: anthropic.Anthropic, fake: FakeOpenAI
) -> None:
    fake.enqueue(JsonReply({"error": {"message": "Invalid model name", "code": None}}, status=400))
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(**_hello())
    assert "prompt is too long" not in str(caught.value)


def test_rate_limit_passes_retry_after(vdm: RunningVdm, fake: FakeOpenAI) -> None:
    fake.enqueue(
        JsonReply({"error": {"message": "slow down"}}, status=429, headers={"retry-after": "70"})
    )
    # Above RETRY_AFTER_CAP (60 s): relayed at once with the upstream's retry-after.
    response = httpx.post(f"{vdm.url}/v1/messages", json=_hello(), timeout=10)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "70"


def test_server_errors_are_retried_then_reported(
    client: anthropic.Anthropic, fake: FakeOpenAI
) -> None:
    boom = JsonReply({"error": {"message": "kaput"}}, status=500)
    fake.enqueue(boom, boom)
    with pytest.raises(anthropic.InternalServerError) as caught:
        client.messages.create(**_hello())
    assert "kaput" in str(caught.value)
    assert len(fake.requests) == 2  # MAX_RETRIES=1


def test_a_retry_that_succeeds_is_invisible(client: anthropic.Anthropic, fake: FakeOpenAI) -> None:
    fake.enqueue(JsonReply({"error": {"message": "blip"}}, status=502), JsonReply(completion("ok")))
    message = client.messages.create(**_hello())
    assert message.content[0].text == "ok"  # type: ignore[union-attr]


def test_overloaded_upstream_is_529(vdm: RunningVdm, fake: FakeOpenAI) -> None:
    over = JsonReply({"error": {"message": "busy"}}, status=503)
    fake.enqueue(over, over)
    response = httpx.post(f"{vdm.url}/v1/messages", json=_hello(), timeout=10)
    assert response.status_code == 529
    assert response.json()["error"]["type"] == "overloaded_error"


def test_upstream_timeout_is_504(fake: FakeOpenAI) -> None:
    env = {"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": fake.base_url, "REQUEST_TIMEOUT": "0.5"}
    fake.enqueue(HangReply(3.0))
    with running_vdm(env) as server:
        response = httpx.post(f"{server.url}/v1/messages", json=_hello(), timeout=10)
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "timeout_error"


def test_unreachable_upstream_is_502_naming_it() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    env = {
        "OPENAI_API_KEY": "k",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{dead}/v1",
        "MAX_RETRIES": "0",
    }
    with running_vdm(env) as server:
        response = httpx.post(f"{server.url}/v1/messages", json=_hello(), timeout=10)
    assert response.status_code == 502
    assert "cannot reach openai" in response.json()["error"]["message"]


def test_zero_configuration_starts_and_explains() -> None:
    with running_vdm({}) as server:
        health = httpx.get(f"{server.url}/health", timeout=10).json()
        response = httpx.post(f"{server.url}/v1/messages", json=_hello(), timeout=10)
    assert health["status"] == "unconfigured"
    assert "OPENAI_API_KEY" in health["message"]
    assert response.status_code == 400
    assert "OPENAI_API_KEY" in response.json()["error"]["message"]


def test_health_lists_providers_without_secrets(vdm: RunningVdm) -> None:
    response = httpx.get(f"{vdm.url}/health", timeout=10)
    assert response.status_code == 200
    assert response.json()["providers"]["openai"]["keys"] == [mask(UPSTREAM_KEY)]
    assert UPSTREAM_KEY not in response.text


def test_unknown_endpoint_and_method(vdm: RunningVdm) -> None:
    missing = httpx.get(f"{vdm.url}/v1/nope", timeout=10)
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found_error"
    wrong = httpx.get(f"{vdm.url}/v1/messages", timeout=10)
    assert wrong.status_code == 405
    assert wrong.json()["type"] == "error"


def test_client_disconnect_cancels_a_non_streaming_request(
    either_vdm: RunningVdm, fake: FakeOpenAI
) -> None:
    fake.enqueue(HangReply(10.0))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{either_vdm.url}/v1/messages", json=_hello(), timeout=httpx.Timeout(10, read=0.5)
        )
    assert fake.wait_for_disconnect(5), "vdm kept waiting on the upstream after the client left"


def test_a_done_that_comes_after_the_complete_answer_keeps_the_upstream_connection(
    client: anthropic.Anthropic, fake: FakeOpenAI
) -> None:
    # The usage chunk after the finish completes the answer; `[DONE]` comes 50 ms later.
    # The client has its answer at once, and the connection still goes back to the pool
    # (read to its end after the request), not closed by the end of the request.
    chunks = stream_chunks("hello there", pieces=3)
    for _ in range(3):
        fake.enqueue(SseReply(chunks, pauses={len(chunks): 0.05}))
    for _ in range(3):
        with client.messages.stream(**_hello()) as stream:
            assert stream.get_final_message().stop_reason == "end_turn"
        time.sleep(0.3)  # the next turn comes later than the `[DONE]`
    assert fake.request_count == 3
    assert fake.connection_count == 1


def test_upstream_connection_is_reused_across_requests(
    client: anthropic.Anthropic, fake: FakeOpenAI
) -> None:
    for _ in range(3):
        with client.messages.stream(**_hello()) as stream:
            stream.get_final_message()
        client.messages.create(**_hello())
    assert fake.request_count == 6
    assert fake.connection_count == 1, "one pooled keep-alive connection per provider"
