"""Anthropic-format providers and the model catalog end to end.

vdm (real Hypercorn on loopback) in front of a fake Anthropic upstream: request bodies
forwarded unchanged but for `model`, answers and streams relayed byte for byte, version and
beta headers forwarded, x-api-key auth, count_tokens forwarded, errors keeping their type.
Then `GET /v1/models` and `GET /v1/aliases` over an OpenAI fake and an Anthropic fake, and a
start-up that never waits for a provider.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.anthropic_rules import sign
from tests.fakes.anthropic_upstream import (
    AnthropicSseReply,
    FakeAnthropic,
    JsonReply,
    anthropic_error,
    anthropic_message,
    anthropic_stream_events,
)
from tests.fakes.openai_upstream import FakeOpenAI
from tests.harness import RunningVdm, running_vdm

ANT_KEY = "sk-ant-test"
CLIENT_KEY = "sk-ant-client-own-4242"


@pytest.fixture
def vdm(ant: FakeAnthropic) -> Iterator[RunningVdm]:
    env = {
        "ANTHROPIC_API_KEY": ANT_KEY,
        "ANTHROPIC_BASE_URL": ant.base_url,
        "ANTHROPIC_ALIAS_FAST": "claude-haiku-4-5",
        "MAX_RETRIES": "0",
    }
    with running_vdm(env) as server:
        yield server


def _post(
    vdm: RunningVdm,
    body: dict[str, Any] | bytes,
    headers: dict[str, str] | None = None,
    path: str = "/v1/messages",
) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"content-type": "application/json", **(headers or {})}
    return httpx.post(f"{vdm.url}{path}", content=content, headers=headers, timeout=10)


def _stream(vdm: RunningVdm, body: dict[str, Any]) -> tuple[httpx.Response, bytes]:
    """The raw bytes of a streamed answer, read as they come."""
    with httpx.stream(
        "POST", f"{vdm.url}/v1/messages", json={**body, "stream": True}, timeout=10
    ) as response:
        raw = b"".join(response.iter_raw())
    return response, raw


def _hello(model: str = "claude-haiku-4-5", **kw: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}], **kw}


def _rich_request(model: str) -> dict[str, Any]:
    """A request full of things a translating proxy would lose: unknown fields at every level,
    cache_control, signed and redacted thinking, metadata, tool results as blocks."""
    return {
        "model": model,
        "max_tokens": 2048,
        "system": [
            {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}
        ],
        "metadata": {"user_id": "user-7f3a"},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
        "x_future_field": {"nested": [1, 2.5, None, True]},
        "tools": [
            {
                "name": "Bash",
                "description": "Run a command",
                "input_schema": {"type": "object", "properties": {"cmd": {"type": "string"}}},
                "cache_control": {"type": "ephemeral", "ttl": "1h"},
            }
        ],
        "messages": [
            {"role": "user", "content": "list files, café ☕"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Use ls.", "signature": sign("Use ls.")},
                    {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"},
                    {"type": "tool_use", "id": "toolu_01A", "name": "Bash", "input": {"cmd": "ls"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_01A",
                        "content": [{"type": "text", "text": "a.txt"}],
                        "cache_control": {"type": "ephemeral"},
                    },
                    {"type": "text", "text": "and now?", "citations_hint": "kept"},
                ],
            },
        ],
    }


# --- requests go through unchanged but for the model --------------------------------------------


def test_body_is_forwarded_unchanged_except_the_renamed_model(
    vdm: RunningVdm, ant: FakeAnthropic
) -> None:
    request = _rich_request("fast")  # ANTHROPIC_ALIAS_FAST → claude-haiku-4-5
    response = _post(vdm, request)
    assert response.status_code == 200, response.text
    sent = ant.last
    assert (sent.method, sent.path) == ("POST", "/v1/messages")
    assert sent.json == {**request, "model": "claude-haiku-4-5"}


def test_body_bytes_are_untouched_when_the_model_keeps_its_name(
    vdm: RunningVdm, ant: FakeAnthropic
) -> None:
    # Odd but valid JSON: indentation, key order, escaped non-ASCII. Any re-encoding shows.
    raw = json.dumps(_rich_request("claude-haiku-4-5"), indent=3, ensure_ascii=True).encode()
    raw = b"\n" + raw + b"\n"
    response = _post(vdm, raw, {"content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert ant.last.body == raw


@pytest.mark.parametrize(
    "model", ["claude-opus-4-5-20251101", "claude-sonnet-4-5-20250929", "claude-3-5-haiku-20241022"]
)
def test_claude_codes_model_names_reach_anthropic_unchanged(
    vdm: RunningVdm, ant: FakeAnthropic, model: str
) -> None:
    raw = json.dumps(_hello(model)).encode()
    assert _post(vdm, raw).status_code == 200
    assert ant.last.body == raw, "no fallback alias may rename a Claude model on Anthropic"


def test_provider_prefix_is_removed_from_the_model(vdm: RunningVdm, ant: FakeAnthropic) -> None:
    request = _rich_request("anthropic:claude-haiku-4-5")
    assert _post(vdm, request).status_code == 200
    assert ant.last.json == {**request, "model": "claude-haiku-4-5"}


def test_a_renamed_model_gets_thinking_and_effort_as_it_takes_them(
    vdm: RunningVdm, ant: FakeAnthropic
) -> None:
    """Claude Code sends adaptive thinking, an effort and 128K `max_tokens` to any model it
    takes for a new Opus; the alias leads to Haiku 4.5, which the strict fake (as the real
    API) refuses all three on ("adaptive thinking is not supported on this model")."""
    request = {
        **_hello("fast", max_tokens=128000),
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "xhigh"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    }
    response = _post(vdm, request)
    assert response.status_code == 200, response.text
    sent = ant.last.json
    assert sent["model"] == "claude-haiku-4-5"
    assert sent["max_tokens"] == 64000  # Haiku 4.5's ceiling
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 31999}  # xhigh's budget
    assert "output_config" not in sent
    assert sent["context_management"] == request["context_management"]  # thinking stays on


def test_a_session_that_changed_model_reaches_anthropic_with_thinking_off(
    vdm: RunningVdm, ant: FakeAnthropic
) -> None:
    """The last tool call turn came from another provider (its reasoning vdm's own): with
    that dropped, the turn opens with `tool_use`, which thinking on makes a 400, so thinking
    and the edit that needs it go; the name was not renamed, so nothing else changes."""
    tool = {"type": "tool_use", "id": "toolu_01B", "name": "Bash", "input": {"cmd": "ls"}}
    request = {
        **_hello("claude-haiku-4-5", max_tokens=32000),
        "thinking": {"type": "enabled", "budget_tokens": 4096},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "messages": [
            {"role": "user", "content": "list files"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "ls it", "signature": "vdm-rc1"},
                    tool,
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_01B", "content": "a"}],
            },
        ],
    }
    for stream in (False, True):
        if stream:
            response, raw = _stream(vdm, request)
            assert b"message_stop" in raw, raw
        else:
            response = _post(vdm, request)
        assert response.status_code == 200, response.text
        sent = ant.last.json
        assert sent["messages"][1]["content"] == [tool]
        assert "thinking" not in sent and "context_management" not in sent
        assert sent["max_tokens"] == 32000


def test_version_and_beta_headers_are_forwarded_with_x_api_key(
    vdm: RunningVdm, ant: FakeAnthropic
) -> None:
    headers = {
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "interleaved-thinking-2025-05-14,context-management-2025-06-27",
        "x-api-key": "sk-client-not-for-upstream",
        "x-unrelated": "not forwarded",
    }
    assert _post(vdm, _hello(), headers).status_code == 200
    sent = ant.last.headers
    assert sent["anthropic-version"] == "2023-06-01"
    assert sent["anthropic-beta"] == headers["anthropic-beta"]
    assert sent["x-api-key"] == ANT_KEY
    assert "authorization" not in sent
    assert "x-unrelated" not in sent


def test_default_anthropic_version_when_the_client_sends_none(
    vdm: RunningVdm, ant: FakeAnthropic
) -> None:
    assert _post(vdm, _hello()).status_code == 200
    assert ant.last.headers["anthropic-version"] == "2023-06-01"
    assert "anthropic-beta" not in ant.last.headers


# --- answers come back untouched ---------------------------------------------------------------


def test_non_streaming_answer_is_returned_byte_for_byte(
    vdm: RunningVdm, ant: FakeAnthropic
) -> None:
    message = anthropic_message(
        "Café ☕ ready.", thinking="The user wants coffee.", tool_use=("Bash", '{"cmd":"ls"}')
    )
    raw = json.dumps(message, indent=2, ensure_ascii=True).encode() + b"\n"
    ant.enqueue(JsonReply(raw))
    response = _post(vdm, _hello())
    assert response.status_code == 200
    assert response.content == raw
    assert response.headers["content-type"] == "application/json"


def test_stream_is_relayed_byte_for_byte_and_usage_is_logged(
    vdm: RunningVdm, ant: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vdm.requests")
    events = anthropic_stream_events(
        "Let me look — ça va.",
        thinking="Listing files needs Bash.",
        tool_use=("Bash", '{"cmd":"ls -la","timeout":30}', "toolu_01relay"),
        input_tokens=321,
        output_tokens=45,
        pieces=4,
    )
    names = b"".join(events)
    for kind in (b"ping", b"signature_delta", b"input_json_delta", b"thinking_delta"):
        assert kind in names  # the script holds every kind of event worth relaying
    ant.enqueue(AnthropicSseReply(events))
    response, raw = _stream(vdm, _hello("fast"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert raw == b"".join(events)
    assert ant.last.json["model"] == "claude-haiku-4-5" and ant.last.json["stream"] is True
    assert ant.last.headers["accept"] == "text/event-stream"
    # The request line is logged once the response is finished: possibly after the client
    # has read it all.
    deadline = time.monotonic() + 5
    lines: list[str] = []
    while not lines and time.monotonic() < deadline:
        time.sleep(0.01)
        lines = [r.getMessage() for r in caplog.records if r.name == "vdm.requests"]
    assert len(lines) == 1, lines
    assert "fast -> anthropic:claude-haiku-4-5 stream ok" in lines[0]
    assert " input=321" in lines[0] and " output=45" in lines[0]


def test_stream_through_the_sdk_keeps_thinking_signatures(
    vdm: RunningVdm, ant: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    import anthropic

    monkeypatch.delenv("ANTHROPIC_CUSTOM_HEADERS", raising=False)
    events = anthropic_stream_events(
        "Done.", thinking="Think.", tool_use=("Bash", '{"cmd":"pwd"}', "toolu_01sdk")
    )
    ant.enqueue(AnthropicSseReply(events))
    with (
        anthropic.Anthropic(base_url=vdm.url, api_key="unused", max_retries=0) as client,
        client.messages.stream(**_hello()) as stream,
    ):
        final = stream.get_final_message()
    thinking, text, tool = final.content
    assert thinking.type == "thinking" and thinking.signature.startswith("EqQB")
    assert text.type == "text" and text.text == "Done."
    assert tool.type == "tool_use" and tool.input == {"cmd": "pwd"}
    assert ant.last.headers["x-api-key"] == ANT_KEY


def test_stream_cut_midway_ends_with_an_error_event(vdm: RunningVdm, ant: FakeAnthropic) -> None:
    events = anthropic_stream_events("a long answer that is cut", pieces=6)
    ant.enqueue(AnthropicSseReply(events, cut_after=4))
    response, raw = _stream(vdm, _hello())
    assert response.status_code == 200
    assert raw.startswith(b"".join(events[:4]))
    tail = raw[len(b"".join(events[:4])) :]
    assert tail.startswith(b"event: error\ndata: ")
    error = json.loads(tail.split(b"data: ", 1)[1])
    assert error["type"] == "error" and error["error"]["type"] == "api_error"
    assert b"message_stop" not in raw


def test_count_tokens_is_answered_by_the_provider(vdm: RunningVdm, ant: FakeAnthropic) -> None:
    ant.count_tokens_result = 777
    request = _rich_request("fast")
    del request["max_tokens"]
    response = _post(
        vdm, request, {"anthropic-beta": "token-counting-2024-11-01"}, "/v1/messages/count_tokens"
    )
    assert response.status_code == 200
    assert response.json() == {"input_tokens": 777}
    sent = ant.last
    assert sent.path == "/v1/messages/count_tokens"
    assert sent.json == {**request, "model": "claude-haiku-4-5"}
    assert sent.headers["x-api-key"] == ANT_KEY
    assert sent.headers["anthropic-beta"] == "token-counting-2024-11-01"
    assert sent.headers["anthropic-version"] == "2023-06-01"


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(401, "authentication_error"), (429, "rate_limit_error"), (529, "overloaded_error")],
)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_upstream_errors_keep_status_and_type(
    vdm: RunningVdm, ant: FakeAnthropic, status: int, error_type: str, stream: bool
) -> None:
    attempts = 1 + vdm.settings.max_retries if status == 529 else 1  # overloaded is retried
    for _ in range(attempts):
        ant.enqueue(anthropic_error(status, message=f"upstream says {status}"))
    response = _post(vdm, _hello(stream=stream))
    assert response.status_code == status
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert f"upstream says {status}" in body["error"]["message"]
    assert len(ant.requests) == attempts


def test_an_overloaded_anthropic_upstream_is_retried(ant: FakeAnthropic) -> None:
    env = {"ANTHROPIC_API_KEY": ANT_KEY, "ANTHROPIC_BASE_URL": ant.base_url, "MAX_RETRIES": "1"}
    ant.enqueue(anthropic_error(529, message="Overloaded"))
    with running_vdm(env) as vdm:
        response = _post(vdm, _hello(stream=True))
    assert response.status_code == 200
    assert b"event: message_stop" in response.content
    assert len(ant.requests) == 2


# --- other Anthropic-format providers ------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "header", "value"),
    [(None, "x-api-key", "sk-myant-key"), ("bearer", "authorization", "Bearer sk-myant-key")],
    ids=["x-api-key", "bearer"],
)
def test_a_custom_anthropic_format_provider(
    ant: FakeAnthropic, auth: str | None, header: str, value: str
) -> None:
    env = {"MYANT_API_KEY": "sk-myant-key", "MYANT_BASE_URL": ant.base_url}
    env["MYANT_API_FORMAT"] = "anthropic"
    if auth:
        env["MYANT_AUTH"] = auth
    request = _rich_request("myant:claude-haiku-4-5")
    with running_vdm(env) as vdm:
        response = _post(vdm, request)
        events = anthropic_stream_events("streamed")
        ant.enqueue(AnthropicSseReply(events))
        _, raw = _stream(vdm, _hello("myant:some-model"))
    assert response.status_code == 200
    assert raw == b"".join(events)
    first, second = ant.requests
    assert first.path == second.path == "/v1/messages"
    assert first.json == {**request, "model": "claude-haiku-4-5"}
    assert second.json["model"] == "some-model"
    unused = "x-api-key" if header == "authorization" else "authorization"
    for sent in (first, second):
        assert sent.headers[header] == value
        assert unused not in sent.headers


def test_passthrough_anthropic_provider_sends_the_clients_key_as_x_api_key(
    ant: FakeAnthropic,
) -> None:
    env = {"ANTHROPIC_API_KEY": "!PASSTHRU", "ANTHROPIC_BASE_URL": ant.base_url}
    with running_vdm(env) as vdm:
        by_x = _post(vdm, _hello(), {"x-api-key": CLIENT_KEY})
        by_bearer = _post(vdm, _hello(), {"authorization": f"Bearer {CLIENT_KEY}"})
        refused = _post(vdm, _hello())
    assert by_x.status_code == by_bearer.status_code == 200
    assert [r.headers["x-api-key"] for r in ant.requests] == [CLIENT_KEY, CLIENT_KEY]
    assert all("authorization" not in r.headers for r in ant.requests)
    assert refused.status_code == 401 and "!PASSTHRU" in refused.json()["error"]["message"]
    assert len(ant.requests) == 2


# --- /v1/models and /v1/aliases ------------------------------------------------------------------


@pytest.fixture
def both(fake: FakeOpenAI, ant: FakeAnthropic) -> Iterator[RunningVdm]:
    env = {
        "OPENAI_API_KEY": "sk-openai-test",
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_ALIAS_FAST": "gpt-4o-mini",
        "ANTHROPIC_API_KEY": ANT_KEY,
        "ANTHROPIC_BASE_URL": ant.base_url,
        "ANTHROPIC_ALIAS_SMART": "claude-opus-4-1",
        "VDM_FALLBACK_OPUS": "o3-mini",
        # Its models endpoint answers 404: listed without models, never failing the call.
        "BROKEN_API_KEY": "sk-broken",
        "BROKEN_BASE_URL": f"{ant.base_url}/nowhere",
        "MAX_RETRIES": "0",
    }
    with running_vdm(env) as server:
        yield server


def _models_fetches(*fakes: FakeOpenAI) -> list[str]:
    return [f"{r.method} {r.path}" for f in fakes for r in f.requests if r.path.endswith("/models")]


def test_models_lists_every_provider_with_prefixed_ids_and_aliases(
    both: RunningVdm, fake: FakeOpenAI, ant: FakeAnthropic
) -> None:
    response = httpx.get(f"{both.url}/v1/models", timeout=10)
    assert response.status_code == 200
    body = response.json()
    ids = [m["id"] for m in body["data"]]
    assert {"openai:gpt-4o", "openai:gpt-4o-mini", "openai:o3-mini"} <= set(ids)
    assert {"anthropic:claude-sonnet-4-5", "anthropic:claude-haiku-4-5"} <= set(ids)
    assert {"fast", "smart", "haiku", "sonnet", "opus"} <= set(ids)
    assert ids.count("opus") == 1, "a shadowed fallback is not listed"
    assert not [i for i in ids if i.startswith("broken:")]
    assert all(m["type"] == "model" and m["display_name"] and m["created_at"] for m in body["data"])
    assert (body["first_id"], body["last_id"], body["has_more"]) == (ids[0], ids[-1], False)
    sonnet = next(m for m in body["data"] if m["id"] == "anthropic:claude-sonnet-4-5")
    assert sonnet["created_at"] == "2025-09-29T00:00:00Z"
    assert "Claude Sonnet 4.5" in sonnet["display_name"]
    fast = next(m for m in body["data"] if m["id"] == "fast")
    assert "openai:gpt-4o-mini" in fast["display_name"]
    # Each provider's own models endpoint, with its own auth.
    assert _models_fetches(fake) == ["GET /v1/models"]
    assert fake.last.headers["authorization"] == "Bearer sk-openai-test"
    assert sorted(_models_fetches(ant)) == ["GET /nowhere/models", "GET /v1/models"]
    listed = next(r for r in ant.requests if r.path == "/v1/models")
    assert listed.headers["x-api-key"] == ANT_KEY
    assert listed.headers["anthropic-version"] == "2023-06-01"  # Anthropic refuses it without


def test_models_are_cached(both: RunningVdm, fake: FakeOpenAI, ant: FakeAnthropic) -> None:
    first = httpx.get(f"{both.url}/v1/models", timeout=10).json()
    fetched = len(_models_fetches(fake, ant))
    second = httpx.get(f"{both.url}/v1/models", timeout=10).json()
    filtered = httpx.get(f"{both.url}/v1/models?provider=anthropic", timeout=10)
    assert fetched == 3
    assert second == first
    assert filtered.status_code == 200
    assert len(_models_fetches(fake, ant)) == fetched, "a cached list was fetched again"


def test_models_filter_by_provider(both: RunningVdm, fake: FakeOpenAI, ant: FakeAnthropic) -> None:
    response = httpx.get(f"{both.url}/v1/models", params={"provider": "openai"}, timeout=10)
    assert response.status_code == 200
    ids = [m["id"] for m in response.json()["data"]]
    assert "openai:gpt-4o" in ids and "fast" in ids
    assert not [i for i in ids if i.startswith("anthropic:")] and "smart" not in ids
    assert _models_fetches(ant) == [], "only the asked provider is fetched"
    unknown = httpx.get(f"{both.url}/v1/models?provider=nope", timeout=10)
    assert unknown.status_code == 404
    error = unknown.json()["error"]
    assert error["type"] == "not_found_error"
    assert "nope" in error["message"] and "openai" in error["message"]


def test_models_filter_spells_providers_as_model_prefixes_do(fake: FakeOpenAI) -> None:
    env = {"MY_CORP_API_KEY": "sk-corp", "MY_CORP_BASE_URL": fake.base_url}
    with running_vdm(env) as vdm:
        listed = httpx.get(f"{vdm.url}/v1/models?provider=my-corp", timeout=10)
        routed = _post(vdm, _hello("my-corp:gpt-4o"))
    assert listed.status_code == 200, listed.text
    assert "my_corp:gpt-4o" in [m["id"] for m in listed.json()["data"]]
    assert routed.status_code == 200
    assert fake.last.json["model"] == "gpt-4o"


def test_aliases_show_the_effective_table(both: RunningVdm, fake: FakeOpenAI) -> None:
    response = httpx.get(f"{both.url}/v1/aliases", timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["default_provider"] == "openai"
    entries = body["aliases"]
    for entry in entries:
        assert {"name", "kind", "provider", "target", "resolves_to", "source", "active"} <= set(
            entry
        )
    by_key = {(e["kind"], e["provider"], e["name"], e["source"]): e for e in entries}
    fast = by_key[("alias", "openai", "fast", "env: OPENAI_ALIAS_FAST")]
    assert (fast["target"], fast["resolves_to"], fast["active"]) == (
        "gpt-4o-mini",
        "openai:gpt-4o-mini",
        True,
    )
    smart = by_key[("alias", "anthropic", "smart", "env: ANTHROPIC_ALIAS_SMART")]
    assert (smart["resolves_to"], smart["active"]) == ("anthropic:claude-opus-4-1", True)
    # Your fallback comes first and is used; the packaged one of the same name is shadowed.
    mine = by_key[("fallback", "openai", "opus", "env: VDM_FALLBACK_OPUS")]
    packaged = by_key[("fallback", "openai", "opus", "defaults.toml")]
    assert (mine["target"], mine["resolves_to"], mine["active"]) == (
        "o3-mini",
        "openai:o3-mini",
        True,
    )
    assert (packaged["target"], packaged["active"]) == ("gpt-5.6-sol", False)
    assert entries.index(mine) < entries.index(packaged)
    sonnet = by_key[("fallback", "openai", "sonnet", "defaults.toml")]
    assert (sonnet["resolves_to"], sonnet["active"]) == ("openai:gpt-5.6-terra", True)
    # Anthropic has no packaged fallbacks: it knows Claude Code's names itself.
    assert not [e for e in entries if e["provider"] == "anthropic" and e["kind"] == "fallback"]
    assert fake.requests == [], "the alias table needs no upstream"


# --- start-up never waits for a provider ---------------------------------------------------------


def test_startup_is_not_blocked_by_unreachable_providers(fake: FakeOpenAI) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead_port = closed.getsockname()[1]
    # A provider that accepts connections and never answers would hang a fetch at start-up.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        env = {
            "OPENAI_API_KEY": "sk-openai-test",
            "OPENAI_BASE_URL": fake.base_url,
            "DEAD_API_KEY": "sk-dead",
            "DEAD_BASE_URL": f"http://127.0.0.1:{dead_port}/v1",
            "SILENT_API_KEY": "sk-silent",
            "SILENT_BASE_URL": f"http://127.0.0.1:{silent.getsockname()[1]}",
            "SILENT_API_FORMAT": "anthropic",
        }
        started = time.monotonic()
        with running_vdm(env) as vdm:
            health = httpx.get(f"{vdm.url}/health", timeout=10)
            elapsed = time.monotonic() - started
    assert health.status_code == 200
    assert set(health.json()["providers"]) == {"openai", "dead", "silent"}
    assert elapsed < 3.0, f"/health took {elapsed:.1f} s after start"
    assert fake.requests == [], "nothing is fetched from a provider at start-up"
