"""The O(1) keep-alive pool behind each provider's httpx client, against real loopback servers."""

from __future__ import annotations

import asyncio

import anyio
import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI, SseReply, auto_reply, stream_chunks
from vdm.upstream.pool import PooledTransport

pytestmark = pytest.mark.anyio


async def test_sequential_requests_share_one_connection() -> None:
    with FakeOpenAI() as fake:
        transport = PooledTransport()
        async with httpx.AsyncClient(transport=transport, base_url=fake.base_url) as client:
            for _ in range(5):
                response = await client.post(
                    "/chat/completions", json={"model": "m", "messages": []}
                )
                assert response.status_code == 200
            assert transport.pool.idle_count == 1
        assert fake.connection_count == 1


async def test_concurrent_requests_get_separate_connections_then_pool_them() -> None:
    with FakeOpenAI() as fake:
        fake.default = SseReply(stream_chunks("x", pieces=3), delay=0.02)
        transport = PooledTransport()
        async with httpx.AsyncClient(transport=transport, base_url=fake.base_url) as client:

            async def one() -> None:
                body = {"model": "m", "messages": [], "stream": True}
                async with client.stream("POST", "/chat/completions", json=body) as response:
                    async for _ in response.aiter_bytes():
                        pass

            async with anyio.create_task_group() as tg:
                for _ in range(8):
                    tg.start_soon(one)
            assert transport.pool.idle_count == 8
            async with anyio.create_task_group() as tg:
                for _ in range(8):
                    tg.start_soon(one)
        assert fake.connection_count == 8, "the second wave must reuse the first wave's connections"


async def test_a_response_closed_early_does_not_return_a_dirty_connection() -> None:
    with FakeOpenAI() as fake:
        fake.default = SseReply(stream_chunks("y " * 50, pieces=50), delay=0.01)
        transport = PooledTransport()
        async with httpx.AsyncClient(transport=transport, base_url=fake.base_url) as client:
            body = {"model": "m", "messages": [], "stream": True}
            async with client.stream("POST", "/chat/completions", json=body) as response:
                async for _ in response.aiter_bytes():
                    break
            assert transport.pool.idle_count == 0
            fake.default = auto_reply
            ok = await client.post("/chat/completions", json={"model": "m", "messages": []})
            assert ok.status_code == 200


async def _closing_server() -> tuple[asyncio.Server, int]:
    """Answers one request per connection, then closes it shortly after (no Connection: close)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    server, port = await _closing_server()
    async with server:
        transport = PooledTransport()
        async with httpx.AsyncClient(transport=transport) as client:
            first = await client.get(f"http://127.0.0.1:{port}/")
            await anyio.sleep(0.2)  # the server has closed the idle connection by now
            second = await client.get(f"http://127.0.0.1:{port}/")
            await anyio.sleep(0.15)  # let the server's handlers finish before the loop ends
        assert (first.text, second.text) == ("ok", "ok")


async def test_transport_errors_are_httpx_errors() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with httpx.AsyncClient(transport=PooledTransport()) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/")
