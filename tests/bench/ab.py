"""Two vdm trees measured side by side, paired in time, for a VM whose speed drifts.

    .venv/bin/python -m tests.bench.ab /path/to/old/tree /path/to/new/tree [--only a,d]
        [--concurrency 1,50] [--rounds 16] [--slice 0.5]

`make bench --vdm-env PYTHONPATH=…` times one tree after the other, and a VM whose speed
swings from one minute to the next (docs/performance.md, "Third round") can make either look
faster. Here one fake upstream and one `vdm server start` per tree (each with PYTHONPATH set
to its tree) run together, and the closed-loop load goes to each in turn in short slices, the
order swapped every round, so that both see the same phases of the machine. Prints, per
scenario and concurrency, each tree's p50, p90 and vdm CPU per request over all its slices.
An old tree is checked out with `git worktree add /tmp/old REV`.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

from tests.bench import upstream
from tests.bench.client import LoadResult, Server, closed_loop, percentile, stop
from tests.bench.run import start_vdm
from tests.bench.scenarios import SCENARIOS, Scenario, vdm_request

WARMUP_S = 1.0


async def _load(server: Server, request: tuple[bytes, Any], c: int, seconds: float) -> LoadResult:
    return await closed_loop(
        server.port,
        *request,
        concurrency=c,
        warmup=0.0,
        duration=seconds,
        max_requests=10**7,
        probe=dict,
    )


async def _pair(
    s: Scenario, c: int, servers: dict[Path, Server], rounds: int, slice_s: float
) -> None:
    requests = {tree: vdm_request(s, server.port) for tree, server in servers.items()}
    latencies: dict[Path, list[float]] = {tree: [] for tree in servers}
    cpu = dict.fromkeys(servers, 0.0)
    for tree, server in servers.items():
        await _load(server, requests[tree], c, WARMUP_S)
    order = list(servers.items())
    for r in range(rounds):
        for tree, server in order if r % 2 == 0 else order[::-1]:
            before = server.cpu_seconds()
            result = await _load(server, requests[tree], c, slice_s)
            cpu[tree] += server.cpu_seconds() - before
            latencies[tree].extend(result.latencies)
    print(f"({s.key}) {s.title}, c={c}")
    for tree, found in latencies.items():
        n = len(found) or 1
        print(
            f"  {str(tree):40s} {len(found):7d} requests  p50 {percentile(found, 50) * 1000:.3f} ms"
            f"  p90 {percentile(found, 90) * 1000:.3f} ms  CPU {cpu[tree] / n * 1000:.3f} ms/req"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs=2, type=Path, help="the two trees (old, new)")
    parser.add_argument("--only", default="a,b,d", help="scenarios, e.g. 'a,d'")
    parser.add_argument("--concurrency", default="1,50", help="comma list")
    parser.add_argument("--rounds", type=int, default=16, help="slices per tree")
    parser.add_argument("--slice", type=float, default=0.5, help="seconds per slice")
    args = parser.parse_args(argv)
    wanted = [s for s in SCENARIOS if s.key in args.only.split(",") and s.reply != "paced"]
    levels = [int(c) for c in args.concurrency.split(",")]
    upstream_proc, port = upstream.start()
    servers: dict[Path, Server] = {}
    try:
        for tree in args.trees:
            tree = tree.resolve()
            workdir = Path(tempfile.mkdtemp(prefix="vdm-ab-"))
            servers[tree] = start_vdm(port, workdir, {"PYTHONPATH": str(tree)})
        for s in wanted:
            for c in levels:
                asyncio.run(_pair(s, c, servers, args.rounds, args.slice))
    finally:
        for server in servers.values():
            stop(server.proc)
        stop(upstream_proc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
