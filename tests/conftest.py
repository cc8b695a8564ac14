"""Shared fixtures. anyio's pytest plugin runs async tests; the backend is pinned to asyncio."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
