"""``make bench``'s report: the table per scenario, the targets of issue 15 and their checks,
and the JSON of a scenario. The runs are made by ``tests.bench.run``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tests.bench import ccr
from tests.bench.client import LoadResult, summary
from tests.bench.scenarios import Scenario

#: Targets (issue 15). Added p50 at concurrency 1, in ms, per scenario.
ADDED_P50_MS = {"a": 0.6, "b": 0.8, "d": 1.2}
#: vdm's CPU per request at c=50, in ms, per scenario.
CPU_MS_PER_REQ = {"a": 0.45, "b": 0.8}
#: vdm/CCR throughput at c=50, per scenario, measured in the same run.
VS_CCR_RATIO = {"a": 3.0, "b": 3.0}
PACED_RPS_RATIO = 0.95
PACED_TTFT_MS = 20.0
START_TO_HEALTHY_S = 0.5
WRAP_TO_CHILD_S = 0.2
IDLE_RSS_MB = 60.0
#: The extra run through `vdm server start --workers N`: N, scenarios, concurrency.
WORKERS, WORKERS_KEYS, WORKERS_CONC = 2, ("a", "b"), 50
X2 = f"vdm x{WORKERS}"


@dataclass
class Pair:
    """One scenario at one concurrency: the runs by name ("direct", "vdm", "ccr", X2)."""

    scenario: Scenario
    concurrency: int
    runs: dict[str, LoadResult] = field(default_factory=dict)
    vdm_rss_mb: float = 0.0


def _f(value: float | None, fmt: str = "9.3f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return " " * (int(fmt.split(".")[0]) - 1) + "-"
    return format(value, fmt)


def _added(value: float | None) -> str:
    return "        -" if value is None or math.isnan(value) else f"{value:+9.3f}"


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _ratio(pair: Pair, one: str, other: str) -> float:
    """Throughput of run ``one`` over run ``other`` (NaN when ``other`` did not run)."""
    b = pair.runs.get(other)
    return pair.runs[one].rps / b.rps if b is not None and b.rps else float("nan")


def _compare(pair: Pair, rows: dict[str, dict[str, Any]], one: str, other: str) -> str:
    """Throughput ratio, then ``one`` minus ``other`` for p50, p99 and TTFT."""
    keys = ("p50_ms", "p99_ms", "ttft_p50_ms", "ttft_p99_ms")
    diffs = " ".join(_added(_minus(rows[one][k], rows[other][k])) for k in keys)
    label = f"{one}/{other}"
    return f"  {pair.concurrency:>4}  {label:<10} {_ratio(pair, one, other):>8.2f}x {diffs}"


def table(pairs: list[Pair]) -> list[str]:
    lines: list[str] = []
    header = (
        "  conc  run           req/s    p50 ms    p99 ms  TTFT p50  TTFT p99"
        " proxy CPU  upstr CPU  client CPU  conn/req  errors"
    )
    current = ""
    for pair in pairs:
        if pair.scenario.key != current:
            current = pair.scenario.key
            lines += ["", f"({current}) {pair.scenario.title}", header]
        rows = {name: summary(run) for name, run in pair.runs.items()}
        for name, row in rows.items():
            cpu = row["cpu_ms_per_req"]
            lines.append(
                f"  {pair.concurrency:>4}  {name:<8} {row['rps']:>10.1f} {_f(row['p50_ms'])} "
                f"{_f(row['p99_ms'])} {_f(row['ttft_p50_ms'])} {_f(row['ttft_p99_ms'])} "
                f"{_f(cpu.get('proxy'))}  {_f(cpu.get('upstream'))}"
                f"   {_f(cpu.get('client'))} {row['upstream_conns_per_req']:>9.2f}"
                f"  {row['errors']:>6}"
            )
        c = pair.concurrency
        lines.append(_compare(pair, rows, "vdm", "direct"))
        if "ccr" in rows:
            lines.append(_compare(pair, rows, "vdm", "ccr"))
            lines.append(f"  {c:>4}  vdm/ccr throughput ratio {_ratio(pair, 'vdm', 'ccr'):.2f}x")
        if X2 in rows:
            lines.append(f"  {c:>4}  {X2}/vdm throughput ratio {_ratio(pair, X2, 'vdm'):.2f}x")
    lines += [
        "",
        "  times in ms; CPU in ms per request (proxy processes / fake upstream / load generator);",
        "  conn/req: new TCP connections the fake upstream accepted per request (0 = reused);",
        "  vdm/direct, vdm/ccr rows: throughput ratio, then vdm minus the other (time vdm adds);",
        f"  ccr = claude-code-router {ccr.VERSION}; {X2} = `vdm server start --workers {WORKERS}`.",
    ]
    if pairs:
        # Share of one core used during the runs: is the proxy saturated, the generator cheap?
        def share(result: LoadResult, name: str) -> float:
            return result.probes.get(f"cpu_{name}", 0.0) / result.seconds if result.seconds else 0

        for kind in ("vdm", "direct"):
            load, pair = max(
                ((share(p.runs[kind], "client"), p) for p in pairs), key=lambda t: t[0]
            )
            lines.append(
                f"  load generator in the {kind} runs: at most {load:.0%} of one core "
                f"(({pair.scenario.key}) c={pair.concurrency})"
            )
        for kind in ("vdm", "ccr", X2):
            shares = [
                f"({p.scenario.key}) c={p.concurrency} {share(p.runs[kind], 'proxy'):.0%}"
                for p in pairs
                if kind in p.runs
            ]
            if shares:
                lines.append(f"  {kind} CPU use (share of one core): " + ", ".join(shares))
    return lines


@dataclass
class Check:
    name: str
    measured: float
    limit: float
    unit: str
    higher_is_better: bool = False

    @property
    def ok(self) -> bool:
        if math.isnan(self.measured):
            return False
        return self.measured >= self.limit if self.higher_is_better else self.measured <= self.limit

    def line(self) -> str:
        sign = ">=" if self.higher_is_better else "<="
        return (
            f"  {self.name:<52} {self.measured:>9.3f} {self.unit:<4} {sign} {self.limit:<7g}"
            f" {'PASS' if self.ok else 'MISS'}"
        )


def checks(pairs: list[Pair], startup: float, idle_rss: float, wrap: float) -> list[Check]:
    out: list[Check] = []
    for pair in pairs:
        key, c, short = pair.scenario.key, pair.concurrency, pair.scenario.short
        d, v = summary(pair.runs["direct"]), summary(pair.runs["vdm"])
        name = f"({key}) {'paced streams' if key == 'c' else short}, c={c}:"
        if c == 1 and key in ADDED_P50_MS:
            added = v["p50_ms"] - d["p50_ms"]
            out.append(Check(f"added p50, ({key}) {short}, c=1", added, ADDED_P50_MS[key], "ms"))
        if c == 50 and key in VS_CCR_RATIO and "ccr" in pair.runs:
            ratio = _ratio(pair, "vdm", "ccr")
            out.append(Check(f"{name} throughput vdm/ccr", ratio, VS_CCR_RATIO[key], "x", True))
        if c == 50 and key in CPU_MS_PER_REQ:
            cpu = v["cpu_ms_per_req"].get("proxy", float("nan"))
            out.append(Check(f"{name} vdm CPU per request", cpu, CPU_MS_PER_REQ[key], "ms"))
        if c == 50 and key == "c":
            ratio = _ratio(pair, "vdm", "direct")
            out.append(Check(f"{name} throughput vdm/direct", ratio, PACED_RPS_RATIO, "x", True))
            ttft = v["ttft_p50_ms"] if v["ttft_p50_ms"] is not None else float("nan")
            out.append(Check(f"{name} TTFT p50 through vdm", ttft, PACED_TTFT_MS, "ms"))
    out.append(Check("start to healthy (median)", startup, START_TO_HEALTHY_S, "s"))
    out.append(Check("idle RSS after startup", idle_rss, IDLE_RSS_MB, "MB"))
    out.append(Check("vdm wrap to the child's start (median)", wrap, WRAP_TO_CHILD_S, "s"))
    return out


def scenario_json(p: Pair) -> dict[str, Any]:
    runs = {"vdm_workers" if k == X2 else k: summary(r) for k, r in p.runs.items()}
    ratios = {"rps_ratio": ("vdm", "direct"), "rps_ratio_vs_ccr": ("vdm", "ccr")}
    return {
        "scenario": p.scenario.key,
        "title": p.scenario.title,
        "concurrency": p.concurrency,
        "ccr": None,
        "vdm_workers": None,
        **runs,
        "vdm_rss_mb": round(p.vdm_rss_mb, 1),
        "added_p50_ms": round(runs["vdm"]["p50_ms"] - runs["direct"]["p50_ms"], 3),
        **{
            k: None if math.isnan(r := _ratio(p, *names)) else round(r, 3)
            for k, names in ratios.items()
        },
    }
