"""What one upstream call did (`Call`), and the wait between its retries (`backoff`).

The exchange reads a `Call` once the client is done with it: the key used last (masked),
the attempts, the answer's headers with the upstream's own request id, the time waited.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

#: Backoff between retries without a Retry-After: full jitter (a uniform draw below
#: base * 2**(retry - 1), at most the ceiling), so clients throttled together spread out.
BACKOFF_BASE = 0.5
BACKOFF_MAX = 8.0
#: Where upstreams put their own request id (Anthropic, OpenAI and most others, Bedrock,
#: Azure, Google), in the order looked at.
UPSTREAM_ID_HEADERS = (
    "request-id",
    "x-request-id",
    "x-amzn-requestid",
    "apim-request-id",
    "x-goog-request-id",
)
_UPSTREAM_ID_NAMES = tuple(name.encode() for name in UPSTREAM_ID_HEADERS)


@dataclass(slots=True)
class Call:
    """What one upstream call did, for the exchange that made it: the key it used last
    (masked), how many HTTP attempts it took (retries and key failover included) and the
    headers of the answer it got (a stream's before its body is read)."""

    key: str | None = None
    attempts: int = 0
    headers: httpx.Headers | None = None
    #: Seconds spent waiting for the upstream: until a stream's headers, until a whole
    #: answer's last byte (retries and their waits included).
    waited: float = 0.0
    #: `request_id` of the headers it was last worked out for (asked for twice per call).
    _id_of: httpx.Headers | None = field(default=None, init=False, repr=False, compare=False)
    _id: str | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def request_id(self) -> str | None:
        """The upstream's own id of the answer, when its headers name one."""
        headers = self.headers
        if headers is None:
            return None
        if headers is not self._id_of:
            self._id = self._request_id(headers)
            self._id_of = headers
        return self._id

    @staticmethod
    def _request_id(headers: httpx.Headers) -> str | None:
        # One pass over the raw headers (five `Headers.get` calls scanned them five times).
        found: dict[bytes, list[bytes]] = {}
        for name, value in headers.raw:
            name = name.lower()
            if name in _UPSTREAM_ID_NAMES:
                found.setdefault(name, []).append(value)
        if not found:
            return None
        encoding = headers.encoding
        for wanted in _UPSTREAM_ID_NAMES:
            joined = b", ".join(found.get(wanted, ())).decode(encoding)
            if joined:
                return joined[:200]
        return None


def backoff(retry: int, draw: Callable[[float, float], float] = random.uniform) -> float:
    """Seconds to wait before retry number `retry` (1, 2, ...) when the upstream named no
    wait: full jitter over an exponential ceiling (`BACKOFF_BASE`, `BACKOFF_MAX`)."""
    ceiling = min(BACKOFF_BASE * 2.0 ** min(retry - 1, 32), BACKOFF_MAX)
    return draw(0.0, ceiling)
