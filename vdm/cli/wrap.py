"""`vdm wrap -- COMMAND`: a private proxy for one command, in this process.

Binds a loopback port the OS picks (the socket is bound here and handed to Hypercorn, so no
other process can take the port in between), serves the current directory's configuration in
an anyio task group, runs the command with the terminal and `ANTHROPIC_BASE_URL`, then stops
the server and exits with the command's exit code (128+N when a signal N killed it).

Before the command starts, the pre-flight check (vdm/cli/preflight.py; `check=False` skips
it) makes sure the model it will ask for resolves and its provider takes the key: a typo or
a refused key is one line and exit 1, not a child retrying for minutes.

The child gets a random per-session secret in `ANTHROPIC_CUSTOM_HEADERS`; the session proxy
refuses /v1 requests without it, so no other local process can spend the user's keys. A Codex
child gets a provider of its own instead, through `-c` overrides (vdm/cli/wrap_codex.py).
Ctrl-C in the terminal reaches the child (same foreground process group) and is ignored by
vdm; SIGTERM and SIGHUP sent to vdm are forwarded to the child.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from vdm.cli.proxy_env import bypass_proxy
from vdm.config.settings import Settings

if TYPE_CHECKING:
    from vdm.server.app import App
    from vdm.server.logs import LogOptions

log = logging.getLogger("vdm.wrap")

#: Set for the child as ANTHROPIC_AUTH_TOKEN when the user has neither ANTHROPIC_API_KEY nor
#: ANTHROPIC_AUTH_TOKEN, so Claude Code neither asks to log in nor uses a Claude login's OAuth
#: token. (As ANTHROPIC_API_KEY it would make Claude Code's TUI ask "Detected a custom API key
#: … use it?", default No, and a No is remembered in ~/.claude.json.)
PLACEHOLDER_KEY = "vdm-wrap-placeholder"
SESSION_HEADER = "x-vdm-session"
#: Seconds in-flight requests get once the child has exited.
GRACE_SECONDS = 2.0
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True, slots=True)
class Session:
    url: str
    secret: str


def cloud_mode(env: dict[str, str], url: str) -> None:
    """Claude Code in Bedrock or Vertex mode (`CLAUDE_CODE_USE_BEDROCK` / `_VERTEX`) ignores
    ANTHROPIC_BASE_URL: its own base URL points at vdm too (docs/clouds.md), and its cloud
    auth is skipped (vdm checks the session secret, not an AWS signature or a Google token)."""
    if _on(env.get("CLAUDE_CODE_USE_BEDROCK")):
        env["ANTHROPIC_BEDROCK_BASE_URL"] = url
        env.setdefault("CLAUDE_CODE_SKIP_BEDROCK_AUTH", "1")
    if _on(env.get("CLAUDE_CODE_USE_VERTEX")):
        env["ANTHROPIC_VERTEX_BASE_URL"] = url + "/v1"
        env.setdefault("CLAUDE_CODE_SKIP_VERTEX_AUTH", "1")
        # Claude Code needs a project and a region to build the path; vdm ignores both.
        env.setdefault("ANTHROPIC_VERTEX_PROJECT_ID", "vdm")
        env.setdefault("CLOUD_ML_REGION", "global")


def _on(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def child_env(
    environ: Mapping[str, str],
    session: Session,
    settings: Settings | None = None,
    command: Sequence[str] = (),
) -> dict[str, str]:
    """The child's environment: the user's, plus the proxy's URL and the session header;
    with `settings`, what makes Claude Code know the model `command` will use (docs/models.md)."""
    env = dict(environ)
    env["ANTHROPIC_BASE_URL"] = session.url
    cloud_mode(env, session.url)
    bypass_proxy(env)
    if not env.get("ANTHROPIC_API_KEY") and not env.get("ANTHROPIC_AUTH_TOKEN"):
        env["ANTHROPIC_AUTH_TOKEN"] = PLACEHOLDER_KEY
    header = f"{SESSION_HEADER}: {session.secret}"
    existing = env.get("ANTHROPIC_CUSTOM_HEADERS", "").strip()
    env["ANTHROPIC_CUSTOM_HEADERS"] = f"{existing}\n{header}" if existing else header
    # Claude Code then says which requests are a subagent's (x-claude-code-request-class):
    # the summary splits main agent and subagents. A value the user set is kept.
    env.setdefault("CLAUDE_CODE_GATEWAY_HINT_HEADERS", "1")
    if settings is not None:
        # Its /model picker entry and its real context window (which also ends the "doesn't
        # recognize the model … assumes 1m tokens" notice); a variable the user set is kept.
        from vdm.cli.preflight import wanted_models
        from vdm.server.catalog import claude_code_env

        names = wanted_models(command, env, Path.cwd())
        if names:
            env.update(claude_code_env(settings, names[0], env))
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


class _Signals:
    """vdm's signal handling while the child runs, installed before the child starts.

    SIGINT: the terminal sent it to the child too (same foreground process group); vdm stays
    up (a handler, not SIG_IGN, which the child would inherit). SIGTERM/SIGHUP: forwarded to
    the child; one that arrives while the child is being started is forwarded once it exists.
    """

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self._pending: list[int] = []
        self._previous = {signal.SIGINT: signal.signal(signal.SIGINT, _ignore)}
        for signum in FORWARDED_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._forward)

    def _forward(self, signum: int, frame: object) -> None:
        if self.process is None:
            self._pending.append(signum)
        else:
            self.process.send_signal(signum)  # a no-op once the child has been reaped

    def attach(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        for signum in self._pending:
            process.send_signal(signum)
        self._pending.clear()

    def forward_to_child(self, signum: int) -> None:
        if self.process is not None:
            self.process.send_signal(signum)

    def reinstall(self) -> None:
        """Our handlers again, after the event loop's (which leaves SIG_DFL behind)."""
        for signum in FORWARDED_SIGNALS:
            signal.signal(signum, self._forward)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


async def _serve_until_exit(
    settings: Settings, sock: socket.socket, process: subprocess.Popen[bytes], signals: _Signals
) -> App:
    """Serve the session until the child exits; returns the app (its usage totals make the
    summary). The child is already running: its first requests wait in the socket's backlog
    while the server's modules load, which is most of the start-up time."""
    import anyio

    from vdm.server.serve import serving

    # A signal may be delivered to the thread that waits for the child, which would leave a
    # plain Python handler waiting until the loop next wakes: the loop's own handlers
    # (a wake-up fd) take over while it runs.
    try:
        with anyio.open_signal_receiver(*FORWARDED_SIGNALS) as received:

            async def forward() -> None:
                async for signum in received:
                    signals.forward_to_child(signum)

            async with anyio.create_task_group() as forwarding:
                forwarding.start_soon(forward)
                async with serving(
                    settings, sock, graceful_timeout=GRACE_SECONDS, tune_gc=True
                ) as app:
                    # Abandoned (the child is then reaped) only if the server fails. When the
                    # block ends, in-flight requests get GRACE_SECONDS.
                    await anyio.to_thread.run_sync(process.wait, abandon_on_cancel=True)
                forwarding.cancel_scope.cancel()
    finally:
        signals.reinstall()
    return app


def _ignore(signum: int, frame: object) -> None:
    """SIGINT while the child runs: the child has it; vdm stays up."""


class WrapError(Exception):
    """`vdm wrap` could not start: the message says why."""


@dataclass(frozen=True, slots=True)
class Report:
    """What `vdm wrap` says when the child has exited."""

    #: Write the summary as JSON here (even with `quiet`).
    summary_json: Path | None = None
    #: No summary on stderr.
    quiet: bool = False


def wrap(
    command: Sequence[str],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    environ: Mapping[str, str] | None = None,
    report: Report = Report(),
    log_file: Path | None = None,
    check: bool = True,
    log_options: LogOptions | None = None,
    dashboard: bool = False,
) -> int:
    """Run `command` behind a session proxy; returns the exit code for vdm. With `check`,
    the pre-flight (vdm/cli/preflight.py) runs first and may refuse to start the child.
    With `dashboard`, the dashboard's URL is printed first, carrying a token that opens it
    (and nothing else) in the fragment, which the browser never sends to a server."""
    from vdm.cli.common import NO_PROVIDER, bind_socket
    from vdm.server.edge import is_loopback_address
    from vdm.server.event_loop import choose_loop, run
    from vdm.usage.prices import user_prices

    started = time.monotonic()
    environ = dict(os.environ if environ is None else environ)
    settings = Settings.load(environ)
    if not settings.providers:
        raise WrapError("".join([NO_PROVIDER, *(f"\n  {p}" for p in settings.problems)]))
    loop = choose_loop(settings.event_loop)  # an EVENT_LOOP that cannot be: before the child
    secret = secrets.token_urlsafe(32)
    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        from vdm.cli.preflight import port_problem

        raise WrapError(port_problem(host, port, exc, settings.proxy_api_key)) from None
    bound_port = sock.getsockname()[1]
    url_host = f"[{host}]" if ":" in host else host
    session = Session(f"http://{url_host}:{bound_port}", secret)
    # The command refused a non-loopback host without --allow-remote: one given was asked for.
    remote = settings.allow_remote or not is_loopback_address(host)
    settings = replace(
        settings, host=host, port=bound_port, session_secret=secret, allow_remote=remote
    )
    if log_options is not None:
        settings = log_options.apply(settings)
    # Said once, before the child owns the terminal; nothing is logged there afterwards.
    _, price_problems = user_prices(settings.prices)
    for line in (*settings.problems, *settings.warnings, *price_problems):
        print(f"vdm wrap: warning: {line}", file=sys.stderr)  # noqa: T201
    argv, env = _child(command, environ, session, settings)
    if check:
        _preflight(settings, command, env, sock)
    if dashboard:
        settings = replace(settings, dashboard_token=secrets.token_urlsafe(24))
        link = f"{session.url}/dashboard/#key={settings.dashboard_token}"
        print(f"vdm: dashboard {link}", file=sys.stderr)  # noqa: T201
    handler = _open_log(log_file, sock, settings.request_log)
    _become_subreaper()
    signals = _Signals()
    try:
        try:
            process = subprocess.Popen(argv, env=env)
        except OSError as exc:
            sock.close()
            raise WrapError(f"cannot run {command[0]!r}: {exc.strerror or exc}") from None
        signals.attach(process)
        _configure_logging(settings, handler)

        app = run(_serve_until_exit, settings, sock, process, signals, loop=loop)
        returncode = process.wait()
    finally:
        signals.restore()
        _reap_leftovers()
    code = exit_code(returncode)
    _report(app, report, code, time.monotonic() - started)
    return code


def _child(
    command: Sequence[str], environ: Mapping[str, str], session: Session, settings: Settings
) -> tuple[list[str], dict[str, str]]:
    """The child's argv and environment: Codex gets a provider of its own
    (vdm/cli/wrap_codex.py), any other command Claude Code's variables."""
    from vdm.cli import wrap_codex

    if wrap_codex.is_codex(command):
        argv = wrap_codex.child_argv(command, session.url, SESSION_HEADER)
        return argv, wrap_codex.child_env(environ, session.url, session.secret, PLACEHOLDER_KEY)
    return list(command), child_env(environ, session, settings, command)


def _preflight(
    settings: Settings, command: Sequence[str], env: Mapping[str, str], sock: socket.socket
) -> None:
    """The models the child will ask for resolve and their providers take the key: else
    stop before the child starts (the child's environment says what Claude Code will use)."""
    from vdm.cli import preflight, wrap_codex

    if wrap_codex.is_codex(command):
        names = wrap_codex.wanted_models(command, env)
    else:
        names = preflight.wanted_models(command, env, Path.cwd())
    outcome = preflight.check(settings, names, cache=preflight.Cache(preflight.cache_path(env)))
    for line in outcome.warnings:
        print(f"vdm wrap: warning: {line}", file=sys.stderr)  # noqa: T201
    if outcome.stops:
        sock.close()
        lines = [*outcome.stops, f"nothing was started; {preflight.SKIP_HINT}"]
        raise WrapError("\n  ".join(lines))


def _open_log(
    log_file: Path | None, sock: socket.socket, request_log: str | None = None
) -> logging.Handler | None:
    """The `--log-file` handler, opened before the child starts so that a path that cannot be
    written (this one or the `--request-log`) stops vdm cleanly, not a running child."""
    from vdm.server.logs import check_request_log

    if (problem := check_request_log(request_log)) is not None:
        sock.close()
        raise WrapError(problem)
    if log_file is None:
        return None
    try:
        return logging.FileHandler(log_file, encoding="utf-8")
    except OSError as exc:
        sock.close()
        raise WrapError(f"cannot write the log file {log_file}: {exc.strerror or exc}") from None


def _become_subreaper() -> None:
    """Processes the child leaves behind are re-parented to vdm, not to init, so that they
    can be found and stopped when the child exits (Linux; elsewhere only the child's own
    descendants still alive under it are)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


_PR_SET_CHILD_SUBREAPER = 36


def _configure_logging(settings: Settings, handler: logging.Handler | None) -> None:
    """The child owns the terminal: vdm's logs go to the `--log-file` handler (in the
    settings' `log_format`), or nowhere."""
    root = logging.getLogger()
    for existing in root.handlers[:]:
        root.removeHandler(existing)
    if handler is None:
        root.addHandler(logging.NullHandler())
        root.setLevel(logging.CRITICAL + 1)
        logging.lastResort = None  # no "no handlers" fallback onto the child's screen
        return
    from vdm.server.logs import configure_logging

    configure_logging(
        settings.log_level, handler=handler, secrets=settings.secrets, fmt=settings.log_format
    )


def _report(app: App, report: Report, code: int, duration: float) -> None:
    import json

    from vdm.usage.summary import summary_dict, summary_text

    gateway = app.gateway
    data = summary_dict(
        gateway.usage.snapshot(),
        exit_code=code,
        duration_s=round(duration, 3),
    )
    if not report.quiet:
        print(summary_text(data), file=sys.stderr)  # noqa: T201
    if report.summary_json is not None:
        try:
            report.summary_json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            print(  # noqa: T201
                f"vdm wrap: cannot write {report.summary_json}: {exc.strerror or exc}",
                file=sys.stderr,
            )
