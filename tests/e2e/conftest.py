"""Fixtures shared by the end-to-end tests with the real Claude Code CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.harness import REPO

#: Installed by `make install-claude` (the version is pinned in the Makefile).
CLAUDE = REPO / ".venv" / "node" / "node_modules" / ".bin" / "claude"


@pytest.fixture
def claude_bin() -> Path:
    """The Claude Code CLI. Skipped where npm is missing; a failure where npm exists but the
    CLI is not installed, so that a broken install is never hidden by a silent skip."""
    if CLAUDE.is_file():
        return CLAUDE
    if shutil.which("npm"):
        pytest.fail(
            f"the Claude Code CLI is not installed at {CLAUDE}: run `make install-claude` "
            "(npm is available, so this is a broken install, not a missing tool)"
        )
    pytest.skip("npm not found: cannot install the Claude Code CLI")
