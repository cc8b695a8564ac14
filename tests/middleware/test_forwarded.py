"""Middleware end to end where the client's body is forwarded: the Anthropic pass-through
(request hooks on the parsed body, re-encoded only when one changed it; response, header and
error hooks; the stream kept byte for byte) and an OpenAI Chat client to an OpenAI-format
provider (header and error hooks only: its body is not canonical). Real SDKs as clients,
strict fakes as upstreams, the test plugins installed as a real distribution."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.fakes.anthropic_rules import sign
from tests.fakes.anthropic_upstream import (
    AnthropicSseReply,
    FakeAnthropic,
    anthropic_error,
    anthropic_stream_events,
)
from tests.fakes.openai_upstream import FakeOpenAI, JsonReply, completion
from tests.harness import RunningVdm, running_vdm
from tests.middleware.helpers import middleware_tables
from tests.middleware.plugins import register

SYSTEM = """
[anthropic.middleware]
enabled = ["system-prompt"]
[anthropic.middleware.system-prompt]
replacements = [{ find = "Claude Code", replace = "a coding assistant" }]
append = "Answer in English."
[middleware.aliases.plain]
enabled = []
"""


@pytest.fixture(autouse=True)
def _plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    register(tmp_path, monkeypatch)


@contextmanager
def _vdm(ant: FakeAnthropic, toml: str) -> Iterator[RunningVdm]:
    env = {
        "ANTHROPIC_API_KEY": "sk-ant-upstream",
        "ANTHROPIC_BASE_URL": ant.base_url,
        "ANTHROPIC_ALIAS_PLAIN": "claude-haiku-4-5",
        "ANTHROPIC_ALIAS_SMART": "claude-sonnet-4-5",
        "MAX_RETRIES": "0",
    }
    with running_vdm(env, middleware=middleware_tables(toml)) as vdm:
        yield vdm


def _client(vdm: RunningVdm) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=vdm.url, api_key="sk-client", max_retries=0)


def _rich(model: str) -> dict[str, Any]:
    """A body with what a re-encoding must keep: unknown fields, cache_control, signed
    thinking, metadata."""
    return {
        "model": model,
        "max_tokens": 2048,
        "system": [
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}
        ],
        "metadata": {"user_id": "u-1"},
        "future_field": {"nested": [1, 2.5, None]},
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": sign("hmm")},
                    {"type": "text", "text": "hello"},
                ],
            },
            {"role": "user", "content": [{"type": "text", "text": "again", "new_flag": True}]},
        ],
    }


def _sdk(model: str) -> dict[str, Any]:
    """`_rich` as SDK keyword arguments (an unknown field goes in `extra_body`)."""
    body = _rich(model)
    extra = {"future_field": body.pop("future_field")}
    return {**body, "extra_body": extra}


def _post(vdm: RunningVdm, body: bytes) -> httpx.Response:
    headers = {"content-type": "application/json"}
    return httpx.post(f"{vdm.url}/v1/messages", content=body, headers=headers, timeout=10)


def test_pass_through_edits_the_system_and_keeps_everything_else(ant: FakeAnthropic) -> None:
    with _vdm(ant, SYSTEM) as vdm, _client(vdm) as client:
        client.messages.create(**_sdk("smart"))
    sent = ant.last.json
    assert sent["model"] == "claude-sonnet-4-5"
    assert sent["system"] == [
        {
            "type": "text",
            "text": "You are a coding assistant.",
            "cache_control": {"type": "ephemeral"},
        },
        {"type": "text", "text": "Answer in English."},
    ]
    expected = _rich("claude-sonnet-4-5")
    for key in ("metadata", "future_field", "messages", "max_tokens"):
        assert sent[key] == expected[key], key


def test_pass_through_bytes_are_untouched_when_no_hook_changes_them(ant: FakeAnthropic) -> None:
    body = json.dumps(_rich("claude-sonnet-4-5"), indent=1).encode()
    plain = json.dumps(_rich("claude-haiku-4-5"), indent=1).encode()
    toml = SYSTEM.replace('find = "Claude Code"', 'find = "nowhere"').replace(
        'append = "Answer in English."', ""
    )
    with _vdm(ant, toml) as vdm:
        # The system-prompt middleware applies but changes nothing: the client's bytes go.
        _post(vdm, body).raise_for_status()
        assert ant.last.body == body
    with _vdm(ant, SYSTEM) as vdm:
        # An alias scope that turns middleware off: the body goes as without middleware
        # (only the model renamed).
        _post(vdm, plain.replace(b'"claude-haiku-4-5"', b'"plain"')).raise_for_status()
        assert json.loads(ant.last.body) == json.loads(plain)


@pytest.mark.parametrize("stream", [False, True])
def test_pass_through_short_circuit(ant: FakeAnthropic, stream: bool) -> None:
    with _vdm(ant, '[middleware]\nenabled = ["canned"]\n') as vdm, _client(vdm) as client:
        if stream:
            with client.messages.stream(**_sdk("smart")) as s:
                assert "".join(s.text_stream).startswith("canned (anthropic:claude-sonnet-4-5")
                message = s.get_final_message()
        else:
            message = client.messages.create(**_sdk("smart"))
    assert message.content[0].text == "canned (anthropic:claude-sonnet-4-5, alias smart)"  # type: ignore[union-attr]
    assert ant.requests == []


def test_pass_through_response_and_header_hooks(ant: FakeAnthropic) -> None:
    toml = (
        '[middleware]\nenabled = ["upper", "team-header"]\n'
        '[middleware.team-header]\nteam = "platform"\n'
    )
    with _vdm(ant, toml) as vdm, _client(vdm) as client:
        message = client.messages.create(**_sdk("smart"), extra_headers={"anthropic-beta": "b1"})
        assert message.content[0].text == "HELLO FROM FAKE ANTHROPIC"
        headers = ant.last.headers
        assert headers["x-team"] == "platform"
        assert headers["anthropic-beta"] == "b1"  # the client's headers still forwarded
        assert headers["x-api-key"] == "sk-ant-upstream"
        # A stream is relayed byte for byte: event hooks do not run on the pass-through.
        ant.enqueue(AnthropicSseReply(anthropic_stream_events("streamed text", pieces=3)))
        with client.messages.stream(**_sdk("smart")) as s:
            assert "".join(s.text_stream) == "streamed text"


def test_pass_through_error_hook(ant: FakeAnthropic) -> None:
    ant.enqueue(anthropic_error(429, message="slow down"))
    with _vdm(ant, '[middleware]\nenabled = ["polite"]\n') as vdm, _client(vdm) as client:
        with pytest.raises(anthropic.RateLimitError) as caught:
            client.messages.create(**_sdk("smart"))
    error = caught.value.body["error"]  # type: ignore[index]
    assert error["type"] == "rate_limit_error"
    assert error["message"].startswith("sorry: ") and "slow down" in error["message"]


def test_pass_through_request_that_cannot_be_read_is_a_400(ant: FakeAnthropic) -> None:
    """Middleware needs the request parsed: one the models refuse gets Anthropic's 400."""
    with _vdm(ant, SYSTEM) as vdm:
        body = {"model": "smart", "messages": [{"role": "user", "content": "hi"}]}
        answer = _post(vdm, json.dumps(body).encode())
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == "max_tokens: Field required"
    assert ant.requests == []


def test_openai_forwarded_path_runs_header_and_error_hooks_only(fake: FakeOpenAI) -> None:
    toml = (
        '[middleware]\nenabled = ["system-prompt", "team-header", "polite"]\n'
        '[middleware.system-prompt]\nappend = "never on a forwarded OpenAI body"\n'
        '[middleware.team-header]\nteam = "platform"\n'
    )
    fake.enqueue(JsonReply(completion("ok")))
    fake.enqueue(JsonReply({"error": {"message": "nope", "type": "invalid_request_error"}}, 400))
    env = {"OPENAI_API_KEY": "sk-up", "OPENAI_BASE_URL": fake.base_url, "MAX_RETRIES": "0"}
    prompt = [{"role": "system", "content": "Base."}, {"role": "user", "content": "hi"}]
    with (
        running_vdm(env, middleware=middleware_tables(toml)) as vdm,
        openai.OpenAI(base_url=f"{vdm.url}/v1", api_key="unused", max_retries=0) as client,
    ):
        client.chat.completions.create(model="gpt-4o", messages=prompt)  # type: ignore[arg-type]
        assert fake.last.json["messages"] == prompt
        assert fake.last.headers["x-team"] == "platform"
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="gpt-4o", messages=prompt)  # type: ignore[arg-type]
    assert caught.value.body["message"].startswith("sorry: ")  # type: ignore[index]
