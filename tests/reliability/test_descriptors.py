"""Descriptor exhaustion: vdm with `ulimit -n 256` against a burst of 360 connections.

The defect this guards against (D4): under a low RLIMIT_NOFILE, 300 one-shot clients exhausted
vdm's descriptors, connections the clients had closed stayed in CLOSE_WAIT, and the log grew by
150 MB of accept errors. Here vdm runs as its own process with RLIMIT_NOFILE 256 in front of a
well-behaved fake upstream; the burst mixes clients that send one request and leave, clients
that connect and never send a byte, and clients that send half a request head (slowloris).
Each holds its connection for a couple of seconds at most. Afterwards vdm must answer
`/health` within a second, serve a normal request, keep its log small, and give its
descriptors back.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped, unused-ignore]

from tests.fakes.openai_upstream import FakeOpenAI
from tests.reliability.soak import (
    HEADERS,
    VdmProcess,
    health_ok,
    quiet_snapshot,
    snapshot,
    vdm_process,
)

NOFILE = 256
BURST = 360
HOLD = 2.0  # seconds a silent or slowloris client keeps its connection
ONE_SHOT_TIMEOUT = 8.0
LOG_LIMIT = 1024 * 1024

BODY = json.dumps(
    {
        "model": "openai:gpt-4o",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "one shot"}],
    }
).encode()
REQUEST = (
    b"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n"
    + b"".join(f"{k}: {v}\r\n".encode() for k, v in HEADERS.items())
    + b"content-length: %d\r\n\r\n" % len(BODY)
    + BODY
)
HALF_HEAD = b"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\nx-api-key: sk-soak"


async def _one_shot(port: int) -> str:
    """One request on its own connection, read to EOF: the status line's code, or what broke."""
    try:
        async with asyncio.timeout(ONE_SHOT_TIMEOUT):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(REQUEST)
                await writer.drain()
                answer = await reader.read(-1)
            finally:
                writer.close()
    except TimeoutError:
        return "timeout"
    except OSError as exc:
        return type(exc).__name__
    if not answer.startswith(b"HTTP/1.1 "):
        return "no answer"
    return answer[9:12].decode()


async def _hold(port: int, send: bytes) -> str:
    """Connect, send `send` (maybe nothing), keep the connection `HOLD` seconds, close."""
    try:
        async with asyncio.timeout(HOLD + 2):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                if send:
                    writer.write(send)
                    await writer.drain()
                try:
                    async with asyncio.timeout(HOLD):
                        await reader.read(-1)  # returns early if vdm closes the connection
                    return "closed by vdm"
                except TimeoutError:
                    return "held"
            finally:
                writer.close()
    except TimeoutError:
        return "timeout"
    except OSError as exc:
        return type(exc).__name__


async def _burst(port: int) -> dict[str, Counter[str]]:
    kinds = ["one-shot", "one-shot", "one-shot", "silent", "slowloris"]
    tasks: dict[str, list[asyncio.Task[str]]] = {kind: [] for kind in kinds}
    for i in range(BURST):
        kind = kinds[i % len(kinds)]
        if kind == "one-shot":
            coro = _one_shot(port)
        else:
            coro = _hold(port, b"" if kind == "silent" else HALF_HEAD)
        tasks[kind].append(asyncio.create_task(coro))
    await asyncio.gather(*(t for ts in tasks.values() for t in ts))
    return {kind: Counter(t.result() for t in ts) for kind, ts in tasks.items()}


def _normal_request(vdm: VdmProcess) -> httpx.Response:
    body = {**json.loads(BODY), "stream": True}
    with httpx.Client(base_url=vdm.url, timeout=10) as client:
        return client.post("/v1/messages", json=body, headers=HEADERS)


def test_vdm_survives_descriptor_exhaustion(tmp_path: Path, fake: FakeOpenAI) -> None:
    env = {"OPENAI_API_KEY": "sk-fd-test", "OPENAI_BASE_URL": fake.base_url, "LOG_LEVEL": "INFO"}
    with vdm_process(tmp_path, env, nofile=NOFILE) as vdm:
        assert vdm.ps.rlimit(psutil.RLIMIT_NOFILE)[0] == NOFILE
        assert _normal_request(vdm).status_code == 200
        # Client sockets are compared with zero below, so the first client's connection,
        # which may linger until vdm's keep-alive timer, does not matter here.
        baseline = quiet_snapshot(vdm.ps, vdm.port, frozenset({fake.port}))

        outcomes = asyncio.run(_burst(vdm.port))
        seen = f"burst outcomes: {dict(outcomes)}\nlog tail:\n{vdm.log_tail()}"

        assert vdm.proc.poll() is None, seen
        # Clients that got an answer got a proper one: a success, or a 503 from a full server.
        statuses = outcomes["one-shot"]
        assert statuses["200"] > 0, seen
        assert not [s for s in statuses if s.isdigit() and s not in ("200", "503")], seen

        began = time.monotonic()
        assert health_ok(vdm.port, timeout=1.0), seen
        assert time.monotonic() - began < 1.0, seen
        answer = _normal_request(vdm)
        assert answer.status_code == 200, f"{answer.status_code} {answer.text}\n{seen}"
        assert b"event: message_stop" in answer.content, seen

        deadline = time.monotonic() + 10
        while True:
            now = snapshot(vdm.ps, vdm.port, frozenset({fake.port}))
            # Idle upstream keep-alive connections may stay, at most one per concurrent request.
            if (
                now.client_sockets == 0
                and now.other_fds <= baseline.other_fds
                and now.upstream_sockets <= BURST
            ):
                break
            assert time.monotonic() < deadline, f"descriptors not back: {now} vs {baseline}"
            time.sleep(0.1)
        assert vdm.log_bytes() < LOG_LIMIT, f"{vdm.log_bytes()} bytes of log\n{seen}"
