"""An OpenAI Chat client calling an OpenAI-format provider: the body is forwarded with only its
model renamed (vdm/server/relay.py), the answer relayed and watched for usage. The official
`openai` SDK is the client, a strict fake OpenAI server the upstream."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.fakes.faults import status
from tests.fakes.openai_upstream import FakeOpenAI, JsonReply, SseReply, completion, stream_chunks
from tests.harness import RunningVdm, running_vdm

PROMPT = [{"role": "user", "content": "hi"}]


@pytest.fixture
def vdm(fake: FakeOpenAI) -> Iterator[RunningVdm]:
    env = {
        "OPENAI_API_KEY": "sk-forward-secret-1",
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_ALIAS_FAST": "gpt-4o-mini",
    }
    with running_vdm(env) as server:
        yield server


@pytest.fixture
def client(vdm: RunningVdm) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{vdm.url}/v1", api_key="unused", max_retries=0) as c:
        yield c


def test_the_body_goes_out_as_sent_but_the_model(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.enqueue(JsonReply(completion("forwarded", model="gpt-4o-mini")))
    answer = client.chat.completions.create(
        model="fast",
        messages=PROMPT,
        temperature=0.3,
        logit_bias={"50256": -100},
        extra_body={"vendor_knob": {"x": 1}},
    )
    assert answer.choices[0].message.content == "forwarded"
    sent = fake.last.json
    assert sent["model"] == "gpt-4o-mini"
    # Fields vdm does not translate reach a provider of the client's dialect untouched.
    assert sent["logit_bias"] == {"50256": -100}
    assert sent["vendor_knob"] == {"x": 1}
    assert sent["temperature"] == 0.3


def test_a_stream_is_counted_without_the_client_seeing_the_usage_chunk(
    fake: FakeOpenAI, client: openai.OpenAI, vdm: RunningVdm
) -> None:
    fake.enqueue(SseReply(stream_chunks("one two three", pieces=3, prompt_tokens=21)))
    chunks = list(client.chat.completions.create(model="fast", messages=PROMPT, stream=True))
    # vdm asked for the usage chunk to count tokens; the client did not, and gets none.
    assert fake.last.json["stream_options"] == {"include_usage": True}
    assert all(chunk.choices for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "one two three"
    totals = httpx.get(f"{vdm.url}/metrics/running-totals").json()
    assert totals["total"]["input_tokens"] == 21, totals


def test_a_client_that_asks_for_usage_gets_it(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.enqueue(SseReply(stream_chunks("hey", prompt_tokens=9)))
    chunks = list(
        client.chat.completions.create(
            model="fast", messages=PROMPT, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 9


def test_the_providers_own_error_is_relayed(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    own = {
        "error": {
            "message": "Invalid 'messages[0].content': string too long.",
            "type": "invalid_request_error",
            "param": "messages[0].content",
            "code": "string_above_max_length",
        }
    }
    fake.enqueue(status(400, own, headers={"x-request-id": "req_up_1"}))
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="fast", messages=PROMPT)
    # The provider's own body, as it came: its code and param are what a client matches.
    assert caught.value.body == own["error"]
    assert caught.value.response.headers["x-vdm-served-by"] == "openai:gpt-4o-mini"


def test_a_stream_cut_midway_ends_with_an_error_chunk(
    fake: FakeOpenAI, client: openai.OpenAI
) -> None:
    fake.enqueue(SseReply(stream_chunks("a b c d e f", pieces=6), cut_after=3))
    stream = client.chat.completions.create(model="fast", messages=PROMPT, stream=True)
    with pytest.raises(openai.APIError) as caught:
        for _ in stream:
            pass
    assert "closed the connection" in str(caught.value.message)


def test_n_above_one_is_refused_before_the_provider(
    fake: FakeOpenAI, client: openai.OpenAI
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="fast", messages=PROMPT, n=2)
    assert caught.value.body == {
        "message": "n: only n=1 is supported (got 2)",
        "type": "invalid_request_error",
        "param": "n",
        "code": None,
    }
    assert not fake.requests


def test_bad_json_is_an_openai_shaped_400(vdm: RunningVdm, fake: FakeOpenAI) -> None:
    reply = httpx.post(
        f"{vdm.url}/v1/chat/completions",
        content=b"{not json",
        headers={"content-type": "application/json", "authorization": "Bearer x"},
    )
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error" and "invalid JSON" in error["message"]
    assert not fake.requests
