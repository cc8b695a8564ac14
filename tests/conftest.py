"""Shared fixtures. anyio's pytest plugin runs async tests; the backend is pinned to asyncio."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    """A fake OpenAI upstream (a real HTTP server on loopback) for one test."""
    with FakeOpenAI() as upstream:
        yield upstream


@pytest.fixture
def other() -> Iterator[FakeOpenAI]:
    """A second fake OpenAI-compatible upstream, for a second provider."""
    with FakeOpenAI() as upstream:
        yield upstream


@pytest.fixture
def ant() -> Iterator[FakeAnthropic]:
    """A fake Anthropic Messages API upstream (a real HTTP server on loopback)."""
    with FakeAnthropic() as upstream:
        yield upstream
