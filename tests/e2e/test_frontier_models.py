"""The real Claude Code CLI through vdm to today's frontier models, one strict provider fake per
family (OpenAI Responses, DeepSeek V4, Gemini 3 on the compat and the native API, Mistral
Devstral): `claude -p "…" --allowedTools Bash --model <provider:model>` → `vdm server start` (a
real subprocess, configured by the provider's variables only) → the fake (a real HTTP server
that rejects what the real API rejects, tests/fakes/; scripted per dialect through
tests/fakes/scripts.py).

The scenario is a Bash tool round trip: the model answers with reasoning and a Bash call that
prints a random marker; the next request must carry the marker back as that call's result and,
in the provider's own form, the reasoning state it needs (DeepSeek's `reasoning_content`, the
Responses API's encrypted reasoning item, Gemini's thought signatures). The strict fakes answer
400 where the state is missing; the tests also check that it is the very state the fake issued,
not a stand-in the fake would take too. Per family:

* one round trip (Claude Code's default `display: omitted` thinking);
* two parallel calls, then a second step, with thinking shown (`stream-json --verbose`);
* the first stream cut midway: Claude Code's non-streaming retry must serve the round trip;
* a session begun on another family and continued (`--continue`) on this one;

and one `vdm wrap` session on a Responses model, with its usage summary.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.test_claude_code import (
    ClaudeRun,
    VdmProcess,
    run_claude,
    start_vdm,
)
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI, Recorded, Reply
from tests.fakes.responses_upstream import FakeResponses
from tests.fakes.scripts import Chat, Gemini, Responses, Script, bash_arguments
from tests.harness import clean_env

pytestmark = pytest.mark.e2e

UPSTREAM_KEY = "sk-upstream-frontier-2468"
#: Upper bound for one `vdm wrap -- claude -p` run (it takes about two seconds).
WRAP_TIMEOUT = 30.0


@dataclass(frozen=True)
class Family:
    """One provider family: how vdm is configured for it and what its fake must see."""

    id: str
    script: Callable[[], Script]
    #: `{P}_…` variables for the fake's base URL.
    env: Callable[[str], dict[str, str]]
    #: What `claude --model` gets, and the model the upstream must see.
    model: str
    upstream_model: str
    #: The path every main-loop request must go to (a regular expression), and the auth
    #: header it must carry.
    path: str
    auth: tuple[str, str]
    #: What a streamed request's query string must hold.
    stream_query: str = ""
    #: Turn 1 carries reasoning state the provider needs back on turn 2.
    reasons: bool = True
    #: The fake shows its reasoning as text when asked (Claude Code then shows thinking).
    shows_reasoning: bool = True


FAMILIES = [
    Family(
        id="openai-responses",
        script=Responses,
        # Zero configuration: the `openai` preset sends gpt-5.6 to /v1/responses itself.
        env=lambda url: {"OPENAI_API_KEY": UPSTREAM_KEY, "OPENAI_BASE_URL": url},
        model="openai:gpt-5.6-terra",
        upstream_model="gpt-5.6-terra",
        path=r"/v1/responses",
        auth=("authorization", f"Bearer {UPSTREAM_KEY}"),
    ),
    Family(
        id="deepseek-v4",
        script=lambda: Chat("deepseek"),
        env=lambda url: {"DEEPSEEK_API_KEY": UPSTREAM_KEY, "DEEPSEEK_BASE_URL": url},
        model="deepseek:deepseek-v4-pro",
        upstream_model="deepseek-v4-pro",
        path=r"/v1/chat/completions",
        auth=("authorization", f"Bearer {UPSTREAM_KEY}"),
    ),
    Family(
        id="gemini-compat",
        script=lambda: Chat("gemini"),
        env=lambda url: {
            "GEMINI_API_KEY": UPSTREAM_KEY,
            "GEMINI_API_FORMAT": "openai",
            "GEMINI_BASE_URL": url,
        },
        model="gemini:gemini-3-flash-preview",
        upstream_model="gemini-3-flash-preview",
        path=r"/v1/chat/completions",
        auth=("authorization", f"Bearer {UPSTREAM_KEY}"),
        shows_reasoning=False,  # its thoughts come as `<thought>` text: not scripted
    ),
    Family(
        id="gemini-native",
        script=Gemini,
        # Zero configuration: the `gemini` preset speaks the native API.
        env=lambda url: {"GEMINI_API_KEY": UPSTREAM_KEY, "GEMINI_BASE_URL": url},
        model="gemini:gemini-3-pro-preview",
        upstream_model="gemini-3-pro-preview",
        path=r"/v1beta/models/gemini-3-pro-preview:(generateContent|streamGenerateContent)",
        auth=("x-goog-api-key", UPSTREAM_KEY),
        stream_query="alt=sse",
    ),
    Family(
        id="mistral-devstral",
        script=lambda: Chat("mistral"),
        env=lambda url: {"MISTRAL_API_KEY": UPSTREAM_KEY, "MISTRAL_BASE_URL": url},
        model="mistral:devstral-medium-latest",
        upstream_model="devstral-medium-latest",
        path=r"/v1/chat/completions",
        auth=("authorization", f"Bearer {UPSTREAM_KEY}"),
        reasons=False,  # Devstral does not reason; its rule is the 9-character tool id
        shows_reasoning=False,
    ),
]


# --- one Bash round trip, scripted per dialect -------------------------------------------------


@dataclass
class RoundTrip:
    """The scenario and the script that answers the fake's requests: `steps[s]` parallel Bash
    calls at step `s` (each printing a random marker), each step with its reasoning, then the
    final text once every marker came back."""

    script: Script
    token: str
    steps: tuple[int, ...] = (1,)
    #: Tool results in the history before this scenario's (a continued session's).
    offset: int = 0

    def marker(self, step: int, n: int) -> str:
        """What a command prints (not in its text: seeing it upstream proves it ran)."""
        return f"vdm-marker-{self.token}-{step}{n}"

    def command(self, step: int, n: int) -> str:
        return f"printf 'vdm-marker-%s\\n' {self.token}-{step}{n}"

    def call_id(self, step: int, n: int) -> str:
        return self.script.call_id(f"bash-{self.token}-{step}-{n}")

    def reasoning(self, step: int) -> str:
        return f"Step {step} of the marker command {self.token}: I will call Bash."

    @property
    def calls(self) -> list[tuple[int, int]]:
        """(step, n) of every call, in order."""
        return [(step, n) for step, count in enumerate(self.steps) for n in range(count)]

    @property
    def prompt(self) -> str:
        return f"run the marker command {self.token} with the Bash tool"

    @property
    def final(self) -> str:
        return f"The markers came back: vdm-final-{self.token}"

    def is_main(self, request: Recorded) -> bool:
        """A request of the agent's main loop: it offers Bash and carries the prompt."""
        return "Bash" in self.script.tool_names(request) and any(
            self.prompt in text for text in self.script.user_texts(request)
        )

    def answer(self, request: Recorded) -> Reply:
        script = self.script
        if not self.is_main(request):
            return script.reply(request, text="OK")  # a side request (title, summary, …)
        results = script.tool_results(request)[self.offset :]
        done = [sum(self.steps[:step]) for step in range(len(self.steps) + 1)]
        markers = [self.marker(*call) for call in self.calls[: len(results)]]
        texts = "\n".join(result.text for result in results)
        # Claude Code sends parallel results in the order they finish: any order will do.
        if len(results) not in done or not all(marker in texts for marker in markers):
            return script.reply(request, text="The tool results did not carry the markers.")
        step = done.index(len(results))
        if step == len(self.steps):
            return script.reply(request, text=self.final)
        calls = [
            ("Bash", bash_arguments(self.command(step, n), "Print a marker"), self.call_id(step, n))
            for n in range(self.steps[step])
        ]
        return script.reply(request, tool_calls=calls, reasoning=self.reasoning(step))


def _summary(script: Script, fake: FakeOpenAI) -> str:
    lines = ["upstream requests:"]
    for i, request in enumerate(fake.requests):
        lines.append(
            f"  {i}: {request.method} {request.path} model={script.model(request)!r} "
            f"stream={script.is_stream(request)} tools={len(script.tool_names(request))} "
            f"calls={script.tool_calls(request)} results={script.tool_results(request)} "
            f"state={[s[:24] for s in script.reasoning_state(request)]} "
            f"body={request.body[-300:]!r}"
        )
    if isinstance(fake, FakeResponses):
        lines += [f"  rejected: {r.message}" for _, r in fake.rejected]
    if isinstance(fake, FakeGemini):
        lines += [f"  rejected: {message}" for _, message in fake.rejected]
    return "\n".join(lines)


def _assert_round_trip(
    trip: RoundTrip, family: Family, fake: FakeOpenAI, why: str, skip: int = 0
) -> None:
    """What the upstream saw: Claude Code's prompt and tools in its dialect on the first
    request; on the last, every call, its real result and every step's reasoning state
    (after `skip` main-loop requests that were answered otherwise)."""
    script = trip.script
    main = [r for r in fake.requests if trip.is_main(r)]
    expected = skip + len(trip.steps) + 1
    assert len(main) == expected, f"expected {expected} main-loop requests\n{why}"
    first, last = main[skip], main[-1]
    for request in main:
        assert re.fullmatch(family.path, request.path), why
        if script.is_stream(request):
            assert family.stream_query in request.query, why
        assert request.headers.get(family.auth[0]) == family.auth[1], why
        assert script.model(request) == family.upstream_model, why
    assert all("sk-test-client" not in v for r in fake.requests for v in r.headers.values()), why

    # Turn 1: Claude Code's own system prompt, environment and tools, in the dialect (Gemini
    # has no system role in its contents: Claude Code's environment entry becomes user text).
    system = script.system_text(first)
    assert "Claude" in system, why
    assert "e2e-project" in "\n".join([system, *script.user_texts(first)]), why
    assert "x-anthropic-billing-header" not in system, why
    names = script.tool_names(first)
    assert {"Bash", "Read", "Edit"} <= set(names), f"tools offered: {names}\n{why}"
    bash = script.tool_parameters(first, "Bash")
    assert bash is not None and "command" in (bash.get("properties") or {}), why
    assert any(trip.prompt in text for text in script.user_texts(first)), why
    assert not script.tool_calls(first) and not script.tool_results(first), why

    # The last turn: the calls as the model made them, and the real output of each command
    # paired with its call: under the provider's call id, or (Gemini, which issues none) by
    # order and name.
    calls = script.tool_calls(last)
    assert [(c.id, c.name) for c in calls] == [
        (trip.call_id(*call), "Bash") for call in trip.calls
    ], why
    commands = [json.loads(c.arguments)["command"] for c in calls]
    assert commands == [trip.command(*call) for call in trip.calls], why
    results = script.tool_results(last)
    assert all(r.name in ("", "Bash") for r in results), why
    if calls[0].id:  # by id: Claude Code sends results as they finish
        assert sorted(r.call_id for r in results) == sorted(c.id for c in calls), why
        paired = [next(r for r in results if r.call_id == c.id) for c in calls]
    else:  # Gemini: by order, which the gateway must keep
        assert [r.call_id for r in results] == [c.id for c in calls], why
        paired = results
    markers = [trip.marker(*call) for call in trip.calls]
    assert all(m in r.text for m, r in zip(markers, paired, strict=True)), why

    # Every step's reasoning state the fake issued came back as is (not a stand-in the strict
    # fake would take too: an empty `reasoning_content`, Gemini's skip-validator signature).
    if family.reasons:
        assert len(script.issued) == len(trip.steps), f"issued {script.issued}\n{why}"
        assert script.reasoning_state(last) == script.issued, why
    else:
        assert script.reasoning_state(last) == [], why


# --- `vdm server start` -------------------------------------------------------------------------


@pytest.fixture(params=FAMILIES, ids=lambda f: f.id)
def family(request: pytest.FixtureRequest) -> Family:
    found: Family = request.param
    return found


@pytest.fixture
def script(family: Family) -> Script:
    return family.script()


@pytest.fixture
def upstream(script: Script) -> Iterator[FakeOpenAI]:
    with script.server() as fake:
        yield fake


@pytest.fixture
def vdm(family: Family, upstream: FakeOpenAI, tmp_path: Path) -> Iterator[VdmProcess]:
    with start_vdm(family.env(upstream.base_url), tmp_path) as server:
        yield server


def _explain(run: ClaudeRun, script: Script, fake: FakeOpenAI, server: VdmProcess) -> str:
    return "\n".join(
        [
            f"claude exit code: {run.proc.returncode}",
            f"claude stdout:\n{run.proc.stdout[-3000:]}",
            f"claude stderr:\n{run.proc.stderr[-3000:]}",
            _summary(script, fake),
            f"vdm log:\n{server.log_tail()}",
        ]
    )


def test_bash_round_trip_through_vdm_server_start(
    claude_bin: Path,
    family: Family,
    script: Script,
    upstream: FakeOpenAI,
    vdm: VdmProcess,
    tmp_path: Path,
) -> None:
    trip = RoundTrip(script, secrets.token_hex(6))
    upstream.default = trip.answer
    run = run_claude(
        claude_bin, vdm.url, tmp_path, trip.prompt, "--allowedTools", "Bash", model=family.model
    )
    why = _explain(run, script, upstream, vdm)
    assert run.proc.returncode == 0, why
    assert run.output.get("is_error") is False, why
    assert trip.final in str(run.output.get("result")), why
    _assert_round_trip(trip, family, upstream, why)


def test_parallel_calls_then_a_second_step_with_thinking_shown(
    claude_bin: Path,
    family: Family,
    script: Script,
    upstream: FakeOpenAI,
    vdm: VdmProcess,
    tmp_path: Path,
) -> None:
    """Two Bash calls at once, then one more, then the answer: every call and result is
    paired on the last request, and the reasoning state of both steps travels back (DeepSeek
    wants it on every tool-call turn, Gemini on the first call of every step). With
    `--output-format stream-json --verbose` Claude Code shows thinking (`display: updates`):
    vdm asks for the reasoning text (Responses summaries, Gemini `includeThoughts`) and the
    user sees it as thinking blocks."""
    trip = RoundTrip(script, secrets.token_hex(6), steps=(2, 1))
    upstream.default = trip.answer
    run = run_claude(
        claude_bin, vdm.url, tmp_path, trip.prompt, "--allowedTools", "Bash",
        "--output-format", "stream-json", "--verbose", model=family.model,
    )  # fmt: skip
    why = _explain(run, script, upstream, vdm)
    assert run.proc.returncode == 0, why
    assert run.output.get("type") == "result" and run.output.get("is_error") is False, why
    assert trip.final in str(run.output.get("result")), why
    _assert_round_trip(trip, family, upstream, why)

    shown = [
        block.get("thinking")
        for line in run.proc.stdout.splitlines()
        if line.startswith("{") and '"thinking"' in line
        for block in (json.loads(line).get("message") or {}).get("content") or ()
        if isinstance(block, dict) and block.get("type") == "thinking"
    ]
    expected = [trip.reasoning(step) for step in range(len(trip.steps))]
    assert [text for text in shown if text] == (expected if family.shows_reasoning else []), why


def test_broken_stream_falls_back_to_non_streaming(
    claude_bin: Path,
    family: Family,
    script: Script,
    upstream: FakeOpenAI,
    vdm: VdmProcess,
    tmp_path: Path,
) -> None:
    """The first turn's stream dies midway: vdm relays an SSE `error`, Claude Code retries the
    same request without streaming, and the tool call and reasoning state that the
    non-streaming answer carries must make the second turn work just the same."""
    trip = RoundTrip(script, secrets.token_hex(6))
    broken: list[Recorded] = []

    def answer(request: Recorded) -> Reply:
        if trip.is_main(request) and script.is_stream(request) and not broken:
            broken.append(request)
            return script.cut(request)
        return trip.answer(request)

    upstream.default = answer
    run = run_claude(
        claude_bin, vdm.url, tmp_path, trip.prompt, "--allowedTools", "Bash", model=family.model
    )
    why = _explain(run, script, upstream, vdm)
    assert run.proc.returncode == 0, why
    assert trip.final in str(run.output.get("result")), why
    assert broken, f"no streamed main-loop request to break\n{why}"
    _assert_round_trip(trip, family, upstream, why, skip=1)
    main = [r for r in upstream.requests if trip.is_main(r)]
    assert not script.is_stream(main[1]), f"the retry was not a non-streaming request\n{why}"
    assert script.user_texts(main[1]) == script.user_texts(main[0]), why


# --- a session continued on another family --------------------------------------------------


def _family(family_id: str) -> Family:
    return next(f for f in FAMILIES if f.id == family_id)


def test_session_continued_on_another_family(
    claude_bin: Path, family: Family, tmp_path: Path
) -> None:
    """`claude -p` on one family, then `claude -p --continue` on this one: the history now
    holds another model's tool call (its id, its reasoning in a thinking block vdm signed for
    another dialect), and the new family must take it (Mistral: the foreign id remapped to
    nine characters; Responses and Gemini: no foreign reasoning replayed as theirs) and still
    get its own reasoning state back."""
    source = _family("openai-responses" if family.id == "deepseek-v4" else "deepseek-v4")
    before, after = source.script(), family.script()
    with before.server() as first_fake, after.server() as second_fake:
        env = {**source.env(first_fake.base_url), **family.env(second_fake.base_url)}
        with start_vdm(env, tmp_path) as vdm:
            first = RoundTrip(before, secrets.token_hex(6))
            first_fake.default = first.answer
            run = run_claude(
                claude_bin, vdm.url, tmp_path, first.prompt, "--allowedTools", "Bash",
                model=source.model,
            )  # fmt: skip
            why = _explain(run, before, first_fake, vdm)
            assert run.proc.returncode == 0 and first.final in str(run.output.get("result")), why

            second = RoundTrip(after, secrets.token_hex(6), offset=1)
            second_fake.default = second.answer
            run = run_claude(
                claude_bin, vdm.url, tmp_path, second.prompt, "--continue",
                "--allowedTools", "Bash", model=family.model,
            )  # fmt: skip
            why = _explain(run, after, second_fake, vdm)
            assert run.proc.returncode == 0, why
            assert second.final in str(run.output.get("result")), why

    main = [r for r in second_fake.requests if second.is_main(r)]
    assert len(main) == 2, why
    last = main[-1]
    assert any(first.prompt in text for text in after.user_texts(last)), why
    calls = after.tool_calls(last)
    assert [c.name for c in calls] == ["Bash", "Bash"], why
    assert json.loads(calls[0].arguments)["command"] == first.command(0, 0), why
    assert calls[1].id == second.call_id(0, 0), why
    foreign = first.call_id(0, 0)
    if family.id == "mistral-devstral":
        assert re.fullmatch(r"[A-Za-z0-9]{9}", calls[0].id) and calls[0].id != foreign, why
    elif family.id != "gemini-native":
        assert calls[0].id == foreign, why
    results = after.tool_results(last)
    assert [r.call_id for r in results] == [c.id for c in calls], why
    assert first.marker(0, 0) in results[0].text and second.marker(0, 0) in results[1].text, why
    # Only this family's own reasoning state travels back to it.
    assert after.reasoning_state(last) == after.issued, why
    assert len(after.issued) == (1 if family.reasons else 0), why


# --- `vdm wrap` on a Responses model -----------------------------------------------------------


def test_vdm_wrap_session_on_a_responses_model(claude_bin: Path, tmp_path: Path) -> None:
    family = FAMILIES[0]
    script = Responses()
    trip = RoundTrip(script, secrets.token_hex(6))
    home, project = tmp_path / "home", tmp_path / "e2e-project"
    home.mkdir()
    project.mkdir()
    summary = tmp_path / "usage.json"
    with script.server() as fake:
        fake.default = trip.answer
        env = clean_env(
            HOME=str(home),
            CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
            DISABLE_AUTOUPDATER="1",
            CLAUDE_CODE_MAX_RETRIES="0",
            **family.env(fake.base_url),
        )
        command = [
            *(sys.executable, "-m", "vdm.cli", "wrap", "--summary-json", str(summary), "--"),
            *(str(claude_bin), "-p", trip.prompt, "--model", family.model),
            *("--allowedTools", "Bash"),
        ]
        proc = subprocess.Popen(
            command,
            env=env,
            cwd=project,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # so a hung run can be stopped with its children
        )
        started = time.monotonic()
        try:
            stdout, stderr = proc.communicate(timeout=WRAP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate(timeout=10)
            pytest.fail(
                f"vdm wrap did not finish within {WRAP_TIMEOUT} s\nstdout:\n{stdout}\n"
                f"stderr:\n{stderr}\n{_summary(script, fake)}"
            )
        why = (
            f"vdm exit code {proc.returncode} after {time.monotonic() - started:.1f} s\n"
            f"stdout:\n{stdout[-3000:]}\nstderr (vdm and claude):\n{stderr[-3000:]}\n"
            f"{_summary(script, fake)}"
        )
        assert proc.returncode == 0, why
        assert trip.final in stdout, why
        _assert_round_trip(trip, family, fake, why)

        # The session's summary counts every upstream request under the model it went to.
        assert "vdm: session usage" in stderr and family.model in stderr, why
        usage = json.loads(summary.read_text())
        rows = {f"{row['provider']}:{row['model']}": row for row in usage["models"]}
        assert set(rows) == {family.model}, usage
        row = rows[family.model]
        # The GET is vdm wrap's pre-flight models list, not a model call.
        posts = [r for r in fake.requests if r.method == "POST"]
        assert row["requests"] == len(posts) >= 2, usage
        assert row["errors"] == 0, usage
        assert row["input_tokens"] > 0 and row["output_tokens"] > 0, usage
        assert usage["exit_code"] == 0, usage
