"""A provider's API keys: round robin over the usable ones, cooldown for the ones that failed.

A key that the upstream rejects (401/402/403), throttles (429) or reports out of quota is put
on cooldown; requests rotate over the others until it comes back. The cooldown is the
upstream's Retry-After when it sends one, else an exponential backoff per key.

Pure bookkeeping: no I/O, no awaits, no threads. Under asyncio each method therefore runs to
completion without interleaving, so concurrent requests on one event loop can share a pool
without a lock. (It is not meant to be shared across threads.)

Keys are secrets: nothing here puts one in an exception message, a repr or a log line. Use
`mask()` wherever a key has to be identified.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

from vdm.config.secrets import mask

log = logging.getLogger(__name__)

#: Upstream statuses that mean "this key is unusable now": bad key, unpaid, forbidden, throttled.
FAILOVER_STATUSES: frozenset[int] = frozenset({401, 402, 403, 429})

#: Statuses whose body may still say "out of quota" (some providers answer 400 or 404).
_QUOTA_BODY_STATUSES = frozenset({400, 404})
#: Words that mark a quota error in a machine-readable field (error code, type or status).
_QUOTA_IDENTIFIER_WORDS = ("quota", "billing", "credit")
#: Phrases that mark a quota error in a human-readable message; exact phrases, to stay
#: conservative: a 400 that is really the client's fault must not burn a key.
_QUOTA_MESSAGE_PHRASES = (
    "insufficient_quota",
    "exceeded your current quota",
    "quota exceeded",
    "billing_hard_limit_reached",
    "billing hard limit",
    "credit balance is too low",
    "insufficient credit",
)
#: Error bodies are small; a large one is not an error object worth parsing.
_MAX_ERROR_BODY = 64 * 1024

#: Longest Retry-After honoured: a day. Longer values are more likely bugs than intent.
_MAX_RETRY_AFTER = 86_400.0


def is_quota_error(status: int, body: bytes) -> bool:
    """True if the key that got this answer should stop being used for now.

    Every status of FAILOVER_STATUSES counts. A 400 or 404 counts only if its JSON error's
    code, type or message says quota, billing or credit (OpenAI's `insufficient_quota` and
    `billing_hard_limit_reached`, Anthropic's "credit balance is too low"). Any other status,
    a body that is not JSON, or an ordinary error returns False.
    """
    if status in FAILOVER_STATUSES:
        return True
    if status not in _QUOTA_BODY_STATUSES or not body or len(body) > _MAX_ERROR_BODY:
        return False
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return any(_says_quota(error) for error in _error_objects(data))


def _error_objects(data: Any) -> list[Any]:
    """The error objects of a parsed body: `{"error": {...}}`, a bare error, or a list of them."""
    items = data if isinstance(data, list) else [data]
    errors: list[Any] = []
    for item in items:
        if isinstance(item, dict):
            errors.append(item)
            if "error" in item:
                errors.append(item["error"])
    return errors


def _says_quota(error: Any) -> bool:
    if isinstance(error, str):
        return _message_says_quota(error)
    if not isinstance(error, dict):
        return False
    for field in ("code", "type", "status"):
        value = error.get(field)
        if isinstance(value, str) and any(w in value.lower() for w in _QUOTA_IDENTIFIER_WORDS):
            return True
    message = error.get("message")
    return isinstance(message, str) and _message_says_quota(message)


def _message_says_quota(message: str) -> bool:
    lowered = message.lower()
    return any(phrase in lowered for phrase in _QUOTA_MESSAGE_PHRASES)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header, capped at one day.

    Accepts delta-seconds (`120`, also `1.5`) or an HTTP date, measured from `now` (Unix time,
    default `time.time()`). None when the header is absent, unparseable, negative, or a date
    already past, so that the caller falls back to its own backoff.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    seconds: float | None
    try:
        seconds = float(text)
    except ValueError:
        seconds = _seconds_until_date(text, time.time() if now is None else now)
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, _MAX_RETRY_AFTER) + 0.0  # + 0.0 turns "-0" into 0.0


def _seconds_until_date(text: str, now: float) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" dates: RFC 5322 says UTC with no known local zone
        when = when.replace(tzinfo=UTC)
    return when.timestamp() - now


@dataclass(slots=True)
class KeyState:
    """One key's health: consecutive failures, cooldown end (clock time, 0.0 if never),
    and the status of the latest failure since the last success."""

    key: str
    failures: int = 0
    cooling_until: float = 0.0
    last_status: int | None = None

    def __repr__(self) -> str:  # never show the key, even in a traceback
        return (
            f"KeyState(key={mask(self.key)!r}, failures={self.failures}, "
            f"cooling_until={self.cooling_until!r}, last_status={self.last_status!r})"
        )


class AllKeysCooling(Exception):
    """Every key of a provider is cooling down; `retry_after` says for how long (seconds)."""

    def __init__(self, provider: str, key_count: int, retry_after: float) -> None:
        self.provider = provider
        self.key_count = key_count
        self.retry_after = max(0.0, retry_after)
        super().__init__(str(self))

    def __str__(self) -> str:
        which = "the only key" if self.key_count == 1 else f"all {self.key_count} keys"
        return (
            f"{which} of provider {self.provider!r} "
            f"{'is' if self.key_count == 1 else 'are'} cooling down after errors; "
            f"the first is usable again in {math.ceil(self.retry_after)} s"
        )


class KeyPool:
    """A provider's keys in round-robin order, skipping keys on cooldown.

    Keys are identified by their value: duplicates and empty strings in `keys` are dropped,
    keeping the first occurrence's place. `clock` must be monotonic (seconds); all times in
    KeyState are on that clock.
    """

    def __init__(
        self,
        provider: str,
        keys: Sequence[str],
        *,
        clock: Callable[[], float] = time.monotonic,
        base_cooldown: float = 5.0,
        max_cooldown: float = 300.0,
    ) -> None:
        if isinstance(keys, str):  # a str is a Sequence[str]: each character would be a key
            raise TypeError("keys must be a sequence of keys, not a single str")
        if not 0 <= base_cooldown <= max_cooldown:
            raise ValueError(
                f"need 0 <= base_cooldown <= max_cooldown, got {base_cooldown}, {max_cooldown}"
            )
        self.provider = provider
        self._clock = clock
        self._base = base_cooldown
        self._max = max_cooldown
        self._states: dict[str, KeyState] = {}
        for key in keys:
            if key and key not in self._states:
                self._states[key] = KeyState(key)
        self._order = list(self._states.values())
        self._next = 0  # index in _order where the next search starts

    def __len__(self) -> int:
        return len(self._order)

    def __repr__(self) -> str:
        now = self._clock()
        cooling = sum(1 for s in self._order if s.cooling_until > now)
        return f"KeyPool(provider={self.provider!r}, keys={len(self)}, cooling={cooling})"

    def acquire(self, exclude: Collection[str] = ()) -> str | None:
        """The next usable key in round-robin order, skipping cooling keys and `exclude`.

        `exclude` holds the keys this request already tried. Returns "" for a pool without
        keys (keyless providers), and None when a key is usable now but the request excluded
        all such keys (it has tried every usable key). Raises AllKeysCooling when no key at
        all is usable now, excluded or not; a caller that already has an upstream error from
        an earlier try may prefer to return that instead.
        """
        if not self._order:
            return ""
        now = self._clock()
        count = len(self._order)
        any_usable = False
        for step in range(count):
            index = (self._next + step) % count
            state = self._order[index]
            if state.cooling_until > now:
                continue
            any_usable = True
            if state.key in exclude:
                continue
            self._next = (index + 1) % count
            return state.key
        if any_usable:
            return None
        raise AllKeysCooling(self.provider, count, self._earliest_return() - now)

    def failed(self, key: str, status: int, retry_after: float | None = None) -> float:
        """Record a failure of `key` and put it on cooldown; returns the cooldown in seconds.

        The cooldown is `retry_after` when given (exactly, even above max_cooldown), else
        base_cooldown * 2**(failures - 1) capped at max_cooldown. A single-key pool cools its
        key only when given a Retry-After and never for 401/403: with no other key to turn to,
        the client should see the upstream's own error rather than a cooldown. Unknown keys
        (and "" of a keyless pool) are ignored; both cases return 0.0.
        """
        state = self._states.get(key)
        if state is None:
            return 0.0
        state.failures += 1
        state.last_status = status
        if len(self._order) == 1 and (retry_after is None or status in (401, 403)):
            return 0.0
        if retry_after is not None:
            cooldown = max(0.0, retry_after)
        else:
            exponent = min(state.failures - 1, 64)  # 2.0**64 * base is far past any cap
            cooldown = min(self._max, self._base * 2.0**exponent)
        if cooldown <= 0:
            return 0.0
        state.cooling_until = self._clock() + cooldown
        log.info(
            "provider %r key %s cooling down for %.1f s after status %d",
            self.provider,
            mask(key),
            cooldown,
            status,
        )
        return cooldown

    def succeeded(self, key: str) -> None:
        """Record a success: the key's backoff starts from base_cooldown again.

        A cooldown already running is kept: the request may have started before it.
        """
        state = self._states.get(key)
        if state is not None:
            state.failures = 0
            state.last_status = None

    def states(self) -> list[KeyState]:
        """A copy of every key's state, in configured order. Callers mask keys for display."""
        return [dataclasses.replace(state) for state in self._order]

    def next_available_in(self) -> float:
        """Seconds until some key is usable: 0.0 if one is usable now or the pool is keyless."""
        if not self._order:
            return 0.0
        return max(0.0, self._earliest_return() - self._clock())

    def _earliest_return(self) -> float:
        return min(state.cooling_until for state in self._order)
