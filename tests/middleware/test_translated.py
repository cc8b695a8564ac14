"""Middleware end to end on the translated path: the anthropic SDK drives vdm (real Hypercorn
on loopback), vdm calls a fake OpenAI upstream (a real HTTP server). What the upstream
receives and what the client gets, with the test plugins installed as a real distribution."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI, JsonReply, SseReply, completion, stream_chunks
from tests.harness import running_vdm
from tests.middleware.helpers import middleware_tables
from tests.middleware.plugins import register

SYSTEM = """
[middleware]
enabled = ["system-prompt"]
[middleware.system-prompt]
replacements = [{ find = "Claude Code", replace = "a coding assistant" }]
append = "Answer in English."
"""


@pytest.fixture(autouse=True)
def _plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    register(tmp_path, monkeypatch)


@contextmanager
def _client(fake: FakeOpenAI, toml: str) -> Iterator[anthropic.Anthropic]:
    env = {
        "OPENAI_API_KEY": "sk-upstream",
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_ALIAS_FAST": "gpt-4o-mini",
        "OPENAI_ALIAS_SLOW": "gpt-4o",
        "MAX_RETRIES": "0",
    }
    with (
        running_vdm(env, middleware=middleware_tables(toml)) as vdm,
        anthropic.Anthropic(base_url=vdm.url, api_key="sk-client", max_retries=0) as client,
    ):
        yield client


def _hello(model: str = "gpt-4o", **kw: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}], **kw}


def _system_sent(fake: FakeOpenAI) -> str:
    messages = fake.last.json["messages"]
    return "\n".join(m["content"] for m in messages if m["role"] in ("system", "developer"))


def test_system_replacements_and_append_reach_the_upstream(fake: FakeOpenAI) -> None:
    with _client(fake, SYSTEM) as client:
        client.messages.create(**_hello(system="You are Claude Code, be brief."))
        system = _system_sent(fake)
        assert "You are a coding assistant, be brief." in system
        assert system.rstrip().endswith("Answer in English.")
        assert "Claude Code" not in system
        # Streamed requests too.
        with client.messages.stream(
            **_hello(system=[{"type": "text", "text": "Claude Code"}])
        ) as s:
            s.get_final_message()
        assert "a coding assistant" in _system_sent(fake)
        assert "Answer in English." in _system_sent(fake)


def test_per_alias_enablement(fake: FakeOpenAI) -> None:
    toml = """
[middleware.aliases.fast]
enabled = ["system-prompt"]
[middleware.aliases.fast.system-prompt]
append = "Be fast."
"""
    with _client(fake, toml) as client:
        client.messages.create(**_hello("fast", system="Base."))
        assert fake.last.json["model"] == "gpt-4o-mini"
        assert "Be fast." in _system_sent(fake)
        client.messages.create(**_hello("slow", system="Base."))
        assert fake.last.json["model"] == "gpt-4o"
        assert "Be fast." not in _system_sent(fake)
        client.messages.create(**_hello("openai:fast", system="Base."))
        assert "Be fast." in _system_sent(fake)
        # A name that contains the alias is routed by it, and gets its middleware too.
        client.messages.create(**_hello("my-fast-model", system="Base."))
        assert fake.last.json["model"] == "gpt-4o-mini"
        assert "Be fast." in _system_sent(fake)


@pytest.mark.parametrize("stream", [False, True])
def test_a_short_circuit_answers_without_calling_the_upstream(
    fake: FakeOpenAI, stream: bool
) -> None:
    toml = '[middleware]\nenabled = ["canned"]\n[middleware.aliases.fast.canned]\ntext = "hi"\n'
    with _client(fake, toml) as client:
        if stream:
            with client.messages.stream(**_hello("fast")) as s:
                texts = list(s.text_stream)
                message = s.get_final_message()
            assert "".join(texts) == message.content[0].text  # type: ignore[union-attr]
        else:
            message = client.messages.create(**_hello("fast"))
    assert message.content[0].text == "hi (openai:gpt-4o-mini, alias fast)"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.model == "fast"
    assert fake.requests == []


def test_an_event_hook_changes_text_deltas(fake: FakeOpenAI) -> None:
    fake.enqueue(SseReply(stream_chunks("Hello there, friend", pieces=4)))
    fake.enqueue(JsonReply(completion("Hello whole")))
    with _client(fake, '[middleware]\nenabled = ["upper"]\n') as client:
        with client.messages.stream(**_hello()) as s:
            deltas = list(s.text_stream)
        assert len(deltas) == 4
        assert "".join(deltas) == "HELLO THERE, FRIEND"
        # The whole answer goes through the response hook.
        message = client.messages.create(**_hello())
        assert message.content[0].text == "HELLO WHOLE"


def test_an_error_hook_rewords_errors_before_and_during_a_stream(fake: FakeOpenAI) -> None:
    refused = {"error": {"message": "bad thing", "type": "invalid_request_error"}}
    fake.enqueue(JsonReply(refused, status=400))
    fake.enqueue(SseReply(stream_chunks("partial answer", pieces=4), cut_after=2))
    with _client(fake, '[middleware]\nenabled = ["polite"]\n') as client:
        with pytest.raises(anthropic.BadRequestError) as before:
            client.messages.create(**_hello())
        said = before.value.body["error"]["message"]  # type: ignore[index]
        assert said.startswith("sorry: openai returned HTTP 400: bad thing")
        with pytest.raises(anthropic.APIStatusError) as during:  # noqa: PT012
            with client.messages.stream(**_hello()) as s:
                for _ in s:
                    pass
        assert str(during.value).startswith("sorry: openai closed the connection")


def test_upstream_headers_and_refusals(fake: FakeOpenAI) -> None:
    toml = (
        '[openai.middleware]\nenabled = ["team-header", "refuse"]\n'
        '[openai.middleware.team-header]\nteam = "platform"\n'
    )
    with _client(fake, toml) as client:
        client.messages.create(**_hello())
        assert fake.last.headers["x-team"] == "platform"
        assert fake.last.headers["authorization"] == "Bearer sk-upstream"
        tool = {"name": "t", "input_schema": {"type": "object"}}
        with pytest.raises(anthropic.PermissionDeniedError) as caught:
            client.messages.create(**_hello(tools=[tool]))
        assert caught.value.body["error"]["message"] == "tools are not allowed here"  # type: ignore[index]
    assert len(fake.requests) == 1


def test_a_crashing_middleware_is_a_500_naming_it(fake: FakeOpenAI) -> None:
    with _client(fake, '[middleware]\nenabled = ["crash"]\n') as client:
        with pytest.raises(anthropic.InternalServerError) as caught:
            client.messages.create(**_hello())
    assert caught.value.body["error"]["message"] == (  # type: ignore[index]
        "middleware 'crash' failed in on_request: RuntimeError: boom"
    )
    assert fake.requests == []


def test_tool_schema_strips_what_is_configured(fake: FakeOpenAI) -> None:
    toml = (
        '[openai.middleware]\nenabled = ["tool-schema"]\n'
        '[openai.middleware.tool-schema]\nstrip = ["$schema"]\nstrip-formats = ["uri"]\n'
    )
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"url": {"type": "string", "format": "uri"}},
    }
    with _client(fake, toml) as client:
        client.messages.create(**_hello(tools=[{"name": "fetch", "input_schema": schema}]))
    sent = fake.last.json["tools"][0]["function"]["parameters"]
    assert "$schema" not in sent
    assert sent["properties"]["url"] == {"type": "string"}


@pytest.mark.parametrize("stream", [False, True])
def test_a_short_circuit_answers_an_openai_client_in_its_dialect(
    ant: FakeAnthropic, stream: bool
) -> None:
    """A Chat client to an Anthropic-format provider is translated: request hooks run, and a
    middleware's answer comes back as a chat completion."""
    env = {"ANTHROPIC_API_KEY": "sk-ant", "ANTHROPIC_BASE_URL": ant.base_url}
    toml = '[middleware]\nenabled = ["canned"]\n[middleware.canned]\ntext = "from vdm"\n'
    with (
        running_vdm(env, middleware=middleware_tables(toml)) as vdm,
        openai.OpenAI(base_url=f"{vdm.url}/v1", api_key="unused", max_retries=0) as client,
    ):
        model = "claude-haiku-4-5"
        if stream:
            chunks = list(
                client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": "hi"}], stream=True
                )
            )
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert chunks[-1].choices[0].finish_reason == "stop"
        else:
            answer = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}]
            )
            text = answer.choices[0].message.content or ""
            assert answer.object == "chat.completion"
    assert text == "from vdm (anthropic:claude-haiku-4-5, alias None)"
    assert ant.requests == []


def test_failover_runs_the_next_routes_chain(fake: FakeOpenAI, other: FakeOpenAI) -> None:
    """The request hooks run again for the route that takes over, with its own chain."""
    env = {
        "GROQ_API_KEY": "gsk-1",
        "GROQ_BASE_URL": other.base_url,
        "GROQ_ALIAS_FAST": "llama-3.3-70b,openai:gpt-4o-mini",
        "OPENAI_API_KEY": "sk-2",
        "OPENAI_BASE_URL": fake.base_url,
        "MAX_RETRIES": "0",
    }
    toml = (
        '[openai.middleware]\nenabled = ["system-prompt"]\n'
        '[openai.middleware.system-prompt]\nappend = "openai only"\n'
    )
    other.enqueue(JsonReply({"error": {"message": "down", "type": "server_error"}}, 503))
    with (
        running_vdm(env, middleware=middleware_tables(toml)) as vdm,
        anthropic.Anthropic(base_url=vdm.url, api_key="sk-client", max_retries=0) as client,
    ):
        response = client.messages.with_raw_response.create(**_hello("fast", system="Base."))
    assert response.headers["x-vdm-served-by"] == "openai:gpt-4o-mini"
    sent_first = other.last.json["messages"]
    assert "openai only" not in str(sent_first)
    assert "openai only" in _system_sent(fake)
