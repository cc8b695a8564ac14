"""Serving the app with Hypercorn, on a host/port or on a socket bound by the caller."""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial

from vdm.config.settings import NO_PROVIDER, Settings
from vdm.server.app import App

log = logging.getLogger("vdm")


def configure_logging(level: str, handler: logging.Handler | None = None) -> None:
    """vdm's log format at `level`, on stderr or `handler`."""
    handler = handler or logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])
    # httpx logs every request URL at INFO; keep it quiet unless debugging.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


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
    config.keep_alive_timeout = 75.0
    config.graceful_timeout = 5.0
    return config


async def serve(
    settings: Settings,
    *,
    sock: socket.socket | None = None,
    shutdown_trigger: Callable[..., Awaitable[None]] | None = None,
    graceful_timeout: float = 5.0,
    app: App | None = None,
    announce: bool = True,
) -> None:
    """Serve until `shutdown_trigger` returns (or SIGINT/SIGTERM when it is None); requests
    still running then get `graceful_timeout` seconds to finish. `app` (default: a new one
    for `settings`) lets the caller read its state afterwards, e.g. the usage totals;
    `announce=False` leaves the configuration's problems for the caller to report."""
    from hypercorn.asyncio import serve as hypercorn_serve

    app = app or App(settings)
    config = hypercorn_config(settings, sock)
    config.graceful_timeout = graceful_timeout  # type: ignore[attr-defined]
    if announce:
        if not settings.providers:
            log.warning("%s", NO_PROVIDER)
        for problem in (*settings.problems, *settings.warnings, *app.gateway.price_problems):
            log.warning("%s", problem)
    await hypercorn_serve(app, config, shutdown_trigger=shutdown_trigger)  # type: ignore[arg-type]


@asynccontextmanager
async def serving(
    settings: Settings, sock: socket.socket, *, graceful_timeout: float, app: App | None = None
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
            )
        )
        try:
            yield app
        finally:
            stopped.set()
