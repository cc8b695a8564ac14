"""Keys and authentication end to end: the proxy key, `!PASSTHRU`, key pools with failover and
cooldown, secrets kept out of logs and answers, custom headers and Azure's auth scheme.

vdm runs on real Hypercorn on loopback (tests/harness.py) in front of fake OpenAI upstreams
that record every request; clients are plain httpx so that each test controls exactly which
header carries which key. Every test asserts both what the client got and what the upstream
received (or that it received nothing).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.fakes.openai_upstream import (
    FakeOpenAI,
    JsonReply,
    Recorded,
    Reply,
    SseReply,
    auto_reply,
    completion,
    stream_chunks,
)
from tests.harness import REPO, RunningVdm, clean_env, running_vdm
from vdm.config.secrets import mask
from vdm.config.settings import ConfigError, Settings
from vdm.server.auth import MISSING_PROXY_KEY, WRONG_PROXY_KEY

PROXY_KEY = "vdm-proxy-secret-9f8e7d6c"
STATIC_KEY = "sk-static-upstream-5a5a"
CLIENT_KEY = "sk-client-own-key-7b7b"
WRONG_KEY = "vdm-proxy-secret-wrong-0000"
K1 = "sk-pool-one-aaaa1111"
K2 = "sk-pool-two-bbbb2222"
K3 = "sk-pool-three-cccc3333"


def _body(model: str = "gpt-4o", **kw: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}], **kw}


def _post(
    vdm: RunningVdm,
    headers: dict[str, str] | None = None,
    path: str = "/v1/messages",
    **body: Any,
) -> httpx.Response:
    return httpx.post(f"{vdm.url}{path}", json=_body(**body), headers=headers or {}, timeout=10)


def _x(key: str) -> dict[str, str]:
    return {"x-api-key": key}


def _bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def _key_of(request: Recorded) -> str:
    return request.headers.get("authorization", "").removeprefix("Bearer ")


def _assert_error(response: httpx.Response, status: int, error_type: str) -> str:
    """The Anthropic error shape; returns the message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    message: str = body["error"]["message"]
    return message


def _text(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    text: str = response.json()["content"][0]["text"]
    return text


def _echo_401(key: str) -> JsonReply:
    """OpenAI's answer to a bad key, which quotes the key back."""
    return JsonReply(
        {
            "error": {
                "message": f"Incorrect API key provided: {key}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        },
        status=401,
    )


def _rate_limited(retry_after: str | None = None) -> JsonReply:
    headers = {"retry-after": retry_after} if retry_after is not None else None
    body = {"error": {"message": "Rate limit reached", "type": "requests", "code": None}}
    return JsonReply(body, status=429, headers=headers)


def _by_key(script: dict[str, Reply], ok: Reply | None = None) -> Callable[[Recorded], Reply]:
    """A reply chosen by the key in the request's Authorization header; other keys get `ok`,
    by default the fake's own answer (streamed when asked to stream)."""

    def reply(request: Recorded) -> Reply:
        found = script.get(_key_of(request), ok)
        return found if found is not None else auto_reply(request)

    return reply


# --- PROXY_API_KEY ---------------------------------------------------------------------------


@pytest.mark.parametrize("blank", ["", "   ", "\t"])
def test_a_blank_proxy_key_is_a_configuration_error_not_auth_off(blank: str) -> None:
    with pytest.raises(ConfigError, match="PROXY_API_KEY is set but blank") as raised:
        Settings.from_mapping({"OPENAI_API_KEY": STATIC_KEY, "PROXY_API_KEY": blank})
    assert raised.value.var == "PROXY_API_KEY"
    # A real key in a higher layer wins over a blank one below it.
    settings = Settings.from_mapping({"PROXY_API_KEY": PROXY_KEY})
    assert settings.proxy_api_key == PROXY_KEY


def _vdm_start(tmp_path: Any, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    exe = REPO / ".venv" / "bin" / "vdm"
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return subprocess.run(
        [str(exe if exe.is_file() else Path(sys.executable).with_name("vdm")), "server", "start"]
        + list(args),
        env=clean_env(HOME=str(home), OPENAI_API_KEY=STATIC_KEY, **env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=20,
    )


def test_server_start_with_a_blank_proxy_key_exits_with_the_reason(tmp_path: Any) -> None:
    done = _vdm_start(tmp_path, "--port", "0", PROXY_API_KEY="  ")
    assert done.returncode == 1, done.stderr
    assert "PROXY_API_KEY is set but blank" in done.stderr
    assert "listening" not in done.stderr


def test_server_start_on_a_network_address_needs_allow_remote(tmp_path: Any) -> None:
    done = _vdm_start(tmp_path, "--host", "0.0.0.0", "--port", "0")
    assert done.returncode == 1, done.stderr
    assert "not a loopback address" in done.stderr and "--allow-remote" in done.stderr
    assert "listening" not in done.stderr
    from_env = _vdm_start(tmp_path, "--port", "0", HOST="0.0.0.0")
    assert from_env.returncode == 1 and "--allow-remote" in from_env.stderr


@pytest.fixture
def guarded(fake: FakeOpenAI) -> Iterator[RunningVdm]:
    env = {
        "OPENAI_API_KEY": STATIC_KEY,
        "OPENAI_BASE_URL": fake.base_url,
        "PROXY_API_KEY": PROXY_KEY,
    }
    with running_vdm(env) as server:
        yield server


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
def test_missing_proxy_key_is_401_and_reaches_no_upstream(
    guarded: RunningVdm, fake: FakeOpenAI, path: str
) -> None:
    response = _post(guarded, path=path)
    assert _assert_error(response, 401, "authentication_error") == MISSING_PROXY_KEY
    assert fake.requests == []


@pytest.mark.parametrize(
    "headers",
    [
        _x(WRONG_KEY),
        _bearer(WRONG_KEY),
        {**_x(WRONG_KEY), **_bearer(CLIENT_KEY)},
        _x(PROXY_KEY[:-1]),  # a prefix is not the key
        _bearer(PROXY_KEY + "x"),
    ],
    ids=["x-api-key", "bearer", "both-wrong", "prefix", "longer"],
)
def test_wrong_proxy_key_is_401_and_reaches_no_upstream(
    guarded: RunningVdm, fake: FakeOpenAI, headers: dict[str, str]
) -> None:
    response = _post(guarded, headers)
    assert _assert_error(response, 401, "authentication_error") == WRONG_PROXY_KEY
    assert fake.requests == []


@pytest.mark.parametrize(
    "headers", [_x(PROXY_KEY), _bearer(PROXY_KEY)], ids=["x-api-key", "bearer"]
)
def test_proxy_key_is_accepted_in_either_header_and_never_forwarded(
    guarded: RunningVdm, fake: FakeOpenAI, headers: dict[str, str]
) -> None:
    assert _text(_post(guarded, headers)) == "Hello from fake"
    sent = fake.last
    assert sent.headers["authorization"] == f"Bearer {STATIC_KEY}"
    assert "x-api-key" not in sent.headers
    assert not any(PROXY_KEY in v for v in sent.headers.values())


def test_health_is_open_and_the_catalog_needs_the_proxy_key(
    guarded: RunningVdm, fake: FakeOpenAI
) -> None:
    health = httpx.get(f"{guarded.url}/health", timeout=10)
    assert health.status_code == 200
    assert health.json()["providers"]["openai"]["keys"] == [mask(STATIC_KEY)]
    assert PROXY_KEY not in health.text and STATIC_KEY not in health.text
    for path in ("/v1/models", "/v1/aliases"):
        refused = httpx.get(f"{guarded.url}{path}", timeout=10)
        assert _assert_error(refused, 401, "authentication_error") == MISSING_PROXY_KEY
        wrong = httpx.get(f"{guarded.url}{path}", headers=_bearer(WRONG_KEY), timeout=10)
        _assert_error(wrong, 401, "authentication_error")
    assert fake.requests == []
    models = httpx.get(f"{guarded.url}/v1/models", headers=_x(PROXY_KEY), timeout=10)
    aliases = httpx.get(f"{guarded.url}/v1/aliases", headers=_bearer(PROXY_KEY), timeout=10)
    assert models.status_code == 200 and aliases.status_code == 200
    assert "openai:gpt-4o" in [m["id"] for m in models.json()["data"]]
    assert aliases.json()["default_provider"] == "openai"
    assert [r.path for r in fake.requests] == ["/v1/models"]
    assert fake.last.headers["authorization"] == f"Bearer {STATIC_KEY}"


# --- !PASSTHRU ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers", [_x(CLIENT_KEY), _bearer(CLIENT_KEY)], ids=["x-api-key", "bearer"]
)
def test_passthrough_sends_the_clients_key_as_bearer(
    fake: FakeOpenAI, headers: dict[str, str]
) -> None:
    env = {"OPENAI_API_KEY": "!PASSTHRU", "OPENAI_BASE_URL": fake.base_url}
    with running_vdm(env) as vdm:
        assert _text(_post(vdm, headers)) == "Hello from fake"
        health = httpx.get(f"{vdm.url}/health", timeout=10).json()
    assert fake.last.headers["authorization"] == f"Bearer {CLIENT_KEY}"
    assert "x-api-key" not in fake.last.headers
    assert health["providers"]["openai"]["keys"] == ["!PASSTHRU"]


@pytest.mark.parametrize(
    "headers",
    [{**_x(PROXY_KEY), **_bearer(CLIENT_KEY)}, {**_x(CLIENT_KEY), **_bearer(PROXY_KEY)}],
    ids=["proxy-in-x-api-key", "proxy-in-bearer"],
)
def test_passthrough_with_proxy_key_takes_the_provider_key_from_the_other_header(
    fake: FakeOpenAI, headers: dict[str, str]
) -> None:
    env = {"OPENAI_API_KEY": "!PASSTHRU", "OPENAI_BASE_URL": fake.base_url}
    with running_vdm({**env, "PROXY_API_KEY": PROXY_KEY}) as vdm:
        assert _text(_post(vdm, headers)) == "Hello from fake"
    assert fake.last.headers["authorization"] == f"Bearer {CLIENT_KEY}"
    assert not any(PROXY_KEY in v for v in fake.last.headers.values())


@pytest.mark.parametrize(
    ("proxy", "headers"),
    [(None, {}), (PROXY_KEY, _x(PROXY_KEY)), (PROXY_KEY, _bearer(PROXY_KEY))],
    ids=["no-key-at-all", "only-proxy-key-x", "only-proxy-key-bearer"],
)
def test_passthrough_without_a_client_key_is_401_naming_passthru(
    fake: FakeOpenAI, proxy: str | None, headers: dict[str, str]
) -> None:
    env = {"OPENAI_API_KEY": "!PASSTHRU", "OPENAI_BASE_URL": fake.base_url}
    if proxy:
        env["PROXY_API_KEY"] = proxy
    with running_vdm(env) as vdm:
        response = _post(vdm, headers)
        streamed = _post(vdm, headers, stream=True)
    for answer in (response, streamed):
        message = _assert_error(answer, 401, "authentication_error")
        assert "!PASSTHRU" in message and "'openai'" in message
    assert fake.requests == []


def test_static_and_passthrough_providers_side_by_side(fake: FakeOpenAI, other: FakeOpenAI) -> None:
    env = {
        "OPENAI_API_KEY": STATIC_KEY,
        "OPENAI_BASE_URL": fake.base_url,
        "OTHER_API_KEY": "!PASSTHRU",
        "OTHER_BASE_URL": other.base_url,
    }
    with running_vdm(env) as vdm:
        assert _text(_post(vdm, _x(CLIENT_KEY), model="openai:gpt-4o")) == "Hello from fake"
        assert _text(_post(vdm, _bearer(CLIENT_KEY), model="other:their-model")) == (
            "Hello from fake"
        )
        assert _text(_post(vdm, _x(CLIENT_KEY), model="gpt-4o-mini")) == "Hello from fake"
        refused = _post(vdm, {}, model="other:their-model")
    # The static provider always gets its own key, never the client's.
    assert [_key_of(r) for r in fake.requests] == [STATIC_KEY, STATIC_KEY]
    assert [r.json["model"] for r in fake.requests] == ["gpt-4o", "gpt-4o-mini"]
    # The passthrough provider gets the client's key, and nothing without one.
    assert [_key_of(r) for r in other.requests] == [CLIENT_KEY]
    assert other.last.json["model"] == "their-model"
    assert "!PASSTHRU" in _assert_error(refused, 401, "authentication_error")


# --- key pools ----------------------------------------------------------------------------------


def _pool_env(fake: FakeOpenAI, **extra: str) -> dict[str, str]:
    return {"OPENAI_API_KEY": f"{K1} {K2} {K3}", "OPENAI_BASE_URL": fake.base_url, **extra}


def test_rejected_keys_fail_over_in_the_same_call_and_cool_down(fake: FakeOpenAI) -> None:
    fake.default = _by_key({K1: _echo_401(K1), K2: _rate_limited("30")})
    with running_vdm(_pool_env(fake)) as vdm:
        first = _post(vdm)
        seen_first = [_key_of(r) for r in fake.requests]
        fake.clear()
        second = _post(vdm, stream=True)
        third = _post(vdm)
        health = httpx.get(f"{vdm.url}/health", timeout=10)
    assert _text(first) == "Hello from fake"
    assert seen_first == [K1, K2, K3]
    # K1 (401) and K2 (429, Retry-After 30) are cooling: the next calls go straight to K3.
    assert second.status_code == 200 and "message_stop" in second.text
    assert _text(third) == "Hello from fake"
    assert [_key_of(r) for r in fake.requests] == [K3, K3]
    assert health.json()["providers"]["openai"]["keys"] == [mask(K1), mask(K2), mask(K3)]
    # /health says what is cooling, for which model, until when; never a key in full.
    cooling = {c["key"]: c for c in health.json()["providers"]["openai"]["cooling"]}
    assert set(cooling) == {mask(K1), mask(K2)}, cooling
    assert cooling[mask(K1)]["model"] is None and cooling[mask(K1)]["status"] == 401
    assert cooling[mask(K2)]["model"] == "gpt-4o" and cooling[mask(K2)]["status"] == 429
    assert 25 < cooling[mask(K2)]["seconds_left"] <= 30
    assert abs(cooling[mask(K2)]["until"] - time.time() - cooling[mask(K2)]["seconds_left"]) < 2
    assert not any(k in health.text for k in (K1, K2, K3))


def test_all_keys_cooling_relays_the_upstream_429_and_never_refuses_locally(
    fake: FakeOpenAI,
) -> None:
    fake.default = _by_key(
        {K1: _rate_limited("40"), K2: _rate_limited("12"), K3: _rate_limited("25")}
    )
    # No retry: vdm would otherwise wait for the first key to be usable again.
    with running_vdm(_pool_env(fake, MAX_RETRIES="0")) as vdm:
        response = _post(vdm)
        seen = [_key_of(r) for r in fake.requests]
        fake.clear()
        again = _post(vdm)
        again_keys = [_key_of(r) for r in fake.requests]
    # Every key throttled: the client gets the upstream's last 429 with its retry-after.
    _assert_error(response, 429, "rate_limit_error")
    assert seen == [K1, K2, K3]
    assert response.headers["retry-after"] == "25"
    # While every key cools down, a request still reaches the upstream, on the key that
    # comes back first (K2, 12 s): a cooldown never refuses a request locally.
    _assert_error(again, 429, "rate_limit_error")
    assert again_keys == [K2]


@pytest.mark.anyio
async def test_concurrent_requests_spread_over_the_usable_keys(fake: FakeOpenAI) -> None:
    fake.default = _by_key({K1: _echo_401(K1)}, JsonReply(completion("ok"), delay=0.05))
    statuses: list[int] = []
    with running_vdm(_pool_env(fake)) as vdm:
        async with httpx.AsyncClient(base_url=vdm.url, timeout=10) as client:
            warm = await client.post("/v1/messages", json=_body())  # cools K1 down
            assert warm.status_code == 200
            assert [_key_of(r) for r in fake.requests] == [K1, K2]
            fake.clear()

            async def one() -> None:
                response = await client.post("/v1/messages", json=_body())
                statuses.append(response.status_code)

            async with anyio.create_task_group() as tg:
                for _ in range(20):
                    tg.start_soon(one)
    assert statuses == [200] * 20
    used = Counter(_key_of(r) for r in fake.requests)
    assert used == {K2: 10, K3: 10}, "round robin over the two usable keys"
    assert fake.connection_count > 2, "the requests did not overlap"


def test_a_single_rejected_key_gives_the_upstreams_401_and_is_not_cooled(
    fake: FakeOpenAI,
) -> None:
    fake.enqueue(_echo_401(STATIC_KEY))
    env = {"OPENAI_API_KEY": STATIC_KEY, "OPENAI_BASE_URL": fake.base_url}
    with running_vdm(env) as vdm:
        rejected = _post(vdm)
        retried = _post(vdm)
    message = _assert_error(rejected, 401, "authentication_error")
    assert "Incorrect API key provided" in message
    assert mask(STATIC_KEY) in message and STATIC_KEY not in message
    assert len(fake.requests) == 1 + 1, "the key must not be cooled: nothing else to turn to"
    assert _text(retried) == "Hello from fake"


# --- secrets never in logs or answers --------------------------------------------------------


def test_secrets_never_appear_in_logs_or_answers(
    caplog: pytest.LogCaptureFixture, fake: FakeOpenAI, other: FakeOpenAI
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("vdm", "httpx", "httpcore", "hypercorn", "hypercorn.error", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)
    env = {
        "OPENAI_API_KEY": STATIC_KEY,
        "OPENAI_BASE_URL": fake.base_url,
        "OTHER_API_KEY": "!PASSTHRU",
        "OTHER_BASE_URL": other.base_url,
        "PROXY_API_KEY": PROXY_KEY,
        "MAX_RETRIES": "0",
    }
    proxy = _x(PROXY_KEY)
    own = {**proxy, **_bearer(CLIENT_KEY)}
    fake.enqueue(JsonReply(completion("fine")), _echo_401(STATIC_KEY))
    other.enqueue(SseReply(stream_chunks("streamed")), _echo_401(CLIENT_KEY))
    with running_vdm(env) as vdm:
        answers = [
            _post(vdm, proxy),  # success
            _post(vdm, proxy),  # upstream 401 quoting the static key
            _post(vdm, own, model="other:m", stream=True),  # passthrough success
            _post(vdm, own, model="other:m"),  # passthrough 401 quoting the client's key
            _post(vdm, _x(WRONG_KEY)),  # wrong proxy key
            httpx.get(f"{vdm.url}/health", timeout=10),
            httpx.get(f"{vdm.url}/v1/models", headers=own, timeout=10),
            httpx.get(f"{vdm.url}/v1/aliases", headers=proxy, timeout=10),
        ]
    assert [a.status_code for a in answers] == [200, 401, 200, 401, 401, 200, 200, 200]
    # Both keys did go upstream (so they were there to leak) ...
    assert _key_of(fake.requests[1]) == STATIC_KEY and _key_of(other.requests[0]) == CLIENT_KEY
    # ... and the echoed keys come back masked.
    assert mask(STATIC_KEY) in answers[1].json()["error"]["message"]
    assert mask(CLIENT_KEY) in answers[3].json()["error"]["message"]

    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    logged = [formatter.format(record) for record in caplog.records]
    names = {record.name for record in caplog.records}
    assert any(r.levelno == logging.DEBUG for r in caplog.records), "DEBUG was not captured"
    assert "vdm.requests" in names and any(n.startswith("httpcore") for n in names), names
    assert any(mask(STATIC_KEY) in line for line in logged), "the 401 should be logged, masked"
    secrets = (STATIC_KEY, PROXY_KEY, CLIENT_KEY, WRONG_KEY)
    for secret in secrets:
        assert not [line for line in logged if secret in line], f"{mask(secret)} was logged"
        assert not [a.text for a in answers if secret in a.text], f"{mask(secret)} was answered"


# --- custom headers and Azure ----------------------------------------------------------------


def test_custom_headers_reach_the_upstream(fake: FakeOpenAI, other: FakeOpenAI) -> None:
    env = {
        "OPENAI_API_KEY": STATIC_KEY,
        "OPENAI_BASE_URL": fake.base_url,
        "OTHER_API_KEY": "sk-other",
        "OTHER_BASE_URL": other.base_url,
        "CUSTOM_HEADER_X_TEAM": "blue",
        "OPENAI_CUSTOM_HEADER_X_ORG": "acme",
    }
    with running_vdm(env) as vdm:
        assert _text(_post(vdm, model="openai:gpt-4o")) == "Hello from fake"
        assert _post(vdm, model="openai:gpt-4o", stream=True).status_code == 200
        assert _text(_post(vdm, model="other:m")) == "Hello from fake"
    for sent in fake.requests:
        assert sent.headers["x-team"] == "blue"
        assert sent.headers["x-org"] == "acme"
    assert other.last.headers["x-team"] == "blue"
    assert "x-org" not in other.last.headers, "a provider's own header stays with it"


@pytest.mark.parametrize(
    ("version", "expected"),
    [(None, "2024-10-21"), ("2025-01-01-preview", "2025-01-01-preview")],
    ids=["preset-version", "own-version"],
)
def test_azure_uses_deployment_urls_api_version_and_api_key(
    fake: FakeOpenAI, version: str | None, expected: str
) -> None:
    env = {"AZURE_API_KEY": STATIC_KEY, "AZURE_BASE_URL": fake.url}
    if version:
        env["AZURE_API_VERSION"] = version
    with running_vdm(env) as vdm:
        assert _text(_post(vdm, model="my-gpt4o")) == "Hello from fake"
        streamed = _post(vdm, model="azure:my-gpt4o", stream=True)
    assert streamed.status_code == 200 and "message_stop" in streamed.text
    for sent in fake.requests:
        assert sent.path == "/openai/deployments/my-gpt4o/chat/completions"
        assert sent.query == f"api-version={expected}"
        assert sent.headers["api-key"] == STATIC_KEY
        assert "authorization" not in sent.headers
    assert len(fake.requests) == 2
