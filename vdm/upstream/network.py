"""The read hooks of vdm's upstream streams, and the deadline extension.

A reader may set `on_idle` on a response's `network_stream`: it is awaited each time a read
finds nothing buffered, just before waiting on the socket. The stream relay uses it to send
everything it translated from the data that had arrived in one ASGI send, instead of one
send per HTTP chunk.

A reader may also set a `deadline` (`time.monotonic()` seconds): a read that would wait past it
fails then with a ReadTimeout, whatever its own timeout. That is how a whole call's total
timeout ends a stream that never falls silent long enough for the per-read (idle) timeout,
with the same one timer per wait and no cancel scope.

`ReadHooks` names those two attributes once: vdm's HTTP/1.1 transport (vdm/upstream/h1.py)
has them on its responses' `network_stream`, and callers test for `ReadHooks`. (The httpcore
network backend that lived here before issue 15 is now the benchmark's baseline,
tests/bench/httpcore_backend.py.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

#: Request extension: the instant (`time.monotonic()`) by which the response must be read.
DEADLINE = "vdm.deadline"


class ReadHooks:
    """What a reader may set on the `network_stream` of a response of vdm's own transport
    (see the module docstring): `on_idle`, awaited when a read is about to wait for the
    socket, and `deadline`, past which no read waits."""

    on_idle: Callable[[], Awaitable[None]] | None = None
    deadline: float | None = None
