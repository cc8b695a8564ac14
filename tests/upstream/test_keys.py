"""The per-provider key pool: round robin, failover within a request, cooldowns per (key,
model) that never lock a user out of their only key, and backoff."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from email.utils import formatdate

import pytest

from vdm.config.secrets import mask
from vdm.upstream.keys import (
    FAILOVER_STATUSES,
    AllKeysCooling,
    Cooldown,
    KeyPool,
    is_quota_error,
    parse_retry_after,
)

K1 = "sk-proj-AAAAfirstSECRETkey1111"
K2 = "sk-proj-BBBBsecondSECRETkey2222"
K3 = "sk-proj-CCCCthirdSECRETkey3333"
KEYS = (K1, K2, K3)
M = "gpt-4o"
OTHER = "gpt-4o-mini"


class FakeClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _pool(keys: tuple[str, ...] = KEYS, **kwargs: float) -> tuple[KeyPool, FakeClock]:
    clock = FakeClock()
    wall = lambda: clock.now + 1_700_000_000.0  # noqa: E731
    return KeyPool("openai", keys, clock=clock, wall_clock=wall, **kwargs), clock


def _request(pool: KeyPool, outcomes: Mapping[str, int], model: str = M) -> list[str]:
    """One request as the upstream client makes it: try keys until one is not a key failure.

    Returns the keys tried, in order. `outcomes` maps a key to its upstream status (200 if absent).
    """
    tried: list[str] = []
    while (key := pool.acquire(model, tried)) is not None:
        tried.append(key)
        status = outcomes.get(key, 200)
        if status in FAILOVER_STATUSES:
            pool.failed(key, model, status)
            continue
        pool.succeeded(key, model)
        break
    return tried


def _leaks(text: str, keys: tuple[str, ...] = KEYS) -> list[str]:
    """The keys of which `text` shows the full value or a secret middle part."""
    return [k for k in keys if k in text or k[8:20] in text]


# round robin and failover


def test_round_robin_cycles_over_keys_in_configured_order() -> None:
    pool, _ = _pool()
    assert [pool.acquire(M) for _ in range(7)] == [K1, K2, K3, K1, K2, K3, K1]


def test_request_fails_over_then_next_request_skips_cooling_keys() -> None:
    pool, _ = _pool()
    assert _request(pool, {K1: 401, K2: 429}) == [K1, K2, K3]
    # K1 and K2 are cooling for this model: the next requests all land on K3.
    assert _request(pool, {}) == [K3]
    assert _request(pool, {}) == [K3]


def test_acquire_returns_none_when_every_usable_key_was_tried() -> None:
    pool, _ = _pool()
    assert pool.acquire(M, exclude=KEYS) is None
    pool.failed(K2, M, 429)
    pool.failed(K3, M, 429)
    # K1 is usable but this request already tried it: None, not AllKeysCooling.
    assert pool.acquire(M, exclude={K1}) is None


def test_request_that_exhausts_every_key_ends_in_all_keys_cooling() -> None:
    pool, _ = _pool()
    with pytest.raises(AllKeysCooling) as info:
        _request(pool, {K1: 429, K2: 429, K3: 402})
    assert info.value.model == M
    assert f"cooling down for model {M!r}" in str(info.value)


# cooldowns per (key, model)


def test_a_429_cools_the_key_for_that_model_only() -> None:
    pool, _ = _pool()
    assert pool.failed(K1, M, 429, retry_after=30.0) == 30.0
    # The throttled model skips K1; the provider's other models still use it.
    assert [pool.acquire(M) for _ in range(4)] == [K2, K3, K2, K3]
    assert [pool.acquire(OTHER) for _ in range(3)] == [K1, K2, K3]


def test_a_quota_error_cools_for_that_model_only() -> None:
    pool, _ = _pool((K1, K2))
    assert pool.failed(K1, M, 400) == 5.0  # a 400 whose body said "insufficient_quota"
    assert pool.acquire(OTHER, exclude={K2}) == K1
    assert pool.acquire(M, exclude={K2}) is None


@pytest.mark.parametrize("status", [401, 402, 403])
def test_a_refused_key_is_disabled_for_every_model_until_its_cooldown_ends(status: int) -> None:
    pool, clock = _pool()
    assert pool.failed(K1, M, status) == 5.0
    for model in (M, OTHER, "anything"):
        assert pool.acquire(model, exclude={K2, K3}) is None
    # The other keys serve every model meanwhile.
    assert sorted(pool.acquire(OTHER) or "" for _ in range(2)) == sorted((K2, K3))
    clock.advance(5.0)
    # Its cooldown is over: the next call simply uses it again (a probe).
    assert pool.acquire(OTHER, exclude={K2, K3}) == K1


def test_a_refused_key_does_not_block_the_other_keys_models() -> None:
    pool, _ = _pool()
    pool.failed(K1, M, 401)
    assert _request(pool, {}, model=OTHER) in ([K2], [K3])
    assert _request(pool, {}, model=M) in ([K2], [K3])
    assert pool.cooling()[0].model is None  # every model


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    pool, clock = _pool(retry_after_cap=60.0)
    assert pool.failed(K1, M, 429, retry_after=42.0) == 42.0
    assert pool.failed(K2, M, 429, retry_after=3600.0) == 60.0
    clock.advance(41.9)
    assert [pool.acquire(M) for _ in range(3)] == [K3, K3, K3]
    clock.advance(0.1)
    assert pool.acquire(M, exclude={K3}) == K1
    clock.advance(60 - 42.0 - 0.1)
    assert pool.acquire(M, exclude={K1, K3}) is None  # K2 still has 0.1 s to go
    clock.advance(0.1)
    assert pool.acquire(M, exclude={K1, K3}) == K2


def test_backoff_doubles_for_a_refused_key_up_to_max() -> None:
    pool, _ = _pool()
    cooldowns = [pool.failed(K1, M, 401) for _ in range(8)]
    assert cooldowns == [5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0]


def test_backoff_of_a_throttled_model_stops_at_the_cap() -> None:
    pool, _ = _pool(retry_after_cap=60.0)
    assert [pool.failed(K1, M, 429) for _ in range(6)] == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]


def test_backoff_respects_configured_base_and_cap() -> None:
    pool, _ = _pool(base_cooldown=1.0, max_cooldown=3.0)
    assert [pool.failed(K1, M, 401) for _ in range(4)] == [1.0, 2.0, 3.0, 3.0]


def test_backoff_never_overflows_after_many_failures() -> None:
    pool, _ = _pool()
    for _ in range(2000):
        last = pool.failed(K1, M, 401)
    assert last == 300.0


def test_success_resets_the_backoff() -> None:
    pool, _ = _pool()
    assert pool.failed(K1, M, 429) == 5.0
    assert pool.failed(K1, M, 429) == 10.0
    pool.succeeded(K1, M)
    assert pool.failures(K1, M) == 0
    assert pool.failed(K1, M, 429) == 5.0


def test_all_cooling_raises_with_time_until_earliest_key() -> None:
    pool, clock = _pool()
    pool.failed(K1, M, 429, retry_after=30.0)
    pool.failed(K2, M, 429, retry_after=12.0)
    pool.failed(K3, M, 401, retry_after=20.0)
    clock.advance(0.5)
    with pytest.raises(AllKeysCooling) as info:
        pool.acquire(M)
    exc = info.value
    assert exc.retry_after == pytest.approx(11.5)
    assert exc.provider == "openai"
    assert str(exc) == (
        f"all 3 keys of provider 'openai' are cooling down for model {M!r} after errors; "
        "the first is usable again in 12 s"
    )
    assert pool.next_available_in(M) == pytest.approx(11.5)
    assert pool.next_available_in(OTHER) == 0.0


def test_keys_come_back_after_their_cooldown() -> None:
    pool, clock = _pool()
    for key in KEYS:
        pool.failed(key, M, 429)  # 5 s each
    with pytest.raises(AllKeysCooling):
        pool.acquire(M)
    clock.advance(5.0)
    assert pool.next_available_in(M) == 0.0
    assert sorted(pool.acquire(M) or "" for _ in range(3)) == sorted(KEYS)


def test_cooling_lists_running_cooldowns_masked_with_wall_clock_ends() -> None:
    pool, clock = _pool()
    pool.failed(K2, M, 429, retry_after=20.0)
    pool.failed(K1, M, 403)
    clock.advance(2.0)
    assert pool.cooling() == [
        Cooldown(mask(K1), None, clock.now + 1_700_000_000.0 + 3.0, 3.0, 403),
        Cooldown(mask(K2), M, clock.now + 1_700_000_000.0 + 18.0, 18.0, 429),
    ]
    clock.advance(3.0)
    assert [c.key for c in pool.cooling()] == [mask(K2)]
    clock.advance(18.0)
    assert pool.cooling() == []


def test_many_model_names_do_not_grow_the_pool_for_ever() -> None:
    pool, clock = _pool()
    for i in range(500):
        pool.failed(K1, f"model-{i}", 429, retry_after=1.0)
        clock.advance(1.0)
    # Scopes whose cooldown ended more than max_cooldown (300 s) ago are forgotten.
    assert len(pool._scopes) <= 302


def test_cooling_is_logged_with_masked_key(caplog: pytest.LogCaptureFixture) -> None:
    pool, _ = _pool()
    with caplog.at_level(logging.INFO, logger="vdm.upstream.keys"):
        pool.failed(K1, M, 429, retry_after=7.0)
    assert len(caplog.records) == 1
    line = caplog.records[0].getMessage()
    assert "'openai'" in line and mask(K1) in line and "429" in line and "7.0 s" in line
    assert M in line
    assert _leaks(line) == []


# single key and keyless pools


@pytest.mark.parametrize("status", [401, 402, 403, 429, 400])
def test_single_key_pool_never_cools_its_key(status: int) -> None:
    pool, _ = _pool((K1,))
    assert pool.failed(K1, M, status) == 0.0
    assert pool.failed(K1, M, status, retry_after=3600.0) == 0.0
    assert pool.acquire(M) == K1
    assert pool.acquire(OTHER) == K1
    assert pool.cooling() == []
    assert pool.next_available_in(M) == 0.0


def test_keyless_pool_returns_empty_key() -> None:
    pool, _ = _pool(())
    assert len(pool) == 0
    assert [pool.acquire(M), pool.acquire(M, exclude={""})] == ["", ""]
    assert pool.failed("", M, 401) == 0.0
    assert pool.next_available_in(M) == 0.0
    assert pool.acquire(M) == ""


def test_duplicate_and_empty_keys_are_dropped() -> None:
    pool, _ = _pool((K1, "", K2, K1))
    assert len(pool) == 2
    assert [pool.acquire(M) for _ in range(3)] == [K1, K2, K1]


def test_a_single_str_is_rejected_not_split_into_characters() -> None:
    with pytest.raises(TypeError):
        KeyPool("openai", K1)


def test_unknown_key_is_ignored() -> None:
    pool, _ = _pool()
    assert pool.failed("sk-not-in-this-pool-0000", M, 401) == 0.0
    pool.succeeded("sk-not-in-this-pool-0000", M)
    assert [pool.acquire(M) for _ in range(3)] == list(KEYS)


# no key in any text


def test_no_repr_or_message_contains_a_key(caplog: pytest.LogCaptureFixture) -> None:
    pool, _ = _pool()
    with caplog.at_level(logging.DEBUG):
        for key in KEYS:
            pool.failed(key, M, 401)
        with pytest.raises(AllKeysCooling) as info:
            pool.acquire(M)
    error = info.value
    texts = [
        repr(pool),
        str(pool),
        repr(pool.cooling()),
        str(pool.cooling()),
        repr(error),
        str(error),
        *(record.getMessage() for record in caplog.records),
    ]
    assert len(caplog.records) == 3
    for text in texts:
        assert _leaks(text) == [], text
    assert mask(K1) in repr(pool.cooling())  # masked, yet identifiable


# parse_retry_after


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("999999", 999_999.0),  # the caller caps it (RETRY_AFTER_CAP)
        (None, None),
        ("", None),
        ("soon", None),
        ("Mon, 99 Foo 2024", None),
        ("-5", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == 30.0
    assert parse_retry_after(formatdate(now + 90, localtime=True), now=now) == 90.0
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) is None


def test_parse_retry_after_zoneless_date_is_utc_whatever_the_local_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = 1_700_000_000.0
    value = formatdate(now + 60)  # "... -0000": UTC, no zone given
    assert value.endswith("-0000")
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert parse_retry_after(value, now=now) == 60.0
    finally:
        monkeypatch.undo()
        time.tzset()


# mask


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        ("sk-proj-abcdef123456", "sk-…3456"),
        ("sk-ant-api03-xyzxyzxyz9876", "sk-…9876"),
        ("AIzaSyD-abcdefghijklmnop", "AIz…mnop"),
        ("abcdefghij", "…ghij"),  # too short for a prefix as well
        ("abcdefgh", "…gh"),
        ("abcd", "…"),
        ("", ""),
    ],
)
def test_mask(secret: str, expected: str) -> None:
    assert mask(secret) == expected


@pytest.mark.parametrize("length", range(1, 40))
def test_mask_hides_at_least_half(length: int) -> None:
    secret = "".join(chr(ord("a") + i % 26) for i in range(length))
    shown = mask(secret).replace("…", "")
    assert len(shown) <= length // 2
    assert mask(secret) != secret


# is_quota_error


def _body(error: object) -> bytes:
    return json.dumps({"error": error}).encode()


OPENAI_QUOTA = _body(
    {
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
)
ANTHROPIC_CREDIT = json.dumps(
    {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "Your credit balance is too low to access the Anthropic API.",
        },
    }
).encode()
ORDINARY_400 = _body(
    {
        "message": "max_tokens is too large: 999999.",
        "type": "invalid_request_error",
        "code": None,
    }
)


def test_quota_error_for_failover_statuses() -> None:
    assert is_quota_error(429, OPENAI_QUOTA)
    assert all(is_quota_error(status, b"") for status in (401, 402, 403, 429))


def test_quota_error_in_a_400_or_404_body() -> None:
    assert is_quota_error(400, OPENAI_QUOTA)
    assert is_quota_error(400, ANTHROPIC_CREDIT)
    assert is_quota_error(404, _body({"code": "billing_hard_limit_reached", "message": "x"}))
    assert is_quota_error(400, b'[{"error": {"status": "RESOURCE_QUOTA_EXHAUSTED"}}]')


def test_ordinary_errors_are_not_quota_errors() -> None:
    assert not is_quota_error(400, ORDINARY_400)
    assert not is_quota_error(400, b"quota exceeded")  # not JSON: stay conservative
    assert not is_quota_error(500, OPENAI_QUOTA)  # a server error is not about the key
    assert not is_quota_error(422, OPENAI_QUOTA)  # only 400 and 404 bodies are read
    assert not is_quota_error(400, _body({"message": "credit card field is required"}))
    assert not is_quota_error(200, b"")
