"""A provider's API keys: round robin over the usable ones, cooldowns per (key, model).

A key the upstream throttles (429) or reports out of quota cools down for THAT MODEL only: a
provider's limits are per model, and one busy model must not take its others away. A key it
refuses (401/402/403) is disabled for every model until its cooldown ends; it is then simply
used again, which probes it. The cooldown is the upstream's Retry-After when it sends one (up
to `retry_after_cap`, `RETRY_AFTER_CAP`), else an exponential backoff per (key, model).

A pool of ONE key never cools it: with no other key to turn to, a cooldown would only answer
the user's requests with a local 429 for as long as it lasts, when the upstream may well take
the next one. The client relays the upstream's own error (with its `retry-after`) instead.
Likewise, when every key of a larger pool is cooling for a model, a new call still goes
upstream, on the key back first (`soonest`): cooldowns steer calls between keys, they never
refuse one locally.

Pure bookkeeping: no I/O, no awaits, no threads. Under asyncio each method therefore runs to
completion without interleaving, so concurrent requests on one event loop can share a pool
without a lock. (It is not meant to be shared across threads.)

Keys are secrets: nothing here puts one in an exception message, a repr or a log line. Use
`mask()` wherever a key has to be identified.
"""

from __future__ import annotations

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
#: Of those, the ones about the key itself, whatever the model: it is disabled for every model.
KEY_STATUSES: frozenset[int] = frozenset({401, 402, 403})

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
    """Seconds to wait from a Retry-After header, as the upstream said (callers cap it:
    `RETRY_AFTER_CAP`).

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
    return seconds + 0.0  # + 0.0 turns "-0" into 0.0


def _seconds_until_date(text: str, now: float) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" dates: RFC 5322 says UTC with no known local zone
        when = when.replace(tzinfo=UTC)
    return when.timestamp() - now


@dataclass(frozen=True, slots=True)
class Cooldown:
    """One running cooldown, as /health shows it: never the key itself."""

    #: The key, masked (`mask`).
    key: str
    #: The model it cools for; None: every model (the upstream refused the key itself).
    model: str | None
    #: When it ends, as Unix time (wall clock).
    until: float
    #: Seconds left.
    seconds_left: float
    #: The upstream status that started it.
    status: int


@dataclass(slots=True)
class _Cooling:
    """The bookkeeping of one (key, model) scope: consecutive failures, the end of its
    cooldown (pool clock; 0.0 if none) and the status of the latest failure."""

    failures: int = 0
    until: float = 0.0
    status: int = 0


class AllKeysCooling(Exception):
    """Every key of a provider is cooling down for the model; `retry_after` says for how long
    (seconds)."""

    def __init__(self, provider: str, key_count: int, retry_after: float, model: str = "") -> None:
        self.provider = provider
        self.key_count = key_count
        self.retry_after = max(0.0, retry_after)
        self.model = model
        super().__init__(str(self))

    def __str__(self) -> str:
        which = "the only key" if self.key_count == 1 else f"all {self.key_count} keys"
        verb = "is" if self.key_count == 1 else "are"
        scope = f" for model {self.model!r}" if self.model else ""
        return (
            f"{which} of provider {self.provider!r} {verb} cooling down{scope} after errors; "
            f"the first is usable again in {math.ceil(self.retry_after)} s"
        )


#: A scope: (key, model), model None for "every model".
_Scope = tuple[str, str | None]


class KeyPool:
    """A provider's keys in round-robin order, skipping keys cooling for the model asked.

    Keys are identified by their value: duplicates and empty strings in `keys` are dropped,
    keeping the first occurrence's place. `clock` must be monotonic (seconds); `wall_clock`
    (Unix time) only dates the cooldowns `cooling()` reports.

    Memory stays bounded whatever model names clients send: a scope is recorded only when
    the upstream failed it, and scopes idle for longer than `max_cooldown` are dropped.
    """

    def __init__(
        self,
        provider: str,
        keys: Sequence[str],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        base_cooldown: float = 5.0,
        max_cooldown: float = 300.0,
        retry_after_cap: float = 60.0,
    ) -> None:
        if isinstance(keys, str):  # a str is a Sequence[str]: each character would be a key
            raise TypeError("keys must be a sequence of keys, not a single str")
        if not 0 <= base_cooldown <= max_cooldown:
            raise ValueError(
                f"need 0 <= base_cooldown <= max_cooldown, got {base_cooldown}, {max_cooldown}"
            )
        self.provider = provider
        self._clock = clock
        self._wall_clock = wall_clock
        self._base = base_cooldown
        self._max = max_cooldown
        self.retry_after_cap = retry_after_cap
        self._keys = list(dict.fromkeys(k for k in keys if k))
        self._scopes: dict[_Scope, _Cooling] = {}
        self._next = 0  # index in _keys where the next search starts

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return (
            f"KeyPool(provider={self.provider!r}, keys={len(self)}, cooling={len(self.cooling())})"
        )

    def _cools_until(self, key: str, model: str) -> float:
        """When `key` is usable for `model` again (pool clock; 0.0: it is not cooling)."""
        every = self._scopes.get((key, None))
        own = self._scopes.get((key, model))
        return max(every.until if every else 0.0, own.until if own else 0.0)

    def acquire(self, model: str = "", exclude: Collection[str] = ()) -> str | None:
        """The next key usable for `model` in round-robin order, skipping `exclude`.

        `exclude` holds the keys this request already tried. Returns "" for a pool without
        keys (keyless providers), and None when a key is usable now but the request excluded
        all such keys (it has tried every usable key). Raises AllKeysCooling when no key at
        all is usable for `model` now, excluded or not.
        """
        keys = self._keys
        if not keys:
            return ""
        if not self._scopes and not exclude:
            # No key has ever failed (the usual case): plain round robin, no clock read.
            index = self._next
            self._next = (index + 1) % len(keys)
            return keys[index]
        now = self._clock()
        count = len(self._keys)
        any_usable = False
        earliest = math.inf
        for step in range(count):
            index = (self._next + step) % count
            key = self._keys[index]
            until = self._cools_until(key, model)
            if until > now:
                earliest = min(earliest, until)
                continue
            any_usable = True
            if key in exclude:
                continue
            self._next = (index + 1) % count
            return key
        if any_usable:
            return None
        raise AllKeysCooling(self.provider, count, earliest - now, model)

    def soonest(self, model: str = "") -> str:
        """The key that stops cooling for `model` first ("" for a keyless pool): the one to
        call when every key is cooling, so that a cooldown steers calls between keys but
        never refuses one without asking the upstream."""
        if not self._keys:
            return ""
        return min(self._keys, key=lambda key: self._cools_until(key, model))

    def failed(self, key: str, model: str, status: int, retry_after: float | None = None) -> float:
        """Record that the upstream failed `key` for `model` with `status` and cool it down;
        returns the cooldown in seconds (0.0: none).

        401/402/403 cool the key for every model, anything else (429, a quota error) for
        `model` only. The cooldown is `retry_after` when given, at most `retry_after_cap`;
        else base_cooldown * 2**(failures - 1), at most max_cooldown (and at most the cap for
        a per-model cooldown: a rate limit passes). A single-key pool never cools its key (see
        the module's docstring). Unknown keys (and "" of a keyless pool) are ignored.
        """
        if key not in self._keys:
            return 0.0
        now = self._clock()
        self._forget(now)
        scope: _Scope = (key, None if status in KEY_STATUSES else model)
        state = self._scopes.setdefault(scope, _Cooling())
        state.failures += 1
        state.status = status
        if len(self._keys) == 1:
            return 0.0
        limit = self._max if scope[1] is None else min(self._max, self.retry_after_cap)
        if retry_after is not None:
            cooldown = min(max(0.0, retry_after), self.retry_after_cap)
        else:
            exponent = min(state.failures - 1, 64)  # 2.0**64 * base is far past any cap
            cooldown = min(limit, self._base * 2.0**exponent)
        if cooldown <= 0:
            return 0.0
        state.until = max(state.until, now + cooldown)
        log.info(
            "provider %r key %s cooling down for %.1f s (%s) after status %d",
            self.provider,
            mask(key),
            cooldown,
            "every model" if scope[1] is None else f"model {model!r}",
            status,
        )
        return cooldown

    def succeeded(self, key: str, model: str = "") -> None:
        """Record a success of `key` for `model`: its backoff starts from base_cooldown again.

        A cooldown already running is kept: the request may have started before it.
        """
        if not self._scopes:
            return
        for scope in ((key, None), (key, model)):
            state = self._scopes.get(scope)
            if state is not None:
                state.failures = 0

    def failures(self, key: str, model: str | None = None) -> int:
        """Consecutive failures of `key` for `model` (None: of the key itself)."""
        state = self._scopes.get((key, model))
        return state.failures if state is not None else 0

    def cooling(self) -> list[Cooldown]:
        """The cooldowns running now, in key order, keys masked: for /health."""
        now, wall = self._clock(), self._wall_clock()
        order = {key: index for index, key in enumerate(self._keys)}
        running = [
            (
                order[key],
                model or "",
                Cooldown(
                    mask(key), model, wall + state.until - now, state.until - now, state.status
                ),
            )
            for (key, model), state in self._scopes.items()
            if state.until > now
        ]
        return [cooldown for *_, cooldown in sorted(running, key=lambda r: (r[0], r[1]))]

    def next_available_in(self, model: str = "") -> float:
        """Seconds until some key is usable for `model`: 0.0 if one is usable now or the pool
        is keyless."""
        if not self._keys:
            return 0.0
        now = self._clock()
        return max(0.0, min(self._cools_until(key, model) for key in self._keys) - now)

    def _forget(self, now: float) -> None:
        """Drop the scopes whose cooldown ended more than max_cooldown ago: their failure
        count is stale, and model names are the clients' to choose."""
        stale = [scope for scope, state in self._scopes.items() if state.until + self._max < now]
        for scope in stale:
            del self._scopes[scope]
