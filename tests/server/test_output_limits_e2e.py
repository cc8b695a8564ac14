"""Output limits, reasoning effort and thinking, end to end: the official `openai` and
`anthropic` SDKs call vdm (real Hypercorn on loopback), vdm calls a strict fake of each
provider, and each test reads what the fake received and what the client got.

The fakes refuse what the real APIs refuse (tests/fakes/model_limits.py for ceilings and
OpenAI's efforts, tests/fakes/anthropic_rules.py for Anthropic's thinking and effort rules,
tests/fakes/responses_upstream.py for the Responses API's efforts), from their own tables,
not vdm's: a limit above a model's ceiling, an effort the model does not take, a thinking
budget at or above `max_tokens` would each be the client's 400. So every test asserts both:
the body the upstream recorded, and a 200 after exactly one upstream call (a refused first
body that vdm repaired on a retry would hide the bug).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest

from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.model_limits import (
    ANTHROPIC_LIMITS,
    DEEPSEEK_LIMITS,
    OPENAI_LIMITS,
    limit_of,
)
from tests.fakes.openai_upstream import FakeOpenAI, Recorded
from tests.fakes.responses_upstream import FakeResponses
from tests.harness import RunningVdm, running_vdm
from vdm.protocol.thinking_budget import THINKING_BUDGETS
from vdm.upstream.backends.anthropic import DEFAULT_MAX_TOKENS

UPSTREAM_KEY = "sk-upstream-limits-7731"
#: A hung vdm must fail the test; an explicit timeout also keeps the anthropic SDK from
#: refusing a non-streaming request with a large `max_tokens` on its own.
TIMEOUT = 30.0
STREAMS = pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])

#: Codex's turn: no `max_output_tokens`, an effort, stateless reasoning.
CODEX: dict[str, Any] = {
    "instructions": "You are a coding agent.",
    "input": [{"role": "user", "content": [{"type": "input_text", "text": "list the files"}]}],
    "store": False,
    "reasoning": {"effort": "medium", "summary": "auto"},
    "include": ["reasoning.encrypted_content"],
}
CHAT_PROMPT: list[Any] = [{"role": "user", "content": "list the files"}]
#: Claude Code's turn to a model it takes for an Opus: a large limit, a large budget.
CLAUDE_CODE: dict[str, Any] = {
    "max_tokens": 128000,
    "thinking": {"type": "enabled", "budget_tokens": 31999},
    "system": [{"type": "text", "text": "You are Claude Code."}],
    "messages": [{"role": "user", "content": "list the files"}],
}


# --- the stand: a fake, vdm in front of it, the SDKs in front of vdm --------------------------


@dataclass(frozen=True)
class Kind:
    """One kind of upstream, configured as a user would."""

    prefix: str
    fake: type[FakeOpenAI]
    rules: str | None = None


KINDS = {
    # OpenAI's Chat Completions (gpt-4o goes there) with OpenAI's own rules.
    "openai": Kind("OPENAI", FakeOpenAI, "openai"),
    # OpenAI's Responses API (gpt-5 and gpt-5.1 go there from any client).
    "responses": Kind("OPENAI", FakeResponses),
    "anthropic": Kind("ANTHROPIC", FakeAnthropic),
    "deepseek": Kind("DEEPSEEK", FakeOpenAI, "deepseek"),
    # A provider the user named: gpt-5 on Chat Completions, checked by OpenAI's rules.
    "mycorp": Kind("MYCORP", FakeOpenAI, "openai"),
}


@dataclass
class Stand:
    fake: FakeOpenAI
    vdm: RunningVdm

    def openai(self) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.vdm.url}/v1", api_key="sk-client", max_retries=0, timeout=TIMEOUT
        )

    def anthropic(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(
            base_url=self.vdm.url, api_key="sk-client", max_retries=0, timeout=TIMEOUT
        )

    def sent(self) -> dict[str, Any]:
        """The one model call the fake received (a second one would be a retry)."""
        calls: list[Recorded] = [r for r in self.fake.requests if r.method == "POST"]
        assert len(calls) == 1, [c.path for c in calls]
        body = calls[0].json
        assert isinstance(body, dict)
        return body


@contextmanager
def served(kind: str, **env: str) -> Iterator[Stand]:
    spec = KINDS[kind]
    fake = spec.fake(rules=spec.rules) if spec.rules else spec.fake()
    with fake:
        settings = {
            f"{spec.prefix}_API_KEY": UPSTREAM_KEY,
            f"{spec.prefix}_BASE_URL": fake.base_url,
            "MAX_RETRIES": "0",
            **env,
        }
        with running_vdm(settings) as vdm:
            yield Stand(fake, vdm)


# --- the three clients, streamed or not; each returns the HTTP status and the answer's text ---


def chat(stand: Stand, stream: bool, **params: Any) -> tuple[int, str]:
    with stand.openai() as client:
        if not stream:
            raw = client.chat.completions.with_raw_response.create(**params)
            return raw.status_code, raw.parse().choices[0].message.content or ""
        with client.chat.completions.with_streaming_response.create(
            stream=True, **params
        ) as response:
            text = "".join(
                chunk.choices[0].delta.content or "" for chunk in response.parse() if chunk.choices
            )
            return response.status_code, text


def respond(stand: Stand, stream: bool, **params: Any) -> tuple[int, str]:
    with stand.openai() as client:
        if not stream:
            raw = client.responses.with_raw_response.create(**params)
            answer = raw.parse()
            assert answer.status == "completed", answer.status
            return raw.status_code, answer.output_text
        with client.responses.with_streaming_response.create(stream=True, **params) as response:
            events = list(response.parse())
            assert events[-1].type == "response.completed", events[-1].type
            text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
            return response.status_code, text


def message(stand: Stand, stream: bool, **params: Any) -> tuple[int, str]:
    with stand.anthropic() as client:
        if not stream:
            raw = client.messages.with_raw_response.create(**params)
            answer = raw.parse()
            text = "".join(b.text for b in answer.content if b.type == "text")
            return raw.status_code, text
        with client.messages.with_streaming_response.create(stream=True, **params) as response:
            events = list(response.parse())
            assert events[-1].type == "message_stop", events[-1].type
            text = "".join(
                e.delta.text
                for e in events
                if e.type == "content_block_delta" and e.delta.type == "text_delta"
            )
            return response.status_code, text


def _answered(status: int, text: str) -> None:
    assert status == 200
    assert text.startswith("Hello from fake"), text


# --- 1. a client that sets no limit ----------------------------------------------------------


@STREAMS
def test_codex_without_a_limit_leaves_it_to_a_chat_provider(stream: bool) -> None:
    """gpt-4o's own default, not vdm's stand-in (32000 would be a 400 over its 16384), and
    no effort: gpt-4o does not reason ("Unrecognized request argument supplied")."""
    with served("openai") as s:
        _answered(*respond(s, stream, model="openai:gpt-4o", **CODEX))
        sent = s.sent()
    assert sent["model"] == "gpt-4o"
    assert "max_completion_tokens" not in sent and "max_tokens" not in sent
    assert "reasoning_effort" not in sent


@STREAMS
@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "claude-opus-4-7"])
def test_codex_without_a_limit_gets_vdms_default_from_anthropic(stream: bool, model: str) -> None:
    """Anthropic requires `max_tokens`: vdm's default, room for Codex's medium effort."""
    with served("anthropic") as s:
        _answered(*respond(s, stream, model=f"anthropic:{model}", **CODEX))
        sent = s.sent()
    assert sent["max_tokens"] == DEFAULT_MAX_TOKENS == 32000
    thinking = sent["thinking"]
    if model == "claude-opus-4-7":  # only adaptive thinking there
        assert thinking == {"type": "adaptive"}
        assert sent["output_config"]["effort"] == "medium"
    else:
        assert thinking == {"type": "enabled", "budget_tokens": THINKING_BUDGETS["medium"]}
        assert "effort" not in sent.get("output_config", {})


# --- 2. a limit above the model's ceiling ------------------------------------------------------


@STREAMS
@pytest.mark.parametrize("field", ["max_completion_tokens", "max_tokens"])
def test_a_chat_clients_limit_above_gpt_4o_ceiling_is_lowered(stream: bool, field: str) -> None:
    with served("openai") as s:
        status, text = chat(
            s, stream, model="openai:gpt-4o", messages=CHAT_PROMPT, **{field: 100000}
        )
        sent = s.sent()
    assert sent[field] == limit_of(OPENAI_LIMITS, "gpt-4o") == 16384
    _answered(status, text)


@STREAMS
@pytest.mark.parametrize(
    ("kind", "model", "field", "ceiling"),
    [
        ("openai", "gpt-4o", "max_completion_tokens", limit_of(OPENAI_LIMITS, "gpt-4o")),
        ("deepseek", "deepseek-chat", "max_tokens", limit_of(DEEPSEEK_LIMITS, "deepseek-chat")),
    ],
)
def test_claude_codes_limit_above_the_ceiling_is_lowered(
    stream: bool, kind: str, model: str, field: str, ceiling: int
) -> None:
    """Claude Code's 128000 (and its 31999 budget) to models that write at most 16384 and
    8192 tokens and do not reason: the ceiling, and no effort or thinking switch."""
    with served(kind) as s:
        _answered(*message(s, stream, model=f"{kind}:{model}", **CLAUDE_CODE))
        sent = s.sent()
    assert sent[field] == ceiling
    assert ceiling in (16384, 8192)
    other = {"max_completion_tokens", "max_tokens"} - {field}
    assert not other & sent.keys()
    assert "reasoning_effort" not in sent and "thinking" not in sent


@STREAMS
def test_a_chat_clients_limit_above_claudes_ceiling_is_lowered(stream: bool) -> None:
    model = "claude-sonnet-4-5"
    with served("anthropic") as s:
        _answered(
            *chat(s, stream, model=f"anthropic:{model}", messages=CHAT_PROMPT, max_tokens=100000)
        )
        sent = s.sent()
    assert sent["max_tokens"] == limit_of(ANTHROPIC_LIMITS, model) == 64000


# --- 3. MAX_TOKENS_LIMIT below the ceiling wins -------------------------------------------------

LIMIT = 4000


@pytest.mark.parametrize(
    ("client", "kind", "model", "field"),
    [
        ("anthropic", "openai", "gpt-4o", "max_completion_tokens"),
        ("anthropic", "deepseek", "deepseek-chat", "max_tokens"),
        ("anthropic", "anthropic", "claude-sonnet-4-5", "max_tokens"),
        ("codex", "openai", "gpt-4o", "max_completion_tokens"),
        ("codex", "anthropic", "claude-sonnet-4-5", "max_tokens"),
        ("codex", "responses", "gpt-5", "max_output_tokens"),
        ("chat", "anthropic", "claude-opus-4-7", "max_tokens"),
        ("chat", "responses", "gpt-5.1", "max_output_tokens"),
        ("chat", "openai", "gpt-4o", "max_completion_tokens"),
    ],
)
def test_max_tokens_limit_below_the_ceiling_wins(
    client: str, kind: str, model: str, field: str
) -> None:
    """Every client, limit or none, and every dialect: at most MAX_TOKENS_LIMIT goes out,
    and a thinking budget still fits below it (Anthropic's 400 otherwise)."""
    target = f"{kind if kind != 'responses' else 'openai'}:{model}"
    with served(kind, MAX_TOKENS_LIMIT=str(LIMIT)) as s:
        if client == "anthropic":
            status, text = message(s, False, model=target, **CLAUDE_CODE)
        elif client == "codex":
            status, text = respond(s, False, model=target, **CODEX)
        else:
            params = {"max_completion_tokens": 20000, "reasoning_effort": "high"}
            status, text = chat(s, False, model=target, messages=CHAT_PROMPT, **params)
        sent = s.sent()
    assert sent[field] == LIMIT
    _answered(status, text)
    thinking = sent.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        assert 1024 <= thinking["budget_tokens"] < LIMIT


def test_max_tokens_limit_applies_to_an_anthropic_clients_own_model_name() -> None:
    """The pass-through to an Anthropic provider, the model name unchanged."""
    with served("anthropic", MAX_TOKENS_LIMIT=str(LIMIT), VDM_DEFAULT_PROVIDER="anthropic") as s:
        status, text = message(s, False, model="claude-sonnet-4-5", **CLAUDE_CODE)
        sent = s.sent()
    assert sent["model"] == "claude-sonnet-4-5"
    assert sent["max_tokens"] == LIMIT
    assert 1024 <= sent["thinking"]["budget_tokens"] < LIMIT
    _answered(status, text)


def test_max_tokens_limit_above_the_ceiling_does_not_raise_it() -> None:
    with served("openai", MAX_TOKENS_LIMIT="50000") as s:
        _answered(*respond(s, False, model="openai:gpt-4o", **CODEX))
        sent = s.sent()
    assert sent["max_completion_tokens"] == 16384


# --- 4. reasoning_effort from a Chat client to OpenAI models -----------------------------------


@STREAMS
@pytest.mark.parametrize(
    ("model", "asked", "expected"),
    [
        ("gpt-5", "high", "high"),
        ("gpt-5", "minimal", "minimal"),
        # gpt-5 refuses `none`; its least effort is nearest (its default is `medium`).
        ("gpt-5", "none", "minimal"),
        ("gpt-5.1", "high", "high"),
        ("gpt-5.1", "none", "none"),
        # gpt-5.1 refuses `minimal`; `low` is nearest at or above it.
        ("gpt-5.1", "minimal", "low"),
    ],
)
def test_a_chat_clients_effort_reaches_gpt_5_as_it_takes_it(
    stream: bool, model: str, asked: str, expected: str
) -> None:
    """gpt-5 and gpt-5.1 are served on the Responses API: the effort goes as
    `reasoning.effort`, at the nearest value the model takes."""
    with served("responses") as s:
        status, text = chat(
            s, stream, model=f"openai:{model}", messages=CHAT_PROMPT, reasoning_effort=asked
        )
        sent = s.sent()
        assert isinstance(s.fake, FakeResponses) and not s.fake.rejected
    assert sent["model"] == model
    assert sent["reasoning"]["effort"] == expected
    assert status == 200 and text.startswith("Hello from fake"), text


@STREAMS
def test_a_chat_clients_effort_does_not_reach_gpt_4o(stream: bool) -> None:
    with served("openai") as s:
        status, text = chat(
            s, stream, model="openai:gpt-4o", messages=CHAT_PROMPT, reasoning_effort="high"
        )
        sent = s.sent()
    assert "reasoning_effort" not in sent
    _answered(status, text)


@pytest.mark.parametrize(
    ("kind", "model", "expected"),
    [
        ("responses", "gpt-5", "minimal"),
        ("responses", "gpt-5.1", "none"),
        ("mycorp", "gpt-5", "minimal"),
    ],
)
def test_claude_code_with_thinking_off_gets_the_least_effort(
    kind: str, model: str, expected: str
) -> None:
    """An Anthropic client that switched thinking off, to a model that reasons by default."""
    target = f"{'openai' if kind == 'responses' else kind}:{model}"
    request = {**CLAUDE_CODE, "max_tokens": 8000, "thinking": {"type": "disabled"}}
    with served(kind) as s:
        status, text = message(s, False, model=target, **request)
        sent = s.sent()
    effort = sent["reasoning"]["effort"] if kind == "responses" else sent.get("reasoning_effort")
    assert effort == expected
    _answered(status, text)


# --- 5. reasoning_effort from a Chat client to Claude -----------------------------------------


@STREAMS
@pytest.mark.parametrize(
    ("model", "thinking", "effort"),
    [
        # Budgets only, no effort parameter.
        ("claude-sonnet-4-5", "enabled", None),
        # Budgets, and the effort parameter (Opus 4.5 and later).
        ("claude-opus-4-5", "enabled", "high"),
        # Adaptive thinking where the client named an effort (4.6).
        ("claude-sonnet-4-6", "adaptive", "high"),
        # Only adaptive thinking (Opus 4.7 and later).
        ("claude-opus-4-7", "adaptive", "high"),
    ],
)
def test_a_chat_clients_effort_becomes_claudes_thinking(
    stream: bool, model: str, thinking: str, effort: str | None
) -> None:
    with served("anthropic") as s:
        _answered(
            *chat(
                s,
                stream,
                model=f"anthropic:{model}",
                messages=CHAT_PROMPT,
                reasoning_effort="high",
            )
        )
        sent = s.sent()
    assert sent["model"] == model
    assert sent["max_tokens"] == DEFAULT_MAX_TOKENS  # the client set no limit
    assert sent["thinking"]["type"] == thinking
    if thinking == "enabled":
        assert sent["thinking"]["budget_tokens"] == THINKING_BUDGETS["high"] < sent["max_tokens"]
    else:
        assert "budget_tokens" not in sent["thinking"]
    assert sent.get("output_config", {}).get("effort") == effort


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "claude-opus-4-5"])
def test_a_chat_clients_budget_fits_below_its_own_limit(model: str) -> None:
    """A limit below the effort's budget: the budget shrinks to leave room for the answer."""
    with served("anthropic") as s:
        _answered(
            *chat(
                s,
                False,
                model=f"anthropic:{model}",
                messages=CHAT_PROMPT,
                reasoning_effort="high",
                max_completion_tokens=12000,
            )
        )
        sent = s.sent()
    assert sent["max_tokens"] == 12000
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 12000 - 1024}


@pytest.mark.parametrize(
    ("model", "effort"),
    [
        ("claude-sonnet-4-5", None),
        ("claude-opus-4-5", "high"),  # no `max` before 4.6
        ("claude-sonnet-4-6", "max"),
        ("claude-opus-4-7", "max"),
    ],
)
def test_a_chat_clients_top_effort_fits_every_claude(model: str, effort: str | None) -> None:
    """`max` (a budget of 31999 against vdm's default of 32000): the budget leaves room for
    the answer, and the effort is the nearest the model takes."""
    with served("anthropic") as s:
        _answered(
            *chat(s, True, model=f"anthropic:{model}", messages=CHAT_PROMPT, reasoning_effort="max")
        )
        sent = s.sent()
    assert sent.get("output_config", {}).get("effort") == effort
    thinking = sent["thinking"]
    if thinking["type"] == "enabled":
        assert thinking["budget_tokens"] == sent["max_tokens"] - 1024
    else:
        assert thinking == {"type": "adaptive"}
