"""`vdm health server|upstream` and `vdm test connection|models`, for real.

Each test runs the command with typer's CliRunner, with settings read from a temporary HOME
and working directory (the shell's own provider variables removed), against the fake upstreams
of tests/fakes (real HTTP servers on loopback) and, for `health server`, a real vdm. The test
commands serve vdm in-process, so every request asserted here went through the gateway.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI, HangReply, JsonReply, Recorded, Reply
from tests.fakes.responses_upstream import FakeResponses, responses_reply
from tests.harness import running_vdm
from vdm.cli.main import app
from vdm.config.secrets import mask

KEY = "sk-probe-real-key-0123456789"
ANT_KEY = "sk-ant-probe-key-9876543210"
BAD_KEY = "sk-revoked-key-abcdef012345"
PROXY_KEY = "vdm-proxy-probe-secret-4242"
SECRETS = (KEY, ANT_KEY, BAD_KEY, PROXY_KEY)

#: Variables that configure vdm, removed from the environment inherited from the shell.
_CONFIG_VAR = re.compile(
    r"^(OPENAI_|ANTHROPIC_|VDM_|CUSTOM_HEADER_)|_API_KEY$|_BASE_URL$|_API_FORMAT$|_ALIAS_"
    r"|_CUSTOM_HEADER_|_KEY_REQUIRED$|_API_VERSION$|_AUTH$|_TIMEOUT$|_MAX_RETRIES$"
    r"|^(HOST|PORT|LOG_LEVEL|REQUEST_TIMEOUT|MAX_RETRIES|MAX_TOKENS_LIMIT|XDG_CONFIG_HOME"
    r"|BIG_MODEL|MIDDLE_MODEL|SMALL_MODEL)$"
)


class StrictOpenAI(FakeResponses):
    """A fake OpenAI upstream that checks the key, as the real one does: any other key gets
    OpenAI's 401, which quotes the key it got. `models_reply` replaces the models list."""

    def __init__(self, accepted: str) -> None:
        super().__init__()
        self.accepted = accepted
        self.models_reply: Reply | None = None

    def _route(self, request: Recorded) -> Reply:
        sent = request.headers.get("authorization", "").removeprefix("Bearer ")
        if sent != self.accepted:
            error = {
                "message": f"Incorrect API key provided: {sent}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
            }
            return JsonReply({"error": error}, status=401)
        if request.method == "GET" and self.models_reply is not None:
            return self.models_reply
        return super()._route(request)


@pytest.fixture
def fake() -> Iterator[FakeResponses]:
    """OpenAI: its gpt-5 fallback aliases are called on /v1/responses, gpt-4o-mini on
    /v1/chat/completions (vdm/protocol/capabilities.py)."""
    with FakeResponses() as upstream:
        yield upstream


@pytest.fixture
def strict() -> Iterator[StrictOpenAI]:
    with StrictOpenAI(KEY) as upstream:
        yield upstream


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HOME and working directory, and no configuration from the shell."""
    for var in list(os.environ):
        if _CONFIG_VAR.search(var):
            monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _configure(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def _openai(monkeypatch: pytest.MonkeyPatch, base_url: str, key: str = KEY) -> None:
    _configure(monkeypatch, OPENAI_API_KEY=key, OPENAI_BASE_URL=base_url)


def _claude(monkeypatch: pytest.MonkeyPatch, ant: FakeAnthropic) -> None:
    """Provider `claude`: Anthropic format, no `haiku` alias of its own."""
    _configure(
        monkeypatch,
        CLAUDE_API_KEY=ANT_KEY,
        CLAUDE_BASE_URL=ant.base_url,
        CLAUDE_API_FORMAT="anthropic",
    )


def _vdm(*args: str, limit: float = 30.0) -> Result:
    """Run `vdm ARGS`; the run is bounded and no configured secret may appear in its output."""
    started = time.monotonic()
    result = CliRunner().invoke(app, list(args))
    assert time.monotonic() - started < limit, f"vdm {' '.join(args)} took too long"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    for secret in SECRETS:
        assert secret not in result.output, f"a secret leaked into: {result.output}"
    return result


def _row(output: str, first: str) -> str:
    """The table row whose first cell is `first`."""
    rows = [line for line in output.splitlines() if line.split(" ", 1)[0] == first]
    assert len(rows) == 1, output
    return rows[0]


def _one_token(request: Recorded) -> bool:
    """A one-token `ping`: in Chat Completions, or in Responses, whose smallest
    `max_output_tokens` is 16."""
    body = request.json
    if "input" in body:
        last = body["input"][-1]["content"]
        return body.get("max_output_tokens") == 16 and last in (
            "ping",
            [{"type": "input_text", "text": "ping"}],
        )
    return (body.get("max_tokens") == 1 or body.get("max_completion_tokens") == 1) and body[
        "messages"
    ][-1]["content"] in ("ping", [{"type": "text", "text": "ping"}])


# -- vdm health upstream --------------------------------------------------------------------


def test_health_upstream_all_ok_lists_each_provider_with_its_latency(
    home: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeOpenAI, ant: FakeAnthropic
) -> None:
    _openai(monkeypatch, fake.base_url)
    _claude(monkeypatch, ant)
    result = _vdm("health", "upstream")
    assert result.exit_code == 0, result.output
    for provider, count in (("openai", 6), ("claude", 3)):
        row = _row(result.stdout, provider)
        assert re.search(rf"\bok\s+\d+ ms\s+{count} models listed$", row), row
    assert "2 ok" in result.stdout
    # An authenticated GET of each models list, in each provider's own auth scheme.
    assert (fake.last.method, fake.last.path) == ("GET", "/v1/models")
    assert fake.last.headers["authorization"] == f"Bearer {KEY}"
    assert (ant.last.method, ant.last.path) == ("GET", "/v1/models")
    assert ant.last.headers["x-api-key"] == ANT_KEY
    assert ant.last.headers["anthropic-version"]


def test_health_upstream_reports_a_rejected_key_as_auth_failed_and_masks_it(
    home: Path, monkeypatch: pytest.MonkeyPatch, strict: StrictOpenAI, ant: FakeAnthropic
) -> None:
    _openai(monkeypatch, strict.base_url, key=BAD_KEY)
    _claude(monkeypatch, ant)
    result = _vdm("health", "upstream")
    assert result.exit_code == 1
    row = _row(result.stdout, "openai")
    assert "auth failed (401)" in row and "Incorrect API key provided" in row
    assert mask(BAD_KEY) in row  # identified, never shown
    assert re.search(r"\bok\b", _row(result.stdout, "claude"))
    assert strict.request_count == 1  # no retry of a rejected key


def test_health_upstream_probes_every_key_and_names_the_bad_one(
    home: Path, monkeypatch: pytest.MonkeyPatch, strict: StrictOpenAI
) -> None:
    _openai(monkeypatch, strict.base_url, key=f"{KEY} {BAD_KEY}")
    result = _vdm("health", "upstream")
    assert result.exit_code == 1
    row = _row(result.stdout, "openai")
    assert "auth failed (401)" in row
    assert f"key {mask(BAD_KEY)}" in row and "1 of 2 keys ok" in row
    assert mask(KEY) not in row
    sent = sorted(r.headers["authorization"] for r in strict.requests)
    assert sent == sorted([f"Bearer {KEY}", f"Bearer {BAD_KEY}"])


def test_health_upstream_reports_an_unreachable_provider(
    home: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeOpenAI, closed_port: int
) -> None:
    _openai(monkeypatch, fake.base_url)
    _configure(
        monkeypatch, DOWN_API_KEY="sk-down-0000", DOWN_BASE_URL=f"http://127.0.0.1:{closed_port}/v1"
    )
    result = _vdm("health", "upstream")
    assert result.exit_code == 1
    row = _row(result.stdout, "down")
    assert re.search(r"\bunreachable\s+-\s+cannot reach down at http://127\.0\.0\.1:\d+/v1", row)
    assert "ok" in _row(result.stdout, "openai")
    assert "1 ok, 1 failed" in result.stdout


def test_health_upstream_gives_up_on_a_silent_provider_after_the_timeout(
    home: Path, monkeypatch: pytest.MonkeyPatch, strict: StrictOpenAI
) -> None:
    strict.models_reply = HangReply(20)
    _openai(monkeypatch, strict.base_url)
    started = time.monotonic()
    result = _vdm("health", "upstream", "--timeout", "0.5")
    assert time.monotonic() - started < 5
    assert result.exit_code == 1
    assert "timed out" in _row(result.stdout, "openai")


def test_health_upstream_skips_passthrough_providers_with_the_reason(
    home: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeOpenAI, other: FakeOpenAI
) -> None:
    _openai(monkeypatch, fake.base_url)
    _configure(monkeypatch, MINE_API_KEY="!PASSTHRU", MINE_BASE_URL=other.base_url)
    result = _vdm("health", "upstream")
    assert result.exit_code == 0, result.output
    assert re.search(
        r"\bskipped\s+-\s+!PASSTHRU: uses each client's own key", _row(result.stdout, "mine")
    )
    assert other.request_count == 0


def test_health_upstream_without_a_provider_names_the_fix(home: Path) -> None:
    result = _vdm("health", "upstream")
    assert result.exit_code == 1
    assert "no provider configured" in result.stderr and "vdm config setup" in result.stderr


def test_an_unknown_provider_is_a_usage_error(
    home: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeOpenAI
) -> None:
    _openai(monkeypatch, fake.base_url)
    result = _vdm("health", "upstream", "--provider", "nosuch")
    assert result.exit_code == 2
    assert "unknown provider 'nosuch'" in result.stderr and "openai" in result.stderr
    assert fake.request_count == 0


# -- vdm test connection --------------------------------------------------------------------


def test_connection_sends_one_token_per_provider_through_vdm(
    home: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeOpenAI, ant: FakeAnthropic
) -> None:
    _openai(monkeypatch, fake.base_url)
    _configure(monkeypatch, OPENAI_ALIAS_HAIKU="gpt-4o-mini")  # the user's haiku wins
    _claude(monkeypatch, ant)
    result = _vdm("test", "connection", "--model", "claude-haiku-4-5")
    assert result.exit_code == 0, result.output
    assert re.search(r"openai:gpt-4o-mini\s+ok\s+\d+ ms", _row(result.stdout, "openai"))
    assert re.search(r"claude:claude-haiku-4-5\s+ok\s+\d+ ms", _row(result.stdout, "claude"))
    # Translated for OpenAI (max_tokens or max_completion_tokens), passed through for Anthropic.
    assert fake.last.path == "/v1/chat/completions" and fake.last.json["model"] == "gpt-4o-mini"
    assert _one_token(fake.last), fake.last.json
    assert fake.last.headers["authorization"] == f"Bearer {KEY}"
    assert ant.last.path == "/v1/messages" and ant.last.json["model"] == "claude-haiku-4-5"
    assert ant.last.json["max_tokens"] == 1 and _one_token(ant.last)
    assert ant.last.headers["x-api-key"] == ANT_KEY


def test_connection_uses_the_packaged_haiku_fallback(
    home: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeOpenAI
) -> None:
    _openai(monkeypatch, fake.base_url)
    result = _vdm("test", "connection")
    assert result.exit_code == 0, result.output
    assert fake.request_count == 1
    assert "openai:gpt-5.6-luna" in _row(result.stdout, "openai")
    assert fake.last.json["model"] == "gpt-5.6-luna" and _one_token(fake.last)


def test_connection_without_a_model_for_another_provider_says_pass_model(
    home: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeOpenAI, ant: FakeAnthropic
) -> None:
    _openai(monkeypatch, fake.base_url)
    _claude(monkeypatch, ant)  # not the default provider, and no `haiku` of its own
    result = _vdm("test", "connection")
    assert result.exit_code == 1
    assert "no model to test: pass --model" in _row(result.stdout, "claude")
    assert "ok" in _row(result.stdout, "openai")
    assert ant.request_count == 0


class KnownModels(FakeOpenAI):
    """An OpenAI-compatible endpoint that serves only `models`; any other model gets the
    answer OpenAI gives (404, `model_not_found`)."""

    def __init__(self, *models: str) -> None:
        super().__init__()
        self.models = models

    def _route(self, request: Recorded) -> Reply:
        if request.method == "POST" and request.json.get("model") not in self.models:
            error = {
                "message": f"The model `{request.json.get('model')}` does not exist or you do "
                "not have access to it.",
                "type": "invalid_request_error",
                "param": None,
                "code": "model_not_found",
            }
            return JsonReply({"error": error}, status=404)
        return super()._route(request)


def _mycorp(monkeypatch: pytest.MonkeyPatch, corp: FakeOpenAI, **env: str) -> None:
    _configure(monkeypatch, MYCORP_API_KEY=KEY, MYCORP_BASE_URL=corp.base_url, **env)


def test_connection_tests_a_custom_default_provider_with_claude_codes_name(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A custom provider and no mapping: the test sends what Claude Code would send, and
    when the provider refuses it, says how to map it."""
    with KnownModels("corp-small") as corp:
        _mycorp(monkeypatch, corp)
        result = _vdm("test", "connection")
    row = _row(result.stdout, "mycorp")
    assert result.exit_code == 1, result.output
    assert re.search(r"mycorp:claude-haiku-4-5\s+error 404", row), row
    assert "`claude-haiku-4-5` does not exist" in row
    assert "MYCORP_ALIAS_HAIKU=<model>" in row and "--model" in row
    assert [r.json["model"] for r in corp.requests] == ["claude-haiku-4-5"]


def test_connection_of_a_custom_default_provider_that_knows_claude_codes_name(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with KnownModels("claude-haiku-4-5") as corp:
        _mycorp(monkeypatch, corp)
        result = _vdm("test", "connection")
    assert result.exit_code == 0, result.output
    row = _row(result.stdout, "mycorp")
    assert re.search(r"mycorp:claude-haiku-4-5\s+ok\s+\d+ ms", row), row
    assert "ALIAS" not in row
    assert corp.request_count == 1 and _one_token(corp.last)


@pytest.mark.parametrize(
    ("env", "args", "sent"),
    [
        # Claude Code's haiku reaches the model your mapping names: that is what is sent
        ({"MYCORP_ALIAS_HAIKU": "corp-small"}, (), "corp-small"),
        ({"SMALL_MODEL": "corp-small"}, (), "corp-small"),
        ({"MYCORP_ALIAS_CLAUDE": "corp-small"}, (), "corp-small"),  # contained in the name
        # nothing maps it: --model is used
        ({}, ("--model", "corp-small"), "corp-small"),
        # a mapping wins over --model, as it would for Claude Code
        ({"MYCORP_ALIAS_HAIKU": "corp-small"}, ("--model", "other"), "corp-small"),
    ],
)
def test_connection_of_a_custom_default_provider_sends_the_model_its_route_reaches(
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    args: tuple[str, ...],
    sent: str,
) -> None:
    with KnownModels("corp-small") as corp:
        _mycorp(monkeypatch, corp, **env)
        result = _vdm("test", "connection", *args)
    assert result.exit_code == 0, result.output
    assert re.search(rf"mycorp:{sent}\s+ok", _row(result.stdout, "mycorp"))
    assert [r.json["model"] for r in corp.requests] == [sent]


def test_connection_of_the_default_provider_follows_claude_codes_route(
    home: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeOpenAI
) -> None:
    """Two providers, deepseek the default: deepseek gets its own `haiku` (what Claude Code's
    haiku reaches), openai its packaged one; each row shows the model sent."""
    with KnownModels("deepseek-v4-flash") as deepseek:
        _openai(monkeypatch, fake.base_url)
        _configure(
            monkeypatch,
            DEEPSEEK_API_KEY=KEY,
            DEEPSEEK_BASE_URL=deepseek.base_url,
            VDM_DEFAULT_PROVIDER="deepseek",
        )
        result = _vdm("test", "connection")
    assert result.exit_code == 0, result.output
    assert re.search(r"deepseek:deepseek-v4-flash\s+ok", _row(result.stdout, "deepseek"))
    assert re.search(r"openai:gpt-5.6-luna\s+ok", _row(result.stdout, "openai"))
    assert [r.json["model"] for r in deepseek.requests] == ["deepseek-v4-flash"]


def test_connection_reports_a_rejected_key_with_the_upstreams_message_masked(
    home: Path, monkeypatch: pytest.MonkeyPatch, strict: StrictOpenAI, ant: FakeAnthropic
) -> None:
    _openai(monkeypatch, strict.base_url, key=BAD_KEY)
    _claude(monkeypatch, ant)
    result = _vdm("test", "connection", "--model", "claude-haiku-4-5")
    assert result.exit_code == 1
    row = _row(result.stdout, "openai")
    assert "auth failed (401)" in row
    assert f"Incorrect API key provided: {mask(BAD_KEY)}" in row
    assert re.search(r"\bok\b", _row(result.stdout, "claude"))
    assert _one_token(strict.last)  # the request did go out, and was refused


def test_connection_reports_an_unreachable_provider(
    home: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeOpenAI, closed_port: int
) -> None:
    _openai(monkeypatch, fake.base_url)
    _configure(
        monkeypatch,
        DOWN_API_KEY="sk-down-0000",
        DOWN_BASE_URL=f"http://127.0.0.1:{closed_port}/v1",
        DOWN_MAX_RETRIES="0",
    )
    result = _vdm("test", "connection", "--model", "some-model")
    assert result.exit_code == 1
    assert re.search(
        r"down:some-model\s+unreachable\s+-\s+cannot reach down", _row(result.stdout, "down")
    )
    assert "ok" in _row(result.stdout, "openai")


def test_connection_times_out_within_the_bound(
    home: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeOpenAI
) -> None:
    fake.default = HangReply(20)
    _openai(monkeypatch, fake.base_url)
    started = time.monotonic()
    result = _vdm("test", "connection", "--timeout", "0.5")
    assert time.monotonic() - started < 8
    assert result.exit_code == 1
    assert "timed out" in _row(result.stdout, "openai")


# -- vdm test models ------------------------------------------------------------------------


def _by_model(request: Recorded) -> Reply:
    if request.json["model"] == "no-such-model":
        error = {
            "message": "The model `no-such-model` does not exist",
            "type": "invalid_request_error",
        }
        return JsonReply({"error": error}, status=404)
    if request.path.endswith("/responses"):
        return responses_reply("p", status="incomplete", incomplete_reason="max_output_tokens")(
            request
        )
    return JsonReply(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": request.json["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "p"},
                    "finish_reason": "length",
                }
            ],
            "usage": {"prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9},
        }
    )


def test_models_tests_every_alias_and_reports_the_failing_one(
    home: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeOpenAI
) -> None:
    fake.default = fake.chat_default = _by_model
    _openai(monkeypatch, fake.base_url)
    _configure(
        monkeypatch,
        OPENAI_ALIAS_FAST="gpt-4o-mini",
        OPENAI_ALIAS_GHOST="no-such-model",
        OPENAI_ALIAS_LOST="groq:llama-3.1-8b-instant",
    )
    result = _vdm("test", "models")
    assert result.exit_code == 1
    out = result.stdout
    assert re.search(r"^fast \(alias, openai\)\s+openai:gpt-4o-mini\s+ok\s+\d+ ms", out, re.M)
    ghost = _row(out, "ghost")
    assert re.search(r"openai:no-such-model\s+error 404", ghost)
    assert "does not exist" in ghost
    assert "provider 'groq' is not configured" in _row(out, "lost")
    for fallback, model in (
        ("haiku", "gpt-5.6-luna"),
        ("sonnet", "gpt-5.6-terra"),
        ("opus", "gpt-5.6-sol"),
    ):
        assert re.search(rf"openai:{re.escape(model)}\s+ok\b", _row(out, fallback))
    assert "4 ok, 2 failed" in out
    sent = sorted(r.json["model"] for r in fake.requests)
    assert sent == sorted(
        ["gpt-4o-mini", "no-such-model", "gpt-5.6-luna", "gpt-5.6-terra", "gpt-5.6-sol"]
    )
    assert all(_one_token(r) for r in fake.requests)


def test_models_all_ok_exits_0_and_tests_each_target_once(
    home: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeOpenAI
) -> None:
    _openai(monkeypatch, fake.base_url)
    _configure(
        monkeypatch,
        OPENAI_ALIAS_FAST="gpt-4o-mini",
        OPENAI_ALIAS_QUICK="gpt-4o-mini",
        VDM_FALLBACK_HAIKU="gpt-4o-mini",
    )
    result = _vdm("test", "models", "--concurrency", "1")
    assert result.exit_code == 0, result.output
    for alias in ("fast", "quick", "haiku"):
        assert re.search(r"openai:gpt-4o-mini\s+ok\s+\d+ ms", _row(result.stdout, alias))
    models = [r.json["model"] for r in fake.requests]
    assert sorted(models) == ["gpt-4o-mini", "gpt-5.6-sol", "gpt-5.6-terra"]


# -- vdm health server ----------------------------------------------------------------------


def test_health_server_reads_a_running_vdm(
    home: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeOpenAI
) -> None:
    with running_vdm({"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": fake.base_url}) as vdm:
        # The default URL comes from this directory's HOST and PORT; 0.0.0.0 is reached locally.
        _configure(monkeypatch, HOST="0.0.0.0", PORT=str(vdm.port))
        result = _vdm("health", "server")
    assert result.exit_code == 0, result.output
    assert f"at http://127.0.0.1:{vdm.port}: ok" in result.stdout
    row = _row(result.stdout, "openai")
    assert fake.base_url in row and mask(KEY) in row


def test_health_server_with_nothing_listening_names_the_fix(
    home: Path, monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    _configure(monkeypatch, PORT=str(closed_port))
    result = _vdm("health", "server", limit=10)
    assert result.exit_code == 1
    assert (
        f"no vdm answering at http://127.0.0.1:{closed_port}: start one with `vdm server start`"
        in result.stderr
    )


def test_health_server_reports_an_unconfigured_vdm_as_unhealthy(home: Path) -> None:
    with running_vdm({}) as vdm:
        result = _vdm("health", "server", "--url", vdm.url)
    assert result.exit_code == 1
    assert f"at {vdm.url}: unconfigured" in result.stdout
    assert "no provider configured" in result.stdout


def test_health_server_sends_the_proxy_key_and_rejects_what_is_not_vdm(
    home: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeOpenAI
) -> None:
    _configure(monkeypatch, PROXY_API_KEY=PROXY_KEY)
    result = _vdm("health", "server", "--url", fake.url)
    assert result.exit_code == 1
    assert f"something answered at {fake.url} (HTTP 404), but not vdm's /health" in result.stderr
    assert fake.last.path == "/health"
    assert fake.last.headers["x-api-key"] == PROXY_KEY


class LeakyVdm(FakeOpenAI):
    """A server whose /health shows a key in full (an old or foreign build)."""

    def _route(self, request: Recorded) -> Reply:
        if request.path == "/health":
            provider = {"api_format": "openai", "base_url": "https://x/v1", "keys": [KEY]}
            return JsonReply({"status": "ok", "providers": {"openai": provider}})
        return super()._route(request)


def test_health_server_masks_a_configured_key_even_if_the_server_shows_it(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure(monkeypatch, OPENAI_API_KEY=KEY)
    with LeakyVdm() as leaky:
        result = _vdm("health", "server", "--url", leaky.url)
    assert result.exit_code == 0, result.output
    assert mask(KEY) in _row(result.stdout, "openai")
