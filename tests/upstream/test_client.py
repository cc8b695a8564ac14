"""`UpstreamClient`: the stream's `on_idle` hook (called when the upstream has nothing more for
now), masking of echoed custom-header credentials, headers that cannot be sent, and model names
that would change a URL."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI, JsonReply, Recorded, SseReply, stream_chunks
from tests.harness import running_vdm
from tests.upstream.test_h1 import Server, answer, read_request
from vdm.config.secrets import mask
from vdm.config.settings import ProviderConfig, Settings
from vdm.protocol.errors import VdmError, failover_worthy, is_context_overflow
from vdm.upstream.backends import backend
from vdm.upstream.client import UpstreamClient
from vdm.upstream.failures import error_from_response, error_from_transport
from vdm.upstream.pool import PooledTransport

pytestmark = pytest.mark.anyio

BODY = b'{"model":"m","messages":[],"stream":true}'


def provider(base_url: str) -> ProviderConfig:
    return ProviderConfig(name="fake", api_keys=("sk-test",), base_url=base_url)


async def reads_at_idle(client: UpstreamClient) -> tuple[int, int, list[int]]:
    """(number of reads, number of SSE events read, the number of events already yielded at
    each `on_idle` call)."""
    reads = events = 0
    idle: list[int] = []

    async def on_idle() -> None:
        idle.append(events)

    async with client.stream("/chat/completions", BODY, on_idle=on_idle) as chunks:
        async for chunk in chunks:
            reads += 1
            events += chunk.count(b"\n\n")
    return reads, events, idle


async def test_on_idle_runs_before_each_wait_for_the_upstream() -> None:
    # 3 bursts: events 0-9 at once, a pause, events 10-19, a pause, the rest with [DONE].
    events = stream_chunks("x" * 30, pieces=30)
    with FakeOpenAI() as fake:
        fake.default = SseReply(events, pauses={10: 0.15, 20: 0.15})
        client = UpstreamClient(provider(fake.base_url))
        try:
            reads, read, idle = await reads_at_idle(client)
        finally:
            await client.aclose()
    assert read == len(events) + 1  # every event, [DONE] included
    # Everything sent before each pause had been handed over when the hook ran.
    assert 10 in idle and 20 in idle
    assert idle == sorted(idle)
    assert reads <= read


async def test_on_idle_is_not_called_per_chunk_when_the_data_is_already_there() -> None:
    events = stream_chunks("y" * 50, pieces=50)
    with FakeOpenAI() as fake:
        fake.default = SseReply(events)  # the whole answer in one write
        client = UpstreamClient(provider(fake.base_url))
        try:
            reads, read, idle = await reads_at_idle(client)
        finally:
            await client.aclose()
    assert read == len(events) + 1
    assert reads <= 2, "the burst comes out whole, not one read per HTTP chunk"
    assert len(idle) <= 2, idle


class _Chunks(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in (b"data: 1\n\n", b"data: 2\n\n", b"data: [DONE]\n\n"):
            yield part


async def test_on_idle_runs_after_every_read_on_other_transports() -> None:
    transport = httpx.MockTransport(lambda _: httpx.Response(200, stream=_Chunks()))
    client = UpstreamClient(provider("http://127.0.0.1:9"), transport=transport)
    try:
        reads, read, idle = await reads_at_idle(client)
    finally:
        await client.aclose()
    assert (reads, read, idle) == (3, 3, [1, 2, 3])


# --- custom-header credentials are masked in an echoed error (D6) ---------------------------

TOKEN = "tok-live-9f8e7d6c5b4a39281706"
KEY = "sk-test-echoed-key-000111222"


def _echo(request: Recorded) -> JsonReply:
    """A 401 whose message quotes every request header: some gateways do."""
    quoted = ", ".join(f"{k}: {v}" for k, v in request.headers.items())
    return JsonReply({"error": {"message": f"denied; you sent {quoted}"}}, status=401)


async def test_an_echoed_custom_header_credential_is_masked_in_the_error_and_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with FakeOpenAI() as fake:
        fake.default = _echo
        config = ProviderConfig(
            name="fake",
            api_keys=(KEY,),
            base_url=fake.base_url,
            custom_headers={"X-Auth-Token": TOKEN, "X-Team": "blue-team-visible"},
        )
        client = UpstreamClient(config)
        try:
            with caplog.at_level(logging.DEBUG), pytest.raises(VdmError) as caught:
                await client.post_json("/chat/completions", BODY, model="m")
        finally:
            await client.aclose()
    assert fake.requests[0].headers["x-auth-token"] == TOKEN  # it was sent
    error = caught.value
    assert error.upstream is not None
    texts = [error.message, error.upstream.body.decode(), *(r.getMessage() for r in caplog.records)]
    assert len(texts) > 2
    for text in texts:
        assert TOKEN not in text and KEY not in text, text
    assert "blue-team-visible" in error.message  # not a credential: shown
    assert mask(TOKEN) in error.message


def test_provider_secrets_and_settings_secrets_agree() -> None:
    settings = Settings.from_mapping(
        {
            "OPENAI_API_KEY": KEY,
            "OPENAI_CUSTOM_HEADER_X_AUTH_TOKEN": TOKEN,
            "CUSTOM_HEADER_COOKIE": "session=abcdef123456",
            "CUSTOM_HEADER_X_TEAM": "blue-team-visible",
        }
    )
    own = settings.providers["openai"].secrets
    assert set(own) == {KEY, TOKEN, "session=abcdef123456"}
    assert set(own) <= set(settings.secrets)
    assert "blue-team-visible" not in settings.secrets


# --- header values that cannot be sent (D9) --------------------------------------------------


async def test_a_forwarded_header_that_cannot_be_encoded_is_a_400() -> None:
    with FakeOpenAI() as fake:
        client = UpstreamClient(provider(fake.base_url))
        try:
            for value in ("caf\u00e9", "a\r\nx-injected: 1", "\u2603"):
                with pytest.raises(VdmError) as caught:
                    await client.post_json(
                        "/chat/completions", BODY, headers={"anthropic-beta": value}
                    )
                assert caught.value.status == 400
                assert "'anthropic-beta'" in caught.value.message
                assert value not in caught.value.message
        finally:
            await client.aclose()
    assert fake.request_count == 0


async def test_a_passthrough_key_that_cannot_be_encoded_is_a_400_that_does_not_quote_it() -> None:
    with FakeOpenAI() as fake:
        config = ProviderConfig(name="fake", api_keys=(), base_url=fake.base_url, passthrough=True)
        client = UpstreamClient(config)
        try:
            with pytest.raises(VdmError) as caught:
                await client.post_json(
                    "/chat/completions", BODY, client_key="sk-\u00e9l\u00e8ve-1234"
                )
        finally:
            await client.aclose()
    assert caught.value.status == 400 and "API key" in caught.value.message
    assert "\u00e9l\u00e8ve" not in caught.value.message
    assert fake.request_count == 0


# --- a model name in a URL path (D13) --------------------------------------------------------


@pytest.mark.parametrize(
    "model", ["", ".", "..", " .. ", "a/b", "../x", "a?b", "a#b", "a\\b", "a\x00b"]
)
def test_a_model_that_would_change_the_url_is_refused(model: str) -> None:
    azure = ProviderConfig(
        name="azure",
        api_keys=("k",),
        base_url="https://x.openai.azure.com",
        api_version="2024-10-21",
    )
    for api_format, config in (("openai", azure), ("gemini", provider("https://g/v1beta"))):
        with pytest.raises(VdmError) as caught:
            backend(api_format).path(config, model, False)
        assert caught.value.status == 400 and "model name" in caught.value.message


def test_other_model_names_are_percent_quoted_into_one_segment() -> None:
    azure = ProviderConfig(
        name="azure",
        api_keys=("k",),
        base_url="https://x.openai.azure.com",
        api_version="2024-10-21",
    )
    chat = backend("openai").path(azure, "my deploy%2F1", False)
    assert chat.startswith("/openai/deployments/my%20deploy%252F1/chat/completions?")
    gemini = backend("gemini").path(provider("https://g"), "models/gemini-2.5-pro", True)
    assert gemini == "/models/gemini-2.5-pro:streamGenerateContent?alt=sse"


def test_through_vdm_an_azure_deployment_named_dot_dot_is_a_400() -> None:
    with FakeOpenAI() as fake:
        env = {
            "AZURE_API_KEY": "sk-azure-1234",
            "AZURE_BASE_URL": fake.base_url,
            "AZURE_API_VERSION": "2024-10-21",
            "VDM_DEFAULT_PROVIDER": "azure",
        }
        with running_vdm(env) as vdm:
            answer = httpx.post(
                f"{vdm.url}/v1/messages",
                json={
                    "model": "azure:..",
                    "max_tokens": 10,
                    "messages": [{"role": "user", "content": "hi"}],
                },
                timeout=10,
            )
    assert answer.status_code == 400, answer.text
    assert "model name '..'" in answer.json()["error"]["message"]
    assert fake.request_count == 0


# --- failover_worthy / is_context_overflow: what the exchange decides on ----------------------


def test_failover_worthy_and_context_overflow_are_field_checks() -> None:
    def upstream(status: int, body: bytes = b"{}", **headers: str) -> VdmError:
        return error_from_response("p", status, body, headers)

    overflow = upstream(
        400, b'{"error": {"message": "maximum context length is 8192 tokens, you requested 9000"}}'
    )
    assert is_context_overflow(overflow) and not failover_worthy(overflow)
    assert overflow.message.startswith("prompt is too long")
    for status in (408, 409, 429, 500, 502, 503, 504, 529):
        assert failover_worthy(upstream(status)), status
    # The upstream's "do not retry" is about itself: another provider may still answer.
    assert failover_worthy(upstream(503, **{"x-should-retry": "false"}))
    for status in (400, 401, 403, 404, 413, 422):
        assert not failover_worthy(upstream(status)), status
    assert not is_context_overflow(upstream(400))
    # vdm's own refusal of a bad request: no provider would take it.
    assert not failover_worthy(VdmError(400, "max_tokens: Field required"))
    refused = error_from_transport(provider("http://127.0.0.1:9"), httpx.ConnectError("refused"))
    assert refused.status == 502 and failover_worthy(refused)


# --- requests built from cached templates, bodies read straight from vdm's transport ---------


@pytest.mark.parametrize("exact_copy", [True, False], ids=["copied", "constructed"])
async def test_each_request_is_what_httpx_would_build_and_a_signer_changes_only_its_own(
    exact_copy: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both ways of making a request from its template: copying httpx's attributes (checked
    once against httpx's constructor, `_exact_copy`) and the constructor itself (used when
    an httpx release makes the copy differ)."""
    from vdm.upstream import request_templates

    assert request_templates._exact_copy()  # the installed httpx: the copy is exact
    monkeypatch.setattr(request_templates, "_exact_copy", lambda: exact_copy)
    config = ProviderConfig(
        name="fake",
        api_keys=("sk-template-key-0001",),
        base_url="http://127.0.0.1:9/v1",
        custom_headers={"X-Team": "blue"},
    )
    client = UpstreamClient(config, headers={"anthropic-version": "2023-06-01"})
    limits = {"timeout": {"connect": 1.0, "read": 2.0, "write": 2.0, "pool": 1.0}}
    cases: list[tuple[bytes | None, bool, dict[str, str] | None]] = [
        (b'{"model":"m"}', False, {"anthropic-beta": "tools"}),
        (b'{"model":"m","stream":true}' * 50, True, {"x-team": "client's"}),
        (None, False, None),  # a GET
        (b"", False, None),  # httpx places this one's content-length elsewhere
    ]
    try:
        for body, stream, extra in cases:
            expected = client._client.build_request(
                "GET" if body is None else "POST",
                client._url("/messages"),
                content=body,
                headers=client._headers("sk-template-key-0001", stream, extra),
                extensions=limits,
            )
            for _ in range(2):  # the first builds the template, the second copies it
                request = client._request(
                    "/messages", body, "sk-template-key-0001", stream, extra, limits
                )
                assert request.headers.raw == expected.headers.raw
                assert (request.method, request.url) == (expected.method, expected.url)
                assert request.content == expected.content
                assert request.extensions == expected.extensions
                request.headers["x-amz-date"] = "20260101T000000Z"  # as a signer does
                assert (
                    "x-amz-date"
                    not in client._request(
                        "/messages", body, "sk-template-key-0001", stream, extra, limits
                    ).headers
                )
    finally:
        await client.aclose()


async def test_a_header_that_cannot_be_sent_is_refused_on_every_call() -> None:
    client = UpstreamClient(provider("http://127.0.0.1:9"))
    try:
        for _ in range(2):  # never cached as a template
            with pytest.raises(VdmError) as caught:
                await client.post_json("/chat", BODY, headers={"x-note": "a\r\nb"}, model="m")
            assert caught.value.status == 400
    finally:
        await client.aclose()


async def test_a_compressed_answer_is_decoded_and_a_plain_one_read_whole() -> None:
    document = {"id": "x", "text": "compressed " * 200}

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            answer(gzip.compress(json.dumps(document).encode()), b"content-encoding: gzip")
        )
        await read_request(reader)
        writer.write(answer(json.dumps(document).encode()))
        await writer.drain()
        await reader.read(1)

    async with Server(handler).running() as server:
        client = UpstreamClient(provider(server.url))
        try:
            assert await client.post_json("/chat", BODY, model="m") == document
            assert await client.post_json("/chat", BODY, model="m") == document
        finally:
            await client.aclose()
    assert server.connections == 1  # both on one kept-alive connection


async def test_a_stream_read_to_its_end_gives_its_connection_back_at_once() -> None:
    events = stream_chunks("z" * 5, pieces=5)
    with FakeOpenAI() as fake:
        fake.default = SseReply(events)
        client = UpstreamClient(provider(fake.base_url))
        transport = client._client._transport
        assert isinstance(transport, PooledTransport)
        try:
            async with client.stream("/chat/completions", BODY, model="m") as chunks:
                data = b"".join([chunk async for chunk in chunks])
                # Before the context ends: the body's end released the connection.
                assert transport.pool.idle_count == 1
        finally:
            await client.aclose()
    assert data.count(b"\n\n") == len(events) + 1
