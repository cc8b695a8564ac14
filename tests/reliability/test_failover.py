"""Failover chains across providers, end to end.

vdm (real Hypercorn on loopback) in front of two or three fake upstreams (real HTTP servers)
of different dialects: the primary fails before answering (a 429 with no other key, a 503, a
529, a stall past the first-byte timeout), the next target of the chain answers. The client
sees the answer of the target that served it, named in `x-vdm-served-by`; the log line shows
the hops and the usage is that target's. Errors that another provider would not fix (a bad
request) are not failed over, nor is anything once the response has started; a context-window
error goes to the long-context target.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from tests.fakes import faults
from tests.fakes.anthropic_upstream import FakeAnthropic, anthropic_message
from tests.fakes.openai_upstream import FakeOpenAI, JsonReply, SseReply, completion, stream_chunks
from tests.harness import RunningVdm, running_vdm

SERVED_BY = "x-vdm-served-by"


@pytest.fixture
def base_env(fake: FakeOpenAI, other: FakeOpenAI, ant: FakeAnthropic) -> dict[str, str]:
    """openai (the primary), other (OpenAI format) and anthropic (Anthropic format), no
    retries, so every failure is the first attempt's."""
    return {
        "OPENAI_API_KEY": "sk-openai-1111",
        "OPENAI_BASE_URL": fake.base_url,
        "OTHER_API_KEY": "sk-other-2222",
        "OTHER_BASE_URL": other.base_url,
        "ANTHROPIC_API_KEY": "sk-ant-3333",
        "ANTHROPIC_BASE_URL": ant.base_url,
        "VDM_DEFAULT_PROVIDER": "openai",
        "MAX_RETRIES": "0",
    }


@pytest.fixture
def vdm(base_env: dict[str, str]) -> Iterator[RunningVdm]:
    env = {
        **base_env,
        # A list alias: the primary, then its failovers in order.
        "OPENAI_ALIAS_FAST": "model-a, other:model-b, anthropic:claude-haiku-4-5",
        "OPENAI_ALIAS_SOLO": "model-solo",
        # A [failover] entry keyed by an alias, and a long-context target for every model.
        "VDM_FAILOVER_SOLO": "other:model-solo-b",
        "VDM_LONG_CONTEXT": "other:model-long",
    }
    with running_vdm(env) as server:
        yield server


def _hello(model: str = "fast", **kw: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}], **kw}


def _post(vdm: RunningVdm, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{vdm.url}/v1/messages", json=body, timeout=10)


def _log_lines(caplog: pytest.LogCaptureFixture, count: int = 1) -> list[str]:
    """The request log lines, once `count` are there (written when the request ends)."""
    deadline = time.monotonic() + 5
    lines: list[str] = []
    while len(lines) < count and time.monotonic() < deadline:
        time.sleep(0.01)
        lines = [
            r.getMessage()
            for r in caplog.records
            if r.name == "vdm.requests"
            and r.levelno == logging.INFO
            and r.getMessage().startswith("req_vdm_")
        ]
    return lines


def test_a_429_fails_over_to_the_next_target(
    vdm: RunningVdm, fake: FakeOpenAI, other: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vdm.requests")
    fake.enqueue(faults.rate_limited(retry_after="30"))
    other.enqueue(JsonReply(completion("from other", prompt_tokens=21, completion_tokens=7)))
    response = _post(vdm, _hello())
    assert response.status_code == 200, response.text
    assert response.headers[SERVED_BY] == "other:model-b"
    assert response.json()["content"][0]["text"] == "from other"
    assert fake.requests[-1].json["model"] == "model-a"
    assert other.requests[-1].json["model"] == "model-b"
    [line] = _log_lines(caplog)
    assert "fast -> openai:model-a failed (429) -> other:model-b ok" in line
    assert "input=21" in line and "output=7" in line  # the usage of the target that served


def test_a_stream_fails_over_across_dialects(
    vdm: RunningVdm, fake: FakeOpenAI, other: FakeOpenAI, ant: FakeAnthropic
) -> None:
    """openai 503, other 529, then the Anthropic-format provider relays its stream as is."""
    fake.enqueue(faults.status(503))
    other.enqueue(faults.status(529))
    with anthropic.Anthropic(base_url=vdm.url, api_key="sk-client", max_retries=0) as client:
        with client.messages.stream(**_hello()) as stream:
            text = "".join(stream.text_stream)
            served = stream.response.headers[SERVED_BY]
    assert served == "anthropic:claude-haiku-4-5"
    assert text  # the fake Anthropic's default answer
    assert ant.requests[-1].json["model"] == "claude-haiku-4-5"
    assert (fake.request_count, other.request_count, ant.request_count) == (1, 1, 1)


def test_a_passthrough_primary_fails_over_to_a_translated_target(
    base_env: dict[str, str], other: FakeOpenAI, ant: FakeAnthropic
) -> None:
    env = {**base_env, "ANTHROPIC_ALIAS_SMART": "claude-sonnet-4-5,other:model-b"}
    ant.enqueue(faults.status(529, dialect="anthropic"))
    other.enqueue(SseReply(stream_chunks("translated after all", pieces=3)))
    with running_vdm(env) as server:
        with httpx.stream(
            "POST", f"{server.url}/v1/messages", json=_hello("smart", stream=True), timeout=10
        ) as response:
            raw = response.read().decode()
    assert response.status_code == 200
    assert response.headers[SERVED_BY] == "other:model-b"
    assert "translated after all" in "".join(
        json.loads(line[6:])["delta"].get("text", "")
        for line in raw.splitlines()
        if line.startswith("data: ") and "text_delta" in line
    )
    assert raw.rstrip().endswith('data: {"type":"message_stop"}')


def test_a_stall_before_the_first_byte_fails_over(
    base_env: dict[str, str], fake: FakeOpenAI, other: FakeOpenAI
) -> None:
    env = {**base_env, "OPENAI_ALIAS_FAST": "model-a,other:model-b", "FIRST_BYTE_TIMEOUT": "0.5"}
    fake.enqueue(faults.stall_before_headers(10))
    other.enqueue(JsonReply(completion("patient enough")))
    with running_vdm(env) as server:
        started = time.monotonic()
        response = _post(server, _hello())
        elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert response.headers[SERVED_BY] == "other:model-b"
    assert elapsed < 5


def test_a_bad_request_is_not_failed_over(
    vdm: RunningVdm, fake: FakeOpenAI, other: FakeOpenAI
) -> None:
    fake.enqueue(faults.status(400))
    response = _post(vdm, _hello())
    assert response.status_code == 400
    assert response.headers[SERVED_BY] == "openai:model-a"  # the error says who answered it
    assert other.request_count == 0


def test_every_target_failing_gives_the_last_error(
    vdm: RunningVdm, fake: FakeOpenAI, other: FakeOpenAI, ant: FakeAnthropic
) -> None:
    fake.enqueue(faults.status(503))
    other.enqueue(faults.status(502))
    ant.enqueue(faults.status(529, dialect="anthropic"))
    response = _post(vdm, _hello())
    assert response.status_code == 529
    assert response.json()["error"]["type"] == "overloaded_error"
    assert response.headers[SERVED_BY] == "anthropic:claude-haiku-4-5"
    assert (fake.request_count, other.request_count, ant.request_count) == (1, 1, 1)


def test_no_failover_once_the_stream_started(
    vdm: RunningVdm, fake: FakeOpenAI, other: FakeOpenAI
) -> None:
    fake.enqueue(faults.drop_mid_stream(after=2))
    with httpx.stream(
        "POST", f"{vdm.url}/v1/messages", json=_hello(stream=True), timeout=10
    ) as response:
        raw = response.read().decode()
    assert response.headers[SERVED_BY] == "openai:model-a"
    assert "event: error" in raw and "message_stop" not in raw
    assert other.request_count == 0


def test_a_failover_table_entry_keyed_by_alias(
    vdm: RunningVdm, fake: FakeOpenAI, other: FakeOpenAI
) -> None:
    fake.enqueue(faults.status(500))
    response = _post(vdm, _hello("solo"))
    assert response.status_code == 200, response.text
    assert response.headers[SERVED_BY] == "other:model-solo-b"
    assert other.requests[-1].json["model"] == "model-solo-b"


def test_a_context_overflow_goes_to_the_long_context_target(
    vdm: RunningVdm, fake: FakeOpenAI, other: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vdm.requests")
    message = (
        "This model's maximum context length is 128000 tokens. However, your messages "
        "resulted in 130412 tokens. Please reduce the length of the messages."
    )
    fake.enqueue(JsonReply(faults.error_body(400, message), status=400))
    other.enqueue(JsonReply(completion("I have room")))
    response = _post(vdm, _hello("openai:gpt-4o"))
    assert response.status_code == 200, response.text
    assert response.headers[SERVED_BY] == "other:model-long"
    assert other.requests[-1].json["model"] == "model-long"
    [line] = _log_lines(caplog)
    assert "openai:gpt-4o -> openai:gpt-4o failed (400) -> other:model-long ok" in line


def test_a_context_overflow_without_long_context_target_is_reported(
    base_env: dict[str, str], fake: FakeOpenAI, other: FakeOpenAI
) -> None:
    env = {**base_env, "OPENAI_ALIAS_FAST": "model-a,other:model-b"}
    message = "This model's maximum context length is 8192 tokens; you sent 9000 tokens"
    fake.enqueue(JsonReply(faults.error_body(400, message), status=400))
    with running_vdm(env) as server:
        response = _post(server, _hello())
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("prompt is too long")
    assert other.request_count == 0  # a failover target is no bigger: compacting is the fix


def test_answers_without_failover_name_their_route(vdm: RunningVdm, fake: FakeOpenAI) -> None:
    response = _post(vdm, _hello("openai:gpt-4o"))
    assert response.status_code == 200
    assert response.headers[SERVED_BY] == "openai:gpt-4o"
    with httpx.stream(
        "POST", f"{vdm.url}/v1/messages", json=_hello("openai:gpt-4o", stream=True), timeout=10
    ) as streamed:
        streamed.read()
    assert streamed.headers[SERVED_BY] == "openai:gpt-4o"
    counted = httpx.post(
        f"{vdm.url}/v1/messages/count_tokens", json=_hello("openai:gpt-4o"), timeout=10
    )
    assert counted.headers[SERVED_BY] == "openai:gpt-4o"


def test_a_model_name_with_control_characters_cannot_break_the_header(
    vdm: RunningVdm, fake: FakeOpenAI
) -> None:
    response = _post(vdm, _hello("openai:gpt\u00e9-4o\u2028x"))
    assert response.status_code == 200
    assert response.headers[SERVED_BY] == "openai:gpt?-4o?x"


def test_the_anthropic_message_of_the_failover_target_is_relayed(
    base_env: dict[str, str], fake: FakeOpenAI, ant: FakeAnthropic
) -> None:
    env = {**base_env, "OPENAI_ALIAS_FAST": "model-a,anthropic:claude-haiku-4-5"}
    fake.enqueue(faults.status(502))
    ant.enqueue(JsonReply(anthropic_message("straight from Claude", input_tokens=5)))
    with running_vdm(env) as server:
        response = _post(server, _hello())
    assert response.status_code == 200
    assert response.json()["content"][0]["text"] == "straight from Claude"
    assert response.headers[SERVED_BY] == "anthropic:claude-haiku-4-5"
