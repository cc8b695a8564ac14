"""Bedrock model ids routed as model names (Claude Code in Bedrock mode)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import Place
from vdm.protocol.errors import VdmError
from vdm.routing.resolve import resolve

SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
ARN = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3"


def test_a_bedrock_id_hits_the_fallback_aliases(tmp_path: Path) -> None:
    settings = Place.make(tmp_path).load(OPENAI_API_KEY="sk-x", OPENAI_ALIAS_SONNET="gpt-4o")
    route = resolve(SONNET, settings)
    assert route.label == "openai:gpt-4o"


def test_anthropic_gets_the_claude_model(tmp_path: Path) -> None:
    settings = Place.make(tmp_path).load(ANTHROPIC_API_KEY="sk-ant")
    route = resolve(SONNET, settings)
    assert route.label == "anthropic:claude-sonnet-4-5-20250929"
    assert any("Bedrock id" in step for step in route.steps)


def test_a_bedrock_provider_gets_the_id_unchanged(tmp_path: Path) -> None:
    settings = Place.make(tmp_path).load(
        AWS_BEARER_TOKEN_BEDROCK="token", AWS_REGION="us-east-1", VDM_DEFAULT_PROVIDER="bedrock"
    )
    assert resolve(ARN, settings).label == f"bedrock:{ARN}"
    assert resolve(f"bedrock:{SONNET}", settings).label == f"bedrock:{SONNET}"


def test_an_unknown_provider_prefix_is_still_a_400(tmp_path: Path) -> None:
    settings = Place.make(tmp_path).load(OPENAI_API_KEY="sk-x")
    with pytest.raises(VdmError) as caught:
        resolve("groq:llama-3", settings)
    assert "unknown provider 'groq'" in caught.value.message


def test_a_bedrock_default_provider_keeps_the_id_the_client_chose(tmp_path: Path) -> None:
    """The Bedrock preset's fallback `sonnet` (another Sonnet) does not rewrite a Bedrock id;
    a Claude name still goes through it."""
    settings = Place.make(tmp_path).load(
        AWS_BEARER_TOKEN_BEDROCK="token", AWS_REGION="us-east-1", VDM_DEFAULT_PROVIDER="bedrock"
    )
    assert resolve(SONNET, settings).label == f"bedrock:{SONNET}"
    fallback = resolve("claude-sonnet-4-5", settings)
    assert fallback.provider.name == "bedrock" and fallback.model != "claude-sonnet-4-5"
