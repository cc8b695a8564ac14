"""`vdm`: the command-line interface. Heavy imports stay inside commands so start-up is fast."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="vdm",
    help="Vandamme Proxy: use any model from any provider with Claude Code.",
    no_args_is_help=True,
    add_completion=True,
)
server_app = typer.Typer(help="Run the long-lived gateway.", no_args_is_help=True)
app.add_typer(server_app, name="server")


@app.command()
def version() -> None:
    """Print the vdm version."""
    from vdm import __version__

    typer.echo(f"vdm {__version__}")


@server_app.command("start")
def server_start(
    host: str | None = typer.Option(None, help="Address to bind (default: HOST or 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port to bind (default: PORT or 8082)."),
) -> None:
    """Start the gateway on HOST:PORT and serve until interrupted."""
    import dataclasses

    import anyio

    from vdm.config.settings import ConfigError, Settings
    from vdm.server.serve import configure_logging, serve

    try:
        settings = Settings.load()
    except ConfigError as exc:
        typer.echo(f"vdm: configuration error: {exc}", err=True)
        raise typer.Exit(1) from None
    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = dataclasses.replace(settings, **overrides)  # type: ignore[arg-type]
    configure_logging(settings.log_level)
    typer.echo(f"vdm listening on http://{settings.host}:{settings.port}", err=True)
    try:
        anyio.run(lambda: serve(settings), backend="asyncio")
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except OSError as exc:
        typer.echo(f"vdm: cannot listen on {settings.host}:{settings.port}: {exc}", err=True)
        raise typer.Exit(1) from None


def main() -> None:
    app()
