"""The gateway's shared state: routes memoised by requested name, degradations."""

from __future__ import annotations

from dataclasses import replace

import pytest

from vdm.config.settings import Settings
from vdm.protocol.errors import VdmError
from vdm.routing.resolve import resolve
from vdm.server import state
from vdm.server.state import Gateway

SETTINGS = Settings.from_mapping(
    {
        "OPENAI_API_KEY": "sk-state-test",
        "GROQ_API_KEY": "gsk-state-test",
        "OPENAI_ALIAS_FAST": "groq:llama-3.3-70b",
    }
)


@pytest.mark.parametrize("requested", ["fast", "claude-sonnet-4-5", "groq:x", "gpt-4o"])
def test_a_memoised_route_is_the_route_resolve_gives(requested: str) -> None:
    gateway = Gateway(SETTINGS)
    first = gateway.route(requested)
    assert first == resolve(requested, SETTINGS)
    assert first.steps == resolve(requested, SETTINGS).steps
    assert first.alias == resolve(requested, SETTINGS).alias
    assert gateway.route(requested) is first  # resolved once


def test_a_name_that_cannot_be_routed_fails_every_time() -> None:
    gateway = Gateway(SETTINGS)
    for _ in range(2):
        with pytest.raises(VdmError) as caught:
            gateway.route("nowhere:model")
        assert caught.value.status == 400
        assert "unknown provider 'nowhere'" in caught.value.message


def test_the_memo_is_bounded_and_follows_new_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "MAX_ROUTES", 3)
    gateway = Gateway(SETTINGS)
    for n in range(10):
        gateway.route(f"model-{n}")
        assert len(gateway._routes) <= 3
    assert gateway.route("fast").provider.name == "groq"
    # Settings replaced (not done by the server, which restarts to read them): routes again.
    gateway.settings = replace(SETTINGS, aliases=())
    assert gateway.route("fast").provider.name == "openai"


def test_degradations_of_a_provider_and_of_one_model() -> None:
    gateway = Gateway(SETTINGS)
    assert gateway.degradations("openai", "gpt-4o") == set()
    gateway.degrade("openai", "gpt-4o", "no-summary")  # lasts for the provider
    gateway.degrade("openai", "gpt-4o", "vertex-x")  # lasts for the model
    assert gateway.degradations("openai", "gpt-4o") == {"no-summary", "vertex-x"}
    assert gateway.degradations("openai", "o3") == {"no-summary"}
    assert gateway.degradations("groq", "gpt-4o") == set()
