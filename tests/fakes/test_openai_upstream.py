"""Tests of the fake OpenAI upstream itself (and a consistency check of the stream fixtures)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.fakes.openai_upstream import (
    FakeOpenAI,
    HangReply,
    JsonReply,
    Recorded,
    Reply,
    SseFileReply,
    SseReply,
    completion,
    stream_chunks,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "openai_streams"
FIXTURE_NAMES = sorted(p.stem for p in FIXTURES.glob("*.sse"))
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def client(fake: FakeOpenAI) -> Iterator[OpenAI]:
    with OpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0, timeout=5) as c:
        yield c


def _wait_until(predicate: Any, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def _accumulate(stream: Any) -> dict[str, Any]:
    """Fold an openai SDK chunk stream into text/reasoning/tool calls/finish/usage."""
    text: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    finish: str | None = None
    stop_reason: Any = None
    usage: Any = None
    error: dict[str, Any] | None = None
    try:
        for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                delta = choice.delta
                if delta.content:
                    text.append(delta.content)
                extra = delta.model_extra or {}
                piece = extra.get("reasoning_content") or extra.get("reasoning")
                if piece:
                    reasoning.append(piece)
                for tc in delta.tool_calls or []:
                    index = getattr(tc, "index", None)
                    if index is None:  # Gemini omits the index: one whole call per entry
                        index = len(calls) if tc.id else max(calls)
                    call = calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
                    if tc.id:
                        call["id"] = tc.id
                    if tc.function is not None:
                        call["name"] += tc.function.name or ""
                        call["arguments"] += tc.function.arguments or ""
                if choice.finish_reason is not None:
                    finish = choice.finish_reason
                    stop_reason = (choice.model_extra or {}).get("stop_reason")
    except openai.APIError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        error = {"message": exc.message, "type": body.get("type")}
    usage_out: dict[str, Any] | None = None
    if usage is not None:
        details = usage.prompt_tokens_details
        cached = details.cached_tokens if details is not None else None
        if cached is None:
            cached = (usage.model_extra or {}).get("prompt_cache_hit_tokens")
        usage_out = {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cached_tokens": cached,
        }
    return {
        "text": "".join(text),
        "reasoning": "".join(reasoning) or None,
        "tool_calls": [calls[i] for i in sorted(calls)],
        "finish_reason": finish,
        "stop_reason": stop_reason,
        "usage": usage_out,
        "error": error,
    }


# --------------------------------------------------------------------------------------------
# openai SDK interoperability
# --------------------------------------------------------------------------------------------


def test_sdk_non_streaming_default(fake: FakeOpenAI, client: OpenAI) -> None:
    resp = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert resp.choices[0].message.content == "Hello from fake"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (12, 4)
    assert fake.request_count == 1


def test_sdk_streaming_default(fake: FakeOpenAI, client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    got = _accumulate(stream)
    assert got["text"] == "Hello from fake"
    assert got["finish_reason"] == "stop"
    assert got["usage"] == {"prompt_tokens": 12, "completion_tokens": 4, "cached_tokens": None}
    assert fake.last.json["stream"] is True


def test_sdk_stream_helper_parses_tool_call_chunks(fake: FakeOpenAI, client: OpenAI) -> None:
    fake.enqueue(
        SseReply(
            stream_chunks(
                "Let me check.",
                tool_calls=[
                    ("get_weather", '{"city":"Paris","unit":"celsius"}'),
                    ("get_time", '{"tz":"Europe/Paris"}', "call_fixedid0001"),
                ],
                arg_pieces=5,
            )
        )
    )
    # The SDK's stream helper validates chunk structure strictly (e.g. tool-call indexes).
    with client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == "Let me check."
    assert final.choices[0].finish_reason == "tool_calls"
    calls = message.tool_calls or []
    assert [(c.function.name, c.function.arguments) for c in calls] == [
        ("get_weather", '{"city":"Paris","unit":"celsius"}'),
        ("get_time", '{"tz":"Europe/Paris"}'),
    ]
    assert calls[0].id.startswith("call_")
    assert calls[1].id == "call_fixedid0001"


def test_recording_of_method_path_query_headers_body(fake: FakeOpenAI, client: OpenAI) -> None:
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        max_tokens=7,
        extra_headers={"X-Trace-Id": "abc123"},
        extra_query={"api-version": "2024-10-21"},
    )
    rec = fake.last
    assert isinstance(rec, Recorded)
    assert (rec.method, rec.path, rec.query) == (
        "POST",
        "/v1/chat/completions",
        "api-version=2024-10-21",
    )
    assert rec.headers["authorization"] == "Bearer sk-test"
    assert rec.headers["x-trace-id"] == "abc123"
    assert rec.headers["content-type"] == "application/json"
    assert rec.json == {"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 7}
    assert json.loads(rec.body) == rec.json
    assert len(fake.requests) == 1

    fake.clear()
    assert fake.requests == []
    assert fake.request_count == 0
    with pytest.raises(LookupError):
        _ = fake.last


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (429, openai.RateLimitError),
        (400, openai.BadRequestError),
        (503, openai.InternalServerError),
    ],
)
def test_json_error_reply_surfaces_as_sdk_error(
    fake: FakeOpenAI, client: OpenAI, status: int, error_class: type[openai.APIStatusError]
) -> None:
    error = {"message": "Slow down", "type": "rate_limit_error", "param": None, "code": None}
    fake.enqueue(JsonReply({"error": error}, status=status, headers={"retry-after": "3"}))
    with pytest.raises(error_class) as info:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert info.value.status_code == status
    assert info.value.response.headers["retry-after"] == "3"
    assert info.value.body == error
    assert fake.request_count == 1  # max_retries=0: exactly one attempt


def test_enqueue_is_fifo_then_default_and_callables(fake: FakeOpenAI, client: OpenAI) -> None:
    def echo_model(request: Recorded) -> Reply:
        return JsonReply(completion(f"model was {request.json['model']}"))

    fake.enqueue(JsonReply(completion("first")), echo_model)
    assert fake.queued == 2

    def ask(model: str = "gpt-4o") -> str | None:
        return (
            client.chat.completions.create(model=model, messages=MESSAGES)
            .choices[0]
            .message.content
        )

    assert ask() == "first"
    assert ask("o3-mini") == "model was o3-mini"
    assert ask() == "Hello from fake"
    fake.default = JsonReply(completion("new default"))
    assert ask() == "new default"
    assert fake.queued == 0


def test_broken_callable_reply_becomes_500(fake: FakeOpenAI, client: OpenAI) -> None:
    def broken(request: Recorded) -> Reply:
        raise ValueError("boom")

    fake.enqueue(broken)
    with pytest.raises(openai.InternalServerError, match="boom"):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)


def test_models_route_and_404(fake: FakeOpenAI, client: OpenAI) -> None:
    assert "gpt-4o" in [m.id for m in client.models.list()]
    with httpx.Client(base_url=fake.url) as http:
        resp = http.get("/v1/nope")
        assert resp.status_code == 404
        assert resp.json() == {
            "error": {
                "message": "Unknown request URL: GET /v1/nope. Please check the URL.",
                "type": "invalid_request_error",
                "code": None,
            }
        }
        assert http.post("/v1/embeddings", json={}).status_code == 404
        # Any POST .../chat/completions path is served, e.g. a provider-style prefix.
        assert http.post("/openai/deployments/x/chat/completions", json={}).status_code == 200
    assert [r.path for r in fake.requests][-2:] == [
        "/v1/embeddings",
        "/openai/deployments/x/chat/completions",
    ]


# --------------------------------------------------------------------------------------------
# HTTP/1.1 details
# --------------------------------------------------------------------------------------------


def test_keep_alive_reuses_one_connection_and_connection_close_is_honoured(
    fake: FakeOpenAI,
) -> None:
    with httpx.Client(base_url=fake.base_url) as http:
        first = http.post("/chat/completions", json={"model": "m", "messages": MESSAGES})
        second = http.post(
            "/chat/completions", json={"model": "m", "messages": MESSAGES, "stream": True}
        )
        assert first.status_code == second.status_code == 200
        assert "data: [DONE]" in second.text
        assert fake.connection_count == 1

        closing = http.post(
            "/chat/completions", json={"model": "m"}, headers={"Connection": "close"}
        )
        assert closing.headers["connection"] == "close"
        http.post("/chat/completions", json={"model": "m"})
        assert fake.connection_count == 2


def test_chunked_request_body_is_decoded(fake: FakeOpenAI) -> None:
    payload = json.dumps({"model": "gpt-4o", "messages": MESSAGES * 50}).encode()

    def parts() -> Iterator[bytes]:
        for i in range(0, len(payload), 100):
            yield payload[i : i + 100]

    with httpx.Client(base_url=fake.base_url) as http:
        resp = http.post("/chat/completions", content=parts())
    assert resp.status_code == 200
    assert fake.last.headers["transfer-encoding"] == "chunked"
    assert fake.last.body == payload


def test_pipelined_requests_are_answered_in_order(fake: FakeOpenAI) -> None:
    fake.enqueue(JsonReply({"n": 1}), JsonReply({"n": 2}))
    body = b'{"model":"m"}'
    request = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    with socket.create_connection(("127.0.0.1", fake.port), timeout=2) as sock:
        sock.sendall(
            request + request.replace(b"HTTP/1.1\r\n", b"HTTP/1.1\r\nconnection: close\r\n")
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.count(b"HTTP/1.1 200 OK") == 2
    assert data.index(b'{"n":1}') < data.index(b'{"n":2}')


def test_pipelined_timed_replies_keep_disconnect_tracking(fake: FakeOpenAI) -> None:
    fake.enqueue(
        SseReply(stream_chunks("one two"), delay=0.01),
        SseReply(stream_chunks("three four"), pauses={2: 30.0}),
    )
    body = b'{"stream":true}'
    request = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 15\r\n\r\n" + body
    with socket.create_connection(("127.0.0.1", fake.port), timeout=2) as sock:
        sock.sendall(request + request)
        data = b""
        while b"three" not in data:
            data += sock.recv(65536)
        assert data.count(b"HTTP/1.1 200 OK") == 2
        assert b"data: [DONE]\n\n\r\n0\r\n\r\nHTTP/1.1 200 OK" in data
        assert _wait_until(lambda: fake.active_streams == 1)
    assert fake.wait_for_disconnect(2)
    assert fake.disconnects == 1
    assert _wait_until(lambda: fake.active_streams == 0)


def test_curl_interop_with_expect_continue_and_streaming(fake: FakeOpenAI) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl not installed")
    big = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 5000}]})
    out = subprocess.run(
        [curl, "-sS", "--max-time", "5", "-H", "Content-Type: application/json"]
        + ["-H", "Expect: 100-continue", "--data-binary", big, f"{fake.base_url}/chat/completions"],
        capture_output=True,
        check=True,
        text=True,
    )
    assert json.loads(out.stdout)["choices"][0]["message"]["content"] == "Hello from fake"
    assert fake.last.body == big.encode()

    out = subprocess.run(
        [curl, "-sSN", "--max-time", "5", "--data-binary", '{"model":"m","stream":true}']
        + [f"{fake.base_url}/chat/completions"],
        capture_output=True,
        check=True,
        text=True,
    )
    assert out.stdout.startswith("data: {")
    assert out.stdout.endswith("data: [DONE]\n\n")


# --------------------------------------------------------------------------------------------
# Failure modes: cut streams, hangs, client disconnects, shutdown
# --------------------------------------------------------------------------------------------


def test_cut_after_leaves_an_incomplete_chunked_body(fake: FakeOpenAI, client: OpenAI) -> None:
    chunks = stream_chunks("one two three four five six")
    fake.enqueue(SseReply(chunks, cut_after=3))
    events: list[str] = []
    with httpx.Client(base_url=fake.base_url) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            with http.stream("POST", "/chat/completions", json={"stream": True}) as resp:
                assert resp.status_code == 200
                for line in resp.iter_lines():
                    if line.startswith("data: "):
                        events.append(line)
    assert len(events) == 3
    assert not any("[DONE]" in e for e in events)

    fake.enqueue(SseReply(chunks, cut_after=2, delay=0.01))
    texts: list[str] = []
    with pytest.raises((httpx.TransportError, openai.APIError)):
        for chunk in client.chat.completions.create(model="m", messages=MESSAGES, stream=True):
            texts.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(texts) == "one"
    assert fake.disconnects == 0  # the server dropped it, not the client


def test_hang_reply_triggers_client_timeout(fake: FakeOpenAI) -> None:
    fake.enqueue(HangReply(30))
    with OpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0, timeout=0.3) as c:
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            c.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert time.monotonic() - started < 2
    assert fake.wait_for_disconnect(2)  # the abandoned hang counts as a client disconnect
    assert _wait_until(lambda: fake.active_streams == 0)


def test_hang_reply_closes_after_its_time(fake: FakeOpenAI) -> None:
    fake.enqueue(HangReply(0.05))
    with httpx.Client(base_url=fake.base_url, timeout=2) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            http.post("/chat/completions", json={})
    assert fake.disconnects == 0


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(SseReply(stream_chunks(pieces=40), delay=0.05), id="between-events"),
        pytest.param(SseReply(stream_chunks(pieces=5), pauses={2: 30.0}), id="upstream-silence"),
        pytest.param(JsonReply(completion(), delay=30.0), id="delayed-json"),
        pytest.param(HangReply(30.0), id="hang"),
    ],
)
def test_client_disconnect_is_noticed_promptly(fake: FakeOpenAI, reply: Reply) -> None:
    body = b'{"stream":true}'
    request = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 15\r\n\r\n" + body
    fake.enqueue(reply)
    with socket.create_connection(("127.0.0.1", fake.port), timeout=2) as sock:
        sock.sendall(request)
        if isinstance(reply, SseReply):
            received = b""
            while received.count(b"data: ") < 2:
                received += sock.recv(65536)
        assert _wait_until(lambda: fake.active_streams == 1)
    left_at = time.monotonic()
    assert fake.wait_for_disconnect(2)
    assert time.monotonic() - left_at < 0.5
    assert fake.disconnects == 1
    assert _wait_until(lambda: fake.active_streams == 0)


def test_httpx_client_leaving_a_stream_is_a_disconnect(fake: FakeOpenAI) -> None:
    fake.enqueue(SseReply(stream_chunks(pieces=40), delay=0.05))
    with httpx.Client(base_url=fake.base_url, timeout=5) as http:
        with http.stream("POST", "/chat/completions", json={"stream": True}) as resp:
            lines = resp.iter_lines()  # keep a reference: dropping it closes the connection
            data_lines = [line for line in (next(lines) for _ in range(3)) if line]
            assert len(data_lines) == 2
            assert fake.active_streams == 1
        left_at = time.monotonic()  # closing a response mid-body closes its connection
        assert fake.wait_for_disconnect(2)
        assert time.monotonic() - left_at < 0.5
    assert fake.disconnects == 1


def test_finished_streams_do_not_count_as_disconnects(fake: FakeOpenAI, client: OpenAI) -> None:
    fake.enqueue(SseReply(stream_chunks(pieces=4), delay=0.005, pauses={1: 0.02}))
    got = _accumulate(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert got["text"] == "Hello from fake"
    assert not fake.wait_for_disconnect(0.05)
    assert fake.disconnects == 0


def test_stop_is_prompt_with_requests_in_flight() -> None:
    server = FakeOpenAI().start()
    server.enqueue(HangReply(30), SseReply(stream_chunks(pieces=50), delay=1.0))
    body = b'{"stream":true}'
    request = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 15\r\n\r\n" + body
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=2) for _ in range(3)]
    try:
        socks[0].sendall(request)
        socks[1].sendall(request)
        assert _wait_until(lambda: server.active_streams == 2)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 1.0
        for s in socks:  # every connection, busy or idle, was closed by the server
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        assert server.disconnects == 0
    finally:
        for s in socks:
            s.close()
    server.stop()  # idempotent


# --------------------------------------------------------------------------------------------
# Async clients
# --------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_clients(fake: FakeOpenAI) -> None:
    async with openai.AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0) as c:
        resp = await c.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert resp.choices[0].message.content == "Hello from fake"

        fake.enqueue(SseReply(stream_chunks("a b c"), delay=0.002))
        stream = await c.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        text = ""
        async for chunk in stream:
            text += "".join(ch.delta.content or "" for ch in chunk.choices)
        assert text == "a b c"
    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        resp2 = await http.get("/models")
        assert resp2.json()["object"] == "list"


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------


def test_completion_builder_shape() -> None:
    obj = completion(
        "",
        tool_calls=[("lookup", '{"q":"x"}')],
        reasoning_content="thinking",
        prompt_tokens=100,
        completion_tokens=20,
        cached_tokens=64,
        reasoning_tokens=5,
    )
    assert obj["object"] == "chat.completion"
    choice = obj["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["reasoning_content"] == "thinking"
    (call,) = choice["message"]["tool_calls"]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"] == {"name": "lookup", "arguments": '{"q":"x"}'}
    assert obj["usage"]["total_tokens"] == 120
    assert obj["usage"]["prompt_tokens_details"]["cached_tokens"] == 64
    assert obj["usage"]["completion_tokens_details"]["reasoning_tokens"] == 5
    assert "prompt_tokens_details" not in completion()["usage"]
    assert completion() == completion()  # pure


def test_stream_chunks_builder_shape() -> None:
    chunks = stream_chunks("abcdefghij", pieces=3, tool_calls=[("f", '{"a":1}')], arg_pieces=2)
    for c in chunks:
        assert {"id", "object", "created", "model"} <= c.keys()
        assert c["object"] == "chat.completion.chunk"
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert [d["content"] for d in deltas[1:4]] == ["abcd", "efg", "hij"]
    first_tool = deltas[4]["tool_calls"][0]
    assert first_tool["index"] == 0 and first_tool["function"] == {"name": "f", "arguments": ""}
    assert {"id", "type"} <= first_tool.keys()
    frags = [d["tool_calls"][0] for d in deltas[5:7]]
    assert all(f.keys() == {"index", "function"} for f in frags)
    assert "".join(f["function"]["arguments"] for f in frags) == '{"a":1}'
    assert deltas[7] == {} and chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 12
    assert all(c["usage"] is None for c in chunks[:-1])
    no_usage = stream_chunks("x", usage=False)
    assert "usage" not in no_usage[-1] and no_usage[-1]["choices"][0]["finish_reason"] == "stop"


def test_sse_reply_wire_format() -> None:
    reply = SseReply([{"a": 1}, ": keep-alive\n\n", b"event: ping\ndata: {}\n\n"])
    wire = reply.wire()
    head, _, body = wire.partition(b"\r\n\r\n")
    assert b"content-type: text/event-stream" in head
    assert b"transfer-encoding: chunked" in head
    assert body == (
        b'f\r\ndata: {"a":1}\n\n\r\n'
        b"e\r\n: keep-alive\n\n\r\n"
        b"16\r\nevent: ping\ndata: {}\n\n\r\n"
        b"e\r\ndata: [DONE]\n\n\r\n"
        b"0\r\n\r\n"
    )


# --------------------------------------------------------------------------------------------
# Recorded fixtures: replay verbatim, parse with the SDK, match the sidecars
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_replays_verbatim(fake: FakeOpenAI, name: str) -> None:
    path = FIXTURES / f"{name}.sse"
    expected = json.loads((FIXTURES / f"{name}.json").read_text())["expected"]
    fake.enqueue(SseFileReply(path, delay=0.001))
    with httpx.Client(base_url=fake.base_url) as http:
        resp = http.post("/chat/completions", json={"stream": True})
    raw = path.read_bytes()
    assert resp.content == raw
    assert raw.endswith(b"data: [DONE]\n\n") is expected["done"]


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_parses_with_sdk_and_matches_sidecar(
    fake: FakeOpenAI, client: OpenAI, name: str
) -> None:
    assert len(FIXTURE_NAMES) >= 12
    sidecar = json.loads((FIXTURES / f"{name}.json").read_text())
    expected = sidecar["expected"]
    fake.enqueue(SseFileReply(FIXTURES / f"{name}.sse"))
    got = _accumulate(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert got["text"] == expected["text"]
    assert got["reasoning"] == expected["reasoning"]
    assert got["tool_calls"] == expected["tool_calls"]
    assert got["finish_reason"] == expected["finish_reason"]
    assert got["usage"] == expected["usage"]
    assert got["error"] == expected["error"]
    if "stop_reason" in expected:
        assert got["stop_reason"] == expected["stop_reason"]
    assert {"provider", "model", "note", "sources"} <= sidecar.keys()
