"""`GET /v1/models` answers each client in its own list shape: OpenAI's (`object: list`,
`owned_by`, unix `created`) for an OpenAI SDK client (Bearer, no `anthropic-version`),
Anthropic's otherwise. Both SDKs are the clients."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.harness import RunningVdm, running_vdm


@pytest.fixture
def vdm(fake: FakeOpenAI) -> Iterator[RunningVdm]:
    env = {
        "OPENAI_API_KEY": "sk-models-1",
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_ALIAS_FAST": "gpt-4o-mini",
    }
    with running_vdm(env) as server:
        yield server


def test_the_openai_sdk_gets_openais_list(vdm: RunningVdm) -> None:
    with openai.OpenAI(base_url=f"{vdm.url}/v1", api_key="unused", max_retries=0) as client:
        models = list(client.models.list())
    owners = {m.id: m.owned_by for m in models}
    assert owners["fast"] == "vdm"  # an alias is vdm's
    assert owners["claude-vdm/openai:gpt-4o-mini"] == "openai"
    assert all(m.object == "model" and isinstance(m.created, int) for m in models)


def test_the_anthropic_sdk_still_gets_anthropics_list(vdm: RunningVdm) -> None:
    with anthropic.Anthropic(base_url=vdm.url, api_key="unused", max_retries=0) as client:
        page = client.models.list()
    assert page.data and all(m.type == "model" and m.display_name for m in page.data)
