"""`vdm wrap` through real subprocesses: vdm, its in-process proxy, a child, a fake upstream."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.fakes.anthropic_upstream import (
    AnthropicSseReply,
    FakeAnthropic,
    anthropic_stream_events,
)
from tests.fakes.openai_upstream import FakeOpenAI, JsonReply, SseReply, stream_chunks
from tests.harness import clean_env

VDM = [sys.executable, "-m", "vdm.cli"]

#: A child that makes a streaming request with the anthropic SDK, configured only by its
#: environment, prints what it got and exits with the code given as argv[2].
SDK_CHILD = """
import os, sys, anthropic
client = anthropic.Anthropic(max_retries=0)
with client.messages.stream(
    model=sys.argv[1], max_tokens=20, messages=[{"role": "user", "content": "hi"}]
) as stream:
    message = stream.get_final_message()
print("TEXT:", message.content[0].text)
print("URL:", os.environ["ANTHROPIC_BASE_URL"])
sys.exit(int(sys.argv[2]))
"""


def _script(tmp_path: Path, name: str, code: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(code))
    return str(path)


def _env(tmp_path: Path, fake: FakeOpenAI, **extra: str) -> dict[str, str]:
    return clean_env(
        HOME=str(tmp_path), OPENAI_API_KEY="sk-upstream", OPENAI_BASE_URL=fake.base_url, **extra
    )


def _wrap(
    tmp_path: Path, env: dict[str, str], *child: str, options: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VDM, "wrap", *options, "--", sys.executable, *child],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_child_streams_through_the_session_proxy_and_its_exit_code_is_kept(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    child = _script(tmp_path, "child.py", SDK_CHILD)
    proc = _wrap(tmp_path, _env(tmp_path, fake), child, "gpt-4o", "7")
    assert proc.returncode == 7, proc.stderr
    assert "TEXT: Hello from fake" in proc.stdout
    # The pre-flight's models list (docs/wrap.md), then the child's one request.
    assert [(r.method, r.path) for r in fake.requests] == [
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
    ]
    assert fake.last.headers["authorization"] == "Bearer sk-upstream"
    assert fake.last.json["stream"] is True
    # The proxy is gone: its port is closed.
    url = next(line for line in proc.stdout.splitlines() if line.startswith("URL:"))
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))


def test_requests_without_the_session_secret_are_refused(tmp_path: Path, fake: FakeOpenAI) -> None:
    child = _script(
        tmp_path,
        "probe.py",
        """
        import os, httpx
        url = os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages"
        body = {"model": "gpt-4o", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
        name, _, value = os.environ["ANTHROPIC_CUSTOM_HEADERS"].partition(": ")
        print("WITHOUT", httpx.post(url, json=body, timeout=10).status_code)
        print("WITH", httpx.post(url, json=body, headers={name: value}, timeout=10).status_code)
        """,
    )
    proc = _wrap(tmp_path, _env(tmp_path, fake), child)
    assert proc.returncode == 0, proc.stderr
    assert "WITHOUT 401" in proc.stdout and "WITH 200" in proc.stdout
    # The refused request never reached the upstream (the GET is the pre-flight's).
    assert [r.method for r in fake.requests] == ["GET", "POST"]


def test_user_custom_headers_are_kept_and_a_placeholder_key_is_set(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    child = _script(
        tmp_path,
        "env.py",
        """
        import os
        print(repr(os.environ["ANTHROPIC_CUSTOM_HEADERS"]))
        print("KEY", os.environ.get("ANTHROPIC_API_KEY"))
        print("TOKEN", os.environ.get("ANTHROPIC_AUTH_TOKEN"))
        """,
    )
    proc = _wrap(tmp_path, _env(tmp_path, fake, ANTHROPIC_CUSTOM_HEADERS="x-mine: 1"), child)
    assert proc.returncode == 0, proc.stderr
    assert "'x-mine: 1\\nx-vdm-session: " in proc.stdout
    assert "TOKEN vdm-wrap-placeholder" in proc.stdout and "KEY None" in proc.stdout
    proc = _wrap(tmp_path, _env(tmp_path, fake, ANTHROPIC_API_KEY="sk-ant-mine"), child)
    assert "KEY sk-ant-mine" in proc.stdout  # the user's own key is left alone
    assert "TOKEN None" in proc.stdout  # no placeholder next to the user's own key
    proc = _wrap(tmp_path, _env(tmp_path, fake, ANTHROPIC_AUTH_TOKEN="oauth-mine"), child)
    assert "TOKEN oauth-mine" in proc.stdout and "KEY None" in proc.stdout


def test_a_per_project_config_is_honoured(tmp_path: Path, fake: FakeOpenAI) -> None:
    (tmp_path / "vandamme-config.toml").write_text('[openai.aliases]\nfast = "gpt-4o-mini"\n')
    child = _script(tmp_path, "child.py", SDK_CHILD)
    proc = _wrap(tmp_path, _env(tmp_path, fake), child, "fast", "0")
    assert proc.returncode == 0, proc.stderr
    assert fake.last.json["model"] == "gpt-4o-mini"


def test_a_child_killed_by_a_signal_exits_128_plus_n(tmp_path: Path, fake: FakeOpenAI) -> None:
    child = _script(tmp_path, "die.py", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    proc = _wrap(tmp_path, _env(tmp_path, fake), child)
    assert proc.returncode == 128 + signal.SIGKILL


def _start_waiting_child(tmp_path: Path, fake: FakeOpenAI) -> subprocess.Popen[str]:
    """vdm wrap around a child that reports SIGTERM and waits (at most 20 s)."""
    child = _script(
        tmp_path,
        "wait.py",
        """
        import os, signal, sys, time
        def term(signum, frame):  # may run inside print(): os.write, not print
            os.write(1, f"CHILD GOT {signum}\\n".encode())
            os._exit(3)
        signal.signal(signal.SIGTERM, term)
        print("READY", flush=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            time.sleep(0.05)
        sys.exit(0)
        """,
    )
    proc = subprocess.Popen(
        [*VDM, "wrap", "--", sys.executable, child],
        env=_env(tmp_path, fake),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "READY"
    return proc


def test_sigterm_to_vdm_reaches_the_child(tmp_path: Path, fake: FakeOpenAI) -> None:
    proc = _start_waiting_child(tmp_path, fake)
    try:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert f"CHILD GOT {int(signal.SIGTERM)}" in out
    assert proc.returncode == 3, err


def test_sigint_to_vdm_alone_does_not_stop_it(tmp_path: Path, fake: FakeOpenAI) -> None:
    """Ctrl-C goes to the whole foreground group; the child decides, vdm must stay up."""
    proc = _start_waiting_child(tmp_path, fake)
    try:
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        assert proc.poll() is None, "vdm died on SIGINT"
        proc.send_signal(signal.SIGTERM)  # now end the session
        proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 3


def test_claude_vdm_is_vdm_wrap_claude(tmp_path: Path, fake: FakeOpenAI) -> None:
    """`claude.vdm ARGS` runs `claude ARGS` behind the proxy: a stand-in `claude` on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "claude"
    stand_in.write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        "print('ARGS', sys.argv[1:], os.environ['ANTHROPIC_BASE_URL'].startswith('http://127.0.0.1:'))\n"
        "sys.exit(5)\n"
    )
    stand_in.chmod(0o755)
    env = _env(tmp_path, fake)
    env["PATH"] = f"{bin_dir}:{env.get('PATH', '')}"
    entry = Path(sys.executable).parent / "claude.vdm"
    proc = subprocess.run(
        [str(entry), "--model", "fast", "-p", "hi"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 5, proc.stderr
    assert "ARGS ['--model', 'fast', '-p', 'hi'] True" in proc.stdout


def test_a_command_that_cannot_run_is_a_clear_error(tmp_path: Path, fake: FakeOpenAI) -> None:
    proc = subprocess.run(
        [*VDM, "wrap", "--", str(tmp_path / "no-such-command")],
        env=_env(tmp_path, fake),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1
    assert "cannot run" in proc.stderr and "No such file" in proc.stderr
    assert "Traceback" not in proc.stderr


# --- the usage summary ------------------------------------------------------------------------

#: A child that makes `n` streaming requests (argv[2]) to model argv[1] and prints the texts.
SDK_CHILD_N = """
import sys, anthropic
client = anthropic.Anthropic(max_retries=0)
for _ in range(int(sys.argv[2])):
    try:
        with client.messages.stream(
            model=sys.argv[1], max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            print("TEXT:", stream.get_final_message().content[0].text)
    except anthropic.APIStatusError as exc:
        print("ERROR:", exc.status_code)
"""


def _summary_rows(stderr: str) -> dict[str, list[str]]:
    """The summary table's rows by their first cell (split on runs of 2+ spaces)."""
    import re

    lines = stderr.splitlines()
    start = lines.index("vdm: session usage")
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines[start + 1 :] if line.strip()]
    return {row[0]: row for row in rows}


def test_the_summary_shows_the_model_tokens_and_cost_and_the_json_matches(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    for _ in range(2):
        fake.enqueue(
            SseReply(
                stream_chunks("ok", prompt_tokens=1200, completion_tokens=34, cached_tokens=200)
            )
        )
    child = _script(tmp_path, "child.py", SDK_CHILD_N)
    out = tmp_path / "usage.json"
    proc = _wrap(
        tmp_path, _env(tmp_path, fake), child, "gpt-4o", "2", options=("--summary-json", str(out))
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("TEXT: ok") == 2
    row = _summary_rows(proc.stderr)["openai:gpt-4o"]
    header = _summary_rows(proc.stderr)["provider:model"]
    cells = dict(zip(header, row, strict=True))
    assert cells["requests"] == "2" and cells["errors"] == "0"
    # input_tokens excludes the cached 200 of each request's 1,200 prompt tokens
    assert cells["input"] == "2,000" and cells["output"] == "68" and cells["cache r/w"] == "400/0"
    # gpt-4o: $2.50 in, $10 out, $1.25 cache read per million tokens
    assert cells["cost"] == "$0.0062"
    assert cells["ttft p50"].endswith("ms")

    data = json.loads(out.read_text())
    assert data["exit_code"] == 0
    (model,) = data["models"]
    assert model["provider"] == "openai" and model["model"] == "gpt-4o"
    assert (model["requests"], model["errors"]) == (2, 0)
    assert (model["input_tokens"], model["output_tokens"]) == (2000, 68)
    assert model["cache_read_input_tokens"] == 400
    assert model["cost_usd"] == pytest.approx((2000 * 2.5 + 68 * 10 + 400 * 1.25) / 1e6)
    assert 0 < model["ttft_p50_ms"] <= model["total_time_s"] * 1000
    assert data["total"]["requests"] == 2
    # The same accounting as /metrics: every endpoint counted, the client a label.
    assert data["endpoints"]["messages"] == {"requests": 2, "errors": 0}
    assert model["latency_p50_ms"] > 0 and model["errors_by_type"] == {}


def test_quiet_prints_no_summary_but_still_writes_the_json(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    child = _script(tmp_path, "child.py", SDK_CHILD_N)
    out = tmp_path / "usage.json"
    proc = _wrap(
        tmp_path,
        _env(tmp_path, fake),
        child,
        "gpt-4o",
        "1",
        options=("--quiet", "--summary-json", str(out)),
    )
    assert proc.returncode == 0, proc.stderr
    assert "session usage" not in proc.stderr
    assert json.loads(out.read_text())["models"][0]["requests"] == 1


def test_errors_are_counted_and_user_prices_extend_the_table(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    (tmp_path / "vandamme-config.toml").write_text(
        '[openai.aliases]\nlocal = "my-model"\n\n'
        '[prices]\n"openai:my-model" = { input = 100, output = 1000 }\n'
    )
    fake.enqueue(
        SseReply(stream_chunks("ok", prompt_tokens=10, completion_tokens=5)),
        JsonReply({"error": {"message": "boom", "type": "server_error"}}, status=400),
    )
    child = _script(tmp_path, "child.py", SDK_CHILD_N)
    out = tmp_path / "usage.json"
    proc = _wrap(
        tmp_path, _env(tmp_path, fake), child, "local", "2", options=("--summary-json", str(out))
    )
    assert proc.returncode == 0, proc.stderr
    assert "TEXT: ok" in proc.stdout and "ERROR: 400" in proc.stdout
    (model,) = json.loads(out.read_text())["models"]
    assert model["model"] == "my-model"
    assert (model["requests"], model["errors"]) == (2, 1)
    assert model["cost_usd"] == pytest.approx((10 * 100 + 5 * 1000) / 1e6)


def test_logs_stay_off_the_childs_terminal_and_go_to_the_log_file(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    child = _script(tmp_path, "child.py", SDK_CHILD_N)
    log = tmp_path / "vdm.log"
    proc = _wrap(
        tmp_path, _env(tmp_path, fake), child, "gpt-4o", "1", options=("--log-file", str(log))
    )
    assert proc.returncode == 0, proc.stderr
    assert "gpt-4o -> openai:gpt-4o" not in proc.stderr
    assert "gpt-4o -> openai:gpt-4o stream ok" in log.read_text()
    assert "sk-upstream" not in log.read_text()


def test_an_unconfigured_session_names_the_fix_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    child = _script(tmp_path, "child.py", f"open({str(marker)!r}, 'w').close()\n")
    proc = _wrap(tmp_path, clean_env(HOME=str(tmp_path)), child)
    assert proc.returncode == 1
    assert "no provider configured" in proc.stderr and "vdm config setup" in proc.stderr
    assert not marker.exists()


def test_passthrough_streams_are_counted_with_their_cache_tokens(
    tmp_path: Path, ant: FakeAnthropic
) -> None:
    """An Anthropic-format provider: the relayed bytes are observed for the summary."""
    model = "claude-haiku-4-5-20251001"
    ant.enqueue(
        AnthropicSseReply(
            anthropic_stream_events(
                "ok",
                model=model,
                input_tokens=300,
                output_tokens=40,
                cache_read=5000,
                cache_creation=1000,
            )
        )
    )
    child = _script(tmp_path, "child.py", SDK_CHILD_N)
    out = tmp_path / "usage.json"
    env = clean_env(
        HOME=str(tmp_path), ANTHROPIC_API_KEY="sk-ant-up", ANTHROPIC_BASE_URL=ant.base_url
    )
    proc = _wrap(tmp_path, env, child, model, "1", options=("--summary-json", str(out)))
    assert proc.returncode == 0, proc.stderr
    assert "TEXT: ok" in proc.stdout
    (row,) = json.loads(out.read_text())["models"]
    assert (row["provider"], row["model"]) == ("anthropic", model)
    assert (row["input_tokens"], row["output_tokens"]) == (300, 40)
    assert (row["cache_read_input_tokens"], row["cache_creation_input_tokens"]) == (5000, 1000)
    # claude-haiku-4: $1 in, $5 out, $0.10 cache read, $1.25 cache write per million
    assert row["cost_usd"] == pytest.approx((300 * 1 + 40 * 5 + 5000 * 0.1 + 1000 * 1.25) / 1e6)
    assert "anthropic:" + model in proc.stderr


def test_processes_the_child_left_behind_are_stopped(tmp_path: Path, fake: FakeOpenAI) -> None:
    """A background process whose parent (the child) has exited is re-parented to vdm, which
    stops it before it exits."""
    import psutil

    child = _script(
        tmp_path,
        "leave.py",
        """
        import subprocess, sys
        left = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(30)"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        print("LEFT", left.pid, flush=True)
        sys.exit(4)
        """,
    )
    proc = _wrap(tmp_path, _env(tmp_path, fake), child)
    assert proc.returncode == 4, proc.stderr
    pid = int(proc.stdout.split("LEFT", 1)[1].split()[0])
    try:
        alive = psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        alive = False
    if alive:
        psutil.Process(pid).kill()
    assert not alive, "the left-behind process outlived vdm wrap"


def test_a_log_file_that_cannot_be_written_stops_vdm_before_the_child(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    marker = tmp_path / "ran"
    child = _script(tmp_path, "child.py", f"open({str(marker)!r}, 'w').close()\n")
    bad = tmp_path / "missing" / "vdm.log"
    proc = _wrap(tmp_path, _env(tmp_path, fake), child, options=("--log-file", str(bad)))
    assert proc.returncode == 1
    assert f"vdm wrap: cannot write the log file {bad}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not marker.exists()


def test_a_stream_cut_by_the_end_of_the_session_counts_as_an_error(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    """A grandchild still streaming when the child exits gets the grace period, then is cut:
    the summary says so instead of counting a success with no tokens."""
    fake.enqueue(SseReply(stream_chunks("slow answer", pieces=4), pauses={2: 20.0}))
    started = tmp_path / "started"
    grandchild = _script(
        tmp_path,
        "stream.py",
        f"""
        import anthropic
        client = anthropic.Anthropic(max_retries=0)
        with client.messages.stream(
            model="gpt-4o", max_tokens=20, messages=[{{"role": "user", "content": "hi"}}]
        ) as stream:
            for _ in stream.text_stream:
                open({str(started)!r}, "w").close()
        """,
    )
    child = _script(
        tmp_path,
        "child.py",
        f"""
        import os, subprocess, sys, time
        subprocess.Popen([sys.executable, {grandchild!r}], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not os.path.exists({str(started)!r}) and time.monotonic() < deadline:
            time.sleep(0.05)
        print("STREAMING", os.path.exists({str(started)!r}))
        """,
    )
    out = tmp_path / "usage.json"
    proc = _wrap(tmp_path, _env(tmp_path, fake), child, options=("--summary-json", str(out)))
    assert proc.returncode == 0, proc.stderr
    assert "STREAMING True" in proc.stdout
    (row,) = json.loads(out.read_text())["models"]
    assert (row["requests"], row["errors"]) == (1, 1)
    assert row["ttft_p50_ms"] is not None  # the stream had started
