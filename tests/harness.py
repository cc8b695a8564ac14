"""Test harness: vdm served by real Hypercorn on an OS-picked loopback port, in a thread.

    with running_vdm({"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": fake.base_url}) as vdm:
        client = anthropic.Anthropic(base_url=vdm.url, api_key="sk-client")

The thread has its own asyncio loop, so sync tests, async tests and tests that block on
subprocesses can all talk to it. Settings come only from the mapping given (never from the
environment of the shell running the tests).
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vdm.config.settings import Settings
from vdm.server.serve import serve

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PROTOCOL = SHARED / "protocol"


def free_port() -> int:
    """A loopback port free now (for a process that binds it itself: another may take it in
    between, which is why the in-process harness binds its socket and hands it over)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningVdm:
    url: str
    port: int
    settings: Settings


@contextmanager
def running_vdm(env: Mapping[str, str], **overrides: Any) -> Iterator[RunningVdm]:
    """Serve vdm with settings built from `env` only; `overrides` replace Settings fields."""
    settings = replace(Settings.from_mapping(env), **overrides)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    port = sock.getsockname()[1]
    ready = threading.Event()
    failure: list[BaseException] = []
    loop = asyncio.new_event_loop()
    stop: asyncio.Event | None = None

    async def main() -> None:
        nonlocal stop
        stop = asyncio.Event()
        ready.set()
        await serve(settings, sock=sock, shutdown_trigger=stop.wait)

    def run() -> None:
        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # surfaced to the test below
            failure.append(exc)
            ready.set()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=run, name="vdm-test-server", daemon=True)
    thread.start()
    ready.wait(5)
    if failure:
        raise failure[0]
    _wait_listening(port)
    try:
        yield RunningVdm(url=f"http://127.0.0.1:{port}", port=port, settings=settings)
    finally:
        if stop is not None:
            loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        if failure:
            raise failure[0]


def _wait_listening(port: int, timeout: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.01)
    raise TimeoutError(f"vdm did not start listening on port {port}")


#: The variables of the shell running the tests that a child process (or settings) may see.
KEEP_ENV = ("PATH", "LANG", "LC_ALL", "TERM", "SYSTEMROOT", "TMPDIR")


@dataclass(frozen=True)
class Place:
    """A temporary HOME and a temporary project directory, for configuration files."""

    home: Path
    cwd: Path

    @classmethod
    def make(cls, tmp_path: Path) -> Place:
        home, cwd = tmp_path / "home", tmp_path / "project"
        home.mkdir()
        cwd.mkdir()
        return cls(home, cwd)

    @property
    def user_toml(self) -> Path:
        return self.home / ".config" / "vandamme-proxy" / "vandamme-config.toml"

    @property
    def project_toml(self) -> Path:
        return self.cwd / "vandamme-config.toml"

    @property
    def dotenv(self) -> Path:
        return self.cwd / ".env"

    def write(self, name: str, text: str) -> Path:
        """Write `text` to the user TOML (`name="user"`) or to `name` in the project."""
        path = self.user_toml if name == "user" else self.cwd / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def load(self, **env: str) -> Settings:
        return Settings.load(env={"HOME": str(self.home), **env}, cwd=self.cwd)


def clean_env(**extra: str) -> dict[str, str]:
    """An environment for a child process built from scratch: PATH and a few locale
    variables only, never the shell's ANTHROPIC_*/OPENAI_* or base URLs."""
    env = {k: os.environ[k] for k in KEEP_ENV if k in os.environ}
    env.update(extra)
    return env
