"""A WebSocket upgrade is refused at once with an HTTP 404 (Codex tries
`GET /v1/responses` over a WebSocket first and falls back to POST on a 404; a 500, as
Hypercorn answered before, or a hang costs it retries)."""

from __future__ import annotations

import base64
import json
import os
import socket
from collections.abc import Iterator

import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.harness import RunningVdm, running_vdm


@pytest.fixture
def vdm(fake: FakeOpenAI) -> Iterator[RunningVdm]:
    with running_vdm({"OPENAI_API_KEY": "sk-ws", "OPENAI_BASE_URL": fake.base_url}) as server:
        yield server


def _upgrade(vdm: RunningVdm, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    head = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{vdm.port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", vdm.port), timeout=2) as sock:
        sock.sendall(head.encode())
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = sock.recv(4096)  # a hang fails on the 2 s socket timeout
            if not chunk:
                break
            data += chunk
    return data


def test_a_websocket_upgrade_is_a_404_at_once(vdm: RunningVdm, fake: FakeOpenAI) -> None:
    data = _upgrade(vdm, "/v1/responses")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404")
    assert b"request-id: req_vdm_" in head
    error = json.loads(body)["error"]
    assert error["code"] == "websocket_not_supported" and "POST /v1/responses" in error["message"]
    assert fake.requests == []
