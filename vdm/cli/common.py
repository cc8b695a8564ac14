"""What every `vdm` command shares: loading settings with errors that name the fix."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from vdm.config.settings import NO_PROVIDER

__all__ = [
    "NO_PROVIDER",
    "bind_socket",
    "fail",
    "load_settings",
    "require_provider",
    "short_paths",
]

if TYPE_CHECKING:
    from vdm.config.settings import Settings

#: Exit codes (STYLE.md): 0 ok, 1 error, 2 usage, 130 interrupted; `vdm wrap` returns the child's.
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def fail(message: str, code: int = EXIT_ERROR, *, prefix: str = "vdm") -> NoReturn:
    """Print `prefix: message` on stderr and exit with `code`."""
    typer.echo(f"{prefix}: {message}", err=True)
    raise typer.Exit(code)


def load_settings(
    env: Mapping[str, str] | None = None, cwd: Path | None = None, *, prefix: str = "vdm"
) -> Settings:
    """Settings of the current directory; a configuration error exits 1 with its message."""
    from vdm.config.settings import ConfigError, Settings

    try:
        return Settings.load(env, cwd)
    except ConfigError as exc:
        fail(f"configuration error: {exc}", prefix=prefix)


def require_provider(settings: Settings, *, prefix: str = "vdm") -> None:
    """Exit 1 naming the fix when no provider is configured."""
    if not settings.providers:
        problems = "".join(f"\n  {p}" for p in settings.problems)
        fail(NO_PROVIDER + problems, prefix=prefix)


def short_paths(text: str, env: Mapping[str, str], cwd: Path) -> str:
    """Paths in `text` as a person writes them: `./.env`, `~/.config/…`."""
    for base, short in ((str(cwd), "."), (env.get("HOME", ""), "~")):
        base = base.rstrip("/")
        if base:
            text = text.replace(base + "/", short + "/")
    return text


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (0: the OS picks), bound here so that no other
    process can take the port before the server uses it; not inherited by children."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock
