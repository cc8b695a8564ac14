"""Claude Code's gateway contract on the Anthropic-format path, and vdm's own answers.

vdm (real Hypercorn on loopback) in front of fake upstreams (real HTTP servers), with raw
httpx or the official anthropic SDK as the client:

- request bodies with values vdm does not know reach an Anthropic-format provider byte for
  byte (C5); only a body that is not a JSON object with a `model` is refused;
- an Anthropic-format upstream's errors come back unchanged: status, body bytes, type,
  `retry-after`, `x-should-retry` (C9), the upstream's `request-id` as
  `x-vdm-upstream-request-id` beside vdm's own `request-id`; its rate-limit headers only when
  the key is the client's own (C16); an answer marked `x-should-retry: false` is not retried;
- every answer that retrying cannot fix says `x-should-retry: false` (C15);
- request headers: every `anthropic-*`, `user-agent`, `x-stainless-*` forwarded, never
  credentials or Claude Code's hints (C4, C6);
- a stream whose `message_stop` reached the client is a success, whatever the upstream does
  after it, and usage that arrived is kept;
- requests refused before any upstream was called still get a request log line.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from tests.fakes.anthropic_upstream import (
    AnthropicSseReply,
    FakeAnthropic,
    JsonReply,
    anthropic_error,
    anthropic_message,
    anthropic_stream_events,
)
from tests.fakes.openai_upstream import FakeOpenAI, SseReply, stream_chunks
from tests.harness import RunningVdm, running_vdm

ANT_KEY = "sk-ant-vdm-own-key-7777"
OTHER_KEY = "sk-ant-vdm-second-key-8888"
CLIENT_KEY = "sk-ant-client-own-4242"
REQUEST_ID = "req_011CVdmContractTest0001"


@pytest.fixture
def vdm(ant: FakeAnthropic) -> Iterator[RunningVdm]:
    env = {
        "ANTHROPIC_API_KEY": ANT_KEY,
        "ANTHROPIC_BASE_URL": ant.base_url,
        "ANTHROPIC_ALIAS_FAST": "claude-haiku-4-5",
        "MAX_RETRIES": "1",
    }
    with running_vdm(env) as server:
        yield server


@pytest.fixture
def chat(fake: FakeOpenAI) -> Iterator[RunningVdm]:
    env = {
        "OPENAI_API_KEY": "sk-openai-test-1234",
        "OPENAI_BASE_URL": fake.base_url,
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


def _hello(model: str = "claude-haiku-4-5", **kw: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}], **kw}


def _future_request(model: str) -> dict[str, Any]:
    """Values no version of vdm's models knows: each one was a 400 from vdm itself."""
    return {
        "model": model,
        "max_tokens": 1024,
        "thinking": {"type": "auto", "effort_hint": "frugal"},
        "tool_choice": {"type": "auto_then_any", "after": 2},
        "system": [
            {"type": "text", "text": "You are terse."},
            {"type": "policy_reference", "policy_id": "pol_123"},
        ],
        "tools": [
            {"type": "mcp_toolset", "mcp_server_name": "docs", "default_config": {"on": True}},
            {"name": "Bash", "input_schema": {"type": "object"}, "eager_input_streaming": True},
        ],
        "messages": [
            {"role": "user", "content": [{"type": "hologram", "frames": [1, 2]}]},
            {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
            {"role": "user", "content": "go on"},
        ],
        "stream": False,
        "speculative_decoding": {"enabled": True},
    }


def _log_lines(caplog: pytest.LogCaptureFixture, count: int = 1) -> list[str]:
    """The request log lines, once `count` are there (a stream's is written after the
    client has read its end)."""
    deadline = time.monotonic() + 5
    lines: list[str] = []
    while len(lines) < count and time.monotonic() < deadline:
        time.sleep(0.01)
        lines = [
            r.getMessage()
            for r in caplog.records
            if r.name == "vdm.requests" and r.levelno == logging.INFO and " -> " in r.getMessage()
        ]
    return lines


# --- C5: never reject what vdm does not recognise ------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_unknown_values_reach_anthropic_byte_for_byte(
    vdm: RunningVdm, ant: FakeAnthropic, stream: bool
) -> None:
    body = _future_request("claude-haiku-4-5")
    body["stream"] = stream
    raw = json.dumps(body, indent=2).encode() + b"\n"  # formatting a re-encode would lose
    response = _post(vdm, raw, {"content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert ant.last.path == "/v1/messages"
    assert ant.last.body == raw


def test_unknown_values_survive_a_renamed_model(vdm: RunningVdm, ant: FakeAnthropic) -> None:
    body = _future_request("fast")  # ANTHROPIC_ALIAS_FAST → claude-haiku-4-5
    response = _post(vdm, body)
    assert response.status_code == 200, response.text
    assert ant.last.json == {**body, "model": "claude-haiku-4-5"}


def test_count_tokens_forwards_unknown_values(vdm: RunningVdm, ant: FakeAnthropic) -> None:
    body = _future_request("claude-haiku-4-5")
    del body["max_tokens"], body["stream"]
    raw = json.dumps(body).encode()
    response = _post(vdm, raw, path="/v1/messages/count_tokens")
    assert response.status_code == 200, response.text
    assert response.json() == {"input_tokens": ant.count_tokens_result}
    assert ant.last.path == "/v1/messages/count_tokens"
    assert ant.last.body == raw


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", "invalid JSON body"),
        (b"", "request body is empty"),
        (b'["model", "claude-haiku-4-5"]', "must be a JSON object"),
        (b'{"max_tokens": 5, "messages": []}', "model: Field required"),
        (b'{"model": 7, "messages": []}', "model: Input should be a valid string"),
        (b'{"model": "  ", "messages": []}', "model: must not be empty"),
    ],
    ids=["not-json", "empty", "array", "no-model", "number-model", "blank-model"],
)
@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
def test_only_a_body_without_a_model_is_refused(
    vdm: RunningVdm, ant: FakeAnthropic, body: bytes, words: str, path: str
) -> None:
    response = _post(vdm, body, path=path)
    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert words in response.json()["error"]["message"]
    assert response.headers["x-should-retry"] == "false"
    assert ant.requests == []


def test_a_translated_request_is_still_validated(chat: RunningVdm, fake: FakeOpenAI) -> None:
    """What the translator cannot take is a 400 naming the field, before any upstream call."""
    body = {"model": "gpt-4o", "max_tokens": 5, "messages": [{"role": "bot", "content": "x"}]}
    response = _post(chat, body)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("messages.0.role")
    assert response.headers["x-should-retry"] == "false"
    assert fake.requests == []


# --- C9: upstream errors unchanged --------------------------------------------------------------


def _raw_error(status: int, type_: str, message: str, **headers: str) -> tuple[bytes, JsonReply]:
    # Spacing and key order of the real API's bodies differ from json.dumps': any re-encode shows.
    body = b'{"type":"error","error":{"type":"%s","message":"%s"},  "request_id":"%s"}' % (
        type_.encode(),
        message.encode(),
        REQUEST_ID.encode(),
    )
    sent = {"request-id": REQUEST_ID, **{k.replace("_", "-"): v for k, v in headers.items()}}
    return body, JsonReply(body, status=status, headers=sent)


@pytest.mark.parametrize(
    ("status", "type_", "message"),
    [
        (400, "policy_blocked", "This request was blocked by your organization's policy."),
        (402, "billing_error", "Your credit balance is too low to access the Anthropic API."),
        (400, "invalid_request_error", "prompt is too long: 210118 tokens > 200000 maximum"),
        (413, "request_too_large", "Request exceeds the maximum allowed number of bytes."),
        (429, "rate_limit_error", "Number of request tokens has exceeded your rate limit."),
    ],
    ids=["policy", "billing", "too-long", "too-large", "rate-limit"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_upstream_errors_reach_the_client_unchanged(
    vdm: RunningVdm, ant: FakeAnthropic, status: int, type_: str, message: str, stream: bool
) -> None:
    body, reply = _raw_error(status, type_, message, retry_after="7", x_should_retry="false")
    ant.enqueue(reply)
    response = _post(vdm, _hello(stream=stream))
    assert response.status_code == status
    assert response.content == body
    assert response.headers["content-type"] == "application/json"
    assert response.headers["retry-after"] == "7"
    assert response.headers["x-should-retry"] == "false"
    assert response.headers["x-vdm-upstream-request-id"] == REQUEST_ID
    assert response.headers["request-id"].startswith("req_vdm_")
    assert len(ant.requests) == 1


def test_count_tokens_errors_reach_the_client_unchanged(
    vdm: RunningVdm, ant: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    body, reply = _raw_error(400, "invalid_request_error", "messages: Field required")

    def refuse(request: Any) -> JsonReply:
        return reply

    monkeypatch.setattr(ant, "_route", refuse)
    response = _post(vdm, {"model": "claude-haiku-4-5"}, path="/v1/messages/count_tokens")
    assert response.status_code == 400
    assert response.content == body
    assert response.headers["x-vdm-upstream-request-id"] == REQUEST_ID
    assert response.headers["request-id"].startswith("req_vdm_")
    assert response.headers["x-should-retry"] == "false"  # not marked upstream: vdm's table


def test_the_sdk_sees_the_upstreams_type_and_request_id(
    vdm: RunningVdm, ant: FakeAnthropic
) -> None:
    _, reply = _raw_error(400, "policy_blocked", "blocked by policy", x_should_retry="false")
    ant.enqueue(reply)
    with (
        anthropic.Anthropic(base_url=vdm.url, api_key="unused", max_retries=3) as client,
        pytest.raises(anthropic.BadRequestError) as caught,
    ):
        client.messages.create(**_hello())
    # The SDK reports vdm's id (in vdm's log line, beside the upstream's); the body is the
    # upstream's, its own request_id included.
    assert caught.value.request_id is not None and caught.value.request_id.startswith("req_vdm_")
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["request_id"] == REQUEST_ID
    assert caught.value.body["error"] == {"type": "policy_blocked", "message": "blocked by policy"}
    assert len(ant.requests) == 1  # neither vdm nor the SDK retried


def test_an_upstream_error_that_echoes_the_key_is_masked(
    vdm: RunningVdm, ant: FakeAnthropic
) -> None:
    error = {"type": "authentication_error", "message": f"bad key {ANT_KEY}"}
    ant.enqueue(JsonReply({"type": "error", "error": error}, status=401))
    response = _post(vdm, _hello())
    assert response.status_code == 401
    assert ANT_KEY not in response.text
    assert response.json()["error"]["message"].startswith("bad key sk-")
    assert response.json()["error"]["type"] == "authentication_error"
    assert response.headers["x-should-retry"] == "false"


def test_a_body_not_in_anthropics_envelope_is_wrapped_in_it(
    vdm: RunningVdm, ant: FakeAnthropic
) -> None:
    """A proxy in front of an Anthropic-format provider answers with an HTML page: the client
    gets Anthropic's envelope (its SDK parses JSON), with the page's text."""
    page = b"<html><body><h1>502 Bad Gateway</h1>nginx</body></html>"
    reply = JsonReply(page, status=502, headers={"content-type": "text/html"})
    ant.enqueue(reply, reply)  # MAX_RETRIES=1: a 502 is tried twice
    response = _post(vdm, _hello())
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "api_error"
    assert "502 Bad Gateway" in error["error"]["message"]
    assert response.headers["x-should-retry"] == "true"


@pytest.mark.parametrize(
    ("marked", "attempts"),
    [("false", 1), ("true", 2), (None, 2)],
    ids=["false", "true", "unmarked"],
)
def test_an_overloaded_upstream_is_retried_unless_it_says_not_to(
    vdm: RunningVdm, ant: FakeAnthropic, marked: str | None, attempts: int
) -> None:
    headers = {"x-should-retry": marked} if marked else None
    ant.enqueue(anthropic_error(529, headers=headers), anthropic_error(529, headers=headers))
    response = _post(vdm, _hello(stream=True))
    assert response.status_code == 529
    assert response.json()["error"]["type"] == "overloaded_error"
    assert len(ant.requests) == attempts  # MAX_RETRIES=1
    assert response.headers["x-should-retry"] == (marked or "true")


def test_a_key_refused_with_should_retry_false_fails_over_only_later(ant: FakeAnthropic) -> None:
    """The refused answer goes to the client as it is (no second key tried in the same call);
    the key still cools down, so the next requests use the other one."""
    env = {"ANTHROPIC_API_KEY": f"{ANT_KEY} {OTHER_KEY}", "ANTHROPIC_BASE_URL": ant.base_url}
    ant.enqueue(anthropic_error(401, headers={"x-should-retry": "false"}))
    with running_vdm(env) as vdm:
        first = _post(vdm, _hello())
        later = [_post(vdm, _hello()).status_code for _ in range(2)]
    assert first.status_code == 401
    assert later == [200, 200]
    assert [r.headers["x-api-key"] for r in ant.requests] == [ANT_KEY, OTHER_KEY, OTHER_KEY]


# --- C15: x-should-retry: false where retrying cannot help ---------------------------------------


def test_a_wrong_proxy_key_says_do_not_retry(ant: FakeAnthropic) -> None:
    env = {"ANTHROPIC_API_KEY": ANT_KEY, "ANTHROPIC_BASE_URL": ant.base_url}
    with running_vdm({**env, "PROXY_API_KEY": "proxy-secret-123"}) as vdm:
        wrong = _post(vdm, _hello(), {"x-api-key": "not-the-proxy-key"})
        missing = _post(vdm, _hello())
        models = httpx.get(f"{vdm.url}/v1/models", timeout=10)
    for response in (wrong, missing, models):
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"
        assert response.headers["x-should-retry"] == "false"
    assert ant.requests == []


def test_a_wrong_session_secret_says_do_not_retry(ant: FakeAnthropic) -> None:
    env = {"ANTHROPIC_API_KEY": ANT_KEY, "ANTHROPIC_BASE_URL": ant.base_url}
    with running_vdm(env, session_secret="wrap-session-abc") as vdm:
        refused = _post(vdm, _hello(), {"x-vdm-session": "another"})
        accepted = _post(vdm, _hello(), {"x-vdm-session": "wrap-session-abc"})
    assert refused.status_code == 401
    assert refused.headers["x-should-retry"] == "false"
    assert accepted.status_code == 200
    assert "x-vdm-session" not in ant.last.headers


def test_passthru_without_a_client_key_says_do_not_retry(ant: FakeAnthropic) -> None:
    env = {"ANTHROPIC_API_KEY": "!PASSTHRU", "ANTHROPIC_BASE_URL": ant.base_url}
    with running_vdm(env) as vdm:
        response = _post(vdm, _hello())
    assert response.status_code == 401
    assert "!PASSTHRU" in response.json()["error"]["message"]
    assert response.headers["x-should-retry"] == "false"


@pytest.mark.parametrize(
    ("model", "words"),
    [("nope:gpt-4o", "nope"), ("gemini:gemini-3-pro", "gemini")],
    ids=["unknown-provider", "unconfigured-provider"],
)
def test_an_unroutable_model_says_do_not_retry_and_is_logged(
    chat: RunningVdm,
    fake: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
    model: str,
    words: str,
) -> None:
    caplog.set_level(logging.INFO, logger="vdm.requests")
    response = _post(chat, _hello(model))
    assert response.status_code == 400
    assert response.headers["x-should-retry"] == "false"
    assert words in response.json()["error"]["message"]
    assert fake.requests == []
    (line,) = _log_lines(caplog)
    request_id, client, rest = line.split(" ", 2)
    assert request_id.startswith("req_vdm_") and client == "anonymous"
    assert rest.startswith(f"{model} -> (not routed) error 400 ")
    assert words in rest.split(": ", 1)[1]


def test_a_body_the_translator_refuses_is_logged_with_its_route(
    chat: RunningVdm, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vdm.requests")
    response = _post(chat, {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 400
    (line,) = _log_lines(caplog)
    assert line.split(" ", 2)[2].startswith("gpt-4o -> openai:gpt-4o error 400 ")


@pytest.mark.parametrize(("status", "should"), [(401, "false"), (403, "false"), (500, "true")])
def test_translated_upstream_errors_say_whether_to_retry(
    chat: RunningVdm, fake: FakeOpenAI, status: int, should: str
) -> None:
    fake.enqueue(
        JsonReply({"error": {"message": "nope", "type": "x", "code": None}}, status=status)
    )
    response = _post(chat, _hello("gpt-4o"))
    assert response.status_code == status
    assert response.json()["type"] == "error"  # vdm's envelope: the body was OpenAI's
    assert response.headers["x-should-retry"] == should


def test_a_translated_upstreams_own_verdict_wins(chat: RunningVdm, fake: FakeOpenAI) -> None:
    refusal = {
        "error": {"message": "You exceeded your current quota", "type": "insufficient_quota"}
    }
    fake.enqueue(JsonReply(refusal, status=429, headers={"x-should-retry": "false"}))
    response = _post(chat, _hello("gpt-4o"))
    assert response.status_code == 429
    assert response.headers["x-should-retry"] == "false"


def test_vdms_own_endpoint_errors_say_do_not_retry(vdm: RunningVdm) -> None:
    missing = httpx.get(f"{vdm.url}/v2/nothing", timeout=10)
    wrong_method = httpx.get(f"{vdm.url}/v1/messages", timeout=10)
    assert (missing.status_code, wrong_method.status_code) == (404, 405)
    assert missing.headers["x-should-retry"] == wrong_method.headers["x-should-retry"] == "false"


def test_an_unreachable_upstream_may_be_retried() -> None:
    env = {
        "ANTHROPIC_API_KEY": ANT_KEY,
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
        "MAX_RETRIES": "0",
    }
    with running_vdm(env) as vdm:
        response = _post(vdm, _hello())
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "api_error"
    assert response.headers["x-should-retry"] == "true"


# --- C4, C6, C16: headers ----------------------------------------------------------------------


def test_anthropic_headers_are_an_open_list(vdm: RunningVdm, ant: FakeAnthropic) -> None:
    headers = httpx.Headers(
        [
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "context-management-2025-06-27"),
            ("anthropic-beta", "future-beta-2027-01-01"),
            ("anthropic-workspace-id", "wrkspc_01AbC"),
            ("anthropic-dangerous-direct-browser-access", "true"),
            ("user-agent", "claude-cli/2.1.330 (external, cli)"),
            ("x-stainless-lang", "js"),
            ("x-stainless-retry-count", "0"),
            ("x-api-key", CLIENT_KEY),
            ("authorization", f"Bearer {CLIENT_KEY}"),
            ("x-vdm-session", "not-a-secret-here"),
            ("x-claude-code-session-id", "3f0c7e2a"),
            ("x-claude-code-request-class", "subagent"),
            ("x-app", "cli"),
        ]
    )
    response = httpx.post(f"{vdm.url}/v1/messages", json=_hello(), headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    sent = ant.last.headers
    assert sent["anthropic-version"] == "2023-06-01"
    assert sent["anthropic-beta"] == "context-management-2025-06-27,future-beta-2027-01-01"
    assert sent["anthropic-workspace-id"] == "wrkspc_01AbC"
    assert sent["anthropic-dangerous-direct-browser-access"] == "true"
    assert sent["user-agent"] == "claude-cli/2.1.330 (external, cli)"
    assert sent["x-stainless-lang"] == "js" and sent["x-stainless-retry-count"] == "0"
    assert sent["x-api-key"] == ANT_KEY
    assert "authorization" not in sent
    assert CLIENT_KEY not in json.dumps(sent)
    for consumed in ("x-vdm-session", "x-claude-code-session-id", "x-claude-code-request-class"):
        assert consumed not in sent
    assert "x-app" not in sent


def test_configured_custom_headers_win_over_the_clients(ant: FakeAnthropic) -> None:
    env = {
        "ANTHROPIC_API_KEY": ANT_KEY,
        "ANTHROPIC_BASE_URL": ant.base_url,
        "ANTHROPIC_CUSTOM_HEADER_USER_AGENT": "corp-gateway/1.0",
    }
    with running_vdm(env) as vdm:
        _post(vdm, _hello(), {"user-agent": "claude-cli/2.1.330", "x-stainless-os": "Linux"})
    assert ant.last.headers["user-agent"] == "corp-gateway/1.0"
    assert ant.last.headers["x-stainless-os"] == "Linux"


_ACCOUNT = {
    "anthropic-ratelimit-requests-remaining": "49",
    "anthropic-ratelimit-tokens-reset": "2026-11-21T10:00:00Z",
    "anthropic-organization-id": "org-7f3a",
}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("passthru", [False, True], ids=["own-key", "passthru"])
def test_request_id_is_relayed_and_rate_limits_only_for_the_clients_own_key(
    ant: FakeAnthropic, stream: bool, passthru: bool
) -> None:
    headers = {"request-id": REQUEST_ID, **_ACCOUNT}
    if stream:
        ant.enqueue(AnthropicSseReply(anthropic_stream_events("hi"), headers=headers))
    else:
        ant.enqueue(JsonReply(anthropic_message("hi"), headers=headers))
    key = "!PASSTHRU" if passthru else ANT_KEY
    with running_vdm({"ANTHROPIC_API_KEY": key, "ANTHROPIC_BASE_URL": ant.base_url}) as vdm:
        response = _post(vdm, _hello(stream=stream), {"x-api-key": CLIENT_KEY})
    assert response.status_code == 200
    assert response.headers["x-vdm-upstream-request-id"] == REQUEST_ID
    assert response.headers["request-id"].startswith("req_vdm_")
    for name, value in _ACCOUNT.items():
        assert response.headers.get(name) == (value if passthru else None)
    kind = "text/event-stream" if stream else "application/json"
    assert response.headers["content-type"].startswith(kind)


def test_rate_limits_of_vdms_key_are_not_relayed_with_an_error(
    vdm: RunningVdm, ant: FakeAnthropic
) -> None:
    # Above RETRY_AFTER_CAP (60 s): relayed at once rather than waited for and retried.
    ant.enqueue(anthropic_error(429, headers={"retry-after": "300", **_ACCOUNT}))
    response = _post(vdm, _hello())
    assert response.status_code == 429
    assert response.headers["retry-after"] == "300"
    assert not any(name in response.headers for name in _ACCOUNT)


# --- a stream that reached message_stop is a success -------------------------------------------


def _read_until_message_stop(url: str, body: dict[str, Any]) -> tuple[bytes, float]:
    """A raw client that reads up to `message_stop` and leaves at once, as Claude Code does.
    Returns what it read and how long that took."""
    started = time.monotonic()
    seen = b""
    with httpx.stream("POST", f"{url}/v1/messages", json=body, timeout=30) as response:
        assert response.status_code == 200
        for chunk in response.iter_raw():
            seen += chunk
            if b"event: message_stop" in seen:
                break
    return seen, time.monotonic() - started


def test_chat_stream_ends_at_its_usage_even_if_done_comes_late(
    chat: RunningVdm, fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vdm.requests")
    chunks = stream_chunks("All done.", prompt_tokens=321, completion_tokens=9)
    fake.enqueue(SseReply(chunks, pauses={len(chunks): 5.0}))  # pause before `[DONE]`
    seen, took = _read_until_message_stop(chat.url, _hello("gpt-4o", stream=True))
    assert took < 3.0, "the client waited for the upstream's [DONE]"
    assert b'"stop_reason":"end_turn"' in seen
    (line,) = _log_lines(caplog)
    assert "gpt-4o -> openai:gpt-4o stream ok" in line
    assert " input=321" in line and " output=9" in line


def test_chat_stream_without_done_after_its_usage_is_a_success(
    chat: RunningVdm, fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vdm.requests")
    fake.enqueue(
        SseReply(stream_chunks("Fine.", prompt_tokens=40, completion_tokens=3), done=False)
    )
    with httpx.stream(
        "POST", f"{chat.url}/v1/messages", json=_hello("gpt-4o", stream=True), timeout=10
    ) as response:
        raw = response.read()
    assert raw.rstrip().endswith(b'data: {"type":"message_stop"}')
    (line,) = _log_lines(caplog)
    assert "stream ok" in line and " input=40" in line and " output=3" in line


def test_chat_stream_without_done_or_usage_after_finish_is_a_success(
    chat: RunningVdm, fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    """Without the usage chunk the decoder waits for `[DONE]` or the end of the body, then
    ends the message; the upstream closing right after its finish chunk is no error."""
    caplog.set_level(logging.INFO, logger="vdm.requests")
    fake.enqueue(SseReply(stream_chunks("Fine.", usage=False), done=False))
    seen, _ = _read_until_message_stop(chat.url, _hello("gpt-4o", stream=True))
    assert b"message_stop" in seen
    (line,) = _log_lines(caplog)
    assert "stream ok" in line


def test_anthropic_stream_ends_at_message_stop_whatever_the_upstream_does_next(
    vdm: RunningVdm, ant: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vdm.requests")
    events = anthropic_stream_events("Done.", input_tokens=555, output_tokens=7)
    trailing = b": the upstream lingers\n\n"
    ant.enqueue(AnthropicSseReply([*events, trailing], pauses={len(events): 5.0}))
    started = time.monotonic()
    with httpx.stream(
        "POST", f"{vdm.url}/v1/messages", json=_hello(stream=True), timeout=30
    ) as response:
        raw = response.read()  # the whole response: it must end at message_stop
    assert time.monotonic() - started < 3.0, "the response waited for the upstream's end"
    assert raw == b"".join(events)
    (line,) = _log_lines(caplog)
    assert "stream ok" in line and " input=555" in line and " output=7" in line


def test_anthropic_stream_left_by_the_client_after_message_stop_is_a_success(
    vdm: RunningVdm, ant: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vdm.requests")
    events = anthropic_stream_events("Bye.", input_tokens=77, output_tokens=2)
    ant.enqueue(AnthropicSseReply([*events, b": later\n\n"], pauses={len(events): 5.0}))
    seen, took = _read_until_message_stop(vdm.url, _hello(stream=True))
    assert took < 3.0
    assert seen.startswith(b"".join(events[:-1]))
    (line,) = _log_lines(caplog)
    assert "stream ok" in line and " input=77" in line


def test_usage_that_arrived_is_kept_when_a_stream_breaks(
    vdm: RunningVdm, ant: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vdm.requests")
    events = anthropic_stream_events("a long answer that is cut", pieces=6, input_tokens=999)
    ant.enqueue(AnthropicSseReply(events, cut_after=4))
    with httpx.stream(
        "POST", f"{vdm.url}/v1/messages", json=_hello(stream=True), timeout=10
    ) as response:
        raw = response.read()
    assert b"event: error" in raw and b"message_stop" not in raw
    (line,) = _log_lines(caplog)
    assert "stream error 502 mid-stream" in line and " input=999" in line


def test_a_client_leaving_before_message_stop_is_still_an_error(
    vdm: RunningVdm, ant: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vdm.requests")
    events = anthropic_stream_events("slow answer", pieces=4, input_tokens=31)
    ant.enqueue(AnthropicSseReply(events, pauses={4: 5.0}))
    with httpx.stream(
        "POST", f"{vdm.url}/v1/messages", json=_hello(stream=True), timeout=10
    ) as response:
        for chunk in response.iter_raw():
            if b"content_block_delta" in chunk:
                break
    (line,) = _log_lines(caplog)
    assert "stream client disconnected" in line and " input=31" in line
