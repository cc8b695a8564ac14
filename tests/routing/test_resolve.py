"""Model resolution: `provider:model`, else the default provider."""

from __future__ import annotations

import pytest

from vdm.config.settings import Settings
from vdm.protocol.errors import VdmError
from vdm.routing.resolve import resolve

SETTINGS = Settings.from_mapping(
    {"OPENAI_API_KEY": "a", "OLLAMA_API_KEY": "b", "OLLAMA_BASE_URL": "http://127.0.0.1:11434/v1"}
)


@pytest.mark.parametrize(
    ("requested", "provider", "model"),
    [
        ("gpt-4o", "openai", "gpt-4o"),
        ("openai:gpt-4o", "openai", "gpt-4o"),
        ("OLLAMA:llama3", "ollama", "llama3"),
        ("ollama:llama3:8b", "ollama", "llama3:8b"),
        ("claude-sonnet-4-5", "openai", "claude-sonnet-4-5"),
    ],
)
def test_routes(requested: str, provider: str, model: str) -> None:
    route = resolve(requested, SETTINGS)
    assert (route.provider.name, route.model) == (provider, model)


def test_unknown_prefix_names_it_and_lists_providers() -> None:
    with pytest.raises(VdmError) as caught:
        resolve("nope:gpt-4o", SETTINGS)
    assert caught.value.status == 400
    assert "'nope'" in caught.value.message
    assert "openai" in caught.value.message and "ollama" in caught.value.message


def test_prefix_without_model() -> None:
    with pytest.raises(VdmError, match="no model"):
        resolve("openai:", SETTINGS)


def test_no_provider_names_the_variable() -> None:
    with pytest.raises(VdmError) as caught:
        resolve("gpt-4o", Settings.from_mapping({}))
    assert caught.value.status == 400
    assert "OPENAI_API_KEY" in caught.value.message
