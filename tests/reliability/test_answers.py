"""Upstream answers that are not what they claim, streams that break, clients that leave.

vdm (real Hypercorn on loopback, or its request handler driven directly for the shutdown
case) in front of fault-injecting fake upstreams (tests/fakes/faults.py), on both paths: the
translated one (OpenAI Chat, Responses, Gemini) and the Anthropic-format passthrough.

- A non-streaming 200 whose body is not the dialect's answer (another dialect's, `{}`, a list,
  wrong types, an HTML page, a cut-short body) is a 502 quoting the status, never a 500 or a
  relayed 200.
- A stream that fails after it started (dropped, garbage, stalled past the idle timeout, a line
  that never ends) ends with an Anthropic `error` event, never a normal-looking end.
- A stream cut by cancellation (the server's shutdown grace period ending) gets a last `error`
  event saying vdm is shutting down.
- An Anthropic-format `count_tokens` is cancelled when its client disconnects.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

from tests.fakes import faults
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI, JsonReply, Recorded, Reply
from tests.fakes.responses_upstream import FakeResponses
from tests.harness import running_vdm
from vdm.config.settings import Settings
from vdm.server.asgi import Incoming, Message
from vdm.server.messages import create_message
from vdm.server.state import Gateway

TRANSLATED = ("openai", "responses", "gemini")
FAKES: dict[str, type[FakeOpenAI]] = {
    "openai": FakeOpenAI,
    "responses": FakeResponses,
    "gemini": FakeGemini,
    "anthropic": FakeAnthropic,
}


#: A model each fake accepts (the Gemini fake knows Gemini's models only).
MODELS = {"gemini": "gemini-2.5-flash"}


class FakeAnthropicCounts(FakeAnthropic):
    """FakeAnthropic whose `count_tokens` answers come from the script too."""

    def _route(self, request: Recorded) -> Reply:
        if request.method == "POST" and request.path == "/v1/messages/count_tokens":
            return self._next_reply(request)
        return super()._route(request)


@pytest.fixture(params=[*TRANSLATED, "anthropic"])
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _env(dialect: str, fake: FakeOpenAI, **extra: str) -> dict[str, str]:
    """One provider of `dialect` named `mycorp` (no preset), without retries."""
    return {
        "MYCORP_API_KEY": "sk-mycorp-5555",
        "MYCORP_BASE_URL": fake.base_url,
        "MYCORP_API_FORMAT": dialect,
        "MAX_RETRIES": "0",
        **extra,
    }


@pytest.fixture
def upstream(dialect: str) -> Iterator[FakeOpenAI]:
    with FAKES[dialect]() as fake:
        yield fake


def _hello(dialect: str = "openai", **kw: Any) -> dict[str, Any]:
    model = f"mycorp:{MODELS.get(dialect, 'model-x')}"
    return {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}], **kw}


def _stream(url: str, dialect: str, timeout: float = 10) -> tuple[httpx.Response, str]:
    body = _hello(dialect, stream=True)
    with httpx.stream("POST", f"{url}/v1/messages", json=body, timeout=timeout) as response:
        raw = response.read().decode("utf-8", "replace")
    return response, raw


def _last_event(raw: str) -> tuple[str, dict[str, Any]]:
    """The name and data of the stream's last SSE event."""
    blocks = [b for b in raw.replace("\r\n", "\n").split("\n\n") if b.strip()]
    lines = blocks[-1].splitlines()
    name = next(line[6:].strip() for line in lines if line.startswith("event:"))
    data = next(line[5:].strip() for line in lines if line.startswith("data:"))
    return name, json.loads(data)


# --- answers that are not what they claim ------------------------------------------------------


@pytest.mark.parametrize("kind", ["foreign", "empty", "list", "wrong_types"])
def test_valid_json_of_the_wrong_shape_is_a_502(
    dialect: str, upstream: FakeOpenAI, kind: str
) -> None:
    upstream.enqueue(faults.wrong_shape(dialect, kind))  # type: ignore[arg-type]
    with running_vdm(_env(dialect, upstream)) as vdm:
        response = httpx.post(f"{vdm.url}/v1/messages", json=_hello(dialect), timeout=10)
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["type"] == "api_error"
    assert "mycorp answered HTTP 200 with a body that is not" in error["message"]
    assert response.headers["x-vdm-served-by"] == _hello(dialect)["model"]


@pytest.mark.parametrize("fault", ["html", "truncated", "empty"])
def test_a_body_that_is_not_json_is_a_502(dialect: str, upstream: FakeOpenAI, fault: str) -> None:
    if fault == "html":
        upstream.enqueue(faults.html_page(200))
    elif fault == "truncated":
        upstream.enqueue(faults.truncated_json(dialect))  # type: ignore[arg-type]
    else:
        upstream.enqueue(JsonReply(b"", headers={"content-type": "application/json"}))
    with running_vdm(_env(dialect, upstream)) as vdm:
        response = httpx.post(f"{vdm.url}/v1/messages", json=_hello(dialect), timeout=10)
    assert response.status_code == 502, response.text
    assert response.json()["type"] == "error"
    assert "mycorp" in response.json()["error"]["message"]


def test_an_anthropic_answer_of_another_type_is_not_relayed_as_200(ant: FakeAnthropic) -> None:
    ant.enqueue(JsonReply({"type": "completion", "completion": "legacy API"}))
    with running_vdm(_env("anthropic", ant)) as vdm:
        response = httpx.post(f"{vdm.url}/v1/messages", json=_hello(), timeout=10)
    assert response.status_code == 502
    message = response.json()["error"]["message"]
    assert "not an Anthropic message" in message and "'completion'" in message


def test_an_anthropic_count_tokens_answer_without_a_count_is_a_502() -> None:
    with FakeAnthropicCounts() as ant, running_vdm(_env("anthropic", ant)) as vdm:
        ant.enqueue(faults.html_page(200))
        response = httpx.post(f"{vdm.url}/v1/messages/count_tokens", json=_hello(), timeout=10)
    assert response.status_code == 502
    assert "not an Anthropic message" in response.json()["error"]["message"]


# --- streams that break after they started -----------------------------------------------------


@pytest.mark.parametrize("fault", ["drop", "garbage", "stall", "endless-line"])
def test_a_broken_stream_ends_with_an_error_event(
    dialect: str, upstream: FakeOpenAI, fault: str
) -> None:
    if fault == "drop":
        upstream.enqueue(faults.drop_mid_stream(after=2, dialect=dialect))  # type: ignore[arg-type]
    elif fault == "garbage":
        upstream.enqueue(faults.garbage_sse())
    elif fault == "stall":
        upstream.enqueue(faults.stall_mid_stream(after=2, seconds=20, dialect=dialect))  # type: ignore[arg-type]
    else:
        upstream.enqueue(faults.huge_sse_line(3 * 1024 * 1024, ends=False))
    env = _env(dialect, upstream, IDLE_TIMEOUT="0.5")
    with running_vdm(env) as vdm:
        started = time.monotonic()
        response, raw = _stream(vdm.url, dialect)
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert "message_stop" not in raw, raw[-500:]
    name, data = _last_event(raw)
    assert name == "error", raw[-500:]
    assert data["type"] == "error" and data["error"]["message"]
    assert elapsed < 8


def test_invalid_utf8_in_a_stream_never_hangs_or_ends_silently(
    dialect: str, upstream: FakeOpenAI
) -> None:
    upstream.enqueue(faults.invalid_utf8_sse(dialect))  # type: ignore[arg-type]
    with running_vdm(_env(dialect, upstream)) as vdm:
        response, raw = _stream(vdm.url, dialect)
    assert response.status_code == 200
    name, _ = _last_event(raw)
    assert name in ("message_stop", "error"), raw[-500:]


# --- cancellation: the server's shutdown cuts a stream -----------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_a_stream_cut_by_cancellation_ends_with_an_error_event(kind: str) -> None:
    """The relay's task is cancelled after the response started (as Hypercorn does when the
    shutdown grace period ends): its last bytes are an `error` event, sent though cancelled."""
    with FAKES[kind]() as fake:
        fake.enqueue(faults.stall_mid_stream(after=2, seconds=20, dialect=kind))  # type: ignore[arg-type]
        gateway = Gateway(Settings.from_mapping(_env(kind, fake)))
        sent: list[Message] = []
        streaming = anyio.Event()

        async def send(message: Message) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and message.get("more_body"):
                streaming.set()

        async def receive() -> Message:
            await anyio.sleep_forever()
            raise AssertionError  # pragma: no cover

        body = json.dumps(_hello(kind, stream=True)).encode()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(create_message, gateway, Incoming(body, []), receive, send)
                with anyio.fail_after(5):
                    await streaming.wait()
                tg.cancel_scope.cancel()
        finally:
            await gateway.aclose()
        assert fake.wait_for_disconnect(2), "the upstream stream was left open"
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    last = sent[-1]
    assert last["type"] == "http.response.body" and not last.get("more_body")
    raw = b"".join(m.get("body", b"") for m in sent[1:]).decode()
    name, data = _last_event(raw)
    assert name == "error"
    assert data["error"] == {"type": "overloaded_error", "message": "vdm is shutting down"}
    assert "message_stop" not in raw


# --- client disconnect -------------------------------------------------------------------------


def test_count_tokens_is_cancelled_when_the_client_disconnects() -> None:
    with FakeAnthropicCounts() as ant, running_vdm(_env("anthropic", ant)) as vdm:
        ant.enqueue(faults.stall_before_headers(20))
        body = json.dumps(_hello()).encode()
        head = (
            f"POST /v1/messages/count_tokens HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", vdm.port), timeout=5) as sock:
            sock.sendall(head + body)
            assert ant.wait_for_requests(1, 5), "the count never reached the upstream"
        left = time.monotonic()
        assert ant.wait_for_disconnect(3), "vdm kept waiting on the upstream after the client left"
        assert time.monotonic() - left < 1.0
