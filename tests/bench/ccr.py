"""claude-code-router (CCR), measured beside vdm by ``make bench``.

``make install-ccr`` installs the pinned ``@musistudio/claude-code-router`` into
``.venv/node`` (as Claude Code is installed). CCR reads ``~/.claude-code-router/config.json``:
``Providers`` (``name``, ``api_base_url`` = the full chat-completions URL, ``api_key``,
``models``), ``Router.default`` (``"provider,model"``), ``PORT``, ``HOST``, ``LOG`` and
``LOG_LEVEL``. ``node dist/cli.js start`` serves in the foreground (``ccr start`` does the
same; ``ccr restart`` daemonises), one node process, ``GET /health`` answers 200 when ready.

Set for the benchmark: HOME is a temporary directory holding that config; ``LOG: false``
(CCR's default is ``true`` at level ``debug``: a pino file log of every request, which would
charge it for log I/O vdm does not do at ``LOG_LEVEL=WARNING``) and ``LOG_LEVEL: "fatal"``
in case a path ignores ``LOG``; ``NON_INTERACTIVE_MODE: true`` (no stdin handling). CCR routes
a request to ``Router.default`` unless its ``model`` names ``"provider,model"``, so the bench
sends ``"bench,<scenario model>"``: that is how a Claude Code user picks a CCR model
(``/model provider,model``), and it lets one CCR process serve every scenario, as one vdm does.

CCR's answers look like vdm's: a JSON message with ``"stop_reason":"end_turn"``, and a stream
of one ``text_delta`` per upstream chunk ending with ``event: message_stop``, so they are
checked with the same ``Expect``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.bench.client import (
    Expect,
    Server,
    free_port,
    get_stats,
    once,
    render_request,
    stop,
    wait_healthy,
)
from tests.bench.scenarios import (
    REPO,
    VDM_HEADERS,
    VDM_JSON,
    VDM_STREAM,
    Scenario,
    anthropic_body,
    dumps,
)
from tests.harness import clean_env

#: Pinned in the Makefile too (CCR_VERSION).
VERSION = "2.0.0"
PACKAGE = REPO / ".venv" / "node" / "node_modules" / "@musistudio" / "claude-code-router"
CLI = PACKAGE / "dist" / "cli.js"
#: The provider name in CCR's config; requests name their model ``"bench,<model>"``.
PROVIDER = "bench"
#: CCR's framing is vdm's (checked on 2.0.0: one text_delta per upstream chunk, the stream's
#: last event message_stop; JSON with stop_reason end_turn), so its answers are held to the
#: same checks. Change these if a CCR version frames its answers differently.
HEADERS, STREAM, JSON = VDM_HEADERS, VDM_STREAM, VDM_JSON


def unavailable() -> str | None:
    """Why CCR cannot be measured here (None when it can)."""
    node = shutil.which("node")
    if node is None:
        return "node not found (install Node.js and npm, then run `make install-ccr`)"
    if not CLI.is_file():
        return (
            f"claude-code-router is not installed in {PACKAGE.parent.parent} (`make install-ccr`)"
        )
    try:
        version = json.loads((PACKAGE / "package.json").read_text()).get("version")
    except (OSError, ValueError):
        version = None
    if version != VERSION:
        return f"claude-code-router {version} is installed, the bench compares with {VERSION}"
    return None


def config(upstream_port: int, port: int, models: list[str]) -> dict[str, Any]:
    return {
        "PORT": port,
        "HOST": "127.0.0.1",
        "LOG": False,
        "LOG_LEVEL": "fatal",
        "NON_INTERACTIVE_MODE": True,
        "Providers": [
            {
                "name": PROVIDER,
                "api_base_url": f"http://127.0.0.1:{upstream_port}/v1/chat/completions",
                "api_key": "sk-bench",
                "models": models,
            }
        ],
        "Router": {"default": f"{PROVIDER},{models[0]}"},
    }


def start(upstream_port: int, workdir: Path, models: list[str], timeout: float = 30.0) -> Server:
    """Start CCR with HOME in ``workdir`` and wait until ``GET /health`` answers."""
    port = free_port()
    home = workdir / "ccr-home"
    (home / ".claude-code-router").mkdir(parents=True, exist_ok=True)
    (home / ".claude-code-router" / "config.json").write_text(
        json.dumps(config(upstream_port, port, models), indent=2)
    )
    node = shutil.which("node") or "node"
    log = workdir / f"ccr-{port}.log"
    with log.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [node, str(CLI), "start"],
            cwd=home,
            env=clean_env(HOME=str(home)),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return wait_healthy("claude-code-router", proc, port, log, started, timeout)


def request(scenario: Scenario, port: int) -> tuple[bytes, Expect]:
    """The scenario's Anthropic request, its model routed to the bench provider, and what its
    answer must look like."""
    body = anthropic_body(scenario)
    body["model"] = f"{PROVIDER},{scenario.model}"
    req = render_request("/v1/messages", dumps(body), port, HEADERS)
    return req, STREAM if scenario.stream else JSON


def describe(server: Server, upstream_port: int) -> dict[str, Any]:
    """Print and return how CCR came up, once idle."""
    time.sleep(0.5)
    rss = server.rss_mb()
    print(
        f"claude-code-router {VERSION}: start to healthy {server.start_to_healthy:.3f} s, "
        f"idle RSS {rss:.1f} MB (config: LOG false, LOG_LEVEL fatal)"
    )
    return {
        "start_to_healthy_s": round(server.start_to_healthy, 3),
        "idle_rss_mb": round(rss, 1),
        "config": config(upstream_port, server.port, ["<scenario models>"]),
    }


async def verify(
    scenario: Scenario, port: int, upstream_port: int, seen: dict[str, Any]
) -> list[str]:
    """One request: CCR answers it as expected and the upstream got it for the scenario's
    model (``seen`` is the upstream's /stats before). CCR translates differently from vdm,
    so the upstream body is not compared with the direct one."""
    if problem := await once(port, *request(scenario, port)):
        return [f"({scenario.key}) ccr: {problem}"]
    now = await get_stats(upstream_port)
    if now["counts"].get(scenario.model, 0) != seen["counts"].get(scenario.model, 0) + 1:
        return [f"({scenario.key}) ccr: the upstream got no request for {scenario.model}"]
    return []


def log_tail(server: Server) -> str:
    stop(server.proc)
    lines = server.log.read_text(errors="replace").splitlines()
    return "\n".join(x for x in lines if not x.startswith("Loaded JSON config"))[-2000:]
