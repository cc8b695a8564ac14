"""`vdm server start --workers N`: N server processes serving one listening socket.

The supervisor (this module, in the `vdm server start` process) binds the socket once, as a
single server does, so that a busy port fails once with the reason; each worker is
`vdm server start --fd FD` with that socket inherited. Inheriting it rather than having each
worker bind its own with SO_REUSEPORT: SO_REUSEPORT lets any process of the same user bind
the port too and silently take a share of the connections (the requests, and the keys they
spend), it exists only on some systems, and `--reload` already serves an inherited socket.
The kernel then hands each new connection to whichever worker accepts it first; every
request on that connection is that worker's.

Each worker is in a process group of its own, so that Ctrl-C in the terminal reaches the
supervisor alone, which forwards it once: a worker that got it twice would end its running
requests at once instead of giving them SHUTDOWN_GRACE. SIGTERM is forwarded the same way;
a second signal is forwarded too and ends what is still running. A worker that exits by
itself is restarted, unless workers keep exiting (RESTART_LIMIT exits within
RESTART_WINDOW seconds): then the others are stopped and vdm exits 1. A worker whose
supervisor dies (even by SIGKILL) is stopped too (Linux).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Mapping

import typer

from vdm.cli.reload import _die_with_parent

#: Seconds between two looks at the workers.
POLL_SECONDS = 0.1
#: More than this many unexpected worker exits within RESTART_WINDOW seconds: give up.
RESTART_LIMIT = 5
RESTART_WINDOW = 30.0
#: Seconds a worker gets beyond SHUTDOWN_GRACE to stop before it is killed (Hypercorn's own
#: margin, serve.END_MARGIN, plus its start-up when it was still starting).
STOP_MARGIN = 15.0


class Supervisor:
    """Starts, watches and stops the workers of one `vdm server start --workers N`."""

    def __init__(
        self, sock: socket.socket, count: int, args: list[str], env: Mapping[str, str]
    ) -> None:
        self.sock = sock
        self.count = count
        #: `vdm server start` options of every worker (host, port).
        self.args = args
        self.env = {**env, "WORKERS": "1"}
        self.workers: list[subprocess.Popen[bytes] | None] = [None] * count
        self.stopped_by: int | None = None
        self.exits: deque[float] = deque()

    def _start(self, slot: int) -> None:
        fd = self.sock.fileno()
        command = [sys.executable, "-m", "vdm.cli", "server", "start", *self.args, "--fd", str(fd)]
        self.workers[slot] = subprocess.Popen(
            command,
            env=self.env,
            pass_fds=(fd,),
            process_group=0,
            preexec_fn=_die_with_parent,
        )

    def _signalled(self, signum: int, frame: object) -> None:
        self.stopped_by = signum
        self._send(signum)

    def _send(self, signum: int) -> None:
        for proc in self.workers:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signum)

    def run(self, grace: float) -> int:
        """Serve until SIGTERM (0) or SIGINT (130), or until workers keep exiting (1)."""
        handled = (signal.SIGTERM, signal.SIGINT)
        previous = {s: signal.signal(s, self._signalled) for s in handled}
        try:
            for slot in range(self.count):
                if self.stopped_by is None:
                    self._start(slot)
            while self.stopped_by is None:
                if not self._restart_exited():
                    self._send(signal.SIGTERM)
                    self._wait(grace)
                    return 1
                time.sleep(POLL_SECONDS)
            self._wait(grace)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.sock.close()
        return 130 if self.stopped_by == signal.SIGINT else 0

    def _restart_exited(self) -> bool:
        """Restart the workers that exited; False once they exit too often."""
        for slot, proc in enumerate(self.workers):
            if proc is None or proc.poll() is None or self.stopped_by is not None:
                continue
            now = time.monotonic()
            self.exits.append(now)
            while self.exits and self.exits[0] < now - RESTART_WINDOW:
                self.exits.popleft()
            code = _described(proc.returncode)
            if len(self.exits) > RESTART_LIMIT:
                typer.echo(
                    f"vdm: workers keep exiting ({len(self.exits)} in the last "
                    f"{RESTART_WINDOW:g} s, the last {code}): stopping; the log above says why",
                    err=True,
                )
                return False
            typer.echo(f"vdm: worker {proc.pid} {code}: starting another", err=True)
            self._start(slot)
        return True

    def _wait(self, grace: float) -> None:
        """Wait for every worker to stop; one still running after the grace is killed."""
        deadline = time.monotonic() + grace + STOP_MARGIN
        for proc in self.workers:
            if proc is None:
                continue
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _described(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


def supervise_workers(
    sock: socket.socket, count: int, host: str, port: int, grace: float, env: Mapping[str, str]
) -> int:
    """Serve `sock` with `count` workers until stopped; returns vdm's exit code."""
    args = ["--host", host, "--port", str(port)]
    return Supervisor(sock, count, args, {**os.environ, **env}).run(grace)
