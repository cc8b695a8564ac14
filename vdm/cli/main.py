"""`vdm`: the command-line interface. Heavy imports stay inside commands so start-up is fast."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TextIO, get_args, get_origin

import typer

from vdm.cli.config_commands import config_app
from vdm.cli.probe_commands import health_app, test_app

if TYPE_CHECKING:
    from vdm.config.settings import Settings


_WHOLE = re.compile(r"-?[0-9]{1,18}")


def _plain_coercion() -> None:
    """Let typer coerce plain values without building a pydantic TypeAdapter.

    Typer (0.2x) converts every parameter's value through a pydantic TypeAdapter, built when
    the command line is parsed: importing pydantic and building a dozen adapters took about
    0.1 s of `vdm wrap`'s start, before the child could run (docs/wrap.md, step 4). A
    value that already is what its annotation asks for (a str for `str`, digits for `int`, a
    list of str for `list[str]`, one of a Literal's values) is returned as typer's adapter
    would return it; anything else (a Path, a case-insensitive choice, a malformed number)
    goes to typer's own coercion, built on first use, so its checks and error messages stay
    typer's. Touches typer internals: if they move, typer's own path is simply kept (and
    tests/cli/test_main.py's start-up test says so)."""
    try:
        from typer import _coercion, core

        base: Any = _coercion.RuntimeParam
        original: Callable[[Any], Any] = core.build_runtime_param  # type: ignore[attr-defined]
    except (ImportError, AttributeError):
        return
    if getattr(original, "vdm_plain", False):
        return

    @dataclass(frozen=True)
    class Plain(base):  # type: ignore[misc]
        descriptor: Any = None

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            plain = _plain_value(self.annotation, value)
            if plain is not _NOT_PLAIN:
                return plain
            return original(self.descriptor)._coerce_value(value, param=param, ctx=ctx)

    def build(descriptor: Any) -> Any:
        info = descriptor.parameter_info
        if descriptor.is_file or info.parser is not None or descriptor.is_ranged:
            return original(descriptor)
        return Plain(parameter_info=info, annotation=descriptor.annotation, descriptor=descriptor)

    build.vdm_plain = True  # type: ignore[attr-defined]
    core.build_runtime_param = build  # type: ignore[attr-defined]


_NOT_PLAIN = object()


def _plain_value(annotation: object, value: object) -> object:
    """`value` as typer would coerce it to `annotation`, when that needs no conversion (or
    only int() of plain digits); `_NOT_PLAIN` otherwise."""
    if annotation is str and isinstance(value, str):
        return value
    if annotation is bool and isinstance(value, bool):
        return value
    if annotation is int and not isinstance(value, bool):
        if isinstance(value, int):
            return value
        if isinstance(value, str) and _WHOLE.fullmatch(value):
            return int(value)
    if get_origin(annotation) is Literal and isinstance(value, str):
        if value in get_args(annotation):
            return value
    if get_origin(annotation) is list and get_args(annotation) == (str,):
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return list(value)
    return _NOT_PLAIN


_plain_coercion()

app = typer.Typer(
    name="vdm",
    help="Vandamme Proxy: use any model from any provider with Claude Code.",
    no_args_is_help=True,
    add_completion=True,
)
server_app = typer.Typer(help="Run the long-lived gateway.", no_args_is_help=True)
app.add_typer(server_app, name="server")
app.add_typer(config_app, name="config")
app.add_typer(health_app, name="health")
app.add_typer(test_app, name="test")


LogLevelOption = Annotated[
    Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] | None,
    typer.Option(
        "--log-level", case_sensitive=False, help="DEBUG … ERROR (default: LOG_LEVEL or INFO)."
    ),
]
LOG_FORMAT_HELP = "text (for people) or json (one object per line) (default: LOG_FORMAT or text)."
LogFormatOption = Annotated[
    Literal["text", "json"] | None,
    typer.Option("--log-format", case_sensitive=False, help=LOG_FORMAT_HELP),
]
RequestLogPath = Annotated[
    Path | None,
    typer.Option(
        "--request-log",
        help="Append one JSON line per finished request to this file (also REQUEST_LOG).",
        dir_okay=False,
    ),
]
RequestLogBodies = Annotated[
    bool,
    typer.Option(
        "--request-log-bodies",
        help="Put the request and response bodies in the request log (also "
        "REQUEST_LOG_BODIES=true; secrets masked, each cut at 1 MiB).",
    ),
]


@app.command()
def version() -> None:
    """Print the vdm version."""
    from vdm import __version__

    typer.echo(f"vdm {__version__}")


@server_app.command("start")
def server_start(
    host: str | None = typer.Option(None, help="Address to bind (default: HOST or 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port to bind (default: PORT or 8082)."),
    allow_remote: bool = typer.Option(
        False,
        "--allow-remote",
        help="Serve a network: allow a non-loopback --host and any Host header "
        "(also ALLOW_REMOTE=true; set PROXY_API_KEY too).",
    ),
    reload: bool = typer.Option(
        False, "--reload", help="Restart when vdm's code or the configuration files change."
    ),
    fd: int | None = typer.Option(None, hidden=True, help="Serve on this listening socket."),
    workers: int | None = typer.Option(
        None,
        "--workers",
        help="Server processes sharing the port, one per core for a busy gateway "
        "(default: WORKERS or 1).",
    ),
    log_level: LogLevelOption = None,
    log_format: LogFormatOption = None,
    request_log: RequestLogPath = None,
    request_log_bodies: RequestLogBodies = False,
    systemd: bool = typer.Option(
        False,
        "--systemd",
        envvar="VDM_SYSTEMD",
        help="Log to the systemd journal (identifier vandamme-proxy) instead of stderr.",
    ),
) -> None:
    """Start the gateway on HOST:PORT and serve until interrupted."""
    import dataclasses

    from vdm.cli.common import load_settings
    from vdm.server.logs import LogOptions

    options = LogOptions(log_level, log_format, _path(request_log), request_log_bodies)
    settings = options.apply(load_settings())
    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if allow_remote:
        overrides["allow_remote"] = True
    settings = dataclasses.replace(settings, **overrides)  # type: ignore[arg-type]
    _check_exposure(settings)
    if workers is not None and (reload or workers < 1):
        from vdm.cli.common import EXIT_USAGE, fail

        why = "cannot be used with --reload" if reload else "must be 1 or more"
        fail(f"--workers {why}", EXIT_USAGE)
    if reload:
        import os

        from vdm.cli.reload import supervise

        if settings.allow_remote:
            os.environ["ALLOW_REMOTE"] = "true"  # the servers it starts inherit it
        os.environ.update(_log_env(settings, systemd))
        raise typer.Exit(supervise(settings.host, settings.port))

    import signal
    import socket
    from functools import partial

    from vdm.cli.common import EXIT_INTERRUPTED, bind_socket, fail
    from vdm.config.settings import ConfigError
    from vdm.server.app import App
    from vdm.server.event_loop import choose_loop, run
    from vdm.server.logs import JournalUnavailable, check_request_log, configure_logging
    from vdm.server.serve import serve

    # A worker (--fd) serves alone; the workers' supervisor serves nothing itself.
    count = 1 if fd is not None else (workers or settings.workers)
    try:
        loop = choose_loop(settings.event_loop)
        configure_logging(
            settings.log_level,
            secrets=settings.secrets,
            fmt=settings.log_format,
            systemd=systemd,
        )
    except ConfigError as exc:
        fail(f"configuration error: {exc}")
    except JournalUnavailable as exc:
        fail(str(exc))
    if (problem := check_request_log(settings.request_log)) is not None:
        fail(problem)
    if fd is not None:
        sock = socket.socket(fileno=fd)
    else:
        # Bound here, before anything says "listening": a busy port fails with the reason.
        try:
            sock = bind_socket(settings.host, settings.port)
        except OSError as exc:
            from vdm.cli.preflight import port_problem

            fail(port_problem(settings.host, settings.port, exc, settings.proxy_api_key))
        listening = f"vdm listening on http://{settings.host}:{settings.port}"
        listening += f" ({count} workers)" if count > 1 else ""
        if settings.log_format == "text" and not systemd:
            typer.echo(listening, err=True)
        else:  # every line of the log is in its format
            import logging

            logging.getLogger("vdm").info("%s", listening)
    try:
        # With workers, built here for its checks alone: a middleware that cannot load fails
        # once, before any worker starts.
        grace, served = settings.shutdown_grace, App(settings)
    except ConfigError as exc:
        fail(f"configuration error: {exc}")
    if count > 1:
        import os

        from vdm.cli.workers import supervise_workers

        if settings.allow_remote:
            os.environ["ALLOW_REMOTE"] = "true"  # the workers it starts inherit it
        env = _log_env(settings, systemd)
        raise typer.Exit(supervise_workers(sock, count, settings.host, settings.port, grace, env))
    try:
        run(
            partial(serve, settings, sock=sock, graceful_timeout=grace, app=served, tune_gc=True),
            loop=loop,
        )
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except OSError as exc:
        fail(f"cannot serve on {settings.host}:{settings.port}: {exc.strerror or exc}")
    if served.stopped_by == signal.SIGINT:  # Ctrl-C: stopped gracefully, but interrupted
        raise typer.Exit(EXIT_INTERRUPTED)


def _path(path: Path | None) -> str | None:
    return None if path is None else str(path.absolute())


def _log_env(settings: Settings, systemd: bool) -> dict[str, str]:
    """The logging settings as variables, for the servers `--reload` starts."""
    env = {"LOG_LEVEL": settings.log_level, "LOG_FORMAT": settings.log_format}
    if settings.request_log:
        env["REQUEST_LOG"] = settings.request_log
    if settings.request_log_bodies:
        env["REQUEST_LOG_BODIES"] = "true"
    if systemd:
        env["VDM_SYSTEMD"] = "1"
    return env


def _check_exposure(settings: Settings) -> None:
    """A non-loopback address is served only when asked for (--allow-remote): vdm spends
    the keys it holds for whoever can reach it."""
    from vdm.cli.common import fail
    from vdm.server.edge import is_loopback_address

    if is_loopback_address(settings.host):
        return
    if not settings.allow_remote:
        fail(
            f"--host {settings.host} is not a loopback address: add --allow-remote (or set "
            "ALLOW_REMOTE=true) to serve the network, and set PROXY_API_KEY so that only your "
            "clients can spend your keys"
        )
    if not settings.proxy_api_key:
        typer.echo(
            f"vdm: warning: serving {settings.host} without PROXY_API_KEY: anyone who can "
            "reach this port can spend your keys",
            err=True,
        )


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def wrap(
    command: Annotated[
        list[str] | None,
        typer.Argument(help="The command to run (default: claude). Put it after --."),
    ] = None,
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    port: int = typer.Option(0, help="Port to bind (default: one the OS picks)."),
    allow_remote: bool = typer.Option(
        False, "--allow-remote", help="Allow a --host other than loopback."
    ),
    summary_json: Annotated[
        Path | None,
        typer.Option(
            "--summary-json", help="Write the usage summary to this file as JSON.", dir_okay=False
        ),
    ] = None,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No usage summary on stderr."),
    log_file: Annotated[
        Path | None,
        typer.Option(
            "--log-file",
            help="Write vdm's log here (the terminal is the child's; --log-format).",
            dir_okay=False,
        ),
    ] = None,
    no_check: bool = typer.Option(
        False,
        "--no-check",
        help="Start without checking that the model resolves and its provider takes the key "
        "(also VDM_NO_CHECK=1).",
    ),
    log_format: LogFormatOption = None,
    request_log: RequestLogPath = None,
    request_log_bodies: RequestLogBodies = False,
    dashboard: bool = typer.Option(
        False,
        "--dashboard",
        help="Print the session's live dashboard URL (with a view-only token) before "
        "starting COMMAND.",
    ),
) -> None:
    """Run COMMAND (default: claude) with a private proxy: vdm wrap -- claude --model fast."""
    import ipaddress
    import os

    from vdm.cli.wrap import Report, WrapError
    from vdm.cli.wrap import wrap as run_wrap
    from vdm.config.settings import ConfigError
    from vdm.server.logs import LogOptions

    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        if not allow_remote:
            typer.echo(
                f"vdm wrap: --host {host} is not a loopback address; add --allow-remote to "
                "serve this session to the network",
                err=True,
            )
            raise typer.Exit(2)
        typer.echo(f"vdm wrap: warning: serving this session on {host}", err=True)
    try:
        code = run_wrap(
            command or ["claude"],
            host=host,
            port=port,
            report=Report(summary_json=summary_json, quiet=quiet),
            log_file=log_file,
            check=not (no_check or _truthy(os.environ.get("VDM_NO_CHECK", ""))),
            log_options=LogOptions(None, log_format, _path(request_log), request_log_bodies),
            dashboard=dashboard,
        )
    except ConfigError as exc:
        typer.echo(f"vdm: configuration error: {exc}", err=True)
        raise typer.Exit(1) from None
    except WrapError as exc:
        typer.echo(f"vdm wrap: {exc}", err=True)
        raise typer.Exit(1) from None
    raise typer.Exit(code)


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def main() -> None:
    app()


#: What `claude.vdm --help` says before Claude Code's own help.
CLAUDE_VDM_HELP = (
    "claude.vdm: Claude Code behind a vdm session proxy; vdm wrap -- claude ARGS\n"
    "  (vdm wrap --help: the proxy's options; VDM_NO_CHECK=1 skips the pre-flight check)\n"
)


def claude_vdm() -> None:
    """`claude.vdm ARGS…` is exactly `vdm wrap -- claude ARGS…`; with `--help`, vdm's line
    first, then Claude Code's own help (no proxy is needed for it)."""
    import sys

    args = sys.argv[1:]
    options = args[: args.index("--")] if "--" in args else args
    if "--help" in options or "-h" in options:
        raise SystemExit(_claude_help(args, sys.stdout))
    app(["wrap", "--", "claude", *args], prog_name="claude.vdm")


def _claude_help(args: list[str], out: TextIO) -> int:
    import shutil
    import subprocess

    out.write(CLAUDE_VDM_HELP + "\n")
    out.flush()
    claude = shutil.which("claude")
    if claude is None:
        typer.echo(
            "claude.vdm: `claude` is not on PATH: install Claude Code "
            "(npm install -g @anthropic-ai/claude-code)",
            err=True,
        )
        return 1
    return subprocess.call([claude, *args])
