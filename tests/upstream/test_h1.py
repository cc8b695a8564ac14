"""vdm's HTTP/1.1 transport (vdm/upstream/h1.py) against real loopback servers: keep-alive,
bodies and their framing, malformed and cut answers, timeouts, the deadline, TLS, flow
control, and the same on a uvloop loop."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import uvloop

from tests.upstream.test_network import certificate  # noqa: F401  (a fixture)
from vdm.upstream.network import DEADLINE, ReadHooks
from vdm.upstream.pool import PooledTransport

pytestmark = pytest.mark.anyio

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """A loopback server running `handler` on each connection, counting connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.port = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    @contextlib.asynccontextmanager
    async def running(self, context: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=context)
        self.port = server.sockets[0].getsockname()[1]
        async with server:
            yield self
            server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """The head of the next request and its body (content-length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lowered = head.lower()
    if b"transfer-encoding: chunked" in lowered:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                return head, body
            body += data[:-2]
    for line in lowered.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return head, await reader.readexactly(int(line.split(b":")[1]))
    return head, b""


def answer(body: bytes, *extra: bytes, status: bytes = b"200 OK") -> bytes:
    headers = b"".join(h + b"\r\n" for h in extra)
    return b"HTTP/1.1 %s\r\ncontent-length: %d\r\n%s\r\n%s" % (status, len(body), headers, body)


def chunked(pieces: list[bytes]) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    return b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + body


async def keep_answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echoes each request's body (or its request line) until the client closes."""
    while True:
        try:
            head, body = await read_request(reader)
        except asyncio.IncompleteReadError:
            return
        writer.write(answer(body or head.split(b"\r\n")[0]))
        await writer.drain()


async def test_keep_alive_reuses_one_connection() -> None:
    async with Server(keep_answering).running() as server:
        transport = PooledTransport()
        async with httpx.AsyncClient(transport=transport) as client:
            texts = [(await client.post(server.url, content=b"n%d" % i)).text for i in range(5)]
            assert transport.pool.idle_count == 1
    assert texts == [f"n{i}" for i in range(5)]
    assert server.connections == 1


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"ok"))  # keep-alive allowed, then closed anyway
        await writer.drain()
        await asyncio.sleep(0.05)

    async with Server(once).running() as server:
        async with httpx.AsyncClient(transport=PooledTransport()) as client:
            first = await client.get(server.url)
            await asyncio.sleep(0.2)  # the server has closed it by now
            second = await client.get(server.url)
            await asyncio.sleep(0.1)
    assert (first.text, second.text) == ("ok", "ok")
    assert server.connections == 2


async def test_content_length_and_chunked_bodies_both_ways() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, body = await read_request(reader)
        writer.write(answer(body, b"x-chunked: %d" % (b"chunked" in head.lower())))
        head, body = await read_request(reader)
        writer.write(chunked([body[:3], body[3:]]))
        await writer.drain()
        await reader.read(1)

    async def upload() -> AsyncIterator[bytes]:
        for part in (b"str", b"eam", b"ed"):
            yield part

    async with Server(handler).running() as server:
        async with httpx.AsyncClient(transport=PooledTransport()) as client:
            first = await client.post(server.url, content=upload())
            second = await client.post(server.url, content=b"content-length")
    assert (first.text, first.headers["x-chunked"]) == ("streamed", "1")
    assert second.text == "content-length"
    assert server.connections == 1


async def test_a_burst_of_50_chunks_comes_out_in_at_most_two_pieces() -> None:
    pieces = [b"data: %d\n\n" % i for i in range(50)]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(chunked(pieces))
        await writer.drain()
        await reader.read(1)

    async with Server(handler).running() as server:
        async with httpx.AsyncClient(transport=PooledTransport()) as client:
            async with client.stream("GET", server.url) as response:
                got = [chunk async for chunk in response.aiter_raw()]
    assert b"".join(got) == b"".join(pieces)
    assert len(got) <= 2, [len(chunk) for chunk in got]


async def test_connection_close_is_honoured() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"bye", b"connection: close"))
        await writer.drain()
        await reader.read(1)

    async with Server(handler).running() as server:
        transport = PooledTransport()
        async with httpx.AsyncClient(transport=transport) as client:
            for _ in range(2):
                assert (await client.get(server.url)).text == "bye"
                assert transport.pool.idle_count == 0
    assert server.connections == 2


async def test_gzip_is_decoded_by_httpx() -> None:
    text = b"compressed " * 100

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(gzip.compress(text), b"content-encoding: gzip"))
        await writer.drain()
        await reader.read(1)

    async with Server(handler).running() as server:
        async with httpx.AsyncClient(transport=PooledTransport()) as client:
            response = await client.get(server.url)
    assert response.content == text


async def test_204_head_and_100_continue_carry_no_body() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
        await read_request(reader)
        # A HEAD answer names the length of the body a GET would get, and sends none.
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
        await writer.drain()
        await reader.read(1)

    async with Server(handler).running() as server:
        async with httpx.AsyncClient(transport=PooledTransport()) as client:
            empty = await client.get(server.url)
            head = await asyncio.wait_for(client.head(server.url), 5)
            assert (empty.status_code, empty.content, empty.reason_phrase) == (
                204,
                b"",
                "No Content",
            )
            assert (head.status_code, head.content) == (200, b"")
            assert head.headers["content-length"] == "1000"


async def test_a_malformed_status_line_is_a_protocol_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 OK 200\r\n\r\n")
        await writer.drain()
        await reader.read(1)

    async with Server(handler).running() as server:
        async with httpx.AsyncClient(transport=PooledTransport()) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get(server.url)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_body_cut_short_is_an_error(framing: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if framing == "chunked":
            writer.write(chunked([b"part"])[:-5])  # no terminating chunk
        else:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this")
        await writer.drain()

    async with Server(handler).running() as server:
        transport = PooledTransport()
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get(server.url)
            assert transport.pool.idle_count == 0


async def test_a_body_delimited_by_the_close_is_read_to_the_end() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nuntil the end")
        await writer.drain()

    async with Server(handler).running() as server:
        transport = PooledTransport()
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.get(server.url)
            assert transport.pool.idle_count == 0
    assert (response.text, response.http_version) == ("until the end", "HTTP/1.0")


def _trickle(pause: float, count: int) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(count):
            await asyncio.sleep(pause)
            writer.write(b"1\r\n.\r\n")
            await writer.drain()

    return handler


async def test_a_read_timeout_fires_when_the_server_falls_silent() -> None:
    async with Server(_trickle(1.0, 2)).running() as server:
        timeout = httpx.Timeout(5.0, read=0.2)
        async with httpx.AsyncClient(transport=PooledTransport(), timeout=timeout) as client:
            began = time.monotonic()
            with pytest.raises(httpx.ReadTimeout):
                await client.get(server.url)
    assert 0.15 < time.monotonic() - began < 0.9


async def test_no_read_waits_past_the_deadline() -> None:
    async with Server(_trickle(0.05, 100)).running() as server:
        async with httpx.AsyncClient(transport=PooledTransport(), timeout=5.0) as client:
            began = time.monotonic()
            request = client.build_request("GET", server.url, extensions={DEADLINE: began + 0.4})
            with pytest.raises(httpx.ReadTimeout):
                await client.send(request)
    assert 0.35 < time.monotonic() - began < 1.5


async def test_a_refused_connection_is_a_connect_error() -> None:
    async with Server(keep_answering).running() as server:
        url = server.url
    async with httpx.AsyncClient(transport=PooledTransport()) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(url)


async def test_tls_with_a_custom_ca(certificate: tuple[Path, Path]) -> None:  # noqa: F811
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    async with Server(keep_answering).running(server_context) as server:
        url = f"https://localhost:{server.port}/"
        trusting = PooledTransport(ssl_context=ssl.create_default_context(cafile=str(cert)))
        async with httpx.AsyncClient(transport=trusting) as client:
            texts = [(await client.post(url, content=b"secret")).text for _ in range(2)]
        async with httpx.AsyncClient(transport=PooledTransport()) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(url)  # an unknown CA is refused
    assert texts == ["secret", "secret"]
    assert server.connections == 1  # kept alive for both (the refused one never got past TLS)


async def test_large_bodies_pass_flow_control_both_ways() -> None:
    big = bytes(range(256)) * (40 * 1024)  # 10 MB

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.2)  # the upload fills the socket buffers first
        _, body = await read_request(reader)
        writer.write(answer(body))
        await writer.drain()
        await reader.read(1)

    async with Server(handler).running() as server:
        async with httpx.AsyncClient(transport=PooledTransport()) as client:
            async with client.stream("POST", server.url, content=big) as response:
                await asyncio.sleep(0.3)  # the answer fills the buffer past the high-water mark
                pieces = [piece async for piece in response.aiter_raw()]
    assert b"".join(pieces) == big
    assert max(len(piece) for piece in pieces) < 5 * 1024 * 1024, "reading stopped at the mark"


async def test_an_upload_the_server_does_not_read_times_out() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(2.0)

    async with Server(handler).running() as server:
        timeout = httpx.Timeout(5.0, write=0.3)
        async with httpx.AsyncClient(transport=PooledTransport(), timeout=timeout) as client:
            with pytest.raises(httpx.WriteTimeout):
                await client.post(server.url, content=b"x" * (64 * 1024 * 1024))


async def test_a_stream_closed_early_does_not_return_its_connection() -> None:
    pieces = [b"data: %d\n\n" % i for i in range(20)]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            for piece in pieces:
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                await writer.drain()
                await asyncio.sleep(0.01)
            writer.write(b"0\r\n\r\n")

    async with Server(handler).running() as server:
        transport = PooledTransport()
        async with httpx.AsyncClient(transport=transport) as client:
            async with client.stream("GET", server.url) as response:
                async for _ in response.aiter_raw():
                    break
            assert transport.pool.idle_count == 0
            async with client.stream("GET", server.url) as response:
                whole = b"".join([chunk async for chunk in response.aiter_raw()])
            assert transport.pool.idle_count == 1
    assert whole == b"".join(pieces)
    assert server.connections == 2


async def _json_stream_and_tls(cert: Path, key: Path) -> tuple[str, bytes, int, str]:
    """A JSON answer, a paced stream read with `on_idle`, and an https answer."""
    pieces = [b"data: %d\n\n" % i for i in range(6)]

    async def paced(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for i in range(0, 6, 2):  # three bursts of two events
            writer.write(b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces[i : i + 2]))
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.write(b"0\r\n\r\n")
        await reader.read(1)

    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    async with (
        Server(keep_answering).running() as plain,
        Server(paced).running() as streaming,
        Server(keep_answering).running(server_context) as secure,
    ):
        async with httpx.AsyncClient(transport=PooledTransport(ssl_context=trusting)) as client:
            json = (await client.post(plain.url, json={"a": 1})).text
            idle: list[int] = []
            got = b""
            async with client.stream("GET", streaming.url) as response:
                network = response.extensions["network_stream"]
                assert isinstance(network, ReadHooks)

                async def on_idle() -> None:
                    idle.append(got.count(b"\n\n"))

                network.on_idle = on_idle
                async for chunk in response.aiter_raw():
                    got += chunk
            tls = (await client.post(f"https://localhost:{secure.port}/", content=b"s")).text
    return json, got, len(idle), tls


def test_the_transport_runs_on_uvloop(certificate: tuple[Path, Path]) -> None:  # noqa: F811
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert isinstance(runner.get_loop(), uvloop.Loop)
        json, got, idle, tls = runner.run(_json_stream_and_tls(*certificate))
    assert json == '{"a":1}'
    assert got == b"".join(b"data: %d\n\n" % i for i in range(6))
    assert 3 <= idle <= 6  # before each wait for the next burst, not per chunk
    assert tls == "s"


async def test_a_header_that_would_split_the_request_is_refused() -> None:
    async with Server(keep_answering).running() as server:
        async with httpx.AsyncClient(transport=PooledTransport()) as client:
            with pytest.raises(httpx.LocalProtocolError):
                await client.get(server.url, headers={"x-note": "a\r\nx-injected: 1"})
    assert server.connections <= 1


async def test_an_answer_before_the_whole_upload_is_read_is_returned() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer(b"too large", b"connection: close", status=b"413 Too Large"))
        await writer.drain()
        writer.transport.abort()  # the rest of the upload is refused

    async with Server(handler).running() as server:
        async with httpx.AsyncClient(transport=PooledTransport()) as client:
            response = await client.post(server.url, content=b"x" * (32 * 1024 * 1024))
    assert (response.status_code, response.text) == (413, "too large")


async def test_each_wait_ends_at_its_own_timeout_whatever_the_waits_before_it() -> None:
    # A connection's waits share one timer: a longer wait after a shorter one must not end
    # when the shorter would have, and a shorter one after a longer one must not run long.
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.5)
        writer.write(b"body")
        await read_request(reader)
        await reader.read(1)  # then silence

    async with Server(handler).running() as server:
        async with httpx.AsyncClient(transport=PooledTransport()) as client:
            limits = {"connect": 1.0, "read": 0.2, "write": 1.0, "pool": 1.0}
            request = client.build_request("GET", server.url, extensions={"timeout": limits})
            response = await client.send(request, stream=True)
            limits["read"] = 1.0  # the body's reads wait longer than the head's did
            assert await response.aread() == b"body"
            limits["read"] = 0.1
            began = time.monotonic()
            with pytest.raises(httpx.ReadTimeout):
                await client.send(request)
            assert time.monotonic() - began < 0.4
    assert server.connections == 1
