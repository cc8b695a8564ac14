"""The four upstream timeouts (connect, first byte, idle, total) against real loopback upstreams
that stall at each phase, with sub-second limits: what each bounds, which error names it,
which is retried, their settings, and what a client of vdm sees.

The upstreams: the fake OpenAI and Anthropic servers (a reply `delay` stalls before the
headers, `pauses` stall a body) and a server that accepts TCP but never answers TLS (a
connection that never completes)."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import anyio
import httpx
import pytest
from typer.testing import CliRunner

from tests.fakes.anthropic_upstream import AnthropicSseReply, anthropic_stream_events
from tests.fakes.openai_upstream import (
    FakeOpenAI,
    JsonReply,
    SseReply,
    completion,
    stream_chunks,
)
from tests.harness import KEEP_ENV, running_vdm
from vdm.cli.main import app
from vdm.config.settings import ConfigError, ProviderConfig, Settings
from vdm.config.timeouts import Timeouts
from vdm.protocol.errors import VdmError
from vdm.upstream import client as client_module
from vdm.upstream.client import UpstreamClient

STREAM = b'{"model":"m","messages":[],"stream":true}'
ANSWER = b'{"model":"m","messages":[]}'


def provider(base_url: str, timeouts: Timeouts, max_retries: int = 2) -> ProviderConfig:
    return ProviderConfig(
        name="fake",
        api_keys=("sk-test",),
        base_url=base_url,
        timeouts=timeouts,
        max_retries=max_retries,
    )


async def read_stream(client: UpstreamClient) -> int:
    """Read a whole stream; the number of reads."""
    reads = 0
    async with client.stream("/chat/completions", STREAM) as chunks:
        async for _ in chunks:
            reads += 1
    return reads


async def failure(call: Any) -> tuple[VdmError, float]:
    """The VdmError `call()` raises, and how long it took."""
    started = time.monotonic()
    with pytest.raises(VdmError) as caught:
        await call()
    return caught.value, time.monotonic() - started


class SilentTls:
    """Accepts TCP connections and never answers: an `https://` client's TLS handshake
    stalls, as behind a black-holed load balancer. Counts the connections."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="silent-tls", daemon=True)

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self._listener.getsockname()[1]}/v1"

    @property
    def connections(self) -> int:
        return len(self._held)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self._held.append(conn)

    def __enter__(self) -> SilentTls:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._held:
            conn.close()
        self._listener.close()


# -- first byte -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_long_non_streamed_answer_waits_for_the_first_byte_timeout_not_the_idle_one(
    fake: FakeOpenAI,
) -> None:
    # The upstream sends its headers only when the whole answer is generated: 0.8 s here,
    # far more than the idle timeout, well within the first-byte one.
    fake.enqueue(JsonReply(completion("done"), delay=0.8))
    client = UpstreamClient(provider(fake.base_url, Timeouts(first_byte=5.0, idle=0.2)))
    try:
        answer = await client.post_json("/chat/completions", ANSWER)
    finally:
        await client.aclose()
    assert answer["choices"][0]["message"]["content"] == "done"


@pytest.mark.anyio
async def test_no_headers_within_the_first_byte_timeout_is_a_504_never_retried(
    fake: FakeOpenAI,
) -> None:
    fake.default = JsonReply(completion("late"), delay=3.0)
    client = UpstreamClient(provider(fake.base_url, Timeouts(first_byte=0.3), max_retries=2))
    try:
        error, took = await failure(lambda: client.post_json("/chat/completions", ANSWER))
    finally:
        await client.aclose()
    assert error.status == 504
    assert error.message == "fake sent no response headers within 0.3 s (FIRST_BYTE_TIMEOUT)"
    assert 0.25 <= took < 2.5
    assert fake.request_count == 1, "the request may have been processed: never sent again"


# -- idle -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_stream_silent_longer_than_the_idle_timeout_fails_naming_it(
    fake: FakeOpenAI,
) -> None:
    events = stream_chunks("one two three four", pieces=4)
    fake.enqueue(SseReply(events, pauses={2: 3.0}))
    client = UpstreamClient(provider(fake.base_url, Timeouts(first_byte=5.0, idle=0.3)))
    got: list[bytes] = []

    async def read() -> None:
        async with client.stream("/chat/completions", STREAM) as chunks:
            async for chunk in chunks:
                got.append(chunk)

    try:
        error, took = await failure(read)
    finally:
        await client.aclose()
    assert error.status == 504
    assert error.message == "fake sent nothing for 0.3 s in the middle of its answer (IDLE_TIMEOUT)"
    # What came before the silence was delivered (the two events, in one read or two).
    assert b"".join(got).count(b"data: ") == 2
    assert 0.25 <= took < 2.5
    assert fake.request_count == 1


@pytest.mark.anyio
async def test_a_stream_with_short_gaps_outlives_the_idle_timeout(fake: FakeOpenAI) -> None:
    # 8 gaps of 0.1 s: 0.8 s in all, each gap under the 0.3 s idle timeout.
    events = stream_chunks("a b c d e f g h", pieces=8)
    fake.enqueue(SseReply(events, delay=0.1))
    client = UpstreamClient(provider(fake.base_url, Timeouts(idle=0.3)))
    try:
        assert await read_stream(client) == len(events) + 1  # [DONE] too
    finally:
        await client.aclose()


@pytest.mark.anyio
async def test_a_non_streamed_body_that_stalls_after_its_headers_is_an_idle_504(
    fake: FakeOpenAI,
) -> None:
    # Headers, one chunk of the body, then silence: reading the whole answer (post_bytes)
    # fails with vdm's error, not an httpx exception.
    fake.enqueue(SseReply([b"data: {}\n\n", b"data: {}\n\n"], pauses={1: 3.0}))
    client = UpstreamClient(provider(fake.base_url, Timeouts(idle=0.3)))
    try:
        error, took = await failure(lambda: client.post_bytes("/chat/completions", ANSWER))
    finally:
        await client.aclose()
    assert error.status == 504
    assert "(IDLE_TIMEOUT)" in error.message
    assert took < 2.5


# -- total ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_stream_that_keeps_trickling_ends_at_the_total_timeout(fake: FakeOpenAI) -> None:
    # Never silent for more than 0.05 s, so the idle timeout never fires: 60 events take 3 s.
    events = [b": keep-alive\n\n"] * 60
    fake.enqueue(SseReply(events, delay=0.05))
    client = UpstreamClient(provider(fake.base_url, Timeouts(idle=1.0, total=0.6)))
    try:
        error, took = await failure(lambda: read_stream(client))
    finally:
        await client.aclose()
    assert error.status == 504
    assert error.message == "fake did not complete its answer within 0.6 s in all (TOTAL_TIMEOUT)"
    assert 0.55 <= took < 2.5


@pytest.mark.anyio
async def test_the_total_timeout_ends_a_silent_read_at_the_deadline(fake: FakeOpenAI) -> None:
    # Silent after the first event for longer than the total but shorter than the idle
    # timeout: the read ends at the call's deadline, not 5 s later.
    fake.enqueue(SseReply(stream_chunks("x y", pieces=2), pauses={1: 3.0}))
    client = UpstreamClient(provider(fake.base_url, Timeouts(idle=5.0, total=0.5)))
    try:
        error, took = await failure(lambda: read_stream(client))
    finally:
        await client.aclose()
    assert "(TOTAL_TIMEOUT)" in error.message
    assert 0.45 <= took < 2.5


@pytest.mark.anyio
async def test_the_total_timeout_cuts_the_wait_for_headers_and_counts_retries(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two 502s (retried after backoffs of 0.25 s: the jitter is fixed here), then a slow
    # answer: the whole call ends at the total timeout, naming the last error.
    monkeypatch.setattr(client_module, "backoff", lambda retry: 0.25)
    bad = JsonReply({"error": {"message": "bad gateway"}}, status=502)
    fake.enqueue(bad, bad, JsonReply(completion("late"), delay=3.0))
    client = UpstreamClient(provider(fake.base_url, Timeouts(total=1.0), max_retries=5))
    try:
        error, took = await failure(lambda: client.post_json("/chat/completions", ANSWER))
    finally:
        await client.aclose()
    assert "within 1 s in all (TOTAL_TIMEOUT)" in error.message
    assert 0.95 <= took < 2.5
    assert fake.request_count == 3


@pytest.mark.anyio
async def test_a_deadline_does_not_outlive_its_call_on_a_reused_connection(
    fake: FakeOpenAI,
) -> None:
    client = UpstreamClient(provider(fake.base_url, Timeouts(total=0.4)))
    try:
        await read_stream(client)  # quick: its connection goes back to the pool
        await anyio.sleep(0.5)  # past the first call's deadline
        # Its reads wait for the answer on the same connection, under their own deadline.
        fake.enqueue(JsonReply(completion("second"), delay=0.1))
        answer = await client.post_json("/chat/completions", ANSWER)
    finally:
        await client.aclose()
    assert answer["choices"][0]["message"]["content"] == "second"
    assert fake.connection_count == 1


# -- connect ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_connection_that_never_completes_is_a_connect_timeout_and_is_retried() -> None:
    with SilentTls() as upstream:
        url = upstream.base_url
        client = UpstreamClient(provider(url, Timeouts(connect=0.2), max_retries=1))
        try:
            error, took = await failure(lambda: client.post_json("/chat/completions", ANSWER))
        finally:
            await client.aclose()
        connections = upstream.connections
    assert error.status == 504
    assert error.message == (
        f"cannot reach fake at {url}: no connection within 0.2 s (CONNECT_TIMEOUT)"
    )
    assert connections == 2, "nothing was sent: a connect timeout is retried"
    assert 0.4 <= took < 2.5


# -- on httpx's own transport (what an HTTP proxy from the environment uses) ------------------


@pytest.mark.anyio
async def test_the_phases_hold_on_httpx_own_transport(fake: FakeOpenAI) -> None:
    timeouts = Timeouts(first_byte=5.0, idle=0.3, total=1.0)
    client = UpstreamClient(provider(fake.base_url, timeouts), transport=httpx.AsyncHTTPTransport())
    try:
        fake.enqueue(JsonReply(completion("slow"), delay=0.6))  # longer than idle: fine
        assert (await client.post_json("/chat/completions", ANSWER))["choices"]
        fake.enqueue(SseReply(stream_chunks("a b", pieces=2), pauses={1: 3.0}))
        idle, _ = await failure(lambda: read_stream(client))
        fake.enqueue(SseReply([b": keep-alive\n\n"] * 60, delay=0.05))
        total, took = await failure(lambda: read_stream(client))
    finally:
        await client.aclose()
    assert "(IDLE_TIMEOUT)" in idle.message
    assert "(TOTAL_TIMEOUT)" in total.message
    assert 0.95 <= took < 2.5


# -- settings ---------------------------------------------------------------------------------


def test_defaults_fit_minutes_long_agent_turns() -> None:
    settings = Settings.from_mapping({"OPENAI_API_KEY": "k"})
    timeouts = settings.providers["openai"].timeouts
    assert (timeouts.connect, timeouts.first_byte, timeouts.idle, timeouts.total) == (
        10.0,
        600.0,
        300.0,
        3600.0,
    )
    assert settings.timeouts == timeouts


def test_request_timeout_is_the_first_byte_timeout_and_the_explicit_name_wins() -> None:
    old = Settings.from_mapping({"OPENAI_API_KEY": "k", "REQUEST_TIMEOUT": "120"})
    assert old.providers["openai"].timeouts.first_byte == 120.0
    assert old.providers["openai"].timeouts.name("first_byte") == "REQUEST_TIMEOUT"
    assert not [w for w in old.warnings if "TIMEOUT" in w]  # one name set: no warning
    both = Settings.from_mapping(
        {"OPENAI_API_KEY": "k", "REQUEST_TIMEOUT": "120", "FIRST_BYTE_TIMEOUT": "700"}
    )
    assert both.providers["openai"].timeouts.first_byte == 700.0
    assert [w for w in both.warnings if "TIMEOUT" in w] == [
        "REQUEST_TIMEOUT=120 (env) is ignored: FIRST_BYTE_TIMEOUT=700 (env) sets the same "
        "timeout and wins"
    ]


def test_a_provider_own_timeouts_beat_the_global_ones() -> None:
    env = {
        "OPENAI_API_KEY": "k",
        "GROQ_API_KEY": "g",
        "FIRST_BYTE_TIMEOUT": "700",
        "IDLE_TIMEOUT": "200",
        "TOTAL_TIMEOUT": "none",
        "GROQ_TIMEOUT": "30",
        "GROQ_IDLE_TIMEOUT": "45",
        "GROQ_CONNECT_TIMEOUT": "3",
    }
    settings = Settings.from_mapping(env)
    openai, groq = settings.providers["openai"].timeouts, settings.providers["groq"].timeouts
    assert (openai.connect, openai.first_byte, openai.idle, openai.total) == (10, 700, 200, None)
    assert (groq.connect, groq.first_byte, groq.idle, groq.total) == (3, 30, 45, None)
    assert groq.names == (
        "GROQ_CONNECT_TIMEOUT",
        "GROQ_TIMEOUT",
        "GROQ_IDLE_TIMEOUT",
        "TOTAL_TIMEOUT",
    )


def test_toml_keys_mirror_the_variables(tmp_path: Path) -> None:
    (tmp_path / "vandamme-config.toml").write_text(
        'connect-timeout = 5\nidle-timeout = 120\ntotal-timeout = "none"\nrequest-timeout = 900\n'
        '[openai]\napi-key = "k"\nfirst-byte-timeout = 1200\ntotal-timeout = 7200\n'
    )
    settings = Settings.load({"HOME": str(tmp_path / "home")}, cwd=tmp_path)
    assert settings.timeouts == Timeouts(5.0, 900.0, 120.0, None)
    assert settings.providers["openai"].timeouts == Timeouts(5.0, 1200.0, 120.0, 7200.0)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("IDLE_TIMEOUT", "0", "must be greater than 0 (or `none` for no limit)"),
        ("TOTAL_TIMEOUT", "forever", "expected a number of seconds (or `none` for no limit)"),
        ("CONNECT_TIMEOUT", "none", "expected a number of seconds"),
        ("OPENAI_FIRST_BYTE_TIMEOUT", "-5", "must be greater than 0 (or `none` for no limit)"),
    ],
)
def test_bad_timeouts_name_the_variable_and_the_fix(name: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_mapping({"OPENAI_API_KEY": "k", name: value})
    assert str(caught.value) == f"{name}={value!r} (env): {expected}"
    assert caught.value.var == name


def test_the_error_names_the_variable_that_set_the_timeout(fake: FakeOpenAI) -> None:
    fake.enqueue(JsonReply(completion("late"), delay=3.0))
    env = {"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": fake.base_url, "OPENAI_TIMEOUT": "0.3"}
    with running_vdm(env) as server:
        response = httpx.post(f"{server.url}/v1/messages", json=_hello(), timeout=10)
    assert response.status_code == 504
    assert response.json()["error"] == {
        "type": "timeout_error",
        "message": "openai sent no response headers within 0.3 s (OPENAI_TIMEOUT)",
    }


def test_config_show_lists_the_effective_timeouts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name not in KEEP_ENV and not name.startswith("PYTEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "vandamme-config.toml").write_text(
        'request-timeout = 120\n[openai]\napi-key = "sk-abcdefgh12345678"\nidle-timeout = 90\n'
    )
    result = CliRunner().invoke(app, ["config", "show", "--json"], env={"TOTAL_TIMEOUT": "none"})
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    rows = {r["name"]: (r["value"], r["source"]) for r in shown["providers"][0]["settings"]}
    assert rows["connect timeout"] == ("10 s", "built-in")
    assert rows["first-byte timeout"] == ("120 s", "./vandamme-config.toml")
    assert rows["idle timeout"] == ("90 s", "./vandamme-config.toml")
    assert rows["total timeout"] == ("none", "env")
    server = {r["name"]: (r["value"], r["source"]) for r in shown["server"]}
    assert server["first-byte-timeout"] == ("120 s", "./vandamme-config.toml")
    assert server["idle-timeout"] == ("300 s", "built-in")
    assert server["total-timeout"] == ("none", "env")


# -- what a client of vdm sees ------------------------------------------------------------------


def _hello(**kw: Any) -> dict[str, Any]:
    return {
        "model": "gpt-4o",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
        **kw,
    }


@pytest.fixture
def vdm_url(fake: FakeOpenAI) -> Iterator[str]:
    env = {
        "OPENAI_API_KEY": "k",
        "OPENAI_BASE_URL": fake.base_url,
        "FIRST_BYTE_TIMEOUT": "1.2",
        "IDLE_TIMEOUT": "0.4",
        "MAX_RETRIES": "2",
    }
    with running_vdm(env, ping_interval=0.1) as server:
        yield server.url


@pytest.fixture
def sdk(vdm_url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=vdm_url, api_key="c", max_retries=0) as client:
        yield client


def test_the_sdk_gets_a_long_answer_and_a_first_byte_504(
    sdk: anthropic.Anthropic, fake: FakeOpenAI
) -> None:
    fake.enqueue(JsonReply(completion("thought long"), delay=0.8))  # > idle, < first byte
    message = sdk.messages.create(**_hello())
    assert message.content[0].text == "thought long"  # type: ignore[union-attr]
    fake.enqueue(JsonReply(completion("too late"), delay=3.0))
    with pytest.raises(anthropic.APIStatusError) as caught:
        sdk.messages.create(**_hello())
    assert caught.value.status_code == 504
    assert caught.value.body == {
        "type": "error",
        "error": {
            "type": "timeout_error",
            "message": "openai sent no response headers within 1.2 s (FIRST_BYTE_TIMEOUT)",
        },
    }
    assert fake.request_count == 2  # the timed-out request was not sent again


def test_an_idle_stream_is_pinged_then_ends_with_a_timeout_error_event(
    sdk: anthropic.Anthropic, vdm_url: str, fake: FakeOpenAI
) -> None:
    fake.enqueue(SseReply(stream_chunks("Hello there friend", pieces=3), pauses={2: 5.0}))
    texts: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        sdk.messages.stream(**_hello()) as stream,
    ):
        for text in stream.text_stream:
            texts.append(text)
    assert "".join(texts) == "Hello "  # what arrived before the silence
    assert caught.value.body == {
        "type": "error",
        "error": {
            "type": "timeout_error",
            "message": "openai sent nothing for 0.4 s in the middle of its answer (IDLE_TIMEOUT)",
        },
    }
    # vdm kept the client's connection alive while it waited.
    fake.enqueue(SseReply(stream_chunks("Hello there friend", pieces=3), pauses={2: 5.0}))
    with httpx.stream(
        "POST", f"{vdm_url}/v1/messages", json=_hello(stream=True), timeout=10
    ) as response:
        raw = b"".join(response.iter_bytes())
    silence = raw[raw.index(b"Hello ") : raw.index(b"event: error")]
    assert silence.count(b"event: ping") >= 2


def test_an_anthropic_format_stream_gets_the_same_idle_timeout() -> None:
    from tests.fakes.anthropic_upstream import FakeAnthropic

    with FakeAnthropic() as ant:
        events = anthropic_stream_events("Hello there friend", pieces=3)
        ant.enqueue(AnthropicSseReply(events, pauses={4: 5.0}))
        env = {
            "ANTHROPIC_API_KEY": "k",
            "ANTHROPIC_BASE_URL": ant.base_url,
            "ANTHROPIC_IDLE_TIMEOUT": "0.3",
        }
        with running_vdm(env) as server:
            body = {**_hello(model="claude-sonnet-4-5"), "stream": True}
            with httpx.stream(
                "POST", f"{server.url}/v1/messages", json=body, timeout=10
            ) as response:
                raw = b"".join(response.iter_bytes())
    assert response.status_code == 200
    error = raw[raw.index(b"event: error") :].split(b"data: ", 1)[1]
    assert json.loads(error)["error"] == {
        "type": "timeout_error",
        "message": "anthropic sent nothing for 0.3 s in the middle of its answer "
        "(ANTHROPIC_IDLE_TIMEOUT)",
    }
