"""The logging options of `vdm server start` and `vdm wrap`, through real processes.

`vdm server start --log-format json` runs as a subprocess (an environment built from scratch,
a temporary HOME) in front of a fake OpenAI upstream: every stderr line is a JSON object, and
the request's line carries the id the client got in the `request-id` header. `--systemd`
sends the same line to a journal socket (`VDM_JOURNAL_SOCKET`, a datagram socket bound by
the test); `--request-log` appends one object per request, with the bodies when asked.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.harness import clean_env, free_port
from tests.server.test_logs import parse_journal
from vdm.config.secrets import mask

VDM = [sys.executable, "-m", "vdm.cli"]
KEY = "sk-log-options-key-0123456789"
BODY = {"model": "gpt-4o", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[str]

    def stop(self) -> str:
        """SIGTERM, then the whole of stderr."""
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=15)
        return err


@contextmanager
def vdm_server(tmp_path: Path, fake: FakeOpenAI, *options: str, **env: str) -> Iterator[Server]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    port = free_port()
    proc = subprocess.Popen(
        [*VDM, "server", "start", "--port", str(port), *options],
        env=clean_env(
            HOME=str(home),
            OPENAI_API_KEY=KEY,
            OPENAI_BASE_URL=fake.base_url,
            SHUTDOWN_GRACE="1",
            **env,
        ),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = Server(f"http://127.0.0.1:{port}", proc)
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vdm exited early:\n{proc.communicate(timeout=5)[1]}")
            try:
                if httpx.get(f"{server.url}/health", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "vdm did not start"
            time.sleep(0.05)
        yield server
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)


def _ask(server: Server) -> str:
    """One request through vdm; its `request-id`."""
    answer = httpx.post(f"{server.url}/v1/messages", json=BODY, timeout=10)
    assert answer.status_code == 200, answer.text
    rid = answer.headers["request-id"]
    assert rid.startswith("req_vdm_")
    return rid


def test_json_log_lines_and_the_request_line_carries_the_response_s_id(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    requests = tmp_path / "requests.jsonl"
    options = ("--log-format", "json", "--request-log", str(requests), "--request-log-bodies")
    with vdm_server(tmp_path, fake, *options) as server:
        rid = _ask(server)
        err = server.stop()
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # all JSON
    assert any("vdm listening on" in line["message"] for line in lines)
    (line,) = [line for line in lines if line["logger"] == "vdm.requests"]
    assert line["request_id"] == rid and rid in line["message"]
    assert (line["provider"], line["model"], line["status"]) == ("openai", "gpt-4o", 200)
    assert line["key"] == mask(KEY) and KEY not in err
    (entry,) = [json.loads(x) for x in requests.read_text().splitlines()]
    assert entry["request_id"] == rid and entry["output_tokens"] == line["output_tokens"]
    assert entry["request_body"]["messages"] == BODY["messages"]
    assert entry["response_body"]["type"] == "message"
    assert requests.stat().st_mode & 0o777 == 0o600


def test_systemd_sends_the_request_line_to_the_journal(tmp_path: Path, fake: FakeOpenAI) -> None:
    path = tmp_path / "journal.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as journal:
        journal.bind(str(path))
        journal.settimeout(0.2)
        with vdm_server(tmp_path, fake, "--systemd", VDM_JOURNAL_SOCKET=str(path)) as server:
            rid = _ask(server)
            err = server.stop()
        records = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                records.append(parse_journal(journal.recv(1 << 20)))
            except TimeoutError:
                break
    assert "vdm listening" not in err  # it went to the journal too
    assert all(r["SYSLOG_IDENTIFIER"] == "vandamme-proxy" for r in records)
    assert any("vdm listening on" in r["MESSAGE"] for r in records)
    (line,) = [r for r in records if r["LOGGER"] == "vdm.requests"]
    assert line["REQUEST_ID"] == rid and line["PRIORITY"] == "6"
    assert (line["VDM_PROVIDER"], line["VDM_MODEL"], line["VDM_STATUS"]) == (
        "openai",
        "gpt-4o",
        "200",
    )


def _start(tmp_path: Path, *options: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VDM, "server", "start", "--port", str(free_port()), *options],
        env=clean_env(HOME=str(tmp_path), OPENAI_API_KEY=KEY, **env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_systemd_without_a_journal_fails_clearly(tmp_path: Path) -> None:
    proc = _start(tmp_path, "--systemd", VDM_JOURNAL_SOCKET=str(tmp_path / "none.sock"))
    assert proc.returncode == 1
    assert "no systemd journal socket" in proc.stderr and "leave --systemd out" in proc.stderr


def test_a_bad_log_format_names_the_choices(tmp_path: Path) -> None:
    proc = _start(tmp_path, LOG_FORMAT="xml")
    assert proc.returncode == 1
    assert "LOG_FORMAT='xml'" in proc.stderr and "text, json" in proc.stderr
    option = _start(tmp_path, "--log-format", "xml")
    assert option.returncode == 2 and "'text'" in option.stderr and "'json'" in option.stderr


def test_an_unwritable_request_log_stops_the_server_before_it_listens(tmp_path: Path) -> None:
    proc = _start(tmp_path, "--request-log", str(tmp_path / "missing" / "requests.jsonl"))
    assert proc.returncode == 1
    assert "cannot write the request log" in proc.stderr and "listening" not in proc.stderr


CHILD = """
import os, httpx
name, _, secret = os.environ["ANTHROPIC_CUSTOM_HEADERS"].partition(": ")
answer = httpx.post(
    os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages",
    json={"model": "gpt-4o", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]},
    headers={name: secret},
    timeout=10,
)
print("ID:", answer.headers["request-id"], answer.status_code)
"""


def test_wrap_writes_json_to_its_log_file_and_the_request_log(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    child = tmp_path / "child.py"
    child.write_text(textwrap.dedent(CHILD))
    log, requests = tmp_path / "vdm.log", tmp_path / "requests.jsonl"
    proc = subprocess.run(
        [
            *VDM,
            "wrap",
            "--no-check",
            "--quiet",
            "--log-file",
            str(log),
            "--log-format",
            "json",
            "--request-log",
            str(requests),
            "--",
            sys.executable,
            str(child),
        ],
        env=clean_env(HOME=str(tmp_path), OPENAI_API_KEY=KEY, OPENAI_BASE_URL=fake.base_url),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    rid = proc.stdout.split("ID: ")[1].split()[0]
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    assert [x["request_id"] for x in lines if x["logger"] == "vdm.requests"] == [rid]
    (entry,) = [json.loads(x) for x in requests.read_text().splitlines()]
    assert entry["request_id"] == rid and "request_body" not in entry  # bodies are off
