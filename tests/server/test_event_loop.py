"""EVENT_LOOP: `vdm server start` and `vdm wrap` serve on uvloop when it is there (or asked
for), on asyncio's own loop when asked; uvloop asked for and missing stops the start."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.fakes.openai_upstream import FakeOpenAI
from tests.harness import clean_env, free_port
from vdm.cli.main import app
from vdm.config.settings import ConfigError
from vdm.server.event_loop import NO_UVLOOP, choose_loop

BODY = {"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


def _serve_and_ask(tmp_path: Path, fake: FakeOpenAI, event_loop: str) -> str:
    """Start `vdm server start` with EVENT_LOOP, check /health and one request through the
    fake upstream, stop it with SIGTERM (exit 0); returns its log."""
    port, log = free_port(), tmp_path / "vdm.log"
    env = clean_env(
        HOME=str(tmp_path),
        OPENAI_API_KEY="sk-up",
        OPENAI_BASE_URL=fake.base_url,
        EVENT_LOOP=event_loop,
        LOG_LEVEL="DEBUG",
    )
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vdm.cli", "server", "start", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stderr=err,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                health = httpx.get(f"{url}/health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
                time.sleep(0.05)
        assert health.status_code == 200
        reply = httpx.post(f"{url}/v1/messages", json=BODY, timeout=10)
        assert reply.status_code == 200, reply.text + log.read_text()
        assert reply.json()["content"][0]["type"] == "text"
        stream = httpx.post(f"{url}/v1/messages", json={**BODY, "stream": True}, timeout=10)
        assert stream.status_code == 200 and "event: message_stop" in stream.text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    return log.read_text()


@pytest.mark.skipif(importlib.util.find_spec("uvloop") is None, reason="uvloop not installed")
def test_server_start_serves_on_uvloop(tmp_path: Path, fake: FakeOpenAI) -> None:
    log = _serve_and_ask(tmp_path, fake, "uvloop")
    assert "serving on the uvloop event loop" in log
    assert "garbage collector tuned for serving" in log  # vdm/server/gc_tuning.py
    assert "Traceback" not in log


def test_event_loop_asyncio_forces_the_stock_loop(tmp_path: Path, fake: FakeOpenAI) -> None:
    log = _serve_and_ask(tmp_path, fake, "asyncio")
    assert "serving on the asyncio event loop" in log
    assert "garbage collector tuned for serving" in log


def _without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    find = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "uvloop" else find(name, *a)
    )


def test_auto_is_uvloop_where_it_is_and_asyncio_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    assert choose_loop("asyncio") == "asyncio"
    if importlib.util.find_spec("uvloop") is not None:
        assert choose_loop("auto") == choose_loop("uvloop") == "uvloop"
    _without_uvloop(monkeypatch)
    assert choose_loop("auto") == "asyncio"
    with pytest.raises(ConfigError, match="pip install uvloop"):
        choose_loop("uvloop")


def test_uvloop_asked_for_and_missing_stops_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without_uvloop(monkeypatch)
    monkeypatch.chdir(tmp_path)
    env = clean_env(HOME=str(tmp_path), OPENAI_API_KEY="sk-up", EVENT_LOOP="uvloop")
    for args in (["server", "start", "--port", "0"], ["wrap", "--no-check", "--", "true"]):
        result = CliRunner().invoke(app, args, env=env)
        assert result.exit_code == 1, result.output
        assert NO_UVLOOP in result.output
        assert "vdm listening" not in result.output
