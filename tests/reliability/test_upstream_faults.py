"""Non-streamed answers that go wrong while being read, against the fault-injecting fake
upstream (tests/fakes/faults.py): a body that never ends is cut at `MAX_RESPONSE_BYTES` with
bounded memory, a drip ends at the total timeout, and a reset, a short body, a corrupt gzip or
a page that is not JSON is a 502/504 naming the provider, never vdm's own 500. Then the same
through a served vdm with the official Anthropic SDK as its client."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import anthropic
import psutil
import pytest

from tests.fakes import faults
from tests.fakes.openai_upstream import (
    FakeOpenAI,
    JsonReply,
    RawReply,
    Reply,
    _head,
    _http_chunk,
    completion,
)
from tests.harness import running_vdm
from vdm.config.settings import ProviderConfig
from vdm.config.timeouts import Timeouts
from vdm.protocol.errors import VdmError, failover_worthy
from vdm.upstream.client import UpstreamClient

pytestmark = pytest.mark.anyio

BODY = b'{"model":"m","messages":[]}'
PATH = "/chat/completions"
FAST = Timeouts(connect=2.0, first_byte=5.0, idle=2.0, total=10.0)


def provider(base_url: str, **options: object) -> ProviderConfig:
    settings: dict[str, object] = {"timeouts": FAST, "max_retries": 0, **options}
    return ProviderConfig(name="fake", api_keys=("sk-test-1234",), base_url=base_url, **settings)  # type: ignore[arg-type]


async def failure(client: UpstreamClient, *, raw: bool = False) -> tuple[VdmError, float]:
    started = time.monotonic()
    with pytest.raises(VdmError) as caught:
        if raw:
            await client.post_bytes(PATH, BODY, model="m")
        else:
            await client.post_json(PATH, BODY, model="m")
    return caught.value, time.monotonic() - started


def endless_error(status: int = 500) -> RawReply:
    """An error status whose body never ends."""
    head = _head(
        status, {"content-type": "application/json", "transfer-encoding": "chunked"}, False
    )
    block = _http_chunk(b"x" * 65536)

    def parts() -> Iterator[bytes]:
        yield head
        while True:
            yield block

    return RawReply(parts)


# --- D2: size cap and total deadline --------------------------------------------------------


async def test_an_endless_body_is_cut_at_the_size_cap_with_bounded_memory() -> None:
    process = psutil.Process()
    with FakeOpenAI() as fake:
        fake.enqueue(faults.endless_json())
        client = UpstreamClient(provider(fake.base_url))  # the default cap: 32 MiB
        before = process.memory_info().rss
        try:
            error, took = await failure(client)
        finally:
            await client.aclose()
        grown = process.memory_info().rss - before
    assert error.status == 502
    assert "larger than 33554432 bytes" in error.message
    assert "MAX_RESPONSE_BYTES" in error.message and "FAKE_MAX_RESPONSE_BYTES" in error.message
    assert failover_worthy(error)
    assert took < 8.0
    assert grown < 160 * 1024 * 1024, grown


async def test_a_declared_length_above_the_cap_is_refused_before_reading() -> None:
    big = json.dumps(completion("y" * 5000)).encode()
    with FakeOpenAI() as fake:
        fake.enqueue(JsonReply(big))
        client = UpstreamClient(provider(fake.base_url, max_response_bytes=1000))
        try:
            error, _ = await failure(client)
        finally:
            await client.aclose()
    assert error.status == 502 and "larger than 1000 bytes" in error.message


async def test_a_body_under_the_cap_is_read_whole() -> None:
    with FakeOpenAI() as fake:
        fake.enqueue(JsonReply(completion("z" * 3000)))
        client = UpstreamClient(provider(fake.base_url, max_response_bytes=4000))
        try:
            answer = await client.post_json(PATH, BODY, model="m")
        finally:
            await client.aclose()
    assert answer["choices"][0]["message"]["content"] == "z" * 3000


async def test_a_drip_ends_at_the_total_timeout() -> None:
    body = json.dumps(completion("d" * 400)).encode()
    timeouts = Timeouts(connect=2.0, first_byte=2.0, idle=1.0, total=1.2)
    with FakeOpenAI() as fake:
        fake.enqueue(faults.drip(body, bytes_per_second=40))  # ~15 s for the whole body
        client = UpstreamClient(provider(fake.base_url, timeouts=timeouts))
        try:
            error, took = await failure(client)
        finally:
            await client.aclose()
    assert error.status == 504
    assert "TOTAL_TIMEOUT" in error.message and "fake" in error.message
    assert 1.0 < took < 2.5
    assert failover_worthy(error)


async def test_an_endless_error_body_does_not_hold_the_call() -> None:
    with FakeOpenAI() as fake:
        fake.enqueue(endless_error(500))
        client = UpstreamClient(provider(fake.base_url))
        try:
            error, took = await failure(client)
        finally:
            await client.aclose()
    assert error.upstream is not None and error.upstream.status == 500
    assert len(error.upstream.body) <= 1024 * 1024
    assert took < 5.0


# --- D7: a broken answer is a 502/504 naming the provider -----------------------------------


async def test_a_short_body_is_a_502_naming_the_provider() -> None:
    with FakeOpenAI() as fake:
        fake.enqueue(faults.truncated_json())
        client = UpstreamClient(provider(fake.base_url))
        try:
            error, _ = await failure(client, raw=True)
        finally:
            await client.aclose()
    assert error.status == 502
    assert "fake closed the connection unexpectedly" in error.message


async def test_a_reset_mid_body_is_a_502() -> None:
    head = _head(200, {"content-type": "application/json", "content-length": "5000"}, False)
    with FakeOpenAI() as fake:
        fake.enqueue(RawReply([head, b'{"id": "x", "choices": ['], end="abort"))
        client = UpstreamClient(provider(fake.base_url))
        try:
            error, _ = await failure(client)
        finally:
            await client.aclose()
    assert error.status == 502 and "fake" in error.message
    assert failover_worthy(error)


async def test_a_corrupt_gzip_body_is_a_502() -> None:
    with FakeOpenAI() as fake:
        fake.enqueue(faults.bad_gzip())
        client = UpstreamClient(provider(fake.base_url))
        try:
            error, _ = await failure(client)
        finally:
            await client.aclose()
    assert error.status == 502
    assert "fake sent a body that cannot be decoded" in error.message


async def test_an_html_page_claiming_200_is_a_502_quoting_the_status() -> None:
    with FakeOpenAI() as fake:
        fake.enqueue(faults.html_page(200))
        client = UpstreamClient(provider(fake.base_url))
        try:
            error, _ = await failure(client)
        finally:
            await client.aclose()
    assert error.status == 502
    assert "fake answered HTTP 200 (text/html; charset=utf-8)" in error.message
    assert "not valid JSON" in error.message and "<!DOCTYPE html>" in error.message
    assert failover_worthy(error)


async def test_get_json_fails_the_same_way() -> None:
    with FakeOpenAI() as fake:
        client = UpstreamClient(provider(fake.base_url, max_response_bytes=10))
        try:
            with pytest.raises(VdmError) as caught:
                await client.get_json("/models")
        finally:
            await client.aclose()
    assert caught.value.status == 502 and "MAX_RESPONSE_BYTES" in caught.value.message


async def test_a_stall_before_headers_is_a_failover_worthy_504() -> None:
    timeouts = Timeouts(connect=1.0, first_byte=0.4, idle=1.0, total=5.0)
    with FakeOpenAI() as fake:
        fake.enqueue(faults.stall_before_headers(3.0))
        client = UpstreamClient(provider(fake.base_url, timeouts=timeouts))
        try:
            error, took = await failure(client)
        finally:
            await client.aclose()
    assert error.status == 504 and "FIRST_BYTE_TIMEOUT" in error.message
    assert failover_worthy(error)
    assert took < 2.0


# --- through vdm: the client sees 502/504, never a 500 ---------------------------------------


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        (faults.truncated_json(), 502),
        (faults.bad_gzip(), 502),
        (faults.html_page(200), 502),
        (faults.endless_json(), 502),
    ],
    ids=["short", "gzip", "html", "endless"],
)
def test_through_vdm_a_broken_answer_is_a_502_not_a_500(fault: Reply, status: int) -> None:
    with FakeOpenAI() as fake:
        fake.enqueue(fault)
        env = {
            "OPENAI_API_KEY": "sk-test-5678",
            "OPENAI_BASE_URL": fake.base_url,
            "MAX_RETRIES": "0",
            "MAX_RESPONSE_BYTES": "2000000",
        }
        with running_vdm(env) as vdm:
            client = anthropic.Anthropic(base_url=vdm.url, api_key="x", max_retries=0)
            with pytest.raises(anthropic.APIStatusError) as caught:
                client.messages.create(
                    model="gpt-4o",
                    max_tokens=20,
                    messages=[{"role": "user", "content": "hi"}],
                )
    assert caught.value.status_code == status
    assert "openai" in caught.value.message


def test_through_vdm_a_drip_is_a_504_at_the_total_timeout() -> None:
    body = json.dumps(completion("d" * 400)).encode()
    with FakeOpenAI() as fake:
        fake.enqueue(faults.drip(body, bytes_per_second=40))
        env = {
            "OPENAI_API_KEY": "sk-test-5678",
            "OPENAI_BASE_URL": fake.base_url,
            "TOTAL_TIMEOUT": "1.5",
            "MAX_RETRIES": "0",
        }
        with running_vdm(env) as vdm:
            client = anthropic.Anthropic(base_url=vdm.url, api_key="x", max_retries=0)
            started = time.monotonic()
            with pytest.raises(anthropic.APIStatusError) as caught:
                client.messages.create(
                    model="gpt-4o",
                    max_tokens=20,
                    messages=[{"role": "user", "content": "hi"}],
                )
            took = time.monotonic() - started
    assert caught.value.status_code == 504
    assert "TOTAL_TIMEOUT" in caught.value.message
    assert took < 4.0
