"""Cooldowns and retries of one upstream call (`UpstreamClient`) against a real fake OpenAI
server: a throttled key cools for its model only, a single key is never locked out, a refused
key does not take the others' models, and the retry rules (statuses, Retry-After up to the cap,
`x-should-retry: false`, the total deadline)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.fakes import faults
from tests.fakes.openai_upstream import FakeOpenAI, JsonReply, Recorded, Reply, completion
from tests.harness import Place
from vdm.config.settings import ConfigError, ProviderConfig, Settings
from vdm.config.timeouts import Timeouts
from vdm.protocol.errors import VdmError, failover_worthy
from vdm.upstream import client as client_module
from vdm.upstream.client import Call, UpstreamClient, backoff

pytestmark = pytest.mark.anyio

K1, K2, K3 = "sk-test-AAAA-key-one-1111", "sk-test-BBBB-key-two-2222", "sk-test-CCCC-key-three-33"
BODY = b'{"model":"m","messages":[]}'
PATH = "/chat/completions"


def provider(base_url: str, keys: tuple[str, ...] = (K1,), **options: object) -> ProviderConfig:
    return ProviderConfig(name="fake", api_keys=keys, base_url=base_url, **options)  # type: ignore[arg-type]


def key_of(request: Recorded) -> str:
    return request.headers.get("authorization", "").removeprefix("Bearer ")


@pytest.fixture
async def no_sleep(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[float]]:
    """Retries wait no real time; the waits asked for are recorded."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(client_module.anyio, "sleep", sleep)
    yield waits


async def call(client: UpstreamClient, model: str = "gpt-4o", info: Call | None = None) -> object:
    return await client.post_json(PATH, BODY, model=model, call=info)


async def error_of(client: UpstreamClient, model: str = "gpt-4o") -> VdmError:
    with pytest.raises(VdmError) as caught:
        await call(client, model)
    return caught.value


# --- a single key is never locked out -------------------------------------------------------


async def test_one_key_a_429_with_a_long_retry_after_is_relayed_and_the_next_call_goes_upstream(
    no_sleep: list[float],
) -> None:
    with FakeOpenAI() as fake:
        fake.enqueue(faults.rate_limited(retry_after="3600"))
        client = UpstreamClient(provider(fake.base_url))
        try:
            error = await error_of(client)
            # Relayed at once (above the 60 s cap: no retry), with the upstream's retry-after.
            assert error.status == 429
            assert error.headers["retry-after"] == "3600"
            assert no_sleep == []
            assert failover_worthy(error)
            # Not locked out: the very next call reaches the upstream and succeeds.
            assert await call(client)
            assert fake.request_count == 2
            assert client.keys.cooling() == []
        finally:
            await client.aclose()


async def test_one_key_a_429_within_the_cap_is_retried_after_its_retry_after(
    no_sleep: list[float],
) -> None:
    with FakeOpenAI() as fake:
        fake.enqueue(faults.rate_limited(retry_after="2"))
        client = UpstreamClient(provider(fake.base_url))
        try:
            assert await call(client)
        finally:
            await client.aclose()
        assert no_sleep == [2.0]
        assert fake.request_count == 2


@pytest.mark.parametrize("status", [401, 403])
async def test_one_key_a_refused_key_is_relayed_and_tried_again_next_time(status: int) -> None:
    with FakeOpenAI() as fake:
        fake.enqueue(faults.status(status))
        client = UpstreamClient(provider(fake.base_url))
        try:
            error = await error_of(client)
            assert error.status == status
            assert not failover_worthy(error)
            assert await call(client)
        finally:
            await client.aclose()
        assert fake.request_count == 2


# --- several keys: per (key, model) ---------------------------------------------------------


async def test_a_429_moves_the_call_to_the_next_key_and_cools_that_model_only(
    no_sleep: list[float],
) -> None:
    with FakeOpenAI() as fake:
        fake.enqueue(faults.rate_limited(retry_after="3600"))
        client = UpstreamClient(provider(fake.base_url, (K1, K2)))
        try:
            info = Call()
            assert await call(client, "gpt-4o", info)
            assert [key_of(r) for r in fake.requests] == [K1, K2]
            assert info.attempts == 2
            # K1 cools for gpt-4o, for the cap (60 s) not the hour asked.
            (cooldown,) = client.keys.cooling()
            assert (cooldown.model, cooldown.status) == ("gpt-4o", 429)
            assert 59 < cooldown.seconds_left <= 60
            assert abs(cooldown.until - time.time() - cooldown.seconds_left) < 1
            assert K1 not in repr(cooldown)
            # gpt-4o now only uses K2; the provider's other model still uses both keys.
            for _ in range(2):
                await call(client, "gpt-4o")
            for _ in range(2):
                await call(client, "gpt-4o-mini")
            keys = [key_of(r) for r in fake.requests[2:]]
            assert keys[:2] == [K2, K2]
            assert sorted(keys[2:]) == [K1, K2]
        finally:
            await client.aclose()
        assert no_sleep == []


async def test_a_refused_key_does_not_block_the_other_keys_models() -> None:
    def answer(request: Recorded) -> Reply:
        if key_of(request) == K2:
            return faults.status(401)
        return JsonReply(completion("ok"))

    with FakeOpenAI() as fake:
        fake.default = answer
        client = UpstreamClient(provider(fake.base_url, (K1, K2, K3)))
        try:
            models = ["gpt-4o", "gpt-4o-mini", "o3", "gpt-4.1"] * 3
            for model in models:
                assert await call(client, model)
        finally:
            await client.aclose()
        # K2 was refused once, then disabled for every model; K1 and K3 served all the rest.
        keys = [key_of(r) for r in fake.requests]
        assert keys.count(K2) == 1
        assert len(keys) == len(models) + 1
        (cooldown,) = client.keys.cooling()
        assert (cooldown.model, cooldown.status) == (None, 401)


async def test_every_key_throttled_waits_for_the_first_back_within_the_cap() -> None:
    with FakeOpenAI() as fake:
        fake.enqueue(faults.rate_limited("0.3"), faults.rate_limited("5"))
        client = UpstreamClient(provider(fake.base_url, (K1, K2)))
        started = time.monotonic()
        try:
            assert await call(client)
        finally:
            await client.aclose()
        # K1 came back first (0.3 s), well before K2 (5 s): the call waited for it.
        assert [key_of(r) for r in fake.requests] == [K1, K2, K1]
        assert 0.25 < time.monotonic() - started < 2.0


async def test_every_key_cooling_never_refuses_a_call_locally() -> None:
    with FakeOpenAI() as fake:
        fake.enqueue(faults.status(401), faults.status(403))
        client = UpstreamClient(provider(fake.base_url, (K1, K2)))
        try:
            first = await error_of(client)
            # Both keys refused: the client sees the upstream's own (last) answer.
            assert first.status == 403
            assert "fake returned HTTP 403" in first.message
            # Both keys are now disabled for every model, yet the next call goes upstream,
            # on the key back first, rather than getting a local 429.
            assert await call(client, "another-model")
        finally:
            await client.aclose()
        assert fake.request_count == 3
        assert key_of(fake.requests[-1]) == K1


# --- retry rules ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 409, 500, 502, 503, 529])
async def test_retryable_statuses_are_retried_with_jittered_backoff(
    status: int, no_sleep: list[float]
) -> None:
    with FakeOpenAI() as fake:
        fake.enqueue(faults.status(status), faults.status(status))
        client = UpstreamClient(provider(fake.base_url, max_retries=2))
        try:
            assert await call(client)
        finally:
            await client.aclose()
        assert fake.request_count == 3
        assert len(no_sleep) == 2
        assert 0 <= no_sleep[0] <= 0.5 and 0 <= no_sleep[1] <= 1.0


async def test_retries_stop_at_max_retries() -> None:
    with FakeOpenAI() as fake:
        fake.default = faults.status(503)
        client = UpstreamClient(provider(fake.base_url, max_retries=1))
        try:
            error = await error_of(client)
        finally:
            await client.aclose()
        assert fake.request_count == 2
        assert error.upstream is not None and error.upstream.status == 503
        assert failover_worthy(error)


async def test_x_should_retry_false_is_obeyed(no_sleep: list[float]) -> None:
    with FakeOpenAI() as fake:
        fake.enqueue(faults.status(503, headers={"x-should-retry": "false"}))
        fake.enqueue(faults.rate_limited("1"))
        client = UpstreamClient(provider(fake.base_url, (K1, K2)))
        try:
            error = await error_of(client)
        finally:
            await client.aclose()
        assert fake.request_count == 1
        assert error.headers["x-should-retry"] == "false"
        assert no_sleep == []


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_other_client_errors_are_not_retried(status: int) -> None:
    with FakeOpenAI() as fake:
        fake.enqueue(faults.status(status))
        client = UpstreamClient(provider(fake.base_url, max_retries=3))
        try:
            error = await error_of(client)
        finally:
            await client.aclose()
        assert fake.request_count == 1
        assert not failover_worthy(error)


async def test_a_retry_is_never_made_past_the_total_deadline() -> None:
    # A 503 asking for 2 s when only ~1 s of the call's total timeout is left: relayed now.
    with FakeOpenAI() as fake:
        fake.enqueue(faults.status(503, headers={"retry-after": "2"}))
        timeouts = Timeouts(connect=1.0, first_byte=1.0, idle=1.0, total=1.0)
        client = UpstreamClient(provider(fake.base_url, timeouts=timeouts, max_retries=5))
        started = time.monotonic()
        try:
            error = await error_of(client)
        finally:
            await client.aclose()
        assert time.monotonic() - started < 0.9
        assert fake.request_count == 1
        assert error.upstream is not None and error.upstream.status == 503


async def test_the_retry_after_cap_is_a_setting(no_sleep: list[float]) -> None:
    with FakeOpenAI() as fake:
        fake.enqueue(faults.rate_limited("10"))
        client = UpstreamClient(provider(fake.base_url, retry_after_cap=5.0))
        try:
            error = await error_of(client)
        finally:
            await client.aclose()
        assert error.headers["retry-after"] == "10"
        assert no_sleep == [] and fake.request_count == 1


def test_backoff_is_full_jitter_under_an_exponential_ceiling() -> None:
    highest: Callable[[float, float], float] = lambda low, high: high  # noqa: E731
    assert [backoff(n, highest) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert backoff(10_000, highest) == 8.0
    draws = {round(backoff(3), 3) for _ in range(50)}
    assert len(draws) > 10 and all(0 <= d <= 2.0 for d in draws)


# --- settings -------------------------------------------------------------------------------


def test_the_cap_and_the_size_limit_are_set_globally_per_provider_and_in_toml(
    tmp_path: Path,
) -> None:
    place = Place.make(tmp_path)
    place.write(
        "vandamme-config.toml",
        'retry-after-cap = 30\nmax-response-bytes = 5000\n[openai]\napi-key = "sk-x-1234"\n'
        'retry-after-cap = 10\n[groq]\napi-key = "gsk-x-1234"\n',
    )
    settings = place.load(GROQ_MAX_RESPONSE_BYTES="777")
    openai, groq = settings.providers["openai"], settings.providers["groq"]
    assert (openai.retry_after_cap, openai.max_response_bytes) == (10.0, 5000)
    assert (groq.retry_after_cap, groq.max_response_bytes) == (30.0, 777)
    defaults = Settings.from_mapping({"OPENAI_API_KEY": "sk-x-1234"}).providers["openai"]
    assert (defaults.retry_after_cap, defaults.max_response_bytes) == (60.0, 32 * 1024 * 1024)
    assert UpstreamClient(openai).keys.retry_after_cap == 10.0


@pytest.mark.parametrize("value", ["0", "-1", "lots"])
def test_a_bad_size_limit_is_a_configuration_error(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_mapping({"OPENAI_API_KEY": "sk-x-1234", "MAX_RESPONSE_BYTES": value})
    assert caught.value.var == "MAX_RESPONSE_BYTES"
