"""Bedrock's and Vertex's request bodies made Anthropic Messages bodies."""

from __future__ import annotations

import base64
import json

import pytest

from vdm.protocol.cloud_requests import bedrock_count_body, messages_body
from vdm.protocol.errors import VdmError
from vdm.protocol.vertex_from_anthropic import claude_name

BEDROCK = {
    "anthropic_version": "bedrock-2023-05-31",
    "anthropic_beta": ["interleaved-thinking-2025-05-14", "context-1m-2025-08-07"],
    "max_tokens": 10,
    "messages": [{"role": "user", "content": "héllo"}],
    "future_field": {"kept": True},
}


def test_bedrock_body() -> None:
    body, betas = messages_body(json.dumps(BEDROCK).encode(), "us.anthropic.claude-x", True)
    assert json.loads(body) == {
        "model": "us.anthropic.claude-x",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "héllo"}],
        "future_field": {"kept": True},
        "stream": True,
    }
    assert betas == ["interleaved-thinking-2025-05-14", "context-1m-2025-08-07"]


def test_invoke_is_never_a_stream_and_the_url_names_the_model() -> None:
    raw = json.dumps({"model": "other", "stream": True, "max_tokens": 1}).encode()
    body, betas = messages_body(raw, "m", False)
    assert json.loads(body) == {"model": "m", "max_tokens": 1}
    assert betas == []


def test_vertex_count_body_keeps_its_model() -> None:
    raw = json.dumps({"anthropic_version": "vertex-2023-10-16", "model": "c@1"}).encode()
    assert json.loads(messages_body(raw, None, None)[0]) == {"model": "c@1"}


@pytest.mark.parametrize(
    "raw", [b"", b"[1]", b"{", b'{"x": NaN}', b'{"x": "\\ud800"}', b"\xff\xfe"]
)
def test_bad_bodies_are_400(raw: bytes) -> None:
    with pytest.raises(VdmError) as caught:
        messages_body(raw, "m", None)
    assert caught.value.status == 400


def test_bedrock_count_body() -> None:
    invoke = json.dumps(BEDROCK).encode()
    wrapped = {"input": {"invokeModel": {"body": base64.b64encode(invoke).decode()}}}
    assert bedrock_count_body(json.dumps(wrapped).encode()) == invoke
    for bad in ({"input": {"converse": {}}}, {"input": {"invokeModel": {"body": "%%"}}}):
        with pytest.raises(VdmError) as caught:
            bedrock_count_body(json.dumps(bad).encode())
        assert caught.value.status == 400


def test_vertex_model() -> None:
    assert claude_name("claude-sonnet-4-5@20250929") == "claude-sonnet-4-5-20250929"
    assert claude_name("claude-opus-4-6") == "claude-opus-4-6"
    assert claude_name("claude-opus-4-6@default") == "claude-opus-4-6"
