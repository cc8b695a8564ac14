"""`vdm server start --workers N` as a real subprocess: N processes serve one port, SIGTERM
and SIGINT stop them all like one server, a worker that dies is replaced (up to a point)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest
from typer.testing import CliRunner

from tests.fakes.openai_upstream import FakeOpenAI, JsonReply, completion
from tests.harness import clean_env, free_port
from vdm.cli.main import app
from vdm.config.settings import ConfigError, Settings

BODY = {"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def workers(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children()

    def stderr(self) -> str:
        return self.log.read_text()

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 20) -> int:
        self.proc.send_signal(signum)
        return self.proc.wait(timeout)


def _wait(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def start(tmp_path: Path, fake: FakeOpenAI) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def run(*args: str, **env: str) -> Served:
        port, log = free_port(), tmp_path / f"vdm-{len(started)}.log"
        env = {"HOME": str(tmp_path), "OPENAI_API_KEY": "sk-up", **env}
        with log.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "vdm.cli", "server", "start", "--port", str(port), *args],
                env=clean_env(OPENAI_BASE_URL=fake.base_url, **env),
                cwd=tmp_path,
                stderr=err,
                process_group=0,  # its own, as a shell's job: the Ctrl-C test signals it
            )
        served = Served(proc, port, log)
        started.append(served)
        return served

    yield run
    for served in started:
        workers = served.workers() if served.proc.poll() is None else []
        if served.proc.poll() is None:
            served.proc.kill()
            served.proc.wait(5)
        for worker in workers:  # SIGKILL left them to die with their parent: make sure
            try:
                worker.kill()
            except psutil.NoSuchProcess:
                pass


def _started(served: Served, count: int) -> list[psutil.Process]:
    """The workers, once each of them serves (Hypercorn said so)."""

    def serving() -> bool:
        running = served.stderr().count("INFO hypercorn.error: Running on")
        return len(served.workers()) == count and running >= count and _healthy(served.url)

    _wait(serving, f"{count} workers")
    return served.workers()


def _answering_pid(served: Served, workers: list[psutil.Process]) -> int:
    """The worker that serves a new connection: the one holding its other end."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as conn:
        conn.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert conn.recv(64).startswith(b"HTTP/1.1 200")
        client = conn.getsockname()[1]
        for worker in workers:
            for held in worker.net_connections(kind="tcp"):
                if held.raddr and held.raddr.port == client and held.laddr.port == served.port:
                    return worker.pid
    raise AssertionError("no worker holds the connection")


def test_two_workers_share_the_port_and_sigterm_stops_them_all(
    start: Callable[..., Served], fake: FakeOpenAI
) -> None:
    served = start("--workers", "2")
    workers = _started(served, 2)
    assert len({w.pid for w in workers}) == 2
    for _ in range(4):
        reply = httpx.post(f"{served.url}/v1/messages", json=BODY, timeout=10)
        assert reply.status_code == 200, reply.text
        assert reply.json()["content"][0]["type"] == "text"
    answered: set[int] = set()
    deadline = time.monotonic() + 20
    while len(answered) < 2 and time.monotonic() < deadline:
        answered.add(_answering_pid(served, workers))
    assert answered == {w.pid for w in workers}, "one worker served every connection"

    assert served.stop(signal.SIGTERM) == 0
    gone, alive = psutil.wait_procs(workers, timeout=5)
    assert not alive, f"orphaned workers: {alive}"
    log = served.stderr()
    assert log.count("vdm listening on") == 1 and "(2 workers)" in log
    assert log.count("SIGTERM: refusing new connections") == 2, log  # each worker, once
    assert "Traceback" not in log


def test_ctrl_c_reaches_each_worker_once_and_exits_130(
    start: Callable[..., Served], fake: FakeOpenAI
) -> None:
    """Ctrl-C in a terminal signals the whole foreground process group: a worker that got
    it from there and again from the supervisor would end its running requests at once,
    without their SHUTDOWN_GRACE."""
    served = start("--workers", "2")
    workers = _started(served, 2)
    fake.enqueue(JsonReply(completion("slow"), delay=2.0))
    replies: list[httpx.Response] = []
    asking = threading.Thread(
        target=lambda: replies.append(
            httpx.post(f"{served.url}/v1/messages", json=BODY, timeout=20)
        )
    )
    asking.start()
    _wait(lambda: len(fake.requests) > 0, "the request upstream")
    os.killpg(served.proc.pid, signal.SIGINT)  # as the terminal sends it
    asking.join(20)
    assert served.proc.wait(20) == 130
    assert replies and replies[0].status_code == 200, replies and replies[0].text
    assert replies[0].json()["content"][0]["text"] == "slow"
    _, alive = psutil.wait_procs(workers, timeout=5)
    assert not alive
    log = served.stderr()
    assert log.count("SIGINT: refusing new connections") == 2, log
    assert "ended 1 request" not in log


def test_a_worker_that_dies_is_replaced(start: Callable[..., Served]) -> None:
    served = start("--workers", "2")
    first, second = _started(served, 2)
    first.kill()
    _wait(
        lambda: len(served.workers()) == 2 and first.pid not in {w.pid for w in served.workers()},
        "a new worker",
    )
    _wait(lambda: _healthy(served.url), "the new worker")
    for _ in range(6):  # whichever worker takes them
        assert httpx.post(f"{served.url}/v1/messages", json=BODY, timeout=10).status_code == 200
    assert f"worker {first.pid} was killed by SIGKILL: starting another" in served.stderr()
    assert served.stop() == 0


def test_no_worker_outlives_a_killed_supervisor(start: Callable[..., Served]) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux's")
    served = start("--workers", "2")
    workers = _started(served, 2)
    served.proc.kill()
    served.proc.wait(5)
    _, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive


def test_workers_that_keep_dying_stop_vdm_with_an_error(start: Callable[..., Served]) -> None:
    served = start("--workers", "2")
    _started(served, 2)
    killed: set[int] = set()
    deadline = time.monotonic() + 30
    while served.proc.poll() is None and time.monotonic() < deadline:
        for worker in served.workers():
            if worker.pid not in killed:
                killed.add(worker.pid)
                worker.kill()
        time.sleep(0.05)
    assert served.proc.wait(15) == 1
    assert "workers keep exiting" in served.stderr()
    assert len(killed) <= 8  # gave up after a handful, did not restart forever


def test_workers_setting_and_a_busy_port(start: Callable[..., Served], tmp_path: Path) -> None:
    served = start(WORKERS="2")
    _started(served, 2)
    assert served.stop() == 0
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "vdm.cli", "server", "start", "--port", str(port)],
            env=clean_env(HOME=str(tmp_path), OPENAI_API_KEY="sk-up", WORKERS="3"),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count(f"cannot listen on 127.0.0.1:{port}") == 1, proc.stderr


def test_one_worker_is_one_process(start: Callable[..., Served]) -> None:
    served = start()
    _wait(lambda: _healthy(served.url), "the server")
    assert served.workers() == []  # no supervisor: the process that listens serves
    assert _answering_pid(served, [psutil.Process(served.proc.pid)]) == served.proc.pid
    assert served.stop() == 0
    assert "workers" not in served.stderr()


def test_workers_with_reload_or_below_one_is_a_usage_error() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["server", "start", "--workers", "2", "--reload"])
    assert result.exit_code == 2 and "--workers cannot be used with --reload" in result.output
    result = runner.invoke(app, ["server", "start", "--workers", "0"])
    assert result.exit_code == 2 and "--workers must be 1 or more" in result.output


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WORKERS": "0"}, "WORKERS='0' (env): must be greater than 0"),
        ({"WORKERS": "many"}, "WORKERS='many' (env): expected a whole number"),
        ({"EVENT_LOOP": "trio"}, "EVENT_LOOP='trio' (env): expected one of auto, uvloop, asyncio"),
        ({"HTTP_PARSER": "llhttp"}, "expected one of auto, httptools, h11"),
    ],
)
def test_server_settings_name_the_allowed_values(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_mapping(env)


def test_server_settings_defaults_and_values() -> None:
    default = Settings.from_mapping({})
    assert (default.workers, default.event_loop, default.http_parser) == (1, "auto", "auto")
    chosen = Settings.from_mapping({"WORKERS": "4", "EVENT_LOOP": "AsyncIO", "HTTP_PARSER": "h11"})
    assert (chosen.workers, chosen.event_loop, chosen.http_parser) == (4, "asyncio", "h11")
