"""A stream that fails after it started outside any relay (vdm's own failure, reported by the
app: vdm/server/app.py `_fail`) ends in the dialect of the client at that path, as its
frontend writes it (`Frontend.stream_tail`): an Anthropic `error` event, a Chat error chunk
and `[DONE]`, a Responses `response.failed`; a live feed's stream, like `/v1/messages`, gets
an Anthropic `error` event."""

from __future__ import annotations

import json

import anyio
import pytest

from vdm.config.settings import Settings
from vdm.protocol.errors import VdmError
from vdm.server import app as app_module
from vdm.server.app import App
from vdm.server.asgi import SSE_HEADERS, Message, Receive, Scope, Send
from vdm.server.state import Gateway

#: What vdm sent before it failed: one whole Anthropic-looking event.
_FIRST = b"event: ping\ndata: {}\n\n"


async def _fails_after_the_start(
    gateway: Gateway, scope: Scope, receive: Receive, send: Send
) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
    await send({"type": "http.response.body", "body": _FIRST, "more_body": True})
    raise VdmError(502, "the relay broke")


async def _call(method: str, path: str) -> list[Message]:
    app = App(Settings.from_mapping({"OPENAI_API_KEY": "sk-tails-1234"}))
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        await anyio.sleep_forever()
        raise AssertionError  # pragma: no cover

    scope: Scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")],
    }
    try:
        with anyio.fail_after(5):
            await app(scope, receive, send)
    finally:
        await app.gateway.aclose()
    return sent


def _tail(sent: list[Message]) -> bytes:
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    last = sent[-1]
    assert last["type"] == "http.response.body" and not last.get("more_body")
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert body.startswith(_FIRST)
    return body[len(_FIRST) :]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/messages"), ("GET", "/metrics/running-totals")],
)
async def test_anthropic_and_other_streams_end_with_an_error_event(
    method: str, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app_module.ROUTES, (method, path), _fails_after_the_start)
    tail = _tail(await _call(method, path))
    name, _, data = tail.partition(b"\ndata: ")
    assert name == b"event: error"
    error = json.loads(data)
    assert error["type"] == "error" and error["error"]["message"] == "the relay broke"


@pytest.mark.anyio
async def test_a_chat_stream_ends_with_an_error_chunk_and_done(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(app_module.ROUTES, ("POST", "/v1/chat/completions"), _fails_after_the_start)
    tail = _tail(await _call("POST", "/v1/chat/completions"))
    chunk, done = tail.split(b"\n\n")[:2]
    assert chunk.startswith(b"data: ")
    assert json.loads(chunk[6:])["error"]["message"] == "the relay broke"
    assert done == b"data: [DONE]" and tail.endswith(b"data: [DONE]\n\n")
    assert b"event: error" not in tail


@pytest.mark.anyio
async def test_a_responses_stream_ends_with_a_failed_response(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(app_module.ROUTES, ("POST", "/v1/responses"), _fails_after_the_start)
    tail = _tail(await _call("POST", "/v1/responses"))
    events = [e for e in tail.split(b"\n\n") if e]
    name, _, data = events[-1].partition(b"\ndata: ")
    assert name == b"event: response.failed"
    failed = json.loads(data)
    assert failed["response"]["status"] == "failed"
    assert failed["response"]["error"]["message"] == "the relay broke"
