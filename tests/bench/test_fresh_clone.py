"""`make bench` runs from a fresh clone: everything it reads is inside the repository.

The smoke run copies the repository's files (what `git clone` would give, plus files not yet
committed) to a directory with nothing beside it, and runs the benchmark there briefly, with
the scenario that reads the recorded Claude Code request. The numbers are not judged here
(speed is judged by `make bench` itself); only that it runs, without a failed request, and
reports the figures docs/wrap.md and docs/performance.md quote. npm and claude-code-router
are not needed: a clone has no ``.venv/node``, so the comparison is skipped with its reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.scenarios import BIG_BODY_BYTES, RECORDING, REPO, claude_code_body, dumps


def test_the_recorded_request_is_part_of_the_repository() -> None:
    assert RECORDING.is_relative_to(REPO) and RECORDING.is_file()
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(RECORDING)], cwd=REPO, capture_output=True
    )
    assert ignored.returncode == 1, f"{RECORDING} is ignored by git: a clone would lack it"
    body = claude_code_body("gpt-4o-bench-d")
    assert len(dumps(body)) == BIG_BODY_BYTES
    assert len(body["tools"]) == 12 and len(body["messages"]) == 12


def _repository_files() -> list[str]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: cannot tell which files a clone has")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    )
    return [name for name in listed.stdout.decode().split("\0") if name]


def test_the_benchmark_runs_from_a_copy_of_the_repository_alone(tmp_path: Path) -> None:
    clone = tmp_path / "clone" / "vdm"  # nothing beside it: no ../shared
    for name in _repository_files():
        source = REPO / name
        if source.is_file():
            target = clone / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", "tests.bench.run", "--only", "a,d", "--concurrency", "1"]
    command += ["--duration", "0.3", "--warmup", "0.1", "--starts", "1", "--wraps", "1"]
    command += ["--json", str(out)]
    # The copy's own code, not this checkout's: PYTHONPATH comes before the editable install.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {"PATH": path, "PYTHONPATH": str(clone)}
    done = subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True, timeout=100)
    why = f"exit {done.returncode}\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    assert done.returncode == 0, why
    report = json.loads(out.read_text())
    assert report["errors"] == 0, why
    assert [s["scenario"] for s in report["scenarios"]] == ["a", "d"], why
    assert report["startup"]["wrap_to_child_median_s"] > 0, why
    assert "vdm wrap to the child's start" in done.stdout, why
    # The copy has no .venv/node: claude-code-router is skipped, with the reason, not an error.
    assert report["ccr"]["skipped"], why
    assert "claude-code-router: skipped (" in done.stdout, why
    assert all(s["ccr"] is None for s in report["scenarios"]), why
