"""`make soak` in miniature: the same code (tests/reliability/soak.py) with 20 clients for a few
seconds, against vdm as a separate process in front of the faulty fakes.

Timeouts are scaled down with the run: stalls of 2 s against vdm's 1 s first-byte and idle
timeouts and a 4 s total, so every stall fault trips one of vdm's timeouts well inside the
10 s after which a request counts as hung. RSS growth is not asserted here: a run of seconds is
all warm-up (`make soak` measures it over minutes).
"""

from __future__ import annotations

from pathlib import Path

from tests.reliability.soak import SoakConfig, run_soak

SMOKE = SoakConfig(
    clients=20,
    seconds=6.0,
    seed=11,
    stall=2.0,
    first_byte_timeout=1.0,
    idle_timeout=1.0,
    total_timeout=4.0,
    hang_after=10.0,
    settle=10.0,
)


def test_a_short_soak_leaves_no_request_hanging_and_no_descriptor_behind(tmp_path: Path) -> None:
    result = run_soak(SMOKE, tmp_path)
    report = result.report()
    outcomes = result.tally.outcomes

    assert not result.aborted, report
    # The run did real work on both paths: answers went through and faults came back.
    assert outcomes["completed"] >= SMOKE.clients, report
    assert outcomes["failed"] > 0, report
    assert outcomes["disconnected"] > 0, report
    assert sum(n for name, n in result.fault_counts.items() if name != "good") > 0, report

    assert outcomes["hung"] == 0, report
    assert outcomes["cut"] == 0, report
    assert result.settle_seconds is not None, report
    assert result.settled.client_close_wait == 0, report
