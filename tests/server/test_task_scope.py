"""TaskScope: the request's cancel scope on plain asyncio (vdm/server/task_scope.py)."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from vdm.server.task_scope import TaskScope

pytestmark = pytest.mark.anyio


async def test_a_scope_never_cancelled_changes_nothing() -> None:
    with TaskScope() as scope:
        await asyncio.sleep(0)
    assert not scope.cancel_called and not scope.cancelled_caught
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_cancel_from_another_task_is_caught_by_the_scope() -> None:
    reached = False

    async def victim(ready: asyncio.Event, scopes: list[TaskScope]) -> int:
        nonlocal reached
        with TaskScope() as scope:
            scopes.append(scope)
            ready.set()
            await asyncio.sleep(10)
            reached = True
        assert scope.cancelled_caught
        task = asyncio.current_task()
        assert task is not None
        await asyncio.sleep(0)  # no cancellation is left pending
        return task.cancelling()

    ready, scopes = asyncio.Event(), []
    task = asyncio.get_running_loop().create_task(victim(ready, scopes))
    await ready.wait()
    scopes[0].cancel()
    scopes[0].cancel()  # once only
    with anyio.fail_after(5):
        assert await task == 0
    assert not reached


async def test_cancel_from_the_task_itself_is_delivered_at_its_next_await() -> None:
    after_cancel = False
    with TaskScope() as scope:
        scope.cancel()
        after_cancel = True  # like anyio: the code up to the next await runs
        await asyncio.sleep(0)
        pytest.fail("the await inside the scope should have been cancelled")
    assert after_cancel and scope.cancelled_caught
    await asyncio.sleep(0)  # and nothing is left pending after the scope


async def test_self_cancel_just_before_leaving_leaves_nothing_pending() -> None:
    with TaskScope() as scope:
        scope.cancel()
    assert scope.cancel_called and not scope.cancelled_caught
    await asyncio.sleep(0.01)  # would raise CancelledError if a request had leaked


async def test_cancel_after_the_scope_is_left_does_nothing() -> None:
    with TaskScope() as scope:
        pass
    scope.cancel()
    await asyncio.sleep(0.01)
    assert not scope.cancelled_caught


async def test_an_outer_scope_cancelled_too_is_not_swallowed_by_the_inner_one() -> None:
    async def victim(ready: asyncio.Event, scopes: list[TaskScope]) -> tuple[bool, bool]:
        with TaskScope() as outer:
            with TaskScope() as inner:
                scopes += [outer, inner]
                ready.set()
                await asyncio.sleep(10)
            pytest.fail("the outer scope's cancellation must pass the inner scope")
        return outer.cancelled_caught, inner.cancelled_caught

    ready, scopes = asyncio.Event(), []
    task = asyncio.get_running_loop().create_task(victim(ready, scopes))
    await ready.wait()
    scopes[1].cancel()
    scopes[0].cancel()
    with anyio.fail_after(5):
        assert await task == (True, False)


async def test_a_foreign_cancellation_passes_through() -> None:
    """Hypercorn cancelling the app's task, with the scope's own request pending too."""

    async def victim(ready: asyncio.Event, scopes: list[TaskScope]) -> None:
        with TaskScope() as scope:
            scopes.append(scope)
            ready.set()
            await asyncio.sleep(10)

    ready, scopes = asyncio.Event(), []
    task = asyncio.get_running_loop().create_task(victim(ready, scopes))
    await ready.wait()
    scopes[0].cancel()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()


async def test_anyio_scopes_inside_let_the_cancellation_through() -> None:
    async def victim(ready: asyncio.Event, scopes: list[TaskScope]) -> bool:
        with TaskScope() as scope:
            scopes.append(scope)
            with anyio.move_on_after(10):
                ready.set()
                await anyio.sleep(10)
            pytest.fail("move_on_after must not swallow the scope's cancellation")
        return scope.cancelled_caught

    ready, scopes = asyncio.Event(), []
    task = asyncio.get_running_loop().create_task(victim(ready, scopes))
    await ready.wait()
    scopes[0].cancel()
    with anyio.fail_after(5):
        assert await task is True


async def test_entering_outside_a_task_is_an_error() -> None:
    def outside() -> None:
        with TaskScope():
            pass

    loop = asyncio.get_running_loop()
    failed = loop.create_future()

    def run() -> None:
        try:
            outside()
        except RuntimeError as exc:
            failed.set_result(str(exc))

    loop.call_soon(run)
    assert "outside of a task" in await failed


async def test_the_loop_given_finds_the_task_without_looking_the_loop_up() -> None:
    loop = asyncio.get_running_loop()
    with TaskScope(loop) as scope:
        scope.cancel()
        await asyncio.sleep(0)
    assert scope.cancelled_caught


async def test_a_loop_that_is_not_running_any_more_falls_back_to_the_running_one() -> None:
    stale = asyncio.new_event_loop()
    stale.close()
    with TaskScope(stale) as scope:
        scope.cancel()
        await asyncio.sleep(0)
    assert scope.cancelled_caught
