"""Google credentials (vdm/upstream/gcp_auth.py) against a loopback OAuth token endpoint that
checks the service-account JWT's signature (tests/fakes/vertex_upstream.py): a token is
fetched once and reused while FRESH, refreshed when stale, fetched once for many requests at a
time, and a refusal is an error naming the provider, never the key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from tests.fakes.vertex_upstream import PROJECT, FakeTokenServer, FakeVertex
from vdm.config.gcp import GcpConfig
from vdm.protocol.errors import VdmError
from vdm.upstream.gcp_auth import GoogleAuthorizer, HttpxRequest, authorizer_for

pytestmark = pytest.mark.anyio


@pytest.fixture
def vertex() -> Iterator[FakeVertex]:
    with FakeVertex() as fake:
        yield fake


@pytest.fixture
def tokens(vertex: FakeVertex) -> Iterator[FakeTokenServer]:
    with FakeTokenServer(vertex) as server:
        yield server


def authorizer(tokens: FakeTokenServer, tmp_path: Path) -> GoogleAuthorizer:
    key = tokens.key_file(tmp_path)
    return GoogleAuthorizer("vertex", GcpConfig(PROJECT, "us-east5", True, str(key)))


async def authorized(auth: GoogleAuthorizer) -> str:
    request = httpx.Request("POST", "http://127.0.0.1:9/x")
    await auth.authorize(request)
    return request.headers["authorization"]


async def test_a_token_is_fetched_once_and_reused_while_fresh(
    tokens: FakeTokenServer, vertex: FakeVertex, tmp_path: Path
) -> None:
    auth = authorizer(tokens, tmp_path)
    first = await authorized(auth)
    second = await authorized(auth)
    assert first == second == "Bearer ya29.issued-1"
    assert tokens.issued == 1
    assert "ya29.issued-1" in vertex.tokens  # the JWT's signature checked out


async def test_a_stale_token_is_refreshed(tokens: FakeTokenServer, tmp_path: Path) -> None:
    tokens.expires_in = 60  # below google-auth's 3 min 45 s margin: stale at once
    auth = authorizer(tokens, tmp_path)
    assert await authorized(auth) == "Bearer ya29.issued-1"
    assert await authorized(auth) == "Bearer ya29.issued-2"
    assert tokens.issued == 2


async def test_a_refused_token_is_replaced_before_the_next_request(
    tokens: FakeTokenServer, tmp_path: Path
) -> None:
    """A 401 from Vertex (a revoked token, a clock that is off): FRESH or not, the next
    request gets a new token, and the one after reuses it."""
    auth = authorizer(tokens, tmp_path)
    assert await authorized(auth) == "Bearer ya29.issued-1"
    auth.refused()
    assert await authorized(auth) == "Bearer ya29.issued-2"
    assert await authorized(auth) == "Bearer ya29.issued-2"
    assert tokens.issued == 2


async def test_concurrent_requests_share_one_refresh(
    tokens: FakeTokenServer, tmp_path: Path
) -> None:
    tokens.delay = 0.3
    auth = authorizer(tokens, tmp_path)
    found: list[str] = []

    async def one() -> None:
        found.append(await authorized(auth))

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(one)
    assert found == ["Bearer ya29.issued-1"] * 8
    assert tokens.issued == 1


async def test_a_refused_grant_is_an_error_naming_the_provider(
    tokens: FakeTokenServer, tmp_path: Path
) -> None:
    tokens.refuse = True
    auth = authorizer(tokens, tmp_path)
    with pytest.raises(VdmError) as caught:
        await authorized(auth)
    error = caught.value
    assert error.status == 500 and error.unavailable
    assert "provider 'vertex'" in error.message and "refreshed" in error.message
    assert "PRIVATE KEY" not in error.message


async def test_a_missing_key_file_is_an_error_naming_the_fix(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.json")
    auth = GoogleAuthorizer("vertex", GcpConfig(PROJECT, adc=True, credentials_file=missing))
    with pytest.raises(VdmError) as caught:
        await authorized(auth)
    assert "could not be loaded" in caught.value.message
    assert "application-default login" in caught.value.message


def test_the_transport_adapter_wraps_httpx_failures() -> None:
    from google.auth.exceptions import TransportError

    with pytest.raises(TransportError):
        HttpxRequest()("http://127.0.0.1:9/token", method="POST", body=b"x", timeout=1)


def test_only_google_auth_providers_get_an_authorizer() -> None:
    assert authorizer_for("v", GcpConfig("p")) is None
    assert authorizer_for("v", None) is None
    assert isinstance(authorizer_for("v", GcpConfig("p", adc=True)), GoogleAuthorizer)
