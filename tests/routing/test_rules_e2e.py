"""Routing rules end to end: vdm (Hypercorn on loopback) in front of two fake OpenAI-format
upstreams, the official SDKs as clients. A background request (Claude Code's request class
`auxiliary`) and a thinking request go to the rules' provider, named in `x-vdm-served-by`
and in the request's log line; a plain request goes where its name resolves. The Chat
Completions frontend's thinking (`reasoning_effort`) is matched too."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import anthropic
import openai
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.harness import RunningVdm, running_vdm
from vdm.config.routing_rules import parse_rules

SERVED_BY = "x-vdm-served-by"
RULES = [
    {"when": "background", "use": "other:tiny-model"},
    {"when": "thinking", "use": "other:think-model"},
]


@pytest.fixture
def vdm(fake: FakeOpenAI, other: FakeOpenAI) -> Iterator[RunningVdm]:
    env = {
        "OPENAI_API_KEY": "sk-openai-1111",
        "OPENAI_BASE_URL": fake.base_url,
        "OTHER_API_KEY": "sk-other-2222",
        "OTHER_BASE_URL": other.base_url,
        "VDM_DEFAULT_PROVIDER": "openai",
        "MAX_RETRIES": "0",
    }
    rules = parse_rules(RULES, "test", ("openai", "other"))
    with running_vdm(env, rules=rules) as server:
        yield server


def _log_lines(caplog: pytest.LogCaptureFixture, count: int) -> list[str]:
    deadline = time.monotonic() + 5
    lines: list[str] = []
    while len(lines) < count and time.monotonic() < deadline:
        time.sleep(0.01)
        lines = [
            r.getMessage()
            for r in caplog.records
            if r.name == "vdm.requests" and r.getMessage().startswith("req_vdm_")
        ]
    return lines


def test_background_and_thinking_requests_go_to_the_rules_provider(
    vdm: RunningVdm, fake: FakeOpenAI, other: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vdm.requests")
    hello = [{"role": "user", "content": "hi"}]
    with anthropic.Anthropic(base_url=vdm.url, api_key="sk-client", max_retries=0) as client:
        background = client.messages.with_raw_response.create(
            model="claude-sonnet-4-5",
            max_tokens=64,
            messages=hello,  # type: ignore[arg-type]
            extra_headers={"x-claude-code-request-class": "auxiliary"},
        )
        assert background.headers[SERVED_BY] == "other:tiny-model"
        assert other.requests[-1].json["model"] == "tiny-model"
        with client.messages.stream(
            model="gpt-4o",
            max_tokens=2048,
            messages=hello,  # type: ignore[arg-type]
            thinking={"type": "enabled", "budget_tokens": 1024},
        ) as stream:
            text = "".join(stream.text_stream)
            served = stream.response.headers[SERVED_BY]
        assert text and served == "other:think-model"
        assert other.requests[-1].json["model"] == "think-model"
        plain = client.messages.with_raw_response.create(
            model="gpt-4o",
            max_tokens=64,
            messages=hello,  # type: ignore[arg-type]
            extra_headers={"x-claude-code-request-class": "main"},
        )
        assert plain.headers[SERVED_BY] == "openai:gpt-4o"
    assert (fake.request_count, other.request_count) == (1, 2)
    lines = _log_lines(caplog, 3)
    assert "claude-sonnet-4-5 -> other:tiny-model" in lines[0] and "rule=background" in lines[0]
    assert "gpt-4o -> other:think-model" in lines[1] and "rule=thinking" in lines[1]
    assert "rule=" not in lines[2]


def test_a_chat_completions_request_with_reasoning_matches_the_thinking_rule(
    vdm: RunningVdm, other: FakeOpenAI
) -> None:
    client = openai.OpenAI(base_url=f"{vdm.url}/v1", api_key="sk-client", max_retries=0)
    with client:
        reply = client.chat.completions.with_raw_response.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            reasoning_effort="high",
        )
    assert reply.headers[SERVED_BY] == "other:think-model"
    assert other.requests[-1].json["model"] == "think-model"


def test_a_responses_request_with_images_for_a_model_without_vision_goes_to_the_rule(
    fake: FakeOpenAI, other: FakeOpenAI
) -> None:
    env = {
        "DEEPSEEK_API_KEY": "sk-ds-1111",
        "DEEPSEEK_BASE_URL": fake.base_url,
        "OTHER_API_KEY": "sk-other-2222",
        "OTHER_BASE_URL": other.base_url,
        "VDM_DEFAULT_PROVIDER": "deepseek",
        "MAX_RETRIES": "0",
    }
    rules = parse_rules([{"when": "images", "use": "other:eyes"}], "test", ("deepseek", "other"))
    image = (
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
        "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    )
    with running_vdm(env, rules=rules) as vdm:
        client = openai.OpenAI(base_url=f"{vdm.url}/v1", api_key="sk-client", max_retries=0)
        with client:
            looked = client.responses.with_raw_response.create(
                model="deepseek-chat",
                input=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_text", "text": "what is this?"},
                            {"type": "input_image", "image_url": image, "detail": "auto"},
                        ],
                    }
                ],
            )
            text = client.responses.with_raw_response.create(model="deepseek-chat", input="hi")
    assert looked.headers[SERVED_BY] == "other:eyes"
    assert text.headers[SERVED_BY] == "deepseek:deepseek-chat"
    assert (fake.request_count, other.request_count) == (1, 1)
