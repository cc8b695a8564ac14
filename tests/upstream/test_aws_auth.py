"""SigV4 on the wire: the upstream client of a `sigv4` provider signs each attempt's final
request (vdm/upstream/aws_auth.py), and the strict fake Bedrock recomputes the signature with
its secret. Credentials come from settings, or from botocore's chain (a profile in a shared
credentials file here); without either, the error names both fixes and no secret."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.bedrock_upstream import (
    ACCESS_KEY,
    API_KEY,
    SECRET_KEY,
    SESSION_TOKEN,
    FakeBedrock,
    bedrock_error,
)
from vdm.config.settings import ProviderConfig, Settings
from vdm.protocol.errors import VdmError
from vdm.upstream.aws_auth import Credentials
from vdm.upstream.backends import client_for

pytestmark = pytest.mark.anyio

MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
ARN = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3"
BODY = json.dumps(
    {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Hi"}],
    }
).encode()


def provider(fake: FakeBedrock, **env: str) -> ProviderConfig:
    base = {
        "BEDROCK_AUTH": "sigv4",
        "BEDROCK_BASE_URL": fake.url,
        "AWS_REGION": "us-east-1",
        "BEDROCK_MAX_RETRIES": "1",
    }
    settings = Settings.from_mapping({**base, **env})
    assert "bedrock" in settings.providers, settings.problems
    return settings.providers["bedrock"]


KEYS = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}


async def invoke(config: ProviderConfig, model: str = MODEL) -> Any:
    client = client_for(config)
    try:
        return await client.post_json(f"/model/{model.replace('/', '%2F')}/invoke", BODY)
    finally:
        await client.aclose()


async def test_keys_from_settings_sign_what_the_fake_verifies() -> None:
    with FakeBedrock(session_token=SESSION_TOKEN) as fake:
        answer = await invoke(provider(fake, AWS_SESSION_TOKEN=SESSION_TOKEN, **KEYS), ARN)
        assert answer["content"][0]["text"] == "Hello from fake Bedrock"
        sent = fake.last
        assert sent.path.endswith("application-inference-profile%2Fa1b2c3/invoke")
        assert sent.headers["x-amz-security-token"] == SESSION_TOKEN
        assert sent.headers["authorization"].startswith(
            f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/"
        )
        assert fake.rejected == []


async def test_a_wrong_secret_is_the_upstreams_403_in_plain_words() -> None:
    with FakeBedrock() as fake:
        config = provider(
            fake, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY="not-the-secret-000"
        )
        with pytest.raises(VdmError) as caught:
            await invoke(config)
    assert caught.value.status == 403
    assert "InvalidSignatureException: The request signature we calculated" in (
        caught.value.message
    )
    assert "not-the-secret-000" not in caught.value.message


async def test_every_retry_is_signed_again() -> None:
    with FakeBedrock() as fake:
        fake.enqueue(bedrock_error(503, "ServiceUnavailableException", "Service unavailable"))
        answer = await invoke(provider(fake, **KEYS))
        assert answer["type"] == "message"
        first, second = fake.requests
        # Both passed the fake's signature check (a 403 is never retried into a 200).
        assert first.headers["authorization"] and second.headers["authorization"]
        assert fake.rejected == []


async def test_a_profile_is_read_by_botocore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("botocore")
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[dev]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    with FakeBedrock() as fake:
        config = provider(fake, BEDROCK_PROFILE="dev")
        assert config.aws is not None and not config.aws.static
        answer = await invoke(config)
        assert answer["type"] == "message" and fake.rejected == []
        with pytest.raises(VdmError) as caught:
            await invoke(provider(fake, BEDROCK_PROFILE="nobody"))
    assert caught.value.status == 500 and caught.value.unavailable
    assert "ProfileNotFound" in caught.value.message and "'bedrock'" in caught.value.message


async def test_without_keys_nor_botocore_a_request_names_both_fixes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "botocore.session", None)  # import fails
    with FakeBedrock() as fake:
        with pytest.raises(VdmError) as caught:
            await invoke(provider(fake))
        assert fake.request_count == 0
    message = caught.value.message
    assert "AWS_ACCESS_KEY_ID" in message and "pip install 'vandamme-proxy[aws]'" in message


def test_credentials_never_show_their_secret() -> None:
    assert SECRET_KEY not in repr(Credentials(ACCESS_KEY, SECRET_KEY, SESSION_TOKEN))
    assert SESSION_TOKEN not in repr(Credentials(ACCESS_KEY, SECRET_KEY, SESSION_TOKEN))


async def test_a_bearer_provider_is_not_signed() -> None:
    with FakeBedrock(auth="bearer") as fake:
        settings = Settings.from_mapping(
            {
                "AWS_BEARER_TOKEN_BEDROCK": API_KEY,
                "BEDROCK_BASE_URL": fake.url,
                "AWS_REGION": "us-east-1",
            }
        )
        client = client_for(settings.providers["bedrock"])
        try:
            await client.post_json(f"/model/{MODEL}/invoke", BODY)
        finally:
            await client.aclose()
        assert client.signer is None
        assert "x-amz-date" not in fake.last.headers
