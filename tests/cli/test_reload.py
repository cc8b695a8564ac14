"""`vdm server start --reload` as a real subprocess: an edit of the project configuration
restarts the server on the same socket, a broken edit is survived, SIGTERM stops it all."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.harness import clean_env, free_port

CONFIG = '[openai.aliases]\nfast = "{target}"\n'


@pytest.fixture
def reloading(tmp_path: Path, fake: FakeOpenAI) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    (tmp_path / "vandamme-config.toml").write_text(CONFIG.format(target="gpt-4o-mini"))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vdm.cli", "server", "start", "--reload", "--port", str(port)],
        env=clean_env(HOME=str(tmp_path), OPENAI_API_KEY="sk-up", OPENAI_BASE_URL=fake.base_url),
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.terminate()  # the supervisor stops its server; SIGKILL would leave it to
        try:  # die with its parent, later
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=5)


def _alias_target(url: str) -> str | None:
    try:
        reply = httpx.get(f"{url}/v1/aliases", timeout=2)
    except httpx.TransportError:
        return None
    for alias in reply.json()["aliases"]:
        if alias["name"] == "fast":
            return str(alias["target"])
    return None


def _wait_for(url: str, target: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _alias_target(url) == target:
            return
        time.sleep(0.1)
    raise AssertionError(f"alias `fast` never became {target!r}")


def _ask(url: str) -> int:
    body = {"model": "fast", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(f"{url}/v1/messages", json=body, timeout=10).status_code


def test_an_edit_restarts_the_server_with_the_new_configuration(
    tmp_path: Path, fake: FakeOpenAI, reloading: tuple[str, subprocess.Popen[str]]
) -> None:
    url, proc = reloading
    _wait_for(url, "gpt-4o-mini")
    assert _ask(url) == 200
    assert fake.last.json["model"] == "gpt-4o-mini"

    # A broken edit: the server stops with the error named, and clients are refused at once
    # (not left waiting in the backlog) until...
    config = tmp_path / "vandamme-config.toml"
    time.sleep(0.05)  # a distinct modification time
    config.write_text("[openai.aliases\n")
    deadline = time.monotonic() + 15
    while _alias_target(url) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    refused_in = time.monotonic()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health", timeout=5)
    assert time.monotonic() - refused_in < 2
    # ...the fix is picked up on the same port.
    config.write_text(CONFIG.format(target="gpt-4.1"))
    _wait_for(url, "gpt-4.1")
    assert _ask(url) == 200
    assert fake.last.json["model"] == "gpt-4.1"

    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "changed: restarting the server" in err
    assert "invalid TOML" in err and "closed until a change restarts it" in err
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/health", timeout=2)


def _server_pids(supervisor: int) -> list[int]:
    import psutil

    return [p.pid for p in psutil.Process(supervisor).children()]


def _wait_gone(pids: list[int], timeout: float = 15.0) -> list[int]:
    import psutil

    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if psutil.pid_exists(p)]
        time.sleep(0.05)
    return alive


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGKILL], ids=["SIGHUP", "SIGKILL"])
def test_the_server_never_outlives_its_supervisor(
    reloading: tuple[str, subprocess.Popen[str]], signum: int
) -> None:
    url, proc = reloading
    _wait_for(url, "gpt-4o-mini")
    servers = _server_pids(proc.pid)
    assert servers
    proc.send_signal(signum)
    proc.communicate(timeout=20)
    assert proc.returncode == (0 if signum == signal.SIGHUP else -signal.SIGKILL)
    assert _wait_gone(servers) == [], "the server outlived its supervisor"
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/health", timeout=2)
