"""The event loop vdm serves on (`EVENT_LOOP`): uvloop when it is there, else asyncio's own.

Both `vdm server start` and `vdm wrap` decide here. The decision only looks for uvloop
(`find_spec`), it does not import it: `vdm wrap` decides before its child starts, and
imports what serves the session afterwards (docs/wrap.md, step 4).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar, TypeVarTuple

from vdm.config.settings import ConfigError

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
Loop = Literal["uvloop", "asyncio"]

#: Said when EVENT_LOOP=uvloop and uvloop cannot be found.
NO_UVLOOP = (
    "EVENT_LOOP=uvloop but uvloop is not installed: `pip install uvloop` (Linux and macOS), "
    "or set EVENT_LOOP=auto to use it only where it is"
)


def choose_loop(choice: str) -> Loop:
    """The loop `EVENT_LOOP` (auto | uvloop | asyncio) gives on this machine; an explicit
    uvloop that is missing is a ConfigError naming the fix."""
    if choice == "asyncio":
        return "asyncio"
    if importlib.util.find_spec("uvloop") is not None:
        return "uvloop"
    if choice == "uvloop":
        raise ConfigError(NO_UVLOOP, var="EVENT_LOOP")
    return "asyncio"


def run(func: Callable[[*Ts], Awaitable[T]], *args: *Ts, loop: Loop) -> T:
    """`anyio.run(func, *args)` on the asyncio backend, on uvloop when `loop` says so."""
    import anyio

    options = {"use_uvloop": loop == "uvloop"}
    return anyio.run(func, *args, backend="asyncio", backend_options=options)


def running_loop_name() -> str:
    """ "uvloop" or "asyncio": the loop this coroutine runs on, for the log."""
    import asyncio

    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"
