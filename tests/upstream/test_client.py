"""`UpstreamClient.stream`'s `on_idle` hook: called when the upstream has nothing more for now."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI, SseReply, stream_chunks
from vdm.config.settings import ProviderConfig
from vdm.upstream.client import UpstreamClient

pytestmark = pytest.mark.anyio

BODY = b'{"model":"m","messages":[],"stream":true}'


def provider(base_url: str) -> ProviderConfig:
    return ProviderConfig(name="fake", api_keys=("sk-test",), base_url=base_url)


async def reads_at_idle(client: UpstreamClient) -> tuple[int, list[int]]:
    """(number of reads, the number of reads already yielded at each `on_idle` call)."""
    reads = 0
    idle: list[int] = []

    async def on_idle() -> None:
        idle.append(reads)

    async with client.stream("/chat/completions", BODY, on_idle=on_idle) as chunks:
        async for _ in chunks:
            reads += 1
    return reads, idle


async def test_on_idle_runs_before_each_wait_for_the_upstream() -> None:
    # 3 bursts: events 0-9 at once, a pause, events 10-19, a pause, the rest with [DONE].
    events = stream_chunks("x" * 30, pieces=30)
    with FakeOpenAI() as fake:
        fake.default = SseReply(events, pauses={10: 0.15, 20: 0.15})
        client = UpstreamClient(provider(fake.base_url))
        try:
            reads, idle = await reads_at_idle(client)
        finally:
            await client.aclose()
    assert reads == len(events) + 1  # one read per HTTP chunk, [DONE] included
    # Everything sent before each pause had been handed over when the hook ran.
    assert 10 in idle and 20 in idle
    assert idle == sorted(idle)


async def test_on_idle_is_not_called_per_chunk_when_the_data_is_already_there() -> None:
    events = stream_chunks("y" * 50, pieces=50)
    with FakeOpenAI() as fake:
        fake.default = SseReply(events)  # the whole answer in one write
        client = UpstreamClient(provider(fake.base_url))
        try:
            reads, idle = await reads_at_idle(client)
        finally:
            await client.aclose()
    assert reads == len(events) + 1
    assert len(idle) <= 2, idle


class _Chunks(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in (b"data: 1\n\n", b"data: 2\n\n", b"data: [DONE]\n\n"):
            yield part


async def test_on_idle_runs_after_every_read_on_other_transports() -> None:
    transport = httpx.MockTransport(lambda _: httpx.Response(200, stream=_Chunks()))
    client = UpstreamClient(provider("http://127.0.0.1:9"), transport=transport)
    try:
        reads, idle = await reads_at_idle(client)
    finally:
        await client.aclose()
    assert (reads, idle) == (3, [1, 2, 3])
