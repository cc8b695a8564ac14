"""The asyncio network backend under httpcore (the baseline of tests/bench/transports.py):
reads, EOF, timeouts, flow control, TLS, uvloop."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from pathlib import Path

import anyio
import httpcore
import httpx
import pytest

from tests.bench.httpcore_backend import AsyncioBackend
from vdm.upstream.pool import PooledTransport

pytestmark = pytest.mark.anyio


async def _server(
    payload: bytes, *, then_close: bool = True, pause: float = 0.0
) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        if pause:
            await asyncio.sleep(pause)
        writer.write(payload)
        await writer.drain()
        if then_close:
            writer.close()
            await writer.wait_closed()
        else:
            await asyncio.sleep(1.0)
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_read_until_eof() -> None:
    server, port = await _server(b"hello world")
    async with server:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)
        await stream.write(b"x")
        received = b""
        while chunk := await stream.read(4, timeout=5):
            assert len(chunk) <= 4
            received += chunk
        assert received == b"hello world"
        assert stream.get_extra_info("is_readable") is True  # EOF: unusable when idle
        await stream.aclose()


async def test_read_timeout() -> None:
    server, port = await _server(b"late", then_close=False, pause=0.5)
    async with server:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)
        await stream.write(b"x")
        with pytest.raises(httpcore.ReadTimeout):
            await stream.read(100, timeout=0.1)
        assert await stream.read(100, timeout=5) == b"late"
        assert stream.get_extra_info("is_readable") is False
        await stream.aclose()
        await anyio.sleep(1.1)


async def test_connect_errors() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(httpcore.ConnectError):
        await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)


async def test_large_bodies_pass_flow_control() -> None:
    big = b"z" * (9 * 1024 * 1024)
    header = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(big)
    server, port = await _server(header + big)
    async with server, httpx.AsyncClient(transport=PooledTransport()) as client:
        async with client.stream("GET", f"http://127.0.0.1:{port}/") as response:
            await anyio.sleep(0.3)  # let the socket fill the buffer past the high-water mark
            total = 0
            async for chunk in response.aiter_raw():
                total += len(chunk)
        assert total == len(big)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not found: cannot make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


async def test_tls_through_start_tls(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecure")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    async with server:
        client_context = ssl.create_default_context(cafile=str(cert))
        transport = PooledTransport(ssl_context=client_context)
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.get(f"https://127.0.0.1:{port}/")
            assert response.text == "secure"
            assert response.extensions["network_stream"].get_extra_info("ssl_object") is not None
        # An untrusted certificate is refused.
        async with httpx.AsyncClient(transport=PooledTransport()) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(f"https://127.0.0.1:{port}/")


def test_the_backend_runs_on_uvloop() -> None:
    import uvloop

    async def fetch() -> bytes:
        server, port = await _server(b"hello uvloop")
        async with server:
            stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)
            await stream.write(b"x")
            received = b""
            while chunk := await stream.read(100, timeout=5):
                received += chunk
            await stream.aclose()
            return received

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(fetch()) == b"hello uvloop"
