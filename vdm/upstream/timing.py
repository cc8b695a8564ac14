"""One upstream call's clock: its four timeouts applied phase by phase, and which one fired.

httpx has one `read` timeout for a whole response. A call here has two read phases, with
different limits (vdm/config/timeouts.py):

* until the response headers arrive, reads wait up to the first-byte timeout (for a
  non-streamed answer that is the whole generation);
* once they have, each read of the body waits up to the idle timeout.

Each attempt gets its own httpx timeout dict (`extensions`), and `answered` lowers its `read`
entry when the headers are in: httpcore reads that entry again when the body starts. The
total timeout is a deadline for the whole call, retries included: every attempt's limits are
cut to what is left of it, and on vdm's own transport no body read waits past it (the
`DEADLINE` extension, vdm/upstream/pool.py); on another transport (an HTTP proxy) the body
is checked against it between reads. Nothing here adds a cancel scope or a timer per read.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from vdm.config.secrets import safe_url
from vdm.config.settings import ProviderConfig
from vdm.config.timeouts import show
from vdm.protocol.errors import VdmError
from vdm.upstream.pool import DEADLINE

#: A timeout that fires this close to the deadline is the total one (a timer may fire a
#: hair early, and a read cut to the deadline is the total timeout by construction).
_SLACK = 0.005


class CallTimer:
    """The clock of one call to `provider`, started when the call starts."""

    __slots__ = ("answered", "deadline", "provider", "timeouts")

    def __init__(self, provider: ProviderConfig) -> None:
        self.provider = provider
        self.timeouts = timeouts = provider.timeouts
        total = timeouts.total
        #: `time.monotonic()` by which the whole call must be over (None: no total timeout).
        self.deadline = None if total is None else time.monotonic() + total
        #: The response headers of the current attempt have arrived.
        self.answered = False

    def attempt(self, last: VdmError | None = None) -> dict[str, Any]:
        """The httpx request extensions of the next attempt: connect and first-byte limits,
        none beyond the deadline. Raises the total timeout's error when nothing is left
        (`last`: the previous attempt's error, named in it)."""
        self.answered = False
        timeouts = self.timeouts
        connect, first_byte = timeouts.connect, timeouts.first_byte
        extensions: dict[str, Any] = {}
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise self.total_error(last)
            connect = min(connect, left)
            first_byte = left if first_byte is None else min(first_byte, left)
            extensions[DEADLINE] = self.deadline
        # `write` covers sending the request body, which is part of the wait for the answer;
        # `pool` is never waited on with vdm's own transport (another one: as for connect).
        extensions["timeout"] = {
            "connect": connect,
            "read": first_byte,
            "write": first_byte,
            "pool": connect,
        }
        return extensions

    def headers_in(self, request: httpx.Request) -> None:
        """The response headers are in: from now on reads wait up to the idle timeout (and
        not past the deadline, which vdm's transport also enforces on every later read)."""
        self.answered = True
        idle = self.timeouts.idle
        if self.deadline is not None:
            left = max(self.deadline - time.monotonic(), _SLACK)
            idle = left if idle is None else min(idle, left)
        request.extensions["timeout"]["read"] = idle

    def check(self) -> None:
        """Raise the total timeout's error if the deadline has passed (between the reads of
        a body on a transport that does not enforce it itself)."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise self.total_error()

    def left(self) -> float | None:
        """Seconds until the deadline (None: no total timeout)."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline - _SLACK

    def total_error(self, last: VdmError | None = None) -> VdmError:
        timeouts = self.timeouts
        text = (
            f"{self.provider.name} did not complete its answer within {show(timeouts.total)} "
            f"in all ({timeouts.name('total')})"
        )
        message = f"{text}; last error: {last.message}" if last else text
        return VdmError(504, message, unavailable=True)

    def timeout_error(self, exc: httpx.TimeoutException) -> VdmError:
        """The 504 for an httpx timeout: which of the four fired, and the setting to raise."""
        if self.expired():
            return self.total_error()
        timeouts, name = self.timeouts, self.provider.name
        if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
            which = "connect"
            url = safe_url(self.provider.base_url)
            text = f"cannot reach {name} at {url}: no connection within {show(timeouts.connect)}"
        elif self.answered:
            which = "idle"
            text = f"{name} sent nothing for {show(timeouts.idle)} in the middle of its answer"
        else:
            which = "first_byte"
            text = f"{name} sent no response headers within {show(timeouts.first_byte)}"
        return VdmError(504, f"{text} ({timeouts.name(which)})", unavailable=True)


def retryable(exc: httpx.HTTPError) -> bool:
    """Whether a transport failure may be retried: one before the request can have reached
    the upstream (no connection) yes; a timeout after it was sent never (the upstream may
    be generating the answer, or have done so)."""
    return isinstance(exc, httpx.ConnectTimeout) or not isinstance(exc, httpx.TimeoutException)
