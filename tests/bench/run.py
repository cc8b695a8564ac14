"""``make bench``: vdm's overhead against a direct call, and claude-code-router, in one run.

    .venv/bin/python -m tests.bench.run [--duration 3] [--only a,c] [--concurrency 1,50]

Processes on 127.0.0.1: the fake OpenAI upstream (``tests.bench.upstream``, pre-rendered
replies), vdm (``vdm server start``, environment built from scratch, so psutil can measure its
CPU and memory), claude-code-router 2.0.0 (CCR, ``tests.bench.ccr``; skipped with a reason
when ``make install-ccr`` could not install it, or with ``--no-ccr``), and this one, the
closed-loop load generator. Each scenario runs back to back per concurrency: *direct* sends
the OpenAI request vdm would send straight to the upstream; *vdm* and *ccr* send the
Anthropic request to the proxy, which translates it and calls the same upstream. The
difference from direct is the proxy's cost. At c=50, (a) and (b) run once more through
``vdm server start --workers 2`` when the CLI has that option. Results go to stdout and
``.venv/bench-last.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped, unused-ignore]

from tests.bench import ccr
from tests.bench.client import (
    Expect,
    LoadResult,
    Server,
    closed_loop,
    free_port,
    get_stats,
    health_ok,
    once,
    peak_rss_mb,
    rss_mb,
    stop,
    tree_cpu_seconds,
    wait_healthy,
)
from tests.bench.report import (
    WORKERS,
    WORKERS_CONC,
    WORKERS_KEYS,
    X2,
    Pair,
    checks,
    scenario_json,
    table,
)
from tests.bench.scenarios import (
    REPO,
    SCENARIOS,
    Scenario,
    anthropic_body,
    direct_request,
    dumps,
    openai_body,
    vdm_request,
)
from tests.bench.upstream import start as start_upstream
from tests.harness import clean_env

__all__ = ["free_port", "health_ok", "start_upstream", "stop"]  # tests.bench.transports

JSON_OUT = REPO / ".venv" / "bench-last.json"
VDM = Path(sys.executable).parent / "vdm"

#: Shortest measuring window for paced streams (each lasts about half a second).
PACED_MIN_S = 15.0


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


def vdm_env(
    upstream_port: int, workdir: Path, extra: dict[str, str] | None = None
) -> dict[str, str]:
    return clean_env(
        OPENAI_API_KEY="sk-bench",
        OPENAI_BASE_URL=f"http://127.0.0.1:{upstream_port}/v1",
        LOG_LEVEL="WARNING",
        HOME=str(workdir),  # no user config file
        **(extra or {}),
    )


def start_vdm(
    upstream_port: int,
    workdir: Path,
    extra_env: dict[str, str] | None = None,
    timeout: float = 15.0,
    workers: int = 1,
) -> Server:
    """Spawn ``vdm server start`` and time it until /health answers 200."""
    port = free_port()
    command = [str(VDM), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    if workers != 1:
        command += ["--workers", str(workers)]
    log = workdir / f"vdm-{port}.log"
    with log.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            command,
            cwd=workdir,  # no .env
            env=vdm_env(upstream_port, workdir, extra_env),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    return wait_healthy("vdm", proc, port, log, started, timeout)


def workers_unsupported(workdir: Path, upstream_port: int) -> str | None:
    """Why ``--workers`` cannot be measured (None when `vdm server start --help` offers it)."""
    env = vdm_env(upstream_port, workdir, {"COLUMNS": "200"})
    out = subprocess.run(
        [str(VDM), "server", "start", "--help"], env=env, capture_output=True, text=True
    )
    if "--workers" not in out.stdout:
        return "`vdm server start --help` does not list --workers"
    return None


def wrap_to_child(workdir: Path, upstream_port: int) -> tuple[float, float]:
    """Seconds from starting ``vdm wrap -- date`` to the child's start (``date`` prints the
    time it ran), and the same for ``date`` started directly (the floor)."""
    child = ["date", "+%s%N"]
    env = vdm_env(upstream_port, workdir)
    del env["LOG_LEVEL"]
    found: list[float] = []
    for command in ([str(VDM), "wrap", "--quiet", "--", *child], child):
        began = time.time_ns()
        out = subprocess.run(
            command, cwd=workdir, env=env, capture_output=True, text=True, timeout=30
        )
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited {out.returncode}:\n{out.stderr}")
        found.append((int(out.stdout.strip()) - began) / 1e9)
    return found[0], found[1]


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


class Bench:
    """The upstream, the proxies' requests per scenario, and the runs."""

    def __init__(
        self,
        args: argparse.Namespace,
        upstream: subprocess.Popen[bytes],
        upstream_port: int,
        vdm: Server,
        ccr_server: Server | None,
    ) -> None:
        self.args, self.upstream_port, self.vdm, self.ccr = args, upstream_port, vdm, ccr_server
        self.upstream_ps = psutil.Process(upstream.pid)
        self.client_ps = psutil.Process()
        self.direct_bodies = {s.key: openai_body(s) for s in SCENARIOS}

    def request(self, name: str, s: Scenario, port: int) -> tuple[bytes, Expect]:
        make = {"direct": direct_request, "vdm": vdm_request, "ccr": ccr.request}[name]
        return make(s, port)

    async def verify(self) -> None:
        """One request per scenario each way; the upstream must receive from vdm exactly the
        direct body (CCR translates differently: its request must only reach the upstream)."""
        problems: list[str] = []
        for s in SCENARIOS:
            for name, port in (("direct", self.upstream_port), ("vdm", self.vdm.port)):
                if problem := await once(port, *self.request(name, s, port)):
                    problems.append(f"({s.key}) {name}: {problem}")
            seen = await get_stats(self.upstream_port)
            got = base64.b64decode(seen["last_body"].get(s.model, ""))
            want = self.direct_bodies[s.key]
            if got != want:
                at = next((i for i, (x, y) in enumerate(zip(got, want, strict=False)) if x != y), 0)
                problems.append(
                    f"({s.key}) the upstream body from vdm ({len(got)} B) differs from the "
                    f"direct one ({len(want)} B) at byte {at}: {got[at : at + 60]!r}"
                )
            if self.ccr is not None:
                problems += await ccr.verify(s, self.ccr.port, self.upstream_port, seen)
        for problem in problems:
            print(f"  VERIFY: {problem}")
        if not problems:
            sizes = ", ".join(
                f"({s.key}) {len(dumps(anthropic_body(s))) // 1024 or 1} KB" for s in SCENARIOS
            )
            also = "; claude-code-router answers every scenario" if self.ccr else ""
            print(f"  verified: vdm sends the upstream exactly the direct body{also}; {sizes}")

    async def load(
        self, name: str, s: Scenario, c: int, port: int, proxy: Server | None
    ) -> LoadResult:
        def probe() -> dict[str, float]:
            t = self.client_ps.cpu_times()
            out = {
                "cpu_upstream": tree_cpu_seconds(self.upstream_ps),
                "cpu_client": t.user + t.system,
            }
            if proxy is not None:
                out["cpu_proxy"] = proxy.cpu_seconds()
            return out

        request, expect = self.request(name, s, port)
        # A paced stream lasts ~0.5 s: measure those longer to get enough samples.
        duration = self.args.duration
        if s.reply == "paced":
            duration = max(duration, PACED_MIN_S)
        seen = await get_stats(self.upstream_port)
        result = await closed_loop(
            port,
            request,
            expect,
            concurrency=c,
            warmup=self.args.warmup,
            duration=duration,
            max_requests=self.args.max_requests,
            probe=probe,
        )
        now = await get_stats(self.upstream_port)
        # New upstream TCP connections per upstream request (the stats request's own
        # connection excluded): ~0 when connections are kept alive and reused.
        calls = now["counts"].get(s.model, 0) - seen["counts"].get(s.model, 0)
        opened = now["connections"] - seen["connections"] - 1
        if proxy is None:  # the load generator's own connections
            opened -= c
        result.probes["upstream_conns_per_req"] = opened / calls if calls else 0.0
        return result

    async def measure(self) -> list[Pair]:
        await self.verify()
        pairs: list[Pair] = []
        servers: list[tuple[str, int, Server | None]] = [
            ("direct", self.upstream_port, None),
            ("vdm", self.vdm.port, self.vdm),
        ]
        if self.ccr is not None:
            servers.append(("ccr", self.ccr.port, self.ccr))
        for s in [s for s in SCENARIOS if s.key in self.args.only]:
            for c in self.args.concurrency:
                pair = Pair(s, c)
                for name, port, proxy in servers:
                    pair.runs[name] = await self.load(name, s, c, port, proxy)
                pair.vdm_rss_mb = rss_mb(self.vdm.ps)
                pairs.append(pair)
                print(
                    f"  ({s.key}) c={c:<3} "
                    + "   ".join(f"{k} {r.rps:8.1f} req/s" for k, r in pair.runs.items())
                    + "   errors "
                    + "/".join(str(r.errors) for r in pair.runs.values()),
                    flush=True,
                )
        return pairs

    async def measure_workers(self, vdm: Server, pairs: list[Pair]) -> None:
        for pair in pairs:
            if pair.scenario.key in WORKERS_KEYS and pair.concurrency == WORKERS_CONC:
                result = await self.load("vdm", pair.scenario, pair.concurrency, vdm.port, vdm)
                pair.runs[X2] = result
                print(
                    f"  ({pair.scenario.key}) c={pair.concurrency:<3} {X2} {result.rps:8.1f} "
                    f"req/s   errors {result.errors}",
                    flush=True,
                )


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=3.0, help="seconds measured per run")
    p.add_argument("--warmup", type=float, default=0.5, help="seconds of warm-up per run")
    p.add_argument("--max-requests", type=int, default=20_000, help="requests measured per run")
    p.add_argument("--only", default="abcd", help="scenarios to run, e.g. 'a,c' (default all)")
    p.add_argument("--concurrency", default="1,50", help="comma list (default 1,50)")
    p.add_argument("--starts", type=int, default=3, help="vdm start-ups timed (default 3)")
    p.add_argument("--wraps", type=int, default=7, help="vdm wrap start-ups timed (default 7)")
    p.add_argument("--no-ccr", action="store_true", help="do not measure claude-code-router")
    p.add_argument("--no-workers", action="store_true", help=f"skip the {X2} run")
    p.add_argument("--json", type=Path, default=JSON_OUT, help=f"(default {JSON_OUT})")
    p.add_argument(
        "--vdm-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for vdm, e.g. PYTHONPATH=/tmp/patched to time a changed tree",
    )
    args = p.parse_args(argv)
    args.vdm_env = dict(item.split("=", 1) for item in args.vdm_env)
    args.only = [k for k in args.only.replace(",", "") if k in "abcd"]
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    return args


def _workers_wanted(args: argparse.Namespace) -> str | None:
    if args.no_workers:
        return "--no-workers"
    if WORKERS_CONC not in args.concurrency or not set(WORKERS_KEYS) & set(args.only):
        return f"no ({'), ('.join(WORKERS_KEYS)}) run at c={WORKERS_CONC}"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    when = datetime.datetime.now(datetime.UTC)
    from vdm import __version__

    print(
        f"vdm {__version__} benchmark, {when:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores "
        f"({cpu_model()}), Python {platform.python_version()}, {platform.system()}"
    )
    print(
        f"closed loop, warm-up {args.warmup:g} s then {args.duration:g} s or "
        f"{args.max_requests} requests per run; all on 127.0.0.1"
    )
    ccr_skipped = "--no-ccr" if args.no_ccr else ccr.unavailable()
    ccr_info: dict[str, Any] = {"version": ccr.VERSION, "skipped": ccr_skipped}
    upstream, upstream_port = start_upstream()
    vdm: Server | None = None
    ccr_server: Server | None = None
    workers_skipped = _workers_wanted(args)
    workers_info: dict[str, Any] = {"workers": WORKERS}
    try:
        with tempfile.TemporaryDirectory(prefix="vdm-bench-") as tmp:
            workdir = Path(tmp)
            times: list[float] = []
            for i in range(max(1, args.starts)):
                vdm = start_vdm(upstream_port, workdir, args.vdm_env)
                times.append(vdm.start_to_healthy)
                if i < args.starts - 1:
                    stop(vdm.proc)
            assert vdm is not None
            startup = statistics.median(times)
            time.sleep(0.5)
            idle_rss = rss_mb(vdm.ps)
            print(
                f"start to healthy: {', '.join(f'{t:.3f}' for t in times)} s "
                f"(median {startup:.3f} s); idle RSS after startup {idle_rss:.1f} MB; "
                f"fake upstream RSS {rss_mb(psutil.Process(upstream.pid)):.1f} MB"
            )
            wraps = [wrap_to_child(workdir, upstream_port) for _ in range(max(1, args.wraps))]
            wrap = statistics.median(w for w, _ in wraps)
            direct_spawn = statistics.median(d for _, d in wraps)
            print(
                f"vdm wrap to the child's start: {', '.join(f'{w:.3f}' for w, _ in wraps)} s "
                f"(median {wrap:.3f} s; the same child started directly: {direct_spawn:.4f} s)"
            )
            if ccr_skipped is None:
                ccr_server = ccr.start(upstream_port, workdir, [s.model for s in SCENARIOS])
                ccr_info.update(ccr.describe(ccr_server, upstream_port))
            else:
                print(f"claude-code-router: skipped ({ccr_skipped}); vdm-only figures")
            bench = Bench(args, upstream, upstream_port, vdm, ccr_server)
            pairs = asyncio.run(bench.measure())
            time.sleep(0.5)
            after_rss = rss_mb(vdm.ps)
            peak_rss = peak_rss_mb(vdm.ps)
            ccr_tail = ccr.log_tail(ccr_server) if ccr_server is not None else ""
            stop(vdm.proc)
            log_lines = vdm.log.read_text().splitlines()
            if workers_skipped is None:
                workers_skipped = workers_unsupported(workdir, upstream_port)
            if workers_skipped is None:
                try:
                    vdm = start_vdm(upstream_port, workdir, args.vdm_env, workers=WORKERS)
                except RuntimeError as exc:  # keep the figures measured so far
                    workers_skipped, vdm = f"--workers {WORKERS} did not start: {exc}", None
            if workers_skipped is None and vdm is not None:
                workers_info["start_to_healthy_s"] = round(vdm.start_to_healthy, 3)
                asyncio.run(bench.measure_workers(vdm, pairs))
                workers_info["rss_mb"] = round(vdm.rss_mb(), 1)
                stop(vdm.proc)
                log_lines += vdm.log.read_text().splitlines()
            else:
                print(f"  {X2}: skipped ({workers_skipped})")
            workers_info["skipped"] = workers_skipped
            log_tail = "\n".join(x for x in log_lines if "vdm listening on" not in x)[-3000:]
    finally:
        if vdm is not None:
            stop(vdm.proc)
        if ccr_server is not None:
            stop(ccr_server.proc)
        stop(upstream)

    print("\n".join(table(pairs)))
    print(
        f"\nvdm memory: idle after startup {idle_rss:.1f} MB, idle after the load "
        f"{after_rss:.1f} MB, peak {peak_rss:.1f} MB (VmHWM)"
    )
    if "idle_rss_mb" in ccr_info:
        print(f"claude-code-router memory: idle after startup {ccr_info['idle_rss_mb']:.1f} MB")
    results = checks(pairs, startup, idle_rss, wrap)
    print("\ntargets")
    print("\n".join(r.line() for r in results))
    if ccr_skipped is not None:
        print(f"  (vdm/ccr targets not checked: claude-code-router skipped, {ccr_skipped})")
    errors = sum(r.errors for p in pairs for r in p.runs.values())
    samples = [e for p in pairs for r in p.runs.values() for e in r.error_samples]
    print(f"\nerrors: {errors}" + "".join(f"\n  {e}" for e in samples[:10]))
    if log_tail.strip():
        print(f"vdm stderr (tail):\n{log_tail}")
    if ccr_tail.strip():
        print(f"claude-code-router output (tail):\n{ccr_tail}")
    print(f"total {time.perf_counter() - began:.0f} s")

    report = {
        "date": when.isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "cpu": cpu_model(),
            "python": platform.python_version(),
            "system": platform.platform(),
        },
        "settings": {
            "warmup_s": args.warmup,
            "duration_s": args.duration,
            "max_requests": args.max_requests,
            "vdm_env": args.vdm_env,
        },
        "startup": {
            "start_to_healthy_s": [round(t, 4) for t in times],
            "median_s": round(startup, 4),
            "wrap_to_child_s": [round(w, 4) for w, _ in wraps],
            "wrap_to_child_median_s": round(wrap, 4),
            "direct_spawn_median_s": round(direct_spawn, 4),
        },
        "memory_mb": {
            "idle_after_startup": round(idle_rss, 1),
            "idle_after_load": round(after_rss, 1),
            "peak": round(peak_rss, 1),
        },
        "ccr": ccr_info,
        "vdm_workers": workers_info,
        "scenarios": [scenario_json(p) for p in pairs],
        "targets": [
            {"name": r.name, "measured": round(r.measured, 4), "limit": r.limit, "ok": r.ok}
            for r in results
        ],
        "errors": errors,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
