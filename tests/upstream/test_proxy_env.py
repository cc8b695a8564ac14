"""Upstream calls honour the proxy variables (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY) and
SSL_CERT_FILE, although vdm gives httpx a transport of its own (which makes httpx ignore them).

A real forward proxy on loopback (tests/fakes/forward_proxy.py) relays to a real fake upstream;
the environment is built from scratch in each test, whatever the machine running it has set.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest

from tests.fakes.forward_proxy import ForwardProxy
from tests.fakes.openai_upstream import FakeOpenAI, SseReply, stream_chunks
from tests.harness import running_vdm
from vdm.config.settings import ProviderConfig
from vdm.protocol.errors import VdmError
from vdm.upstream.client import UpstreamClient

pytestmark = pytest.mark.anyio

BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
STREAM = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}
)
PASSWORD = "pr0xy-s3cret-Pa55"
#: Every variable `urllib.request.getproxies` (hence httpx) reads, and CGI's REQUEST_METHOD,
#: which makes it drop HTTP_PROXY.
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUEST_METHOD")


@pytest.fixture(autouse=True)
def clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy variable from the machine running the tests: each test sets its own."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy() as running:
        yield running


def provider(base_url: str) -> ProviderConfig:
    return ProviderConfig(name="fake", api_keys=("sk-test",), base_url=base_url, max_retries=0)


async def post(base_url: str) -> dict[str, object]:
    client = UpstreamClient(provider(base_url))
    try:
        answer: dict[str, object] = await client.post_json("/chat/completions", BODY.encode())
    finally:
        await client.aclose()
    return answer


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every record's text, arguments and exception, as one string to search."""
    parts = []
    for record in caplog.records:
        parts.append(record.getMessage())
        parts.append(repr(record.args))
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


# --- through the proxy, or around it ------------------------------------------------------------


async def test_http_proxy_carries_the_call(
    fake: FakeOpenAI, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    answer = await post(fake.base_url)
    assert answer["object"] == "chat.completion"
    (seen,) = proxy.requests
    assert (seen.method, seen.target) == ("POST", f"{fake.base_url}/chat/completions")
    assert seen.headers["authorization"] == "Bearer sk-test"
    assert fake.last.path == "/v1/chat/completions"


async def test_lowercase_and_all_proxy_are_honoured(
    fake: FakeOpenAI, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("all_proxy", proxy.url)
    await post(fake.base_url)
    assert [r.target for r in proxy.requests] == [f"{fake.base_url}/chat/completions"]


async def test_no_proxy_covering_the_upstream_goes_direct(
    fake: FakeOpenAI, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "example.com, 127.0.0.1")
    answer = await post(fake.base_url)
    assert answer["object"] == "chat.completion"
    assert proxy.requests == []
    assert fake.request_count == 1


async def test_a_no_proxy_entry_httpx_cannot_read_is_skipped_with_a_warning(
    fake: FakeOpenAI,
    proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # httpx's own client raises on `[::1]` for every request; vdm leaves the entry out.
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "[::1],127.0.0.1")
    monkeypatch.setattr("vdm.upstream.pool._warned", set())
    assert (await post(fake.base_url))["object"] == "chat.completion"
    assert (await post(fake.base_url))["object"] == "chat.completion"
    assert proxy.requests == []  # the other entry still holds
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("NO_PROXY: cannot read"), warnings


async def test_credentials_reach_the_proxy_and_no_log(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with ForwardProxy(credentials=("vdm-user", PASSWORD)) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url_with_credentials)
        answer = await post(fake.base_url)
    assert answer["object"] == "chat.completion"
    (seen,) = proxy.requests
    assert seen.headers["proxy-authorization"].startswith("Basic ")  # the fake checks it
    assert "proxy-authorization" not in fake.last.headers  # hop by hop: not forwarded
    text = logged(caplog)
    address = proxy.url.removeprefix("http://")
    assert "provider fake goes through the proxy http://" in text and f"@{address}" in text
    assert PASSWORD not in text


async def test_a_stream_is_relayed_as_it_comes(
    fake: FakeOpenAI, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    events = stream_chunks("Hello through a proxy", pieces=6)
    fake.default = SseReply(events, pauses={3: 0.4})
    client = UpstreamClient(provider(fake.base_url))
    began = time.monotonic()
    arrivals: list[tuple[float, bytes]] = []
    try:
        async with client.stream("/chat/completions", STREAM.encode()) as reads:
            async for chunk in reads:
                arrivals.append((time.monotonic() - began, chunk))
    finally:
        await client.aclose()
    body = b"".join(chunk for _, chunk in arrivals)
    assert body.count(b"data: ") == len(events) + 1 and body.endswith(b"data: [DONE]\n\n")
    # The first events arrived well before the last, across the upstream's pause: relayed as
    # they came, not buffered until the end.
    assert arrivals[-1][0] - arrivals[0][0] >= 0.3
    assert [r.target for r in proxy.requests] == [f"{fake.base_url}/chat/completions"]


# --- a proxy vdm cannot use ---------------------------------------------------------------------


async def test_a_socks_proxy_without_socksio_fails_the_call_clearly(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "socksio", None)  # not installed, whatever the machine has
    monkeypatch.setenv("ALL_PROXY", f"socks5://vdm-user:{PASSWORD}@127.0.0.1:1080")
    caplog.set_level(logging.DEBUG)
    client = UpstreamClient(provider(fake.base_url))  # no exception while starting
    try:
        with pytest.raises(VdmError) as caught:
            await client.post_json("/chat/completions", BODY.encode())
    finally:
        await client.aclose()
    error = caught.value
    assert error.status == 502
    assert error.message.startswith("ALL_PROXY=socks5://")
    assert "pip install 'httpx[socks]'" in error.message and PASSWORD not in error.message
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "provider fake: ALL_PROXY=socks5://" in warning.getMessage()
    assert "\n" not in warning.getMessage() and warning.exc_info is None
    assert PASSWORD not in logged(caplog)
    assert fake.request_count == 0  # never sent around the proxy the user asked for


async def test_an_unknown_scheme_that_no_call_uses_does_not_matter(
    fake: FakeOpenAI, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What GNOME exports with a manual proxy: an http one, and `all_proxy=socks://…`.
    monkeypatch.setenv("http_proxy", proxy.url)
    monkeypatch.setenv("all_proxy", "socks://127.0.0.1:1080/")
    assert (await post(fake.base_url))["object"] == "chat.completion"
    assert len(proxy.requests) == 1
    # For an https:// upstream the socks:// one is what applies: named, lowercase as set.
    client = UpstreamClient(provider("https://api.example.com/v1"))
    try:
        with pytest.raises(VdmError, match=r"^all_proxy=socks://127\.0\.0\.1:1080/ cannot"):
            await client.post_json("/chat/completions", BODY.encode())
    finally:
        await client.aclose()


# --- TLS through the proxy with a custom CA bundle ---------------------------------------------


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: a private CA that only SSL_CERT_FILE names."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not found: cannot make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


async def test_https_through_the_proxy_trusts_ssl_cert_file(
    certificate: tuple[Path, Path], proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    answer = json.dumps({"id": "x", "object": "chat.completion", "choices": []}).encode()

    accepted: list[asyncio.BaseTransport] = []

    class Accepting(asyncio.StreamReaderProtocol):
        """Keeps every accepted connection, to close at the end: one whose handshake is
        still waiting then (the refused certificate's, the proxy closing its side of the
        tunnel in its own time), or whose handler has not started, would be left to the
        garbage collector, and fail a later test with an unclosed-transport warning."""

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted.append(transport)
            super().connection_made(transport)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await writer.start_tls(server_context)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n")
            writer.write(b"content-length: %d\r\n\r\n%s" % (len(answer), answer))
            await writer.drain()
        except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError):
            pass  # the refused certificate
        finally:
            writer.close()

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Accepting(asyncio.StreamReader(), handle), "127.0.0.1", 0
    )
    base_url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    async with server:
        try:
            # Without the CA bundle the upstream's certificate is refused (in the tunnel).
            with pytest.raises(VdmError, match="fake"):
                await post(base_url)
            monkeypatch.setenv("SSL_CERT_FILE", str(cert))
            assert (await post(base_url))["object"] == "chat.completion"
        finally:
            for transport in accepted:
                transport.close()
    tunnels = [(r.method, r.target) for r in proxy.requests]
    assert tunnels == [("CONNECT", base_url[len("https://") : -len("/v1")])] * 2


# --- end to end: the server, an SDK client -----------------------------------------------------


def test_the_server_sends_upstream_calls_through_the_proxy(
    fake: FakeOpenAI, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server runs in this process: it reads the proxy from the process environment, the
    # same one `vdm server start` and `vdm wrap` inherit from the shell.
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    env = {"OPENAI_API_KEY": "sk-e2e", "OPENAI_BASE_URL": fake.base_url, "HTTP_PROXY": proxy.url}
    # The SDK talks to vdm on loopback directly (trust_env off), so the proxy sees only vdm.
    with (
        running_vdm(env) as vdm,
        anthropic.DefaultHttpxClient(trust_env=False) as http,
        anthropic.Anthropic(base_url=vdm.url, api_key="c", http_client=http, max_retries=0) as sdk,
    ):
        message = sdk.messages.create(
            model="gpt-4o-mini", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        )
        with sdk.messages.stream(
            model="gpt-4o-mini", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            streamed = stream.get_final_text()
    assert message.content[0].type == "text" and message.content[0].text == "Hello from fake"
    assert streamed == "Hello from fake"
    targets = [r.target for r in proxy.requests]
    assert targets == [f"{fake.base_url}/chat/completions"] * 2
    assert all(r.headers["authorization"] == "Bearer sk-e2e" for r in proxy.requests)


async def test_vdm_health_upstream_probes_through_the_proxy_too(
    fake: FakeOpenAI, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe goes the way the server's calls go: behind a corporate proxy it must not
    say "unreachable" for a provider the server reaches."""
    from vdm.cli.probes import _probe_key

    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    probe = await _probe_key(provider(fake.base_url), "sk-test", 5.0)
    assert (probe.outcome, probe.result) == ("ok", "ok"), probe
    (seen,) = proxy.requests
    assert seen.method == "GET" and seen.target.startswith(fake.base_url)
