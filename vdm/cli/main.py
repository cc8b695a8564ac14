"""`vdm`: the command-line interface. Heavy imports stay inside commands so start-up is fast."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, TextIO

import typer

from vdm.cli.config_commands import config_app
from vdm.cli.probe_commands import health_app, test_app

if TYPE_CHECKING:
    from vdm.config.settings import Settings

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
    if reload:
        import os

        from vdm.cli.reload import supervise

        if settings.allow_remote:
            os.environ["ALLOW_REMOTE"] = "true"  # the servers it starts inherit it
        os.environ.update(_log_env(settings, systemd))
        raise typer.Exit(supervise(settings.host, settings.port))

    import signal
    import socket

    import anyio

    from vdm.cli.common import EXIT_INTERRUPTED, bind_socket, fail
    from vdm.server.app import App
    from vdm.server.logs import JournalUnavailable, check_request_log, configure_logging
    from vdm.server.serve import serve

    try:
        configure_logging(
            settings.log_level,
            secrets=settings.secrets,
            fmt=settings.log_format,
            systemd=systemd,
        )
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
        if settings.log_format == "text" and not systemd:
            typer.echo(listening, err=True)
        else:  # every line of the log is in its format
            import logging

            logging.getLogger("vdm").info("%s", listening)
    from vdm.config.settings import ConfigError

    try:
        grace, served = settings.shutdown_grace, App(settings)
    except ConfigError as exc:
        fail(f"configuration error: {exc}")
    try:
        anyio.run(
            lambda: serve(settings, sock=sock, graceful_timeout=grace, app=served),
            backend="asyncio",
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
