"""``make soak``: many concurrent clients against vdm in front of a faulty upstream, for minutes.

    .venv/bin/python -m tests.reliability.soak [--clients 100] [--minutes 10] [--seed 1]

Three parties on 127.0.0.1. The fakes (`FakeOpenAI` for a Chat Completions provider with two
keys, `FakeAnthropic` for an Anthropic-format provider) run in threads of this process and
answer well most of the time and with a random fault of `tests.fakes.faults.MENU` otherwise
(stalls, drops, garbage and huge SSE lines, endless and dripping bodies, 429 storms, 5xx, HTML
pages, wrong shapes, invalid UTF-8). vdm runs as a separate process (`vdm server start`, a
scratch HOME and working directory, an environment built from scratch: never the shell's
ANTHROPIC_* or OPENAI_*), so psutil measures vdm alone. The clients are this process's asyncio
tasks: each loops sending `POST /v1/messages` (mostly streamed) until the time is up; a share
of them closes the connection mid-stream.

Every request is bounded by `--hang-after` seconds; one that exceeds it is HUNG. The others are
completed (a 200 that ends with `message_stop`, or a JSON message), failed (an error status or
an SSE `error` event: the faults make many of these, by design), cut (an answer that ended with
neither its end nor an error event: a mid-stream failure that looks like a normal end to a
careless client) or disconnected (our own deliberate close).

Targets, printed with PASS/FAIL (the exit status is 1 when one fails):

* 0 hung and 0 cut;
* RSS growth < 10 %: the median RSS over the last warm-up-long window of the run against the
  median over the window right after the warm-up (10 % of the run, at most a minute). The
  warm-up is excluded because a fresh process grows to a plateau there for reasons that are
  not leaks: lazily built clients and validators, the upstream keep-alive pool filling to the
  concurrency, allocator arenas sized to the peak of concurrent streams. A leak keeps growing
  after it;
* descriptors back to baseline within 10 s of the end: no socket from a client left, and every
  other descriptor back to the count before the load, except idle upstream keep-alive
  connections, which the pool keeps on purpose. Those are bounded by the concurrency (one per
  in-flight request at most), so a leak of one per failed request would exceed that bound
  within seconds; the target checks that bound too.

The same code runs in the normal suite with tiny parameters (tests/reliability/test_soak_smoke.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped, unused-ignore]

from tests.fakes import faults
from tests.fakes.anthropic_upstream import (
    AnthropicSseReply,
    FakeAnthropic,
    anthropic_message,
    anthropic_stream_events,
)
from tests.fakes.openai_upstream import (
    FakeOpenAI,
    JsonReply,
    Recorded,
    Reply,
    ReplySource,
    SseReply,
    completion,
    stream_chunks,
)
from tests.harness import REPO, clean_env, free_port

__all__ = [
    "SoakConfig",
    "SoakResult",
    "Snapshot",
    "VdmProcess",
    "back_to_baseline",
    "health_ok",
    "main",
    "run_soak",
    "snapshot",
    "vdm_process",
]

VDM = Path(sys.executable).parent / "vdm"
MB = 1024 * 1024
TEXT = "The quick brown fox jumps over the lazy dog, again and again, until the soak ends."
HEADERS = {
    "x-api-key": "sk-soak-client",
    "anthropic-version": "2023-06-01",
    "content-type": "application/json",
}
OPENAI_MODEL = "openai:gpt-4o"
ANTHROPIC_MODEL = "myant:claude-sonnet-4-5"

#: Runs a command under `ulimit -n N` (argv: N, command...): soft and hard limit both, as the
#: shell's `ulimit -n` sets them, so vdm cannot raise its soft limit back. A wrapper that execs,
#: rather than `preexec_fn`, which is unsafe when the parent has threads (the fakes do).
_LIMITED_EXEC = (
    "import os, resource, sys\n"
    "n = int(sys.argv[1])\n"
    "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SoakConfig:
    """One soak run. vdm's timeouts sit below `stall`, so every stall fault trips one of them,
    and `hang_after` sits well above `total_timeout`, so a HUNG request is one that no vdm
    timeout ended."""

    clients: int = 100
    seconds: float = 600.0
    seed: int = 1
    fault_rate: float = 0.3
    faults: tuple[str, ...] | None = None  # None: the whole menu
    disconnect_share: float = 0.1
    json_share: float = 0.15
    anthropic_share: float = 0.25
    stream_delay: float = 0.02  # between the events of a good stream (about 0.4 s a stream)
    stall: float = 5.0
    first_byte_timeout: float = 3.0
    idle_timeout: float = 3.0
    total_timeout: float = 12.0
    hang_after: float = 30.0
    settle: float = 10.0
    max_rss_mb: float = 2048.0  # abort (and fail) rather than let a leak fill the machine
    rss_growth_limit: float = 0.10

    @property
    def warmup(self) -> float:
        """10 % of the run, at most a minute."""
        return min(60.0, self.seconds * 0.1)

    @property
    def sample_every(self) -> float:
        return min(1.0, max(0.1, self.seconds / 100))


# --------------------------------------------------------------------------------------------
# The fakes
# --------------------------------------------------------------------------------------------


def _good_openai(delay: float) -> ReplySource:
    stream = SseReply(stream_chunks(TEXT, pieces=16), delay=delay)
    answer = JsonReply(completion(TEXT), delay=delay * 8)

    def reply(request: Recorded) -> Reply:
        return stream if faults.is_stream(request) else answer

    return reply


def _good_anthropic(delay: float) -> ReplySource:
    stream = AnthropicSseReply(anthropic_stream_events(TEXT, pieces=16), delay=delay)
    answer = JsonReply(anthropic_message(TEXT), delay=delay * 8)

    def reply(request: Recorded) -> Reply:
        return stream if faults.is_stream(request) else answer

    return reply


@dataclass
class Upstreams:
    openai: FakeOpenAI
    anthropic: FakeAnthropic
    openai_faults: faults.Faulty
    anthropic_faults: faults.Faulty

    @property
    def ports(self) -> frozenset[int]:
        return frozenset({self.openai.port, self.anthropic.port})

    def env(self) -> dict[str, str]:
        return {
            "OPENAI_API_KEY": "sk-soak-a sk-soak-b",
            "OPENAI_BASE_URL": self.openai.base_url,
            "MYANT_API_KEY": "sk-soak-ant",
            "MYANT_BASE_URL": self.anthropic.base_url,
            "MYANT_API_FORMAT": "anthropic",
            "VDM_DEFAULT_PROVIDER": "openai",
        }

    def fault_counts(self) -> Counter[str]:
        return self.openai_faults.counts + self.anthropic_faults.counts


@contextmanager
def faulty_upstreams(config: SoakConfig) -> Iterator[Upstreams]:
    """Both fakes, answering with random faults at `config.fault_rate`."""
    rng = random.Random(config.seed)
    menu = config.faults

    def make(good: ReplySource, dialect: faults.Dialect) -> faults.Faulty:
        return faults.faulty(
            random.Random(rng.random()),
            good,
            config.fault_rate,
            menu,
            dialect=dialect,
            stall_seconds=config.stall,
        )

    openai_faults = make(_good_openai(config.stream_delay), "openai")
    anthropic_faults = make(_good_anthropic(config.stream_delay), "anthropic")
    with FakeOpenAI(record=False) as openai, FakeAnthropic(record=False) as anthropic:
        openai.default = openai_faults
        anthropic.default = anthropic_faults
        yield Upstreams(openai, anthropic, openai_faults, anthropic_faults)


# --------------------------------------------------------------------------------------------
# vdm as a process
# --------------------------------------------------------------------------------------------


def health_ok(port: int, timeout: float = 1.0) -> bool:
    """One `GET /health` on a fresh connection; True on a 200 within `timeout`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


@dataclass
class VdmProcess:
    """A running `vdm server start` and where its stderr goes."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ps(self) -> psutil.Process:
        return psutil.Process(self.proc.pid)

    def log_bytes(self) -> int:
        try:
            return self.log.stat().st_size
        except OSError:
            return 0

    def log_tail(self, size: int = 3000) -> str:
        with self.log.open("rb") as f:
            f.seek(max(0, self.log_bytes() - size))
            return f.read().decode("utf-8", "replace")


@contextmanager
def vdm_process(
    workdir: Path,
    env: dict[str, str],
    *,
    nofile: int | None = None,
    start_timeout: float = 20.0,
) -> Iterator[VdmProcess]:
    """`vdm server start` on a free port with `env` only (plus a scratch HOME, `workdir`, which
    is also its working directory: no user or project configuration, no `.env`), its stderr in
    `workdir/vdm.log`; `nofile` lowers its RLIMIT_NOFILE. Stopped (TERM, then KILL) on exit."""
    port = free_port()
    command = [str(VDM), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    if nofile is not None:
        command = [sys.executable, "-c", _LIMITED_EXEC, str(nofile), *command]
    log = workdir / "vdm.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            command,
            cwd=workdir,
            env=clean_env(HOME=str(workdir), **env),
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
        )
    running = VdmProcess(proc, port, log)
    try:
        deadline = time.monotonic() + start_timeout
        while not health_ok(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"vdm did not become healthy:\n{running.log_tail()}")
            time.sleep(0.02)
        yield running
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


# --------------------------------------------------------------------------------------------
# Measuring vdm
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """vdm's resources at one instant. `client_sockets`: connections to vdm's port (its
    listener excluded); `upstream_sockets`: connections to the fakes; `fds`: every descriptor."""

    at: float
    rss_mb: float
    fds: int
    client_sockets: int
    upstream_sockets: int
    client_close_wait: int
    upstream_close_wait: int

    @property
    def other_fds(self) -> int:
        """Descriptors that are neither a client's nor an upstream connection."""
        return self.fds - self.client_sockets - self.upstream_sockets


def snapshot(ps: psutil.Process, port: int, upstream_ports: frozenset[int]) -> Snapshot:
    conns = ps.net_connections(kind="tcp")
    client = [
        c for c in conns if c.laddr and c.laddr.port == port and c.status != psutil.CONN_LISTEN
    ]
    upstream = [c for c in conns if c.raddr and c.raddr.port in upstream_ports]
    return Snapshot(
        at=time.monotonic(),
        rss_mb=ps.memory_info().rss / MB,
        fds=ps.num_fds(),
        client_sockets=len(client),
        upstream_sockets=len(upstream),
        client_close_wait=sum(c.status == psutil.CONN_CLOSE_WAIT for c in client),
        upstream_close_wait=sum(c.status == psutil.CONN_CLOSE_WAIT for c in upstream),
    )


def quiet_snapshot(
    ps: psutil.Process, port: int, upstream_ports: frozenset[int], wait: float = 2.0
) -> Snapshot:
    """A snapshot for a baseline, once no client socket is left (within `wait` seconds).

    A client that has just closed its connection leaves vdm's side open until vdm reads the
    end; a snapshot taken meanwhile can count that socket as a client's in one look and miss
    its descriptor in the next (closed in between): one "other" descriptor too few."""
    now = snapshot(ps, port, upstream_ports)
    deadline = time.monotonic() + wait
    while now.client_sockets and time.monotonic() < deadline:
        time.sleep(0.02)
        now = snapshot(ps, port, upstream_ports)
    return now


def peak_rss_mb(ps: psutil.Process) -> float:
    """The process's high-water mark (VmHWM, Linux), else its current RSS."""
    try:
        for line in Path(f"/proc/{ps.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float(ps.memory_info().rss) / MB


def back_to_baseline(now: Snapshot, baseline: Snapshot, clients: int) -> bool:
    """No client connection left, every other descriptor back to the baseline count, and the
    idle upstream keep-alive connections within their bound (the concurrency)."""
    return (
        now.client_sockets == 0
        and now.other_fds <= baseline.other_fds
        and now.upstream_sockets <= max(clients, baseline.upstream_sockets)
    )


# --------------------------------------------------------------------------------------------
# The clients
# --------------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What the clients saw."""

    outcomes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    def add(self, outcome: str, reason: str, seconds: float) -> None:
        self.outcomes[outcome] += 1
        if reason:
            self.reasons[f"{outcome}: {reason}"] += 1
        if outcome in ("completed", "failed"):
            self.latencies.append(seconds)

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())


def _body(model: str, stream: bool) -> bytes:
    return json.dumps(
        {
            "model": model,
            "max_tokens": 64,
            "stream": stream,
            "messages": [{"role": "user", "content": "Say something, soak."}],
        }
    ).encode()


async def _exchange(
    client: httpx.AsyncClient, body: bytes, stream: bool, leave_after: int | None
) -> tuple[str, str]:
    """One request to its end: `(outcome, reason)`."""
    started_stream = False
    try:
        async with client.stream("POST", "/v1/messages", content=body, headers=HEADERS) as r:
            if r.status_code != 200:
                await r.aread()
                return "failed", f"status {r.status_code}"
            if not stream:
                raw = await r.aread()
                try:
                    data = json.loads(raw)
                except ValueError:
                    return "cut", "200 with a body that is not JSON"
                if isinstance(data, dict) and data.get("type") == "message":
                    return "completed", ""
                return "cut", "200 with a JSON body that is not a message"
            started_stream = True
            event, lines = "", 0
            async for line in r.aiter_lines():
                lines += 1
                if leave_after is not None and lines >= leave_after:
                    return "disconnected", ""
                if line.startswith("event:"):
                    event = line[6:].strip()
                    if event == "message_stop":
                        return "completed", ""
                elif line.startswith("data:") and event == "error":
                    try:
                        kind = json.loads(line[5:])["error"]["type"]
                    except (ValueError, KeyError, TypeError):
                        kind = "unparsable"
                    return "failed", f"error event {kind}"
            return "cut", "stream ended without message_stop or an error event"
    except httpx.TransportError as exc:
        where = "mid-stream" if started_stream else "before the answer"
        return ("cut" if started_stream else "failed"), f"{type(exc).__name__} {where}"


async def _client_loop(
    index: int,
    client: httpx.AsyncClient,
    config: SoakConfig,
    end: float,
    stop: asyncio.Event,
    tally: Tally,
) -> None:
    rng = random.Random(config.seed * 100_003 + index)
    while time.monotonic() < end and not stop.is_set():
        stream = rng.random() >= config.json_share
        model = ANTHROPIC_MODEL if rng.random() < config.anthropic_share else OPENAI_MODEL
        leave_after = None
        if stream and rng.random() < config.disconnect_share:
            leave_after = rng.randint(1, 12)
        started = time.monotonic()
        try:
            async with asyncio.timeout(config.hang_after):
                outcome, reason = await _exchange(client, _body(model, stream), stream, leave_after)
        except TimeoutError:
            outcome, reason = "hung", "stream" if stream else "json"
        if reason:
            reason = f"{reason} ({model.split(':')[0]})"
        tally.add(outcome, reason, time.monotonic() - started)


async def _sample(
    vdm: VdmProcess,
    config: SoakConfig,
    samples: list[tuple[float, float]],
    stop: asyncio.Event,
    aborted: list[str],
) -> None:
    """RSS every `sample_every` seconds; stops the run when vdm dies or passes `max_rss_mb`."""
    began = time.monotonic()
    while not stop.is_set():
        try:
            rss = vdm.ps.memory_info().rss / MB
        except psutil.Error:
            aborted.append("vdm exited during the run")
            stop.set()
            return
        samples.append((time.monotonic() - began, rss))
        if rss > config.max_rss_mb:
            aborted.append(f"vdm RSS {rss:.0f} MB passed the {config.max_rss_mb:.0f} MB guard")
            stop.set()
            return
        try:
            await asyncio.wait_for(stop.wait(), config.sample_every)
        except TimeoutError:
            pass


async def _load(
    vdm: VdmProcess, ports: frozenset[int], config: SoakConfig
) -> tuple[Tally, list[tuple[float, float]], list[str], float]:
    tally = Tally()
    samples: list[tuple[float, float]] = []
    aborted: list[str] = []
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=config.clients * 2, max_keepalive_connections=None)
    timeout = httpx.Timeout(10.0, read=None, pool=None)
    async with httpx.AsyncClient(base_url=vdm.url, limits=limits, timeout=timeout) as client:
        sampler = asyncio.create_task(_sample(vdm, config, samples, stop, aborted))
        began = time.monotonic()
        end = began + config.seconds
        loops = [
            asyncio.create_task(_client_loop(i, client, config, end, stop, tally))
            for i in range(config.clients)
        ]
        # Every request is bounded by hang_after, so the loops end by then; the margin only
        # guards against a defect in this harness.
        _, late = await asyncio.wait(loops, timeout=config.seconds + config.hang_after + 10)
        for task in late:
            task.cancel()
        elapsed = time.monotonic() - began
        stop.set()
        await sampler
    if late:
        aborted.append(f"{len(late)} client loops did not end in time")
    return tally, samples, aborted, elapsed


# --------------------------------------------------------------------------------------------
# The run and its report
# --------------------------------------------------------------------------------------------


@dataclass
class SoakResult:
    config: SoakConfig
    tally: Tally
    fault_counts: Counter[str]
    baseline: Snapshot
    at_end: Snapshot
    settled: Snapshot
    settle_seconds: float | None  # None: not back to baseline within config.settle
    rss_warm_mb: float
    rss_end_mb: float
    rss_peak_mb: float
    rss_samples: list[tuple[float, float]]  # (seconds into the run, MB)
    elapsed: float
    log_bytes: int
    log_tracebacks: int
    aborted: list[str]

    @property
    def rss_growth(self) -> float:
        return (self.rss_end_mb - self.rss_warm_mb) / self.rss_warm_mb

    def targets(self) -> list[tuple[str, bool, str]]:
        """`(name, passed, detail)` per target."""
        o = self.tally.outcomes
        limit = self.config.rss_growth_limit
        settled = self.settle_seconds is not None
        return [
            ("run completed", not self.aborted, "; ".join(self.aborted) or "yes"),
            ("0 hung", o["hung"] == 0, f"{o['hung']} hung"),
            ("0 cut without an error", o["cut"] == 0, f"{o['cut']} cut"),
            (
                f"RSS growth < {limit:.0%} after warm-up",
                self.rss_growth < limit,
                f"{self.rss_warm_mb:.1f} -> {self.rss_end_mb:.1f} MB ({self.rss_growth:+.1%})",
            ),
            (
                f"descriptors back to baseline within {self.config.settle:.0f} s",
                settled,
                f"after {self.settle_seconds:.1f} s" if settled else "not within the time",
            ),
        ]

    @property
    def passed(self) -> bool:
        return all(ok for _, ok, _ in self.targets())

    def report(self) -> str:
        c, o, t = self.config, self.tally.outcomes, self.tally
        lat = sorted(t.latencies)
        lines = [
            f"soak: {c.clients} clients for {self.elapsed:.0f} s, fault rate {c.fault_rate:.0%}, "
            f"{c.disconnect_share:.0%} of streams left mid-way, seed {c.seed}",
            f"requests: {t.total} ({t.total / max(self.elapsed, 1e-9):.0f}/s)  "
            f"completed {o['completed']}  failed {o['failed']}  cut {o['cut']}  "
            f"hung {o['hung']}  disconnected {o['disconnected']}",
        ]
        if lat:
            lines.append(
                f"latency (completed and failed): p50 {_pct(lat, 50) * 1000:.0f} ms  "
                f"p99 {_pct(lat, 99) * 1000:.0f} ms  max {lat[-1] * 1000:.0f} ms"
            )
        faults_sent = ", ".join(f"{k} {v}" for k, v in self.fault_counts.most_common())
        lines.append(f"upstream replies: {faults_sent}")
        for reason, n in t.reasons.most_common(12):
            lines.append(f"  {n:6d}  {reason}")
        b, e, s = self.baseline, self.at_end, self.settled
        lines += [
            f"vdm RSS: start {b.rss_mb:.1f} MB, after warm-up ({c.warmup:.0f} s) "
            f"{self.rss_warm_mb:.1f} MB, end {self.rss_end_mb:.1f} MB, peak {self.rss_peak_mb:.1f}"
            f" MB, after settling {s.rss_mb:.1f} MB",
            f"vdm RSS over the run (MB, every tenth): {self.rss_trend()}",
            f"vdm descriptors: start {_fds(b)}",
            f"                 end   {_fds(e)}",
            f"                 +{s.at - e.at:.1f} s {_fds(s)}",
            f"CLOSE_WAIT at end: clients {e.client_close_wait}, upstream {e.upstream_close_wait};"
            f" after settling: clients {s.client_close_wait}, upstream {s.upstream_close_wait}",
            f"vdm log: {self.log_bytes / 1024:.0f} KiB, {self.log_tracebacks} tracebacks",
        ]
        for name, ok, detail in self.targets():
            lines.append(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
        return "\n".join(lines)

    def rss_trend(self, points: int = 10) -> str:
        """The median RSS of each tenth of the run: a leak climbs, a plateau stays flat."""
        span = max(t for t, _ in self.rss_samples) if self.rss_samples else 0.0
        step = span / points
        medians = [
            _median_between(self.rss_samples, i * step, (i + 1) * step) for i in range(points)
        ]
        return " ".join(f"{m:.0f}" for m in medians)


def _pct(ordered: Sequence[float], p: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def _fds(s: Snapshot) -> str:
    return (
        f"{s.fds} fds = {s.client_sockets} client sockets + {s.upstream_sockets} upstream "
        f"sockets + {s.other_fds} other"
    )


def _median_between(samples: list[tuple[float, float]], lo: float, hi: float) -> float:
    window = [rss for t, rss in samples if lo <= t <= hi]
    if not window:  # a run cut short: the nearest sample
        window = [min(samples, key=lambda s: abs(s[0] - lo))[1]]
    return statistics.median(window)


def _prime(vdm: VdmProcess) -> None:
    """One good request per provider and kind, so the baseline counts what any served
    request creates once (clients per provider, one pooled connection each, caches)."""
    with httpx.Client(base_url=vdm.url, timeout=30) as client:
        for model in (OPENAI_MODEL, ANTHROPIC_MODEL):
            for stream in (False, True):
                for _ in range(5):  # the fakes may answer with a fault; a few tries suffice
                    r = client.post("/v1/messages", content=_body(model, stream), headers=HEADERS)
                    if r.status_code == 200 and b"message" in r.content:
                        break


def _settle(
    vdm: VdmProcess, ports: frozenset[int], baseline: Snapshot, config: SoakConfig
) -> tuple[Snapshot, float | None]:
    """Poll vdm until it is back to `baseline` (the snapshot and the seconds it took) or
    `config.settle` has passed (the last snapshot and None)."""
    began = time.monotonic()
    while True:
        now = snapshot(vdm.ps, vdm.port, ports)
        if back_to_baseline(now, baseline, config.clients):
            return now, now.at - began
        if now.at - began >= config.settle:
            return now, None
        time.sleep(0.2)


def run_soak(config: SoakConfig, workdir: Path) -> SoakResult:
    """Start the fakes and vdm, run the clients, measure, stop everything."""
    env = {
        "LOG_LEVEL": "WARNING",
        "FIRST_BYTE_TIMEOUT": str(config.first_byte_timeout),
        "IDLE_TIMEOUT": str(config.idle_timeout),
        "TOTAL_TIMEOUT": str(config.total_timeout),
        "CONNECT_TIMEOUT": "2",
    }
    with faulty_upstreams(config) as up, vdm_process(workdir, {**env, **up.env()}) as vdm:
        saved_rate = (up.openai_faults.fault_rate, up.anthropic_faults.fault_rate)
        up.openai_faults.fault_rate = up.anthropic_faults.fault_rate = 0.0
        _prime(vdm)
        up.openai_faults.fault_rate, up.anthropic_faults.fault_rate = saved_rate
        up.openai_faults.counts.clear()
        up.anthropic_faults.counts.clear()
        # Client sockets are compared with zero, never with the baseline.
        baseline = quiet_snapshot(vdm.ps, vdm.port, up.ports)
        tally, samples, aborted, elapsed = asyncio.run(_load(vdm, up.ports, config))
        if vdm.proc.poll() is not None:
            raise RuntimeError(f"vdm exited during the soak:\n{vdm.log_tail()}")
        at_end = snapshot(vdm.ps, vdm.port, up.ports)
        settled, settle_seconds = _settle(vdm, up.ports, baseline, config)
        run = min(config.seconds, elapsed)
        return SoakResult(
            config=config,
            tally=tally,
            fault_counts=up.fault_counts(),
            baseline=baseline,
            at_end=at_end,
            settled=settled,
            settle_seconds=settle_seconds,
            rss_warm_mb=_median_between(samples, config.warmup, 2 * config.warmup),
            rss_end_mb=_median_between(samples, run - config.warmup, run),
            rss_peak_mb=peak_rss_mb(vdm.ps),
            rss_samples=samples,
            elapsed=elapsed,
            log_bytes=vdm.log_bytes(),
            log_tracebacks=vdm.log.read_bytes().count(b"Traceback"),
            aborted=aborted,
        )


def _env_number(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.reliability.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--clients",
        type=int,
        default=int(_env_number("SOAK_CLIENTS", 100)),
        help="concurrent clients (SOAK_CLIENTS, 100)",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=_env_number("SOAK_MINUTES", 10),
        help="length of the load (SOAK_MINUTES, 10)",
    )
    parser.add_argument("--seed", type=int, default=1, help="for the faults and the clients")
    parser.add_argument(
        "--fault-rate", type=float, default=0.3, help="share of upstream replies that fail"
    )
    parser.add_argument("--faults", help="comma-separated names of tests.fakes.faults.MENU")
    parser.add_argument(
        "--disconnect-share",
        type=float,
        default=0.1,
        help="share of streams the client closes mid-way",
    )
    parser.add_argument(
        "--hang-after", type=float, default=30.0, help="seconds after which a request is hung"
    )
    parser.add_argument(
        "--max-rss-mb", type=float, default=2048.0, help="abort the run past this vdm RSS"
    )
    args = parser.parse_args(argv)
    # The fakes write to sockets vdm has just closed (it left a faulty answer early, by
    # design); asyncio warns once per write, which would bury the report.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    config = SoakConfig(
        clients=args.clients,
        seconds=args.minutes * 60,
        seed=args.seed,
        fault_rate=args.fault_rate,
        faults=tuple(args.faults.split(",")) if args.faults else None,
        disconnect_share=args.disconnect_share,
        hang_after=args.hang_after,
        max_rss_mb=args.max_rss_mb,
    )
    print(
        f"soak: {config.clients} clients, {config.seconds:.0f} s, vdm at {VDM} "
        f"(warm-up {config.warmup:.0f} s)",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="vdm-soak-") as tmp:
        result = run_soak(config, Path(tmp))
    print(result.report())
    return 0 if result.passed else 1


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(main())
