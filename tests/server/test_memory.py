"""A finished request leaves nothing behind: its exchange (which holds the client's body and
its validated copy, 40 KB and more for Claude Code) is freed by reference counting, not left
in a reference cycle for the cyclic garbage collector. A cycle made memory grow by 28 MB
under `make bench`'s Claude-Code-sized load before the collector caught up."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI
from tests.harness import RunningVdm, running_vdm
from vdm.server.exchange import Exchange
from vdm.usage.trace import Trace


@pytest.fixture
def vdm(fake: FakeOpenAI, ant: FakeAnthropic) -> Iterator[RunningVdm]:
    env = {
        "OPENAI_API_KEY": "sk-memory-1",
        "OPENAI_BASE_URL": fake.base_url,
        "ANTHROPIC_API_KEY": "sk-ant-memory-2",
        "ANTHROPIC_BASE_URL": ant.base_url,
    }
    with running_vdm(env) as server:
        yield server


def _live(kind: type) -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, kind))


def test_requests_are_freed_without_the_cycle_collector(vdm: RunningVdm) -> None:
    body = {"max_tokens": 16, "messages": [{"role": "user", "content": "x" * 40_000}]}
    gc.collect()
    before = _live(Exchange), _live(Trace)
    gc.disable()
    try:
        for model in ("gpt-4o", "anthropic:claude-haiku-4-5"):
            for stream in (False, True):
                response = httpx.post(
                    f"{vdm.url}/v1/messages",
                    json={**body, "model": model, "stream": stream},
                    timeout=10,
                )
                assert response.status_code == 200
        count = httpx.post(
            f"{vdm.url}/v1/messages/count_tokens",
            json={"model": "gpt-4o", "messages": body["messages"]},
            timeout=10,
        )
        assert count.status_code == 200
        # Accounting ends just after the client has read the last byte.
        deadline = time.monotonic() + 5
        while (_live(Exchange), _live(Trace)) != before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (_live(Exchange), _live(Trace)) == before
    finally:
        gc.enable()
