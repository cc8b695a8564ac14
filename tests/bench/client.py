"""A minimal HTTP/1.1 client on asyncio streams, a closed-loop load generator, and the
helpers that start, probe and stop the servers under test.

Cheap on purpose (the machine has two cores and the load generator shares them with vdm and
the fake upstream): requests are pre-rendered bytes, each worker owns one keep-alive
connection, and a response is parsed just enough: status, ``Content-Length`` or chunked
framing, the time of the first chunk that carries text, the number of text deltas and the end
marker of the stream.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped, unused-ignore]

READ_SIZE = 256 * 1024


class BenchError(Exception):
    """A failed or malformed exchange."""


@dataclass(frozen=True)
class Expect:
    """What a correct response looks like.

    For a stream: ``delta`` occurs ``deltas`` times in total, and the last body chunk contains
    ``end``; the first chunk containing ``delta`` marks the first token. For a JSON answer:
    the body contains ``end``.
    """

    stream: bool
    end: bytes
    delta: bytes = b""
    deltas: int = 0


def render_request(
    path: str, body: bytes, port: int, headers: dict[str, str] | None = None
) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"host: 127.0.0.1:{port}",
        "content-type: application/json",
        f"content-length: {len(body)}",
    ]
    lines.extend(f"{k}: {v}" for k, v in (headers or {}).items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection:
    """One persistent HTTP/1.1 connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buf = bytearray()
        #: The server announced ``connection: close`` (Hypercorn does after 1000 requests).
        self.closing = False

    @classmethod
    async def open(cls, port: int, host: str = "127.0.0.1") -> Connection:
        reader, writer = await asyncio.open_connection(host, port, limit=READ_SIZE)
        return cls(reader, writer)

    def close(self) -> None:
        self.writer.close()

    async def more(self) -> None:
        data = await self.reader.read(READ_SIZE)
        if not data:
            raise BenchError("connection closed by the server")
        self.buf += data

    async def exchange(self, request: bytes, expect: Expect) -> tuple[float, float]:
        """Send ``request``; return (latency, time to first token) in seconds."""
        buf = self.buf
        started = time.perf_counter()
        self.writer.write(request)
        while (end := buf.find(b"\r\n\r\n")) < 0:
            await self.more()
        now = time.perf_counter()
        head = bytes(buf[:end]).lower()
        del buf[: end + 4]
        status = int(head[9:12])
        if b"\nconnection: close" in head:
            self.closing = True
        at = head.find(b"\ncontent-length:")
        if at >= 0:
            eol = head.find(b"\r\n", at + 1)
            length = int(head[at + 16 : eol if eol > 0 else len(head)])
            while len(buf) < length:
                await self.more()
            body = bytes(buf[:length])
            del buf[:length]
            done = time.perf_counter()
            if status != 200:
                raise BenchError(f"HTTP {status}: {body[:300]!r}")
            if expect.stream or expect.end not in body:
                raise BenchError(f"unexpected answer: {body[:300]!r}")
            return done - started, done - started
        if b"\ntransfer-encoding: chunked" not in head:
            raise BenchError(f"neither content-length nor chunked: {head[:300]!r}")
        first = 0.0
        deltas = 0
        last: bytes | bytearray = b""
        delta = expect.delta
        pos = 0
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                del buf[:pos]
                pos = 0
                await self.more()
                now = time.perf_counter()
                continue
            size = int(buf[pos:eol].split(b";", 1)[0], 16)
            need = eol + 2 + size + 2
            if len(buf) < need:
                del buf[:pos]
                pos = 0
                await self.more()
                now = time.perf_counter()
                continue
            if size == 0:
                del buf[:need]
                break
            data = buf[eol + 2 : eol + 2 + size]
            if delta:
                n = data.count(delta)
                if n:
                    if not deltas:
                        first = now
                    deltas += n
            last = data
            pos = need
        done = time.perf_counter()
        if status != 200:
            raise BenchError(f"HTTP {status}: {bytes(last)[:300]!r}")
        if not expect.stream:
            raise BenchError("a stream where a JSON answer was expected")
        if expect.end not in last:
            raise BenchError(f"stream did not end with {expect.end!r}: {bytes(last)[-300:]!r}")
        if deltas != expect.deltas:
            raise BenchError(f"{deltas} text deltas, expected {expect.deltas}")
        return done - started, first - started


@dataclass
class LoadResult:
    concurrency: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    #: Extra figures taken at the window's edges (CPU seconds per process, ...).
    probes: dict[str, float] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of ``values`` (``q`` in 0..100); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def ms(seconds: float) -> float:
    return seconds * 1000


def summary(result: LoadResult) -> dict[str, Any]:
    """The run's figures, times in ms, CPU in ms per request (``probes`` named ``cpu_*``)."""
    n = result.requests or 1
    return {
        "requests": result.requests,
        "seconds": round(result.seconds, 3),
        "rps": round(result.rps, 1),
        "p50_ms": round(ms(percentile(result.latencies, 50)), 3),
        "p99_ms": round(ms(percentile(result.latencies, 99)), 3),
        "ttft_p50_ms": round(ms(percentile(result.ttfts, 50)), 3) if result.ttfts else None,
        "ttft_p99_ms": round(ms(percentile(result.ttfts, 99)), 3) if result.ttfts else None,
        "cpu_ms_per_req": {
            k.removeprefix("cpu_"): round(ms(v) / n, 4)
            for k, v in result.probes.items()
            if k.startswith("cpu_")
        },
        "upstream_conns_per_req": round(result.probes.get("upstream_conns_per_req", 0.0), 4),
        "errors": result.errors,
        "error_samples": result.error_samples,
    }


async def closed_loop(
    port: int,
    request: bytes,
    expect: Expect,
    *,
    concurrency: int,
    warmup: float,
    duration: float,
    max_requests: int,
    probe: Callable[[], dict[str, float]],
) -> LoadResult:
    """``concurrency`` workers, each sending ``request`` and waiting for the whole answer, in
    a loop. Requests that finish inside the measuring window (after ``warmup``, for at most
    ``duration`` seconds or ``max_requests`` requests) are counted. ``probe()`` is called at
    both edges of the window; the result holds the differences."""
    result = LoadResult(concurrency)
    recording = False
    stopping = False
    full = asyncio.Event()
    conns = [await Connection.open(port) for _ in range(concurrency)]

    async def worker(index: int) -> None:
        conn = conns[index]
        while not stopping:
            try:
                latency, ttft = await conn.exchange(request, expect)
            except (BenchError, OSError, ValueError) as exc:
                if recording:
                    result.errors += 1
                    if len(result.error_samples) < 5:
                        result.error_samples.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                await asyncio.sleep(0.01)
                try:
                    conn = conns[index] = await Connection.open(port)
                except OSError:
                    pass
                continue
            if conn.closing:  # reconnect between requests, outside the timed exchange
                conn.close()
                conn = conns[index] = await Connection.open(port)
            if recording:
                result.latencies.append(latency)
                if expect.stream:
                    result.ttfts.append(ttft)
                if len(result.latencies) >= max_requests:
                    full.set()

    tasks = [asyncio.create_task(worker(i)) for i in range(concurrency)]
    try:
        await asyncio.sleep(warmup)
        before = probe()
        started = time.perf_counter()
        recording = True
        try:
            await asyncio.wait_for(full.wait(), duration)
        except TimeoutError:
            pass
        recording = False
        result.seconds = time.perf_counter() - started
        after = probe()
        result.probes = {k: after[k] - before[k] for k in after if k in before}
        stopping = True
        _, pending = await asyncio.wait(tasks, timeout=10)
        for task in pending:
            task.cancel()
    finally:
        stopping = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for conn in conns:
            conn.close()
    return result


# --------------------------------------------------------------------------------------------
# Servers under test
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def health_ok(port: int, path: str = "/health") -> bool:
    """One GET ``path``; True on a 200."""
    request = f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(request.encode())
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def tree_cpu_seconds(ps: psutil.Process) -> float:
    """User + system CPU seconds of a process and its descendants (``--workers`` spawns
    processes; node may too). Children already reaped count through their parent's
    ``children_*`` times, so a worker that exits mid-run is not lost."""
    total = 0.0
    try:
        procs = [ps, *ps.children(recursive=True)]
    except psutil.Error:
        return total
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


@dataclass
class Server:
    """A proxy under test (vdm or claude-code-router): its process and how it came up."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    start_to_healthy: float
    log: Path

    @property
    def ps(self) -> psutil.Process:
        return psutil.Process(self.proc.pid)

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.ps)

    def rss_mb(self) -> float:
        """Resident memory of the process tree, in MiB."""
        total = 0
        for p in [self.ps, *self.ps.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                continue
        return total / (1024 * 1024)


def wait_healthy(
    name: str,
    proc: subprocess.Popen[bytes],
    port: int,
    log: Path,
    started: float,
    timeout: float,
    path: str = "/health",
) -> Server:
    """Poll ``path`` every 2 ms until it answers 200; raise with the log's tail if the process
    exits or ``timeout`` passes first."""
    deadline = started + timeout
    while not health_ok(port, path):
        if proc.poll() is not None or time.perf_counter() > deadline:
            stop(proc)
            raise RuntimeError(f"{name} did not become healthy: {log.read_text()[-2000:]}")
        time.sleep(0.002)
    return Server(name, proc, port, time.perf_counter() - started, log)


async def get_stats(port: int) -> dict[str, Any]:
    conn = await Connection.open(port)
    try:
        conn.writer.write(b"GET /stats HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        while (end := conn.buf.find(b"\r\n\r\n")) < 0:
            await conn.more()
        head = bytes(conn.buf[:end]).lower()
        at = head.find(b"content-length:")
        length = int(head[at + 15 :].split(b"\r\n", 1)[0])
        while len(conn.buf) < end + 4 + length:
            await conn.more()
        data: dict[str, Any] = json.loads(bytes(conn.buf[end + 4 : end + 4 + length]))
        return data
    finally:
        conn.close()


async def once(port: int, request: bytes, expect: Expect) -> str | None:
    """One exchange; the problem, or None."""
    conn = await Connection.open(port)
    try:
        await conn.exchange(request, expect)
    except (BenchError, OSError) as exc:
        return str(exc)
    finally:
        conn.close()
    return None


def rss_mb(ps: psutil.Process) -> float:
    return float(ps.memory_info().rss) / (1024 * 1024)


def peak_rss_mb(ps: psutil.Process) -> float:
    """The process's high-water mark (VmHWM, Linux), else its current RSS."""
    try:
        for line in Path(f"/proc/{ps.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return rss_mb(ps)
