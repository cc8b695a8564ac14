"""`vdm wrap -- COMMAND`: a private proxy for one command, in this process.

Binds a loopback port the OS picks (the socket is bound here and handed to Hypercorn, so no
other process can take the port in between), serves the current directory's configuration in
an anyio task group, runs the command with the terminal and `ANTHROPIC_BASE_URL`, then stops
the server and exits with the command's exit code (128+N when a signal N killed it).

The child gets a random per-session secret in `ANTHROPIC_CUSTOM_HEADERS`; the session proxy
refuses /v1 requests without it, so no other local process can spend the user's keys.
Ctrl-C in the terminal reaches the child (same foreground process group) and is ignored by
vdm; SIGTERM and SIGHUP sent to vdm are forwarded to the child.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial

import anyio

from vdm.config.settings import Settings

log = logging.getLogger("vdm.wrap")

#: Set for the child when the user has neither ANTHROPIC_API_KEY nor ANTHROPIC_AUTH_TOKEN,
#: so Claude Code does not ask to log in.
PLACEHOLDER_KEY = "vdm-wrap-placeholder"
SESSION_HEADER = "x-vdm-session"
#: Seconds in-flight requests get once the child has exited.
GRACE_SECONDS = 2.0
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True, slots=True)
class Session:
    url: str
    secret: str


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


def child_env(environ: Mapping[str, str], session: Session) -> dict[str, str]:
    """The child's environment: the user's, plus the proxy's URL and the session header."""
    env = dict(environ)
    env["ANTHROPIC_BASE_URL"] = session.url
    if not env.get("ANTHROPIC_API_KEY") and not env.get("ANTHROPIC_AUTH_TOKEN"):
        env["ANTHROPIC_API_KEY"] = PLACEHOLDER_KEY
    header = f"{SESSION_HEADER}: {session.secret}"
    existing = env.get("ANTHROPIC_CUSTOM_HEADERS", "").strip()
    env["ANTHROPIC_CUSTOM_HEADERS"] = f"{existing}\n{header}" if existing else header
    return env


def exit_code(returncode: int) -> int:
    """A child killed by signal N exits as 128+N, as a shell reports it."""
    return 128 - returncode if returncode < 0 else returncode


def _reap_leftovers() -> None:
    """Terminate, then kill, processes the child left behind (still our descendants)."""
    import psutil  # type: ignore[import-untyped, unused-ignore]

    leftovers = psutil.Process().children(recursive=True)
    for proc in leftovers:
        try:
            proc.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(leftovers, timeout=1.0)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass


async def _run(
    settings: Settings, sock: socket.socket, command: Sequence[str], env: dict[str, str]
) -> int:
    from vdm.server.serve import serve

    stopped = anyio.Event()
    failure: WrapError | None = None
    returncode = 0
    async with anyio.create_task_group() as tg:
        tg.start_soon(
            partial(
                serve,
                settings,
                sock=sock,
                shutdown_trigger=stopped.wait,
                graceful_timeout=GRACE_SECONDS,
            )
        )
        # Listen for SIGTERM/SIGHUP before the child exists, so none is missed (and none
        # kills vdm with its default action) between the child's start and the forwarder's.
        with anyio.open_signal_receiver(*FORWARDED_SIGNALS) as received:
            try:
                process = await anyio.open_process(
                    list(command), stdin=None, stdout=None, stderr=None, env=env
                )
            except OSError as exc:
                # Raised outside the task group, which would wrap it in an ExceptionGroup.
                failure = WrapError(f"cannot run {command[0]!r}: {exc.strerror or exc}")
                stopped.set()
                process = None

            async def forward() -> None:
                async for signum in received:
                    if process is not None and process.returncode is None:
                        process.send_signal(signum)

            if process is not None:
                async with anyio.create_task_group() as forwarding:
                    forwarding.start_soon(forward)
                    returncode = await process.wait()
                    forwarding.cancel_scope.cancel()
        stopped.set()  # the server finishes in-flight requests (GRACE_SECONDS), then returns
    if failure is not None:
        raise failure
    return returncode


def _ignore(signum: int, frame: object) -> None:
    """SIGINT while the child runs: the terminal sent it to the child too; vdm stays up.
    (A handler, not SIG_IGN, which the child would inherit.)"""


class WrapError(Exception):
    """`vdm wrap` could not start: the message says why."""


def wrap(
    command: Sequence[str],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run `command` behind a session proxy; returns the exit code for vdm."""
    environ = dict(os.environ if environ is None else environ)
    settings = Settings.load(environ)
    secret = secrets.token_urlsafe(32)
    try:
        sock = bind(host, port)
    except OSError as exc:
        raise WrapError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    bound_port = sock.getsockname()[1]
    url_host = f"[{host}]" if ":" in host else host
    session = Session(f"http://{url_host}:{bound_port}", secret)
    settings = replace(settings, host=host, port=bound_port, session_secret=secret)
    env = child_env(environ, session)
    previous = signal.signal(signal.SIGINT, _ignore)  # Ctrl-C is the child's
    try:
        returncode = anyio.run(_run, settings, sock, command, env, backend="asyncio")
    finally:
        signal.signal(signal.SIGINT, previous)
        _reap_leftovers()
    return exit_code(returncode)
