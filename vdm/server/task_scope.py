"""`TaskScope`: a cancel scope for the running task on plain asyncio.

A request is ended from outside in three ways: the client disconnects, it stops reading a
stream (`SEND_TIMEOUT`), or the server's shutdown grace period runs out. anyio's cancel scope
and task group did that job, but entering and leaving them (a task-state lookup per scope, a
cancel-shielded checkpoint per task group, an extra loop turn) was ~12 % of vdm's CPU for a
small request under load (py-spy). A request needs much less: cancel one task, once, and know
afterwards whether this scope caught it.

The cancellation is asyncio's own (`Task.cancel`): it is delivered once, at the task's next
await inside the scope, and anyio scopes nested in it let it through (they catch only their
own). `cancelled_caught` and the task's `cancelling()` count stay right with nested scopes
and with other cancellations (Hypercorn's, the server's own shutdown): a scope swallows the
`CancelledError` only when it was its own request and no other is pending.

Unlike anyio's level-triggered cancellation, code that catches the `CancelledError` to clean
up (vdm's stream relay sends the cut stream's tail) is not cancelled again while it does,
which is what vdm's cleanup wants; anyio's `shield=True` does not hold off this
cancellation, so cleanup is bounded in time by its own timeouts instead.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

#: The message of the CancelledError a scope sends (for tracebacks and logs).
CANCELLED = "request ended by vdm"


class TaskScope:
    """Cancel the task that entered this scope with `cancel()`, from any task or callback
    of the loop, or from the task itself (delivered at its next await, as anyio does)."""

    __slots__ = (
        "_loop",
        "_task",
        "_base",
        "_open",
        "_requested",
        "cancel_called",
        "cancelled_caught",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        #: The loop the task runs on, when the caller knows it: found without asyncio's
        #: lookup of the running loop (a system call, getpid, per lookup on Python 3.11).
        self._loop = loop
        self._task: asyncio.Task[object] | None = None
        self._base = 0
        self._open = False
        self._requested = False  # task.cancel() was called for this scope
        self.cancel_called = False
        self.cancelled_caught = False

    def __enter__(self) -> TaskScope:
        # A loop that is not the running one (closed, or of an earlier server) has no current
        # task: then the running loop's.
        loop = self._loop
        task = asyncio.current_task(loop) if loop is not None else None
        if task is None:
            task = asyncio.current_task()
        if task is None:
            raise RuntimeError("TaskScope is entered outside of a task")
        self._loop = task.get_loop()  # for `cancel`, which may run at every request's end
        self._task = task
        self._base = task.cancelling()
        self._open = True
        return self

    def cancel(self) -> None:
        """Cancel the scope's task, once; nothing once the scope has been left."""
        if self.cancel_called:
            return
        self.cancel_called = True
        if not self._open:
            return
        loop = self._loop
        assert loop is not None  # set on entering
        if asyncio.current_task(loop) is self._task:
            # Cancelling the running task itself would leave a pending cancellation behind
            # if the scope were left before its next await (Python 3.11 and 3.12 keep it
            # after `uncancel`): deliver it on the next loop turn, if still inside.
            loop.call_soon(self._deliver)
        else:
            self._deliver()

    def _deliver(self) -> None:
        if self._open and not self._requested and self._task is not None:
            self._requested = True
            self._task.cancel(CANCELLED)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        self._open = False
        if not self._requested or self._task is None:
            return False
        # Take this scope's request back; swallow the CancelledError only when no other
        # request (an outer scope's, Hypercorn's) remains.
        remaining = self._task.uncancel()
        if isinstance(exc, asyncio.CancelledError) and remaining <= self._base:
            self.cancelled_caught = True
            return True
        return False
