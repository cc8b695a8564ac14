"""`vdm`: the command-line interface. Heavy imports stay inside commands so start-up is fast."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vdm.cli.config_commands import config_app
from vdm.cli.probe_commands import health_app, test_app

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


@app.command()
def version() -> None:
    """Print the vdm version."""
    from vdm import __version__

    typer.echo(f"vdm {__version__}")


@server_app.command("start")
def server_start(
    host: str | None = typer.Option(None, help="Address to bind (default: HOST or 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port to bind (default: PORT or 8082)."),
    reload: bool = typer.Option(
        False, "--reload", help="Restart when vdm's code or the configuration files change."
    ),
    fd: int | None = typer.Option(None, hidden=True, help="Serve on this listening socket."),
) -> None:
    """Start the gateway on HOST:PORT and serve until interrupted."""
    import dataclasses

    from vdm.cli.common import load_settings

    settings = load_settings()
    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = dataclasses.replace(settings, **overrides)  # type: ignore[arg-type]
    if reload:
        from vdm.cli.reload import supervise

        raise typer.Exit(supervise(settings.host, settings.port))

    import socket

    import anyio

    from vdm.server.serve import configure_logging, serve

    configure_logging(settings.log_level)
    sock = None
    if fd is not None:
        sock = socket.socket(fileno=fd)
    else:
        typer.echo(f"vdm listening on http://{settings.host}:{settings.port}", err=True)
    try:
        anyio.run(lambda: serve(settings, sock=sock), backend="asyncio")
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except OSError as exc:
        typer.echo(f"vdm: cannot listen on {settings.host}:{settings.port}: {exc}", err=True)
        raise typer.Exit(1) from None


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
            help="Write vdm's request log here (the terminal is the child's).",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Run COMMAND (default: claude) with a private proxy: vdm wrap -- claude --model fast."""
    import ipaddress

    from vdm.cli.wrap import Report, WrapError
    from vdm.cli.wrap import wrap as run_wrap
    from vdm.config.settings import ConfigError

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
        )
    except ConfigError as exc:
        typer.echo(f"vdm: configuration error: {exc}", err=True)
        raise typer.Exit(1) from None
    except WrapError as exc:
        typer.echo(f"vdm wrap: {exc}", err=True)
        raise typer.Exit(1) from None
    raise typer.Exit(code)


def main() -> None:
    app()


def claude_vdm() -> None:
    """`claude.vdm ARGS…` is exactly `vdm wrap -- claude ARGS…`."""
    import sys

    app(["wrap", "--", "claude", *sys.argv[1:]], prog_name="claude.vdm")
