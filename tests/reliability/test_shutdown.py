"""Graceful shutdown of `vdm server start` on SIGTERM, as a process manager does it.

vdm runs as a real subprocess (an environment built from scratch, a temporary HOME) in front
of a fake OpenAI upstream whose streams are slow. On SIGTERM the listening socket closes at
once (new connections are refused), a stream that ends within the grace period
(`SHUTDOWN_GRACE`) ends normally, one that would run longer is ended with an Anthropic
`error` event when the grace period is over, and the process exits 0.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI, Recorded, Reply, SseReply, stream_chunks
from tests.harness import REPO, clean_env, free_port

GRACE = 2.0
#: The short stream lasts about 1 s after its first event; the long one about 12 s.
SHORT_TOKENS, LONG_TOKENS = 11, 22


def _slow_streams(request: Recorded) -> Reply:
    asked = request.json.get("max_completion_tokens") or request.json.get("max_tokens")
    long = asked == LONG_TOKENS
    if long:
        return SseReply(stream_chunks("word " * 40, pieces=40), delay=0.3)
    return SseReply(stream_chunks("word " * 3, pieces=3), delay=0.2)


def _vdm() -> Path:
    exe = REPO / ".venv" / "bin" / "vdm"
    return exe if exe.is_file() else Path(sys.executable).with_name("vdm")


@dataclass
class Server:
    url: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@contextmanager
def vdm_server(fake: FakeOpenAI, tmp_path: Path) -> Iterator[Server]:
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    port = free_port()
    env = clean_env(
        HOME=str(home),
        OPENAI_API_KEY="sk-shutdown-test-1234",
        OPENAI_BASE_URL=fake.base_url,
        SHUTDOWN_GRACE=str(GRACE),
    )
    log = tmp_path / "vdm.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(_vdm()), "server", "start", "--port", str(port)],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", port, proc, log)
    try:
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, f"vdm exited early:\n{server.tail()}"
            try:
                if httpx.get(f"{server.url}/health", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"vdm did not start:\n{server.tail()}"
            time.sleep(0.05)
        yield server
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


@dataclass
class StreamClient:
    """One streaming request read in a thread: the SSE event names and when it ended."""

    url: str
    max_tokens: int
    events: list[str] = field(default_factory=list)
    status: int = 0
    started: threading.Event = field(default_factory=threading.Event)
    ended_at: float | None = None
    failure: BaseException | None = None

    def run(self) -> None:
        body = {
            "model": "gpt-4o",
            "max_tokens": self.max_tokens,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        }
        try:
            with httpx.stream(
                "POST",
                f"{self.url}/v1/messages",
                content=json.dumps(body).encode(),
                headers={"content-type": "application/json"},
                timeout=30,
            ) as response:
                self.status = response.status_code
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        self.events.append(line.removeprefix("event: "))
                        self.started.set()
        except BaseException as exc:  # reported by the test
            self.failure = exc
        finally:
            self.ended_at = time.monotonic()
            self.started.set()


def _start(client: StreamClient) -> threading.Thread:
    thread = threading.Thread(target=client.run, daemon=True)
    thread.start()
    return thread


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except ConnectionRefusedError:
        return True


def test_sigterm_lets_short_streams_finish_and_ends_long_ones(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    fake.default = _slow_streams
    with vdm_server(fake, tmp_path) as server:
        short = StreamClient(server.url, SHORT_TOKENS)
        long = StreamClient(server.url, LONG_TOKENS)
        threads = [_start(short), _start(long)]
        assert short.started.wait(10) and long.started.wait(10), server.tail()
        assert short.ended_at is None and long.ended_at is None, (short, long, server.tail())

        server.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        deadline = signalled + 2
        while not _refused(server.port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _refused(server.port), "new connections still accepted after SIGTERM"

        for thread in threads:
            thread.join(GRACE + 8)
        code = server.proc.wait(GRACE + 8)
        exited = time.monotonic() - signalled

    assert short.failure is None and long.failure is None, (short.failure, long.failure)
    assert short.events[-1] == "message_stop" and "error" not in short.events, short.events
    assert short.ended_at is not None and short.ended_at - signalled < GRACE
    assert long.events[-1] == "error" and "message_stop" not in long.events, long.events
    assert long.ended_at is not None
    assert GRACE - 0.5 <= long.ended_at - signalled <= GRACE + 2, long.ended_at - signalled
    assert code == 0, server.tail()
    assert exited < GRACE + 4, exited
    assert "shutting down" in server.tail() or "grace" in server.tail()


def test_sigterm_when_idle_exits_at_once(fake: FakeOpenAI, tmp_path: Path) -> None:
    with vdm_server(fake, tmp_path) as server:
        keep_alive = httpx.Client(base_url=server.url)
        assert keep_alive.get("/health").status_code == 200  # an idle connection stays open
        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(10)
        keep_alive.close()
    assert code == 0, server.tail()
    assert time.monotonic() - signalled < 2


def test_a_second_signal_ends_running_requests_at_once(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.default = _slow_streams
    with vdm_server(fake, tmp_path) as server:
        long = StreamClient(server.url, LONG_TOKENS)
        thread = _start(long)
        assert long.started.wait(10), server.tail()
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGINT)
        thread.join(10)
        code = server.proc.wait(10)
    assert long.events[-1] == "error", long.events
    assert long.ended_at is not None and long.ended_at - signalled < 1.5
    assert code == 0, server.tail()


@pytest.fixture(autouse=True)
def _posix_only() -> None:
    if sys.platform == "win32":
        pytest.skip("signals as POSIX sends them")


def test_ctrl_c_stops_gracefully_and_exits_130(fake: FakeOpenAI, tmp_path: Path) -> None:
    with vdm_server(fake, tmp_path) as server:
        server.proc.send_signal(signal.SIGINT)
        code = server.proc.wait(10)
    assert code == 130, server.tail()
