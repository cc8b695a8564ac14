"""The garbage collector's settings for serving processes (vdm/server/gc_tuning.py)."""

from __future__ import annotations

import gc
import subprocess
import sys

import httpx

from tests.harness import clean_env, running_vdm
from vdm.server.gc_tuning import YOUNG_THRESHOLD

PROBE = """
import gc
from vdm.server.gc_tuning import tune_for_serving
print(gc.get_threshold(), gc.get_freeze_count())
tune_for_serving()
print(gc.get_threshold(), gc.get_freeze_count())
"""


def test_tuning_freezes_the_heap_and_raises_only_the_young_threshold() -> None:
    # In a process of its own: the settings are process-wide.
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=clean_env(), capture_output=True, text=True, check=True
    )
    before, after = out.stdout.strip().splitlines()
    assert before == "(700, 10, 10) 0"
    threshold, frozen = after.rsplit(" ", 1)
    assert threshold == f"({YOUNG_THRESHOLD}, 10, 10)"
    assert int(frozen) > 1_000  # what is alive: modules, classes, ...


def test_a_server_embedded_in_a_process_leaves_its_collector_alone() -> None:
    """Only the CLI's serving processes tune it (`serve(tune_gc=True)`); the tests and other
    embedders serve with the process's own settings."""
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    with running_vdm(clean_env(OPENAI_API_KEY="sk-test")) as server:
        assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200
        assert gc.get_threshold() == threshold
        assert gc.get_freeze_count() == frozen
