"""`vdm server start --reload`: restart the server when vdm's code or configuration changes.

A supervisor binds the listening socket once and hands it to each server process (`--fd`),
so no client is refused during a restart: new connections wait in the socket's backlog
while the old server finishes its requests and the new one starts. Changes are found by
polling modification times twice a second (no extra dependency): vdm's own source and data
files, `./vandamme-config.toml`, `./.env` and the user's configuration file.

A server that exits by itself (a configuration error after an edit, say) is reported, the
port is closed so that clients are refused at once rather than left waiting, and the
supervisor binds it again at the next change. Ctrl-C stops both (exit 130); SIGTERM or SIGHUP
stops both (0). A server whose supervisor dies (even by SIGKILL) is stopped too (Linux).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import typer

from vdm.cli.common import bind_socket
from vdm.config.sources import CONFIG_NAME, user_config_path

#: Seconds between two looks at the watched files.
POLL_SECONDS = 0.5
#: Seconds a server gets to finish its requests before it is killed.
STOP_SECONDS = 10.0

Snapshot = dict[Path, int | None]


def watched_files(cwd: Path, env: Mapping[str, str]) -> list[Path]:
    """vdm's source and data files and the configuration files of `cwd` and the user."""
    package = Path(__file__).resolve().parents[1]
    files = sorted(p for p in package.rglob("*") if p.suffix in (".py", ".toml"))
    files += [cwd / CONFIG_NAME, cwd / ".env"]
    user = user_config_path(env)
    if user is not None:
        files.append(user)
    return files


def snapshot(files: list[Path]) -> Snapshot:
    """Modification time of each file; None for a missing one (so creating it counts)."""
    found: Snapshot = {}
    for path in files:
        try:
            found[path] = path.stat().st_mtime_ns
        except OSError:
            found[path] = None
    return found


def changed(before: Snapshot, after: Snapshot) -> list[Path]:
    return [p for p in after.keys() | before.keys() if before.get(p) != after.get(p)]


class _Stop(Exception):
    """SIGTERM or SIGHUP to the supervisor."""


def _on_stop(signum: int, frame: object) -> None:
    raise _Stop


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the server process, before exec: SIGTERM when the supervisor dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _start(host: str, port: int, fd: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "vdm.cli", "server", "start"]
    command += ["--host", host, "--port", str(port), "--fd", str(fd)]
    return subprocess.Popen(command, pass_fds=(fd,), preexec_fn=_die_with_parent)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def supervise(host: str, port: int, cwd: Path | None = None) -> int:
    """Serve on host:port, restarting the server on changes; returns vdm's exit code."""
    cwd = cwd or Path.cwd()
    try:
        sock: socket.socket | None = bind_socket(host, port)
    except OSError as exc:
        typer.echo(f"vdm: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        return 1
    files = watched_files(cwd, os.environ)
    typer.echo(
        f"vdm listening on http://{host}:{port} (reloading when vdm's code, "
        f"./{CONFIG_NAME}, ./.env or the user configuration changes)",
        err=True,
    )
    previous = {s: signal.signal(s, _on_stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    proc: subprocess.Popen[bytes] | None = None
    try:
        while True:
            before = snapshot(files)
            if sock is None:
                try:
                    sock = bind_socket(host, port)
                except OSError as exc:
                    typer.echo(
                        f"vdm: cannot listen on {host}:{port} again: {exc.strerror or exc}",
                        err=True,
                    )
                    return 1
            proc = _start(host, port, sock.fileno())
            while not (edits := changed(before, snapshot(files))):
                if sock is not None and proc.poll() is not None:
                    # Refuse clients at once instead of leaving them in the backlog.
                    sock.close()
                    sock = None
                    typer.echo(
                        f"vdm: the server exited with code {proc.returncode}; the port is "
                        "closed until a change restarts it",
                        err=True,
                    )
                time.sleep(POLL_SECONDS)
            names = ", ".join(sorted(str(p) for p in edits)[:3])
            typer.echo(f"vdm: {names} changed: restarting the server", err=True)
            _stop(proc)
            files = watched_files(cwd, os.environ)
    except KeyboardInterrupt:
        return 130
    except _Stop:
        return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if proc is not None:
            _stop(proc)
        if sock is not None:
            sock.close()
