"""The edge of the server: connection hygiene, browser safety, header validation, the body
limit and the request limit.

vdm runs on real Hypercorn on a loopback port (tests/harness.py) in front of a fake OpenAI
upstream that records what reached it; clients are raw sockets (to control exactly which
bytes arrive when), httpx and the official anthropic SDK. Every refusal is also checked to
have reached no upstream.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from tests.fakes import faults
from tests.fakes.openai_upstream import FakeOpenAI, SseReply, stream_chunks
from tests.harness import RunningVdm, running_vdm
from vdm.server.asgi import MAX_BODY_BYTES
from vdm.server.edge import is_loopback_host
from vdm.server.serve import EXHAUSTED_LOG_SECONDS, QuietExhaustion, default_max_requests

JSON = {"content-type": "application/json"}


def _env(fake: FakeOpenAI) -> dict[str, str]:
    return {"OPENAI_API_KEY": "sk-edge-test-1234", "OPENAI_BASE_URL": fake.base_url}


def _body() -> dict[str, Any]:
    return {"model": "gpt-4o", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}


def _post(vdm: RunningVdm, headers: dict[str, str] | None = None) -> httpx.Response:
    content = json.dumps(_body()).encode()
    return httpx.post(
        f"{vdm.url}/v1/messages", content=content, headers={**JSON, **(headers or {})}, timeout=10
    )


def _error(response: httpx.Response, status: int, error_type: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == error_type, body
    message: str = body["error"]["message"]
    return message


def _closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed `sock` (reading what it sent meanwhile), or None."""
    start = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - start < seconds:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - start
        if not data:
            return time.monotonic() - start
    return None


def _server_states(port: int) -> list[str]:
    """TCP states (hex, as in /proc/net/tcp) of the sockets on the server's side of `port`."""
    states = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.read().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    states.append(fields[3])
    return states


CLOSE_WAIT = "08"


@pytest.fixture
def vdm(fake: FakeOpenAI) -> Iterator[RunningVdm]:
    with running_vdm(_env(fake), keep_alive_timeout=1.0, body_timeout=1.0) as server:
        yield server


# --- connection hygiene -------------------------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/net/tcp")
def test_connections_the_client_closed_do_not_linger_in_close_wait(vdm: RunningVdm) -> None:
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", vdm.port)) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
    deadline = time.monotonic() + 4
    while CLOSE_WAIT in _server_states(vdm.port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert CLOSE_WAIT not in _server_states(vdm.port), "closed connections kept in CLOSE_WAIT"


def test_an_idle_keep_alive_connection_is_closed_after_the_timeout(vdm: RunningVdm) -> None:
    with socket.create_connection(("127.0.0.1", vdm.port)) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        closed = _closed_within(s, 5)
    assert closed is not None and closed < 3, closed


def test_a_slowloris_head_is_dropped(vdm: RunningVdm) -> None:
    """A client trickling header lines never completes its head: dropped at the timeout."""
    with socket.create_connection(("127.0.0.1", vdm.port)) as s:
        s.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        start = time.monotonic()
        dropped = None
        while time.monotonic() - start < 8:
            try:
                s.sendall(b"x-slow: 1\r\n")
            except OSError:
                dropped = time.monotonic() - start
                break
            if _closed_within(s, 0.3) is not None:
                dropped = time.monotonic() - start
                break
    assert dropped is not None and dropped < 3, f"slow head kept open (dropped: {dropped})"


def test_a_slowloris_body_gets_a_408_and_is_dropped(vdm: RunningVdm, fake: FakeOpenAI) -> None:
    with socket.create_connection(("127.0.0.1", vdm.port)) as s:
        s.sendall(
            b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"content-type: application/json\r\ncontent-length: 1000\r\n\r\n{"
        )
        start = time.monotonic()
        received = b""
        s.settimeout(0.25)
        while time.monotonic() - start < 8:
            try:
                s.sendall(b" ")
                chunk = s.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            received += chunk
        took = time.monotonic() - start
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    assert b"BODY_TIMEOUT" in received
    assert took < 4, took
    assert fake.requests == []


def test_requests_beyond_the_limit_get_a_503_and_health_still_answers(fake: FakeOpenAI) -> None:
    fake.default = SseReply(stream_chunks("slow answer", pieces=6), delay=0.2)
    with running_vdm(_env(fake), max_connections=2) as vdm:

        async def scenario() -> tuple[list[int], httpx.Response, httpx.Response, int]:
            async with httpx.AsyncClient(base_url=vdm.url, timeout=10) as client:
                body = _body() | {"stream": True}
                streams = [
                    asyncio.create_task(client.post("/v1/messages", json=body)) for _ in range(2)
                ]
                deadline = time.monotonic() + 5
                while len(fake.requests) < 2 and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                refused = await client.post("/v1/messages", json=body)
                health = await client.get("/health")
                done = [r.status_code for r in await asyncio.gather(*streams)]
                after = await client.post("/v1/messages", json=body)
                return done, refused, health, after.status_code

        done, refused, health, after = asyncio.run(scenario())
    assert done == [200, 200]
    message = _error(refused, 503, "overloaded_error")
    assert "MAX_CONNECTIONS" in message and refused.headers["retry-after"] == "1"
    assert health.status_code == 200
    assert after == 200, "the limit is freed when requests end"
    assert len(fake.requests) == 3


def _answer_on(sock: socket.socket) -> bytes:
    """One whole response read from `sock` (its head and a Content-Length body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(rest) < length:
        more = sock.recv(65536)
        assert more, "the connection closed mid-answer"
        rest += more
    return head


@pytest.mark.parametrize(
    ("path", "kind", "status"),
    [
        ("/v1/no-such-endpoint", "application/json", b"404"),
        ("/v1/messages", "text/plain", b"415"),
    ],
)
def test_a_refusal_before_the_body_arrived_keeps_the_connection(
    fake: FakeOpenAI, path: str, kind: str, status: bytes
) -> None:
    """A request refused before any handler read it (as the 503 at the request limit is),
    whose body comes in a second packet, as httpx sends it: vdm reads the body before
    answering, so the connection serves the client's next request instead of closing
    under it."""
    body = json.dumps(_body()).encode()
    with running_vdm(_env(fake)) as vdm:
        with socket.create_connection(("127.0.0.1", vdm.port), timeout=5) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(2):
                sock.sendall(
                    f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                    f"content-type: {kind}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
                )
                time.sleep(0.05)  # the head alone first: the refusal is decided on it
                sock.sendall(body)
                head = _answer_on(sock)
                assert head.split(b" ")[1] == status, head
                assert b"connection: close" not in head.lower()
            sock.sendall(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
            assert _answer_on(sock).startswith(b"HTTP/1.1 200")
    assert fake.requests == []


def test_the_default_request_limit_stays_below_the_descriptor_limit() -> None:
    assert default_max_requests(256) < 256 // 2
    assert default_max_requests(1024) < 1024 // 2
    assert 8 <= default_max_requests(100) and default_max_requests(10**6) == 1024


def test_running_out_of_descriptors_is_logged_once_in_a_while(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """asyncio reports each failed accept (up to the backlog per attempt): one line a period."""
    handler = QuietExhaustion(None)
    loop = asyncio.new_event_loop()
    try:
        error = OSError(24, "Too many open files")
        with caplog.at_level(logging.ERROR):
            for _ in range(500):
                handler(
                    loop, {"message": "socket.accept() out of system resource", "exception": error}
                )
            handler.last -= EXHAUSTED_LOG_SECONDS
            handler(loop, {"message": "socket.accept() out of system resource", "exception": error})
    finally:
        loop.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert "Too many open files" in lines[0] and "499 more" in lines[1]
    assert all(r.exc_info is None for r in caplog.records), "no traceback per failed accept"


# --- browser safety -----------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_post_that_is_not_json_is_a_415(
    vdm: RunningVdm, fake: FakeOpenAI, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = httpx.post(
        f"{vdm.url}/v1/messages", content=json.dumps(_body()).encode(), headers=headers
    )
    assert "application/json" in _error(response, 415, "invalid_request_error")
    assert fake.requests == []


def test_json_with_a_charset_is_accepted(vdm: RunningVdm, fake: FakeOpenAI) -> None:
    response = _post(vdm, {"content-type": "Application/JSON; charset=utf-8"})
    assert response.status_code == 200, response.text
    assert len(fake.requests) == 1


def test_a_cross_site_request_is_refused(vdm: RunningVdm, fake: FakeOpenAI) -> None:
    """What a page at evil.example can make a browser send: a simple text/plain POST, or a
    JSON one after a preflight; both carry its Origin."""
    simple = httpx.post(
        f"{vdm.url}/v1/messages",
        content=json.dumps(_body()).encode(),
        headers={"content-type": "text/plain", "origin": "https://evil.example"},
    )
    json_post = _post(vdm, {"origin": "https://evil.example"})
    preflight = httpx.options(
        f"{vdm.url}/v1/messages",
        headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
    )
    for response in (simple, json_post, preflight):
        assert "ALLOWED_ORIGINS" in _error(response, 403, "permission_error")
        assert "access-control-allow-origin" not in response.headers
    assert fake.requests == []


def test_a_configured_origin_is_served_with_cors(fake: FakeOpenAI) -> None:
    env = {**_env(fake), "ALLOWED_ORIGINS": "https://app.example.com, http://localhost:3000"}
    with running_vdm(env) as vdm:
        assert vdm.settings.allowed_origins == ("https://app.example.com", "http://localhost:3000")
        preflight = httpx.options(
            f"{vdm.url}/v1/messages",
            headers={
                "origin": "https://app.example.com",
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type, x-api-key",
            },
        )
        answer = _post(vdm, {"origin": "https://app.example.com"})
        other = _post(vdm, {"origin": "https://evil.example"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert preflight.headers["access-control-allow-headers"] == "content-type, x-api-key"
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == "https://app.example.com"
    _error(other, 403, "permission_error")
    assert len(fake.requests) == 1


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8082", "192.168.1.20:8082"])
def test_a_foreign_host_is_refused_as_dns_rebinding(
    vdm: RunningVdm, fake: FakeOpenAI, host: str
) -> None:
    answer = _post(vdm, {"host": host})
    health = httpx.get(f"{vdm.url}/health", headers={"host": host})
    assert "--allow-remote" in _error(answer, 403, "permission_error")
    _error(health, 403, "permission_error")
    assert fake.requests == []


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost:{port}", "LOCALHOST", "[::1]:{port}", "vdm.localhost:{port}"]
)
def test_loopback_host_names_are_served(vdm: RunningVdm, fake: FakeOpenAI, host: str) -> None:
    response = _post(vdm, {"host": host.format(port=vdm.port)})
    assert response.status_code == 200, response.text
    assert httpx.get(f"{vdm.url}/health", headers={"host": host.format(port=vdm.port)}).is_success


def test_a_server_for_the_network_accepts_any_host(fake: FakeOpenAI) -> None:
    with running_vdm({**_env(fake), "ALLOW_REMOTE": "true"}) as vdm:
        response = _post(vdm, {"host": "gateway.corp.example:8082"})
    assert response.status_code == 200, response.text


def test_loopback_host_rules() -> None:
    good = ["localhost", "localhost:1", "a.b.localhost:65535", "127.0.0.1", "127.9.9.9:80"]
    good += ["[::1]", "[::1]:8082", "localhost."]
    bad = ["evil.example", "localhost.evil.example", "127.0.0.1.nip.io", "[::2]:80", "0.0.0.0"]
    bad += ["localhost:80:80", "[::1]x", "localhost:abc", "10.0.0.1", ""]
    assert [h for h in good if not is_loopback_host(h)] == []
    assert [h for h in bad if is_loopback_host(h)] == []


# --- header values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["anthropic-beta", "x-api-key", "authorization", "user-agent", "x-stainless-os"]
)
def test_a_non_ascii_header_value_is_a_400_naming_it(
    vdm: RunningVdm, fake: FakeOpenAI, name: str
) -> None:
    raw = "tools-2024-04-04,caf\u00e9".encode()
    response = httpx.post(
        f"{vdm.url}/v1/messages",
        content=json.dumps(_body()).encode(),
        headers=[(b"content-type", b"application/json"), (name.encode(), raw)],
    )
    message = _error(response, 400, "invalid_request_error")
    assert name in message and "caf" not in message, "names the header, never quotes the value"
    assert fake.requests == []


def test_a_control_byte_in_a_passthru_key_is_a_400(fake: FakeOpenAI) -> None:
    env = {"OPENAI_API_KEY": "!PASSTHRU", "OPENAI_BASE_URL": fake.base_url}
    with running_vdm(env) as vdm:
        response = httpx.post(
            f"{vdm.url}/v1/messages",
            content=json.dumps(_body()).encode(),
            headers=[(b"content-type", b"application/json"), (b"x-api-key", b"sk-a\x7fb")],
        )
    assert "x-api-key" in _error(response, 400, "invalid_request_error")
    assert fake.requests == []


# --- the body limit -----------------------------------------------------------------------------


def _too_big() -> bytes:
    padding = "x" * (MAX_BODY_BYTES + 1024)
    return json.dumps(_body() | {"system": padding}).encode()


def test_a_body_over_the_limit_is_a_413_the_client_can_read(
    vdm: RunningVdm, fake: FakeOpenAI
) -> None:
    body = _too_big()
    declared = httpx.post(f"{vdm.url}/v1/messages", content=body, headers=JSON, timeout=30)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 1 << 20):
            yield body[start : start + (1 << 20)]

    chunked = httpx.post(f"{vdm.url}/v1/messages", content=chunks(), headers=JSON, timeout=30)
    for response in (declared, chunked):
        assert "32 MB" in _error(response, 413, "request_too_large")
    assert fake.requests == []


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_client_still_sending_an_oversized_body_reads_the_413(
    vdm: RunningVdm, fake: FakeOpenAI, chunked: bool
) -> None:
    """A client that writes its whole body before reading (as most do) must not find the
    connection reset under it: vdm reads the rest, dropping it, then answers."""
    piece = b"x" * (1 << 20)
    pieces = MAX_BODY_BYTES // len(piece) + 4
    framing = (
        b"transfer-encoding: chunked" if chunked else b"content-length: %d" % (len(piece) * pieces)
    )
    received = b""
    with socket.create_connection(("127.0.0.1", vdm.port), timeout=10) as s:
        s.sendall(
            b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"content-type: application/json\r\n" + framing + b"\r\n\r\n"
        )
        for _ in range(pieces):
            s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            time.sleep(0.002)
        if chunked:
            s.sendall(b"0\r\n\r\n")
        while b"request_too_large" not in received:
            chunk = s.recv(65536)
            if not chunk:
                break
            received += chunk
    assert received.startswith(b"HTTP/1.1 413"), received[:200]
    assert b"request_too_large" in received
    assert fake.requests == []


def test_the_anthropic_sdk_gets_request_too_large(vdm: RunningVdm, fake: FakeOpenAI) -> None:
    client = anthropic.Anthropic(base_url=vdm.url, api_key="sk-client", max_retries=0, timeout=30)
    with client, pytest.raises(anthropic.APIStatusError) as raised:
        client.messages.create(
            model="gpt-4o",
            max_tokens=20,
            system="x" * (MAX_BODY_BYTES + 1024),
            messages=[{"role": "user", "content": "hi"}],
        )
    assert raised.value.status_code == 413
    assert fake.requests == []


def test_a_client_that_stops_reading_a_stream_frees_its_request_and_upstream_call() -> None:
    with (
        FakeOpenAI() as fake,
        running_vdm(_env(fake), send_timeout=1.0) as vdm,
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client,
    ):
        # A generation that never ends: only vdm's giving up on the client can end it.
        fake.enqueue(faults.endless_stream())
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.settimeout(5)
        client.connect(("127.0.0.1", vdm.port))
        body = json.dumps({**_body(), "stream": True}).encode()
        client.sendall(
            b"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        client.recv(1024)  # the stream started; from now on the client reads nothing
        # vdm gives up on the client after SEND_TIMEOUT and closes the upstream call.
        assert fake.wait_for_disconnect(timeout=15), "the upstream call was never cancelled"
        assert _post(vdm).status_code == 200  # and it keeps serving
