"""The httptools HTTP/1.1 protocol against Hypercorn's stock h11 one, over raw sockets.

Each behaviour runs on a real Hypercorn with each protocol selected; where the stock protocol
defines the bytes on the wire, the two must send the same bytes (the Date header aside).
"""

from __future__ import annotations

import asyncio
import logging
import re
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import hypercorn.protocol
import pytest
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.config import Config
from hypercorn.events import Event, RawData
from hypercorn.protocol.h11 import H11Protocol

from vdm.server import fast_h1
from vdm.server.asgi import DISCONNECT

PROTOCOLS = ["httptools", "h11"]
KEEP_ALIVE_TIMEOUT = 1.5
GRACEFUL_TIMEOUT = 1.0
MAX_REQUESTS = 4
BIG_CHUNK, BIG_CHUNKS = 64 * 1024, 512  # 32 MiB streamed to a client that does not read


@dataclass
class Seen:
    """What the app saw, read by the test thread."""

    sent: int = 0  # bytes of /big handed to Hypercorn
    disconnected: threading.Event = field(default_factory=threading.Event)
    #: What the /watch paths saw of the DISCONNECT extension: whether it was offered, then
    #: whether its callback came.
    watched: list[bool] = field(default_factory=list)
    watch_done: threading.Event = field(default_factory=threading.Event)
    #: How many `http.request` messages each /echo request's body came in.
    body_messages: list[int] = field(default_factory=list)


async def app(scope: dict[str, Any], receive: Any, send: Any, seen: Seen) -> None:
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": "echo " + message["text"]})
        await send({"type": "websocket.close"})
        return
    path = scope["path"]
    if path == "/echo":
        body = b""
        messages = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                seen.disconnected.set()
            messages += message["type"] == "http.request"
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen.body_messages.append(messages)
        await start(send, [(b"content-length", str(len(body)).encode())])
        await send({"type": "http.response.body", "body": body})
    elif path == "/stream":
        await start(send, [])
        for i in range(3):
            await send({"type": "http.response.body", "body": b"part %d\n" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/tail":  # a stream whose last write has a body
        await start(send, [])
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        await send({"type": "http.response.body", "body": b"end"})
    elif path == "/late":  # the head first, the body a while later
        await start(send, [])
        await asyncio.sleep(0.5)
        await send({"type": "http.response.body", "body": b"late"})
    elif path in ("/inject", "/long", "/app-close"):
        headers = {
            "/inject": [(b"x-bad", b"a\r\nset-cookie: x")],  # h11 refuses it: a 500
            "/long": [(b"content-length", b"2")],  # more body than declared: an error
            "/app-close": [(b"connection", b"close"), (b"content-length", b"2")],
        }[path]
        await start(send, headers)
        await send({"type": "http.response.body", "body": b"ok" * (1 + (path == "/long"))})
    elif path == "/busy":  # answers after more than the keep-alive timeout
        await asyncio.sleep(KEEP_ALIVE_TIMEOUT + 0.5)
        await start(send, [(b"content-length", b"4")])
        await send({"type": "http.response.body", "body": b"done"})
    elif path == "/big":
        await start(send, [])
        for _ in range(BIG_CHUNKS):
            await send({"type": "http.response.body", "body": b"x" * BIG_CHUNK, "more_body": True})
            seen.sent += BIG_CHUNK
        await send({"type": "http.response.body", "body": b""})
    elif path.startswith("/watch"):
        await watch(scope, receive, send, seen)
    elif path == "/hold":
        await start(send, [])
        await send({"type": "http.response.body", "body": b"started", "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass
        seen.disconnected.set()
    else:
        body = b"hello %s %s" % (scope["method"].encode(), path.encode())
        await start(send, [(b"content-length", str(len(body)).encode())])
        await send({"type": "http.response.body", "body": body})


async def watch(scope: dict[str, Any], receive: Any, send: Any, seen: Seen) -> None:
    """/watch: a response begun, then held until the client leaves; /watch-end: a whole
    response, then a wait for the callback; /watch-late: a pause before the head (the client leaves
    meanwhile), then the hook is asked. Records whether the hook was offered and called."""
    hook = scope["extensions"].get(DISCONNECT)
    seen.watched.append(hook is not None)
    called = asyncio.Event()
    path = scope["path"]
    try:
        if hook is None:
            await start(send, [(b"content-length", b"7")])
            await send({"type": "http.response.body", "body": b"no hook"})
            return
        if path == "/watch-late":  # the client leaves meanwhile
            await asyncio.sleep(0.5)
        hook.watch(called.set)
        if path == "/watch-end":
            await start(send, [(b"content-length", b"2")])
            await send({"type": "http.response.body", "body": b"ok"})
        elif path == "/watch":
            await start(send, [])
            await send({"type": "http.response.body", "body": b"started", "more_body": True})
        try:
            await asyncio.wait_for(called.wait(), 5)
        except TimeoutError:
            pass
        hook.unwatch()
        seen.watched.append(called.is_set())
    finally:
        seen.watch_done.set()


async def start(send: Any, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": headers})


@dataclass
class Server:
    port: int
    seen: Seen
    stop: Callable[[], None]  # shut the server down and wait for it to end

    def connect(self, rcvbuf: int = 0) -> socket.socket:
        sock = socket.socket()
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(5)
        sock.connect(("127.0.0.1", self.port))
        return sock


@contextmanager
def hypercorn_with(protocol: str) -> Iterator[Server]:
    """Hypercorn serving the test app on a loopback port, in a thread, with `protocol`."""
    assert fast_h1.select(protocol) == protocol
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{listener.detach()}"]
    config.accesslog = None
    config.keep_alive_timeout = KEEP_ALIVE_TIMEOUT
    config.keep_alive_max_requests = MAX_REQUESTS
    config.graceful_timeout = GRACEFUL_TIMEOUT
    seen = Seen()
    loop = asyncio.new_event_loop()
    stop: list[asyncio.Event] = []
    ready = threading.Event()

    async def main() -> None:
        from hypercorn.asyncio import serve

        stop.append(asyncio.Event())
        ready.set()

        async def bound(scope: Any, receive: Any, send: Any) -> None:
            await app(scope, receive, send, seen)

        await serve(bound, config, shutdown_trigger=stop[0].wait)

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    ready.wait(5)

    def stop_serving() -> None:
        if thread.is_alive():
            loop.call_soon_threadsafe(stop[0].set)
            thread.join(10)

    try:
        yield Server(port, seen, stop_serving)
        stop_serving()
        # Nothing left behind to be destroyed pending (a warning in the asyncio log).
        assert not asyncio.all_tasks(loop)
    finally:
        stop_serving()
        loop.close()
        fast_h1.select("h11")


@pytest.fixture(params=PROTOCOLS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with hypercorn_with(request.param) as running:
        yield running


# -- a small HTTP/1.1 client ----------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[bytes, bytes]
    body: bytes
    raw: bytes


def read_answer(stream: Any, head_only: bool = False) -> Answer:
    raw = stream.readline()
    if not raw:
        raise EOFError("connection closed before an answer")
    status = int(raw.split()[1])
    headers: dict[bytes, bytes] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        raw += line
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    raw += line
    body = b""
    if head_only or status < 200:
        pass
    elif headers.get(b"transfer-encoding") == b"chunked":
        while size := int((size_line := stream.readline()).strip(), 16):
            body += stream.read(size)
            raw += size_line + body[-size:] + stream.read(2)
        raw += size_line + stream.read(2)
    elif b"content-length" in headers:
        body = stream.read(int(headers[b"content-length"]))
        raw += body
    else:
        body = stream.read()
        raw += body
    return Answer(status, headers, body, raw)


def exchange(server: Server, data: bytes) -> bytes:
    """Send `data`, read until the server closes; the bytes with the Date header blanked."""
    with server.connect() as sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return re.sub(rb"(?im)^date: [^\r]*\r$", b"date: -\r", out)


def is_closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


GET = b"GET /%s HTTP/1.1\r\nHost: t\r\n\r\n"
WS_HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


# -- behaviour, with each protocol ----------------------------------------------------------------


def test_keep_alive_serves_several_requests_on_one_connection(server: Server) -> None:
    with server.connect() as sock, sock.makefile("rb") as stream:
        for i in range(MAX_REQUESTS - 1):
            sock.sendall(GET % b"a%d" % i)
            answer = read_answer(stream)
            assert (answer.status, answer.body) == (200, b"hello GET /a%d" % i)
            assert b"connection" not in answer.headers
            assert answer.headers[b"server"] == b"hypercorn-h11"
            assert re.fullmatch(rb"\w{3}, \d\d \w{3} \d{4} [\d:]{8} GMT", answer.headers[b"date"])


def test_pipelined_requests_are_answered_in_order(server: Server) -> None:
    with server.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(
            GET % b"one"
            + b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
            + GET % b"three"
        )
        bodies = [read_answer(stream).body for _ in range(3)]
    assert bodies == [b"hello GET /one", b"abc", b"hello GET /three"]


def test_expect_100_continue_is_answered_before_the_body_is_sent(server: Server) -> None:
    head = b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
    with server.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(head)
        interim = read_answer(stream)
        assert interim.status == 100
        sock.sendall(b"12345")
        assert read_answer(stream).body == b"12345"


def test_a_chunked_request_body_reaches_the_app_whole(server: Server) -> None:
    request = (
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nTrailer: x\r\n\r\n"
    )
    with server.connect() as sock, sock.makefile("rb") as stream:
        for i in range(0, len(request), 7):  # in pieces, across chunk boundaries
            sock.sendall(request[i : i + 7])
            time.sleep(0.005)
        assert read_answer(stream).body == b"abcdefg"


def test_a_body_that_arrives_with_its_end_is_one_message_to_the_app() -> None:
    # h11's protocol sends the body, then its end, as two messages. A body in two parts: the
    # first, then the second with the end.
    with (
        hypercorn_with("httptools") as server,
        server.connect() as sock,
        sock.makefile("rb") as stream,
    ):
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
        assert read_answer(stream).body == b"hello"
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhello")
        time.sleep(0.1)
        sock.sendall(b"world")
        assert read_answer(stream).body == b"helloworld"
        assert server.seen.body_messages == [1, 2]


def test_an_oversized_head_gets_431_and_the_connection_closes(server: Server) -> None:
    with server.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 40_000)
        assert read_answer(stream).status == 431
        assert stream.read() == b""


def test_a_malformed_request_gets_400_and_the_connection_closes(server: Server) -> None:
    with server.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n")
        answer = read_answer(stream)
        assert (answer.status, answer.headers[b"connection"]) == (400, b"close")
        assert stream.read() == b""


def test_a_slow_reader_holds_the_app_back(server: Server) -> None:
    with server.connect(rcvbuf=32 * 1024) as sock, sock.makefile("rb") as stream:
        sock.sendall(GET % b"big")
        time.sleep(1.0)
        held = server.seen.sent
        answer = read_answer(stream)
    total = BIG_CHUNK * BIG_CHUNKS
    assert held < total // 4, "the response was buffered instead of waiting for the client"
    assert len(answer.body) == total and server.seen.sent == total


def test_a_head_sent_byte_by_byte_within_the_timeout_is_served(server: Server) -> None:
    request = GET % b"slow"
    with server.connect() as sock, sock.makefile("rb") as stream:
        for byte in request:
            sock.sendall(bytes([byte]))
            time.sleep(KEEP_ALIVE_TIMEOUT * 0.5 / len(request))
        assert read_answer(stream).body == b"hello GET /slow"


def test_a_head_never_finished_is_dropped_after_the_keep_alive_timeout(server: Server) -> None:
    with server.connect() as sock:
        began = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
        assert sock.recv(1024) == b""
        waited = time.monotonic() - began
    assert KEEP_ALIVE_TIMEOUT * 0.8 < waited < KEEP_ALIVE_TIMEOUT + 2


def seconds_until_closed(sock: socket.socket, dribble: bytes = b"") -> float:
    """Seconds until the server closes `sock` without sending anything, sending a byte of
    `dribble` every 0.1 s meanwhile."""
    began = time.monotonic()
    for byte in dribble or bytes(100):
        if select.select([sock], [], [], 0.1)[0]:
            assert is_closed(sock)
            return time.monotonic() - began
        if dribble:
            sock.sendall(bytes([byte]))
    raise AssertionError("the connection is still open")


def test_an_idle_keep_alive_connection_is_closed_after_the_timeout(server: Server) -> None:
    with server.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(GET % b"a")
        assert read_answer(stream).status == 200
        waited = seconds_until_closed(sock)
    assert KEEP_ALIVE_TIMEOUT * 0.8 < waited < KEEP_ALIVE_TIMEOUT + 1


def test_a_slow_head_after_a_response_is_cut_after_the_timeout(server: Server) -> None:
    with server.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(GET % b"a")
        assert read_answer(stream).status == 200
        waited = seconds_until_closed(sock, b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: " + bytes(90))
    assert KEEP_ALIVE_TIMEOUT * 0.8 < waited < KEEP_ALIVE_TIMEOUT + 1


def test_each_request_restarts_the_keep_alive_timeout(server: Server) -> None:
    with server.connect() as sock, sock.makefile("rb") as stream:
        for i in range(3):  # idle 1.2 timeouts in all, 0.6 at a time
            if i:
                time.sleep(KEEP_ALIVE_TIMEOUT * 0.6)
            sock.sendall(GET % b"%d" % i)
            assert read_answer(stream).body == b"hello GET /%d" % i


def test_a_request_answered_after_the_keep_alive_timeout_completes(server: Server) -> None:
    with server.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(GET % b"a")  # the connection has been idle once
        assert read_answer(stream).status == 200
        sock.sendall(GET % b"busy")
        assert read_answer(stream).body == b"done"


def test_an_idle_connection_is_closed_at_once_at_shutdown() -> None:
    for protocol in PROTOCOLS:
        with hypercorn_with(protocol) as running:
            with running.connect() as sock, sock.makefile("rb") as stream:
                sock.sendall(GET % b"a")
                assert read_answer(stream).status == 200
                began = time.monotonic()
                running.stop()
                took = time.monotonic() - began
                assert is_closed(sock)
            # Not left to the end of the grace period, nor to the keep-alive timeout.
            assert took < GRACEFUL_TIMEOUT * 0.5, protocol


def test_a_client_leaving_mid_response_is_a_disconnect_to_the_app(server: Server) -> None:
    with server.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(GET % b"hold")
        read_answer(stream, head_only=True)
        assert stream.readline() == b"7\r\n"
    assert server.seen.disconnected.wait(5)


def test_a_client_leaving_mid_request_is_a_disconnect_to_the_app(server: Server) -> None:
    with server.connect() as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        time.sleep(0.2)
    assert server.seen.disconnected.wait(5)


def test_the_h11_protocol_offers_no_disconnect_extension() -> None:
    # Its apps read `http.disconnect` from `receive` instead (vdm's watcher task).
    with hypercorn_with("h11") as server:
        with server.connect() as sock, sock.makefile("rb") as stream:
            sock.sendall(GET % b"watch")
            assert read_answer(stream).body == b"no hook"
        assert server.seen.watched == [False]


def test_the_disconnect_extension_calls_back_when_the_client_leaves_mid_response() -> None:
    with hypercorn_with("httptools") as server:
        with server.connect() as sock, sock.makefile("rb") as stream:
            sock.sendall(GET % b"watch")
            read_answer(stream, head_only=True)
            assert stream.readline() == b"7\r\n"
        assert server.seen.watch_done.wait(5)
        assert server.seen.watched == [True, True]


def test_the_disconnect_extension_calls_back_at_once_when_the_client_has_left() -> None:
    with hypercorn_with("httptools") as server:
        with server.connect() as sock:
            sock.sendall(GET % b"watch-late")
            time.sleep(0.05)
        assert server.seen.watch_done.wait(5)
        assert server.seen.watched == [True, True]


def test_the_disconnect_extension_calls_back_when_the_response_has_ended() -> None:
    # As Hypercorn queues the `http.disconnect` when the stream closes after the answer.
    with hypercorn_with("httptools") as server:
        with server.connect() as sock, sock.makefile("rb") as stream:
            sock.sendall(GET % b"watch-end")
            assert read_answer(stream).body == b"ok"
            assert server.seen.watch_done.wait(5)
            assert server.seen.watched == [True, True]
            sock.sendall(GET % b"watch-end")  # the connection stays usable
            assert read_answer(stream).body == b"ok"


def test_a_head_sent_before_the_body_is_not_held_back(server: Server) -> None:
    with server.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(GET % b"late")
        sock.settimeout(0.4)  # the body comes 0.5 s after the head
        assert read_answer(stream, head_only=True).status == 200
        sock.settimeout(5)
        assert stream.readline() == b"4\r\n"


def test_a_request_pipelined_before_a_websocket_upgrade_is_answered_first(server: Server) -> None:
    with server.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(GET % b"first" + WS_HANDSHAKE)
        assert read_answer(stream).body == b"hello GET /first"
        assert read_answer(stream, head_only=True).status == 101


def test_an_http_10_client_gets_an_unchunked_answer_and_a_close(server: Server) -> None:
    with server.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(b"GET /stream HTTP/1.0\r\n\r\n")
        answer = read_answer(stream)
        assert answer.headers[b"connection"] == b"close"
        assert b"transfer-encoding" not in answer.headers
        assert answer.body == b"part 0\npart 1\npart 2\n"


def test_head_has_no_body_and_keeps_the_connection(server: Server) -> None:
    with server.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(b"HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n" + GET % b"after")
        head = read_answer(stream, head_only=True)
        assert head.headers[b"content-length"] == b"13"  # "hello HEAD /x", not sent
        assert read_answer(stream).body == b"hello GET /after"


def test_the_connection_closes_after_keep_alive_max_requests(server: Server) -> None:
    with server.connect() as sock, sock.makefile("rb") as stream:
        for i in range(MAX_REQUESTS):
            sock.sendall(GET % b"%d" % i)
            answer = read_answer(stream)
            closing = i == MAX_REQUESTS - 1
            assert (answer.headers.get(b"connection") == b"close") is closing
        assert stream.read() == b""


def test_a_streamed_response_is_chunked(server: Server) -> None:
    with server.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(GET % b"stream")
        answer = read_answer(stream)
    assert answer.headers[b"transfer-encoding"] == b"chunked"
    assert answer.raw.endswith(
        b"\r\n\r\n7\r\npart 0\n\r\n7\r\npart 1\n\r\n7\r\npart 2\n\r\n0\r\n\r\n"
    )


def test_the_last_body_and_the_end_of_a_chunked_answer_go_out_in_one_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writes: list[bytes] = []
    send = TCPServer.protocol_send

    async def recording(self: TCPServer, event: Event) -> None:
        if isinstance(event, RawData):
            writes.append(event.data)
        await send(self, event)

    monkeypatch.setattr(TCPServer, "protocol_send", recording)
    with hypercorn_with("httptools") as running, running.connect() as sock:
        with sock.makefile("rb") as stream:
            sock.sendall(GET % b"tail")
            assert read_answer(stream).body == b"partend"
    # The head goes with the first body; the last body with the end: two writes, not four.
    assert len(writes) == 2, writes
    assert writes[0].startswith(b"HTTP/1.1 200 ") and writes[0].endswith(b"\r\n4\r\npart\r\n")
    assert writes[1] == b"3\r\nend\r\n0\r\n\r\n"


def test_a_websocket_upgrade_is_served(server: Server) -> None:
    mask = b"\x01\x02\x03\x04"
    frame = b"\x81\x82" + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(b"hi"))
    with server.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(WS_HANDSHAKE)
        answer = read_answer(stream, head_only=True)
        assert answer.status == 101
        assert answer.headers[b"sec-websocket-accept"] == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        sock.sendall(frame)
        assert stream.read(2 + 7) == b"\x81\x07echo hi"


def test_h2c_upgrade_and_the_http2_preface_switch_to_http2(server: Server) -> None:
    upgrade = (
        b"GET / HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
    )
    with server.connect() as sock, sock.makefile("rb") as stream:
        sock.sendall(upgrade)
        assert read_answer(stream, head_only=True).status == 101
        assert stream.read(9)[3] == 0x04  # the server's SETTINGS frame
    with server.connect() as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        assert sock.recv(9)[3] == 0x04


# -- the same bytes as the stock protocol ---------------------------------------------------------

SCENARIOS = {
    "get-then-close": GET % b"a" + b"GET /b HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    "pipelined": GET % b"1" + GET % b"2" + GET % b"3" + GET % b"4" + GET % b"5",
    "head": b"HEAD /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    "stream": b"GET /stream HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    "http-1.0": b"GET /x HTTP/1.0\r\n\r\n",
    "http-1.0-stream": b"GET /stream HTTP/1.0\r\n\r\n",
    "chunked-echo": b"POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
    "expect": b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
    b"Content-Length: 2\r\nConnection: close\r\n\r\nok",
    "malformed": b"GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n",
    "control-byte": b"GET /x HTTP/1.1\r\nHost: t\r\nX-Key: a\x7f\x01b\r\nConnection: close\r\n\r\n",
    "nul-byte": b"GET /x HTTP/1.1\r\nHost: t\r\nX-Key: a\x00b\r\n\r\n",
    "folded": b"GET /x HTTP/1.1\r\nHost: t\r\nX-Key: a\r\n b\r\nConnection: close\r\n\r\n",
    "garbage": b"\x00\x01\x02 nonsense\r\n\r\n",
    "oversized": b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"a" * 40_000,
    "no-host": b"GET / HTTP/1.1\r\n\r\n",
    "two-hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "unknown-coding": b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
    "error-after-good": GET % b"ok" + b"BAD\x00 / HTTP/1.1\r\n\r\n",
    "header-injection": GET % b"inject" + GET % b"after",
    "body-too-long": GET % b"long" + GET % b"after",
    "app-says-close": GET % b"app-close" + GET % b"after",
}


def test_the_bytes_on_the_wire_match_the_stock_protocol() -> None:
    seen: dict[str, dict[str, bytes]] = {}
    for protocol in PROTOCOLS:
        with hypercorn_with(protocol) as running:
            for name, data in SCENARIOS.items():
                seen.setdefault(name, {})[protocol] = exchange(running, data)
    for name, answers in seen.items():
        assert answers["httptools"] == answers["h11"], name
        assert answers["h11"], name


# -- select() -------------------------------------------------------------------------------------


def test_select_installs_and_restores_the_protocol() -> None:
    try:
        assert fast_h1.select("httptools") == "httptools"
        assert fast_h1.select("auto") == "httptools"  # idempotent
        assert hypercorn.protocol.H11Protocol is fast_h1.HttptoolsProtocol  # type: ignore[attr-defined]
    finally:
        assert fast_h1.select("h11") == "h11"
    assert hypercorn.protocol.H11Protocol is H11Protocol  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="unknown HTTP parser"):
        fast_h1.select("llhttp")


@pytest.mark.parametrize("missing", ["version", "httptools"])
def test_select_falls_back_to_h11_with_one_warning(
    missing: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    if missing == "version":
        monkeypatch.setattr(fast_h1, "version", lambda name: "0.19.0")
    else:
        monkeypatch.setattr(fast_h1, "httptools", None)
    with caplog.at_level(logging.WARNING, logger="vdm"):
        assert fast_h1.select("auto") == "h11"
    assert hypercorn.protocol.H11Protocol is H11Protocol  # type: ignore[attr-defined]
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert ("0.19.0" if missing == "version" else "httptools is not installed") in record.message
