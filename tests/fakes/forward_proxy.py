"""A forward HTTP proxy on loopback that records what it relays, for the proxy-variable tests.

A client configured with ``HTTP_PROXY=http://127.0.0.1:PORT`` sends it absolute-form requests
(``POST http://127.0.0.1:9999/v1/chat/completions HTTP/1.1``, RFC 9112 section 3.2.2); the
proxy records each one, then forwards it in origin form to the named host over a fresh
connection and relays the answer's bytes as they come (a stream stays a stream).

An https:// upstream is reached with ``CONNECT host:port`` (RFC 9110 section 9.3.6): the
proxy answers 200 and then pipes bytes both ways, so TLS runs end to end between the client
and the upstream, through the tunnel.

Strict like a real proxy: a request in origin form (``POST /v1/...``: the client thought it
was talking to the upstream) is a 400, and with ``credentials`` set, a request without the
matching ``Proxy-Authorization: Basic`` is a 407 (RFC 9110 section 11.7.1) that is not
forwarded. Every plain-HTTP exchange is ``Connection: close`` on both sides, which keeps the
relay a plain byte pipe.

    with ForwardProxy(credentials=("user", "pw")) as proxy:
        os.environ["HTTP_PROXY"] = proxy.url_with_credentials
        ...
        assert proxy.requests[0].target.startswith("http://127.0.0.1:")
"""

from __future__ import annotations

import asyncio
import base64
import threading
from dataclasses import dataclass
from typing import Self
from urllib.parse import urlsplit

__all__ = ["ForwardProxy", "Proxied"]

#: Hop-by-hop headers (RFC 9110 section 7.6.1) a proxy must not forward, plus the proxy's own.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    }
)


@dataclass(frozen=True)
class Proxied:
    """One request as the proxy received it (header names lowercased)."""

    method: str
    target: str
    headers: dict[str, str]


class ForwardProxy:
    """A plain-HTTP forward proxy in a daemon thread with its own event loop."""

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self.credentials = credentials
        self.host = "127.0.0.1"
        self._lock = threading.Lock()
        self._requests: list[Proxied] = []
        self._port: int | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._error: BaseException | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name="forward-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise RuntimeError("ForwardProxy did not start") from self._error
        return self

    def stop(self) -> None:
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None or loop is None or stop is None or not thread.is_alive():
            return
        try:
            loop.call_soon_threadsafe(stop.set)
        except RuntimeError:  # loop already closed
            pass
        thread.join(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
        finally:
            self._ready.set()
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._accept, self.host, 0)
        self._port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()
            for _ in range(3):  # let the transports' connection_lost callbacks run
                await asyncio.sleep(0)

    # -- what a test looks at -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, without credentials."""
        return f"http://{self.host}:{self._port}"

    @property
    def url_with_credentials(self) -> str:
        """The proxy's URL with ``user:password@`` when it requires credentials."""
        if self.credentials is None:
            return self.url
        user, password = self.credentials
        return f"http://{user}:{password}@{self.host}:{self._port}"

    @property
    def requests(self) -> list[Proxied]:
        """Every request received, forwarded or refused, oldest first."""
        with self._lock:
            return list(self._requests)

    # -- the relay ------------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._exchange(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._tasks.discard(task)
            await _close(writer)

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *lines = head[:-4].split("\r\n")
        method, target, _version = request_line.split(" ", 2)
        fields = [line.partition(":") for line in lines]
        headers = {name.strip().lower(): value.strip() for name, _, value in fields}
        with self._lock:
            self._requests.append(Proxied(method, target, headers))
        if method != "CONNECT" and not target.startswith("http://"):
            return await _refuse(writer, 400, "a proxy needs the absolute form: http://host/path")
        if self.credentials is not None:
            token = base64.b64encode(":".join(self.credentials).encode()).decode()
            if headers.get("proxy-authorization") != f"Basic {token}":
                extra = 'Proxy-Authenticate: Basic realm="fake"\r\n'
                return await _refuse(writer, 407, "proxy credentials required", extra)
        if method == "CONNECT":
            return await _tunnel(target, reader, writer)
        body = await _body(reader, headers)
        url = urlsplit(target)
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        # The body is sent again with a length of its own (it may have come chunked).
        framing = _HOP_BY_HOP | {"content-length", "transfer-encoding"}
        kept = [(n, v) for n, _, v in fields if n.strip().lower() not in framing]
        outgoing = f"{method} {path} HTTP/1.1\r\n"
        outgoing += "".join(f"{n.strip()}: {v.strip()}\r\n" for n, v in kept)
        outgoing += f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port or 80)
        try:
            up_writer.write(outgoing.encode("latin-1") + body)
            await up_writer.drain()
            answer = (await up_reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            status_line, *answer_lines = answer[:-4].split("\r\n")
            relayed = [
                line
                for line in answer_lines
                if line.partition(":")[0].strip().lower() not in _HOP_BY_HOP
            ]
            writer.write(
                "\r\n".join([status_line, *relayed, "connection: close", "", ""]).encode("latin-1")
            )
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            await _close(up_writer)


async def _tunnel(target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """CONNECT: open `host:port`, say so, then copy bytes both ways until either side ends."""
    host, _, port = target.rpartition(":")
    up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    await writer.drain()

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        finally:
            sink.close()

    try:
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
    finally:
        await _close(up_writer)


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close a connection and wait until its socket is: one the loop never got round to
    closing would surface as a ResourceWarning in whatever test runs next."""
    writer.close()
    try:
        await writer.wait_closed()
    except (ConnectionError, asyncio.CancelledError):
        pass


async def _body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    """The request body, de-chunked when it came chunked."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts: list[bytes] = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        await reader.readuntil(b"\r\n")  # no trailers expected: the final CRLF
        return b"".join(parts)
    return await reader.readexactly(int(headers.get("content-length", "0")))


async def _refuse(writer: asyncio.StreamWriter, status: int, reason: str, extra: str = "") -> None:
    body = reason.encode()
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\n{extra}content-type: text/plain\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()
