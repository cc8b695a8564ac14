"""The ASGI helpers: reading a request body (with its size and time limits) and running work
until the client disconnects.

`receive` is scripted here: each message is handed over after a checkpoint, as from Hypercorn's
queue, so a timer that has run out would fire while waiting for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import anyio
import pytest

from vdm.protocol.errors import VdmError
from vdm.server.asgi import (
    MAX_BODY_BYTES,
    ClientDisconnected,
    Message,
    read_body,
    run_until_disconnect,
)

pytestmark = pytest.mark.anyio

CL = b"content-length"


def scripted(
    *messages: Message, then: anyio.Event | None = None
) -> Callable[[], Awaitable[Message]]:
    """`receive` giving `messages` in turn, then waiting on `then` (forever without one) and
    reporting a disconnect."""
    queue = list(messages)

    async def receive() -> Message:
        await anyio.sleep(0)
        if queue:
            return queue.pop(0)
        await (then or anyio.Event()).wait()
        return {"type": "http.disconnect"}

    return receive


def body(data: bytes, more: bool) -> Message:
    return {"type": "http.request", "body": data, "more_body": more}


async def test_a_body_whose_declared_length_arrived_needs_no_time_left() -> None:
    # Hypercorn hands a whole body over as its bytes, then an empty message that ends it.
    receive = scripted(body(b'{"a": 1}', True), body(b"", False))
    assert await read_body(receive, [(CL, b"8")], timeout=0.0) == b'{"a": 1}'


async def test_a_body_in_one_message_is_read_whole() -> None:
    assert await read_body(scripted(body(b"abc", False)), [(CL, b"3")], timeout=0.0) == b"abc"


async def test_a_body_in_pieces_is_joined() -> None:
    receive = scripted(body(b"ab", True), body(b"", True), body(b"cd", True), body(b"", False))
    assert await read_body(receive, [], timeout=5.0) == b"abcd"
    receive = scripted(body(b"ab", True), body(b"cd", True), body(b"", False))
    assert await read_body(receive, [(CL, b"4")], timeout=5.0) == b"abcd"


async def test_a_body_still_missing_bytes_gets_a_408_at_the_timeout() -> None:
    for headers in ([(CL, b"10")], []):  # declared, or chunked
        receive = scripted(body(b"abc", True))
        with anyio.fail_after(5):
            with pytest.raises(VdmError) as caught:
                await read_body(receive, headers, timeout=0.2)
        assert caught.value.status == 408
        assert "BODY_TIMEOUT" in caught.value.message


async def test_the_timeout_counts_from_the_first_message_not_per_message() -> None:
    async def trickle() -> Message:
        await anyio.sleep(0.1)
        return body(b"x", True)

    with anyio.fail_after(5):
        with pytest.raises(VdmError) as caught:
            await read_body(trickle, [], timeout=0.35)
    assert caught.value.status == 408


async def test_a_disconnect_before_the_end_of_the_body_is_reported() -> None:
    gone = anyio.Event()
    gone.set()
    for headers in ([(CL, b"3")], [(CL, b"9")], []):
        with pytest.raises(ClientDisconnected):
            await read_body(scripted(body(b"abc", True), then=gone), headers, timeout=5.0)


async def test_a_body_over_the_limit_is_a_413_once_the_rest_is_dropped() -> None:
    half = b"x" * (MAX_BODY_BYTES // 2 + 1)
    gone = anyio.Event()
    gone.set()
    receive = scripted(
        body(half, True), body(half, True), body(b"rest", True), body(b"", False), then=gone
    )
    with pytest.raises(VdmError) as caught:
        await read_body(receive, [], timeout=5.0)
    assert caught.value.status == 413
    assert await receive() == {"type": "http.disconnect"}  # everything was read


# -- run_until_disconnect ------------------------------------------------------------------------


async def test_work_that_finishes_returns_true_and_leaves_no_task_behind() -> None:
    ran = False

    async def work() -> None:
        nonlocal ran
        await anyio.sleep(0.01)
        ran = True

    before = len(asyncio.all_tasks())
    with anyio.fail_after(5):
        assert await run_until_disconnect(scripted(), work) is True
    assert ran
    await anyio.sleep(0.01)
    assert len(asyncio.all_tasks()) == before  # the disconnect watcher is gone


async def test_a_disconnect_cancels_the_work_and_returns_false() -> None:
    gone = anyio.Event()
    cancelled = False

    async def work() -> None:
        nonlocal cancelled
        gone.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled = True
            raise

    with anyio.fail_after(5):
        assert await run_until_disconnect(scripted(body(b"", False), then=gone), work) is False
    assert cancelled


async def test_an_exception_of_the_work_propagates_unwrapped() -> None:
    async def work() -> None:
        await anyio.sleep(0)
        raise VdmError(502, "upstream broke")

    with pytest.raises(VdmError, match="upstream broke"):
        await run_until_disconnect(scripted(), work)


async def test_an_outer_cancellation_reaches_the_work() -> None:
    """As `App.end_requests` cancels a request: the work ends, nothing is left running."""
    started = anyio.Event()

    async def work() -> None:
        started.set()
        await anyio.sleep_forever()

    before = len(asyncio.all_tasks())
    with anyio.fail_after(5):
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(run_until_disconnect, scripted(), work)
                await started.wait()
                scope.cancel()
    assert scope.cancelled_caught
    await anyio.sleep(0.01)
    assert len(asyncio.all_tasks()) == before
