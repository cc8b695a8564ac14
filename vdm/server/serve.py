"""Serving the app with Hypercorn, on a host/port or on a socket bound by the caller.

Connection hygiene lives here: a short keep-alive (Hypercorn 0.18 holds a connection the client
closed in CLOSE_WAIT until its keep-alive timer ends, and the same timer bounds the time a
client has to send a request's head, so slowloris heads are dropped with it), the descriptor
limit raised to its hard maximum, a limit on requests served at once derived from it, a log
that says once in a while, not a hundred times a second, that descriptors ran out, and the
graceful shutdown: stop accepting, give running requests a grace period, then end them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from anyio.abc import TaskGroup

from vdm.config.settings import NO_PROVIDER, Settings
from vdm.server.app import App
from vdm.server.event_loop import running_loop_name
from vdm.server.logs import configure_logging as configure_logging  # its old home

log = logging.getLogger("vdm")

#: Seconds Hypercorn waits for connections after the grace period, for the requests ended
#: then to send their last bytes.
END_MARGIN = 5.0
#: Descriptors kept for other uses than client requests (listening socket, log files,
#: upstream pool connections at rest, the interpreter's own).
RESERVED_DESCRIPTORS = 64
#: The derived request limit's bounds.
MIN_REQUESTS, MAX_REQUESTS = 8, 1024
#: At most one "descriptors ran out" line per this many seconds.
EXHAUSTED_LOG_SECONDS = 30.0


def hypercorn_config(settings: Settings, sock: socket.socket | None = None) -> object:
    from hypercorn.config import Config

    config = Config()
    if sock is not None:
        # Hypercorn takes ownership of the descriptor and closes it at shutdown.
        config.bind = [f"fd://{sock.detach()}"]
    else:
        host = settings.host
        config.bind = [f"[{host}]:{settings.port}" if ":" in host else f"{host}:{settings.port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    # Hypercorn's idle timer runs from the connection's start (or its last response) until a
    # request's head is complete: it is the header timeout too.
    config.keep_alive_timeout = settings.keep_alive_timeout
    config.graceful_timeout = 5.0
    return config


def raise_descriptor_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (as far as the system allows); returns
    the soft limit in force (0 where there is none to read)."""
    try:
        import resource
    except ImportError:  # not on this platform
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for wanted in (hard, min(hard, 1 << 20), min(hard, 10240)):  # macOS caps at OPEN_MAX
        if wanted == resource.RLIM_INFINITY or wanted <= soft:
            continue
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            continue
        return wanted
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


#: glibc's `mallopt` parameter for the size from which a block is its own mapping.
_M_MMAP_THRESHOLD = -3
#: Blocks this large or larger are mapped on their own and given back to the system when
#: freed (glibc's initial threshold, kept fixed).
MMAP_THRESHOLD = 128 * 1024


def return_large_blocks() -> None:
    """Keep glibc from holding on to the memory of large answers once they are freed.

    glibc raises its mmap threshold each time a mapped block is freed (up to 32 MiB): after
    one large upstream answer, blocks of that size come from the heap, whose top stays in the
    process's RSS, and the soak (`make soak`) saw RSS step up for good after its endless and
    huge-line faults. A fixed threshold (which turns the dynamic one off) maps every large
    block on its own, so freeing it returns the memory. Nothing to do off glibc."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def default_max_requests(descriptors: int) -> int:
    """The request limit for a descriptor limit: each request holds its client's connection
    and an upstream one, with room left for the rest."""
    if descriptors <= 0:
        return MAX_REQUESTS
    return max(MIN_REQUESTS, min(MAX_REQUESTS, (descriptors - RESERVED_DESCRIPTORS) // 2))


class QuietExhaustion:
    """A loop exception handler: asyncio reports every failed accept when descriptors run
    out (with a traceback, up to the listen backlog per attempt); this says it once per
    `EXHAUSTED_LOG_SECONDS`, with a count, and hands anything else to the previous handler."""

    def __init__(
        self, previous: Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object] | None
    ):
        self.previous = previous
        self.last = float("-inf")
        self.suppressed = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if "out of system resource" not in str(context.get("message", "")):
            if self.previous is not None:
                self.previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        now = time.monotonic()
        if now - self.last < EXHAUSTED_LOG_SECONDS:
            self.suppressed += 1
            return
        more = f" ({self.suppressed} more since the last report)" if self.suppressed else ""
        log.error(
            "cannot accept connections: %s%s; new clients wait until descriptors free up "
            "(raise `ulimit -n` or lower MAX_CONNECTIONS)",
            context.get("exception") or "out of descriptors",
            more,
        )
        self.last, self.suppressed = now, 0


async def serve(
    settings: Settings,
    *,
    sock: socket.socket | None = None,
    shutdown_trigger: Callable[..., Awaitable[None]] | None = None,
    graceful_timeout: float = 5.0,
    app: App | None = None,
    announce: bool = True,
    tune_gc: bool = False,
) -> None:
    """Serve until `shutdown_trigger` returns (or, when it is None, SIGTERM or SIGINT). New
    connections are then refused; requests still running get `graceful_timeout` seconds to
    finish and are then ended (a stream with an `error` event); a second signal ends them at
    once. `app` (default: a new one for `settings`) lets the caller read its state
    afterwards, e.g. the usage totals; `announce=False` leaves the configuration's problems
    for the caller to report; `tune_gc` sets the garbage collector for a serving process
    (vdm/server/gc_tuning.py: process-wide, so only the CLI asks for it)."""
    import anyio
    from hypercorn.asyncio import serve as hypercorn_serve

    app = app or App(settings)
    descriptors = raise_descriptor_limit()
    return_large_blocks()
    if settings.max_connections is None:
        app.max_requests = default_max_requests(descriptors)
    config = hypercorn_config(settings, sock)
    config.graceful_timeout = graceful_timeout + END_MARGIN  # type: ignore[attr-defined]
    if announce:
        if not settings.providers:
            log.warning("%s", NO_PROVIDER)
        for problem in (*settings.problems, *settings.warnings, *app.gateway.price_problems):
            log.warning("%s", problem)
    stopping, hurry = anyio.Event(), anyio.Event()

    async def triggered(trigger: Callable[..., Awaitable[None]]) -> None:
        await trigger()
        stopping.set()

    async def signalled() -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as received:
            async for signum in received:
                if stopping.is_set():
                    hurry.set()
                    return
                app.stopped_by = signum
                log.info(
                    "%s: refusing new connections; requests still running get %g s "
                    "(SHUTDOWN_GRACE; a second signal ends them now)",
                    signal.Signals(signum).name,
                    graceful_timeout,
                )
                stopping.set()

    async def end_after_grace() -> None:
        await stopping.wait()
        app.gateway.stopping = True  # live feeds end now, without waiting for the grace
        with anyio.move_on_after(graceful_timeout):
            await hurry.wait()
        ended = app.end_requests()
        if ended:
            log.warning("shutdown: ended %d request(s) still running after the grace period", ended)

    from vdm.server.fast_h1 import select

    # Process-wide in Hypercorn (vdm serves one app per process); every serve() sets it.
    parser = select(settings.http_parser)
    loop = asyncio.get_running_loop()
    log.debug("serving on the %s event loop, HTTP/1.1 parsed by %s", running_loop_name(), parser)
    previous = loop.get_exception_handler()
    loop.set_exception_handler(QuietExhaustion(previous))
    if tune_gc:
        from vdm.server.gc_tuning import tune_for_serving

        tune_for_serving()
    failure: BaseException | None = None

    async def run_hypercorn(tg: TaskGroup) -> None:
        # In a task of its own: Hypercorn's shutdown leaves its task cancelled at exit.
        nonlocal failure
        try:
            await hypercorn_serve(app, config, shutdown_trigger=stopping.wait)  # type: ignore[arg-type]
        except Exception as exc:  # re-raised below, outside the task group
            failure = exc
        finally:
            tg.cancel_scope.cancel()

    try:
        async with anyio.create_task_group() as tg:
            if shutdown_trigger is None:
                tg.start_soon(signalled)
            else:
                tg.start_soon(triggered, shutdown_trigger)
            tg.start_soon(end_after_grace)
            tg.start_soon(run_hypercorn, tg)
    finally:
        loop.set_exception_handler(previous)
    if failure is not None:
        raise failure


@asynccontextmanager
async def serving(
    settings: Settings,
    sock: socket.socket,
    *,
    graceful_timeout: float,
    app: App | None = None,
    tune_gc: bool = False,
) -> AsyncIterator[App]:
    """Serve on `sock` in a task group while the block runs (the caller reports the
    configuration's problems); when it ends, requests still running get `graceful_timeout`
    seconds, and the block exits once the server has stopped."""
    import anyio

    app = app or App(settings)
    stopped = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(
            partial(
                serve,
                settings,
                sock=sock,
                shutdown_trigger=stopped.wait,
                graceful_timeout=graceful_timeout,
                app=app,
                announce=False,
                tune_gc=tune_gc,
            )
        )
        try:
            yield app
        finally:
            stopped.set()
