"""Running a client process (Claude Code, `vdm wrap`) to its end within a bound."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest


def run_to_end(
    command: Sequence[str], *, env: dict[str, str], cwd: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run `command` with no stdin, its output captured, in its own session so that a run that
    outlives `timeout` is killed with everything it started (the test then fails with its
    output)."""
    proc = subprocess.Popen(
        list(command),
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=10)
        pytest.fail(f"{' '.join(command)} did not finish in {timeout} s\n{stdout}\n{stderr}")
    return subprocess.CompletedProcess(list(command), proc.returncode, stdout, stderr)
