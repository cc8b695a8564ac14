"""A huge SSE line through the server: the event loop stays free, the stream ends in an error.

vdm (real Hypercorn on loopback) in front of a fake upstream that sends one data line longer
than the decoder's cap (16 MiB), ended or never ended. While vdm takes it in, `/health` is
polled on another connection: with the quadratic decoder it answered in 0.5–3.5 s, and the line
was held whole. Both stream paths are covered: translated (Chat Completions) and relayed as is
(an Anthropic-format provider, watched by the observer).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest

from tests.fakes import faults
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI
from tests.harness import RunningVdm, running_vdm
from vdm.protocol.sse import MAX_LINE_BYTES, SseDecoder

OVER_CAP = MAX_LINE_BYTES + 64 * 1024


def _hello(model: str) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 64,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }


def _stream_while_polling_health(vdm: RunningVdm, model: str) -> tuple[bytes, list[float]]:
    """The raw streamed answer, and how long each `/health` took while it was being made."""
    timings: list[float] = []
    done = threading.Event()

    def poll() -> None:
        with httpx.Client(base_url=vdm.url, timeout=5) as client:
            deadline = time.monotonic() + 20
            while not done.is_set() and time.monotonic() < deadline:
                started = time.monotonic()
                assert client.get("/health").status_code == 200
                timings.append(time.monotonic() - started)
                time.sleep(0.02)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        with httpx.stream(
            "POST", f"{vdm.url}/v1/messages", json=_hello(model), timeout=20
        ) as response:
            assert response.status_code == 200
            raw = b"".join(response.iter_raw())
    finally:
        done.set()
        poller.join(10)
    return raw, timings


def _events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    decoder = SseDecoder()
    events = [*decoder.feed(raw), *decoder.flush()]
    return [(e.event, json.loads(e.data)) for e in events]


@pytest.mark.parametrize("ends", [True, False], ids=["line-ends", "line-never-ends"])
def test_huge_line_from_a_translated_upstream(fake: FakeOpenAI, ends: bool) -> None:
    fake.enqueue(faults.huge_sse_line(OVER_CAP, ends=ends))
    env = {"OPENAI_API_KEY": "sk-openai-test", "OPENAI_BASE_URL": fake.base_url}
    with running_vdm({**env, "MAX_RETRIES": "0"}) as vdm:
        raw, timings = _stream_while_polling_health(vdm, "gpt-4o-mini")
    events = _events(raw)
    assert [name for name, _ in events][0] == "message_start"
    name, last = events[-1]
    assert name == "error", events
    assert f"SSE line longer than {MAX_LINE_BYTES} bytes" in last["error"]["message"]
    assert "message_stop" not in [name for name, _ in events]
    assert timings and max(timings) < 0.5, timings


@pytest.mark.parametrize("ends", [True, False], ids=["line-ends", "line-never-ends"])
def test_huge_line_from_an_anthropic_format_upstream(ant: FakeAnthropic, ends: bool) -> None:
    ant.enqueue(faults.huge_sse_line(OVER_CAP, ends=ends))
    env = {"ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": ant.base_url}
    with running_vdm({**env, "MAX_RETRIES": "0"}) as vdm:
        raw, timings = _stream_while_polling_health(vdm, "claude-haiku-4-5")
    # The relay passed the line's bytes on as they came; the decoder parsing the client's copy
    # is given room for them, to find the error event vdm wrote after them.
    decoder = SseDecoder(max_line_bytes=2 * OVER_CAP)
    events = [*decoder.feed(raw), *decoder.flush()]
    last = events[-1]
    assert last.event == "error", [e.event for e in events]
    message = json.loads(last.data)["error"]["message"]
    assert f"SSE line longer than {MAX_LINE_BYTES} bytes" in message
    assert len(raw) < 2 * OVER_CAP  # the rest of the line was not relayed after the cut
    assert timings and max(timings) < 0.5, timings
