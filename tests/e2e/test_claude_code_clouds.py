"""End to end with the real Claude Code CLI in Bedrock and Vertex modes: `claude -p` with
`CLAUDE_CODE_USE_BEDROCK=1` (or `CLAUDE_CODE_USE_VERTEX=1`) pointed at `vdm server start` (a
real subprocess), auth skipped, and vdm routing the cloud's model id to a fake upstream: the
OpenAI one (translated, through the canonical pipeline) and the Anthropic one (forwarded).
Each run is a Bash round trip: the model asks for `echo`, Claude Code runs it, the model
reads its output back.

vdm's access log shows which paths the CLI called: only the cloud's (Claude Code in these
modes never calls `/v1/messages`), all answered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_claude_code import (
    ClaudeRun,
    VdmProcess,
    _explain,
    run_claude,
    start_vdm,
)
from tests.fakes.anthropic_upstream import (
    AnthropicSseReply,
    FakeAnthropic,
    anthropic_stream_events,
)
from tests.fakes.openai_upstream import FakeOpenAI, Recorded, Reply
from tests.fakes.scripts import reply_to, text_of, tool_names

pytestmark = pytest.mark.e2e

UPSTREAM_KEY = "sk-upstream-clouds-1234"
#: vdm's own key (`PROXY_API_KEY`): in these modes Claude Code sends no Anthropic key, so it
#: goes in `ANTHROPIC_CUSTOM_HEADERS`, which it sends to the cloud's URL too.
PROXY_KEY = "vdm-proxy-key-clouds"
ANT_KEY = "sk-ant-clouds-1234"
BEDROCK_MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
VERTEX_MODEL = "claude-sonnet-4-5@20250929"
CALL_ID = "call_cloudBashRoundTrip1"
TOOL_ID = "toolu_01CloudBashRoundTrip1"
COMMAND = {"command": "echo cloud-hello", "description": "Print a greeting"}
PROMPT = "run echo cloud-hello"
#: Thinking switched on (the strict fake then wants signed thinking blocks back).
ON = ("enabled", "adaptive")


def bedrock_env(url: str) -> dict[str, str]:
    return {
        "CLAUDE_CODE_USE_BEDROCK": "1",
        "ANTHROPIC_BEDROCK_BASE_URL": url,
        "CLAUDE_CODE_SKIP_BEDROCK_AUTH": "1",
        "AWS_REGION": "us-east-1",
    }


def vertex_env(url: str) -> dict[str, str]:
    return {
        "CLAUDE_CODE_USE_VERTEX": "1",
        "ANTHROPIC_VERTEX_BASE_URL": f"{url}/v1",
        "CLAUDE_CODE_SKIP_VERTEX_AUTH": "1",
        "ANTHROPIC_VERTEX_PROJECT_ID": "vdm-e2e",
        "CLOUD_ML_REGION": "us-east5",
    }


MODES = {"bedrock": (bedrock_env, BEDROCK_MODEL), "vertex": (vertex_env, VERTEX_MODEL)}


@pytest.fixture(params=sorted(MODES))
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _paths(server: VdmProcess) -> list[str]:
    """The paths of the requests vdm served, from its request log (`REQUEST_LOG`)."""
    log = server.log.with_name("requests.jsonl")
    lines = log.read_text().splitlines() if log.is_file() else []
    return [f"{e.get('method')} {e.get('path')}" for e in map(json.loads, lines)]


def _run(claude: Path, server: VdmProcess, tmp_path: Path, mode: str) -> ClaudeRun:
    env_of, model = MODES[mode]
    return run_claude(
        claude,
        "http://127.0.0.1:9",  # nothing listens: Claude Code must not use the Anthropic API
        tmp_path,
        PROMPT,
        "--allowedTools",
        "Bash",
        model=model,
        ANTHROPIC_CUSTOM_HEADERS=f"x-api-key: {PROXY_KEY}",
        **env_of(server.url),
    )


def _succeeded(run: ClaudeRun, why: str) -> str:
    assert run.proc.returncode == 0, why
    assert run.output.get("is_error") is False, why
    result = run.output.get("result")
    assert isinstance(result, str), why
    return result


# --- to an OpenAI-format provider (translated) ---------------------------------------------


@pytest.fixture
def openai_vdm(fake: FakeOpenAI, tmp_path: Path) -> Iterator[VdmProcess]:
    env = {
        "OPENAI_API_KEY": UPSTREAM_KEY,
        "OPENAI_BASE_URL": fake.base_url,
        # Claude Code's families: its sonnet (the main loop) and haiku (side calls).
        "OPENAI_ALIAS_SONNET": "gpt-4o",
        "OPENAI_ALIAS_HAIKU": "gpt-4o-mini",
        "OPENAI_ALIAS_OPUS": "gpt-4o",
        "PROXY_API_KEY": PROXY_KEY,
        "REQUEST_LOG": str(tmp_path / "requests.jsonl"),
    }
    with start_vdm(env, tmp_path) as server:
        yield server


def test_bash_round_trip_to_openai(
    claude_bin: Path, fake: FakeOpenAI, openai_vdm: VdmProcess, tmp_path: Path, mode: str
) -> None:
    arguments = json.dumps(COMMAND)

    def script(request: Recorded) -> Reply:
        body = request.json if isinstance(request.json, dict) else {}
        messages = body.get("messages") or [{}]
        if messages[-1].get("role") == "tool":
            return reply_to(body, f"The command printed: {text_of(messages[-1].get('content'))}")
        if "Bash" in tool_names(body):
            return reply_to(body, tool_calls=[("Bash", arguments, CALL_ID)])
        return reply_to(body, "OK")

    fake.default = script
    run = _run(claude_bin, openai_vdm, tmp_path, mode)
    why = _explain(run, fake, openai_vdm) + f"\nvdm paths: {_paths(openai_vdm)}"
    result = _succeeded(run, why)
    assert "The command printed:" in result and "cloud-hello" in result, why

    main = [r.json for r in fake.requests if "Bash" in tool_names(r.json)]
    assert len(main) >= 2, why
    assert all(body["model"] == "gpt-4o" for body in main), why
    second = main[1]["messages"]
    tool = next(m for m in second if m.get("role") == "tool")
    assert tool["tool_call_id"] == CALL_ID and "cloud-hello" in text_of(tool["content"]), why
    _assert_cloud_paths(openai_vdm, mode, why)


# --- to an Anthropic-format provider (forwarded) -------------------------------------------


@pytest.fixture
def ant_vdm(ant: FakeAnthropic, tmp_path: Path) -> Iterator[VdmProcess]:
    env = {
        "ANTHROPIC_API_KEY": ANT_KEY,
        "ANTHROPIC_BASE_URL": ant.base_url,
        "REQUEST_LOG": str(tmp_path / "requests.jsonl"),
    }
    with start_vdm(env, tmp_path) as server:
        yield server


def test_bash_round_trip_to_anthropic(
    claude_bin: Path, ant: FakeAnthropic, ant_vdm: VdmProcess, tmp_path: Path, mode: str
) -> None:
    def script(request: Recorded) -> Reply:
        body: dict[str, Any] = request.json
        last = body["messages"][-1]["content"]
        results = (
            [b for b in last if b.get("type") == "tool_result"] if isinstance(last, list) else []
        )
        if results:
            text = f"The command printed: {text_of(results[-1].get('content'))}"
            return AnthropicSseReply(anthropic_stream_events(text, model=body["model"]))
        if any(t.get("name") == "Bash" for t in body.get("tools") or []):
            spec = ("Bash", json.dumps(COMMAND), TOOL_ID)
            # With thinking on, the strict fake wants the signed thinking block back.
            thinking = "I run it." if (body.get("thinking") or {}).get("type") in ON else None
            events = anthropic_stream_events(
                "", model=body["model"], tool_use=spec, thinking=thinking
            )
            return AnthropicSseReply(events)
        return AnthropicSseReply(anthropic_stream_events("OK", model=body["model"]))

    ant.default = script
    run = _run(claude_bin, ant_vdm, tmp_path, mode)
    why = _explain(run, ant, ant_vdm) + f"\nvdm paths: {_paths(ant_vdm)}"
    result = _succeeded(run, why)
    assert "The command printed:" in result and "cloud-hello" in result, why

    main = [r for r in ant.requests if r.path == "/v1/messages" and "Bash" in r.body.decode()]
    assert len(main) >= 2, why
    for request in main:
        body = request.json
        # The Anthropic request: the model named by the cloud's id, no cloud fields.
        assert body["model"] == "claude-sonnet-4-5-20250929", why
        assert "anthropic_version" not in body and "anthropic_beta" not in body, why
        assert body.get("stream") is True, why
        assert request.headers.get("x-api-key") == ANT_KEY, why
    _assert_cloud_paths(ant_vdm, mode, why)


def _assert_cloud_paths(server: VdmProcess, mode: str, why: str) -> None:
    paths = _paths(server)
    if mode == "bedrock":
        stream = f"POST /model/{BEDROCK_MODEL}/invoke-with-response-stream"
        assert stream in paths, why
    else:
        assert any(p.endswith(f"/models/{VERTEX_MODEL}:streamRawPredict") for p in paths), why
    assert not any("/v1/messages" in p for p in paths), why


def test_a_refusal_reaches_the_user(
    claude_bin: Path, fake: FakeOpenAI, openai_vdm: VdmProcess, tmp_path: Path, mode: str
) -> None:
    """vdm's error, in the cloud's shape (AWS's for Bedrock), is what Claude Code reports:
    its message, not a parse failure, and no retry loop."""
    env_of, _ = MODES[mode]
    run = run_claude(
        claude_bin,
        "http://127.0.0.1:9",
        tmp_path,
        "say hello",
        model="nowhere:some-model",
        ANTHROPIC_CUSTOM_HEADERS=f"x-api-key: {PROXY_KEY}",
        **env_of(openai_vdm.url),
    )
    why = _explain(run, fake, openai_vdm) + f"\nvdm paths: {_paths(openai_vdm)}"
    assert run.proc.returncode != 0, why
    assert run.output.get("is_error") is True, why
    shown = str(run.output.get("result")) + run.proc.stderr
    assert "unknown provider 'nowhere'" in shown, why
    assert fake.requests == [], why
