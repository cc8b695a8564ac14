"""The official `openai` SDK as a client of vdm, against each kind of upstream vdm serves it
from: a fake OpenAI Chat Completions server, a fake Responses server and a fake Anthropic one.

    with stand("anthropic") as s:           # fake + vdm pointed at it + SDK pointed at vdm
        s.fake.default = lambda r: s.script.reply(r, text="hi")
        s.client.chat.completions.create(model=s.model, messages=[...])
        assert s.script.user_texts(s.fake.last) == [...]

Each upstream is configured as a user would (`{P}_API_KEY`, `{P}_BASE_URL`, `{P}_API_FORMAT`)
and scripted through its dialect's adapter (tests/fakes/scripts.py; the Anthropic one is the
compatibility matrix's), so one test body reads and answers all three. Which of them vdm
forwards to and which it translates for depends on the client: a Chat client is forwarded
to the Chat fake, a Responses client to the Responses fake; every other pair is translated.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import openai

from tests.compat.anthropic_script import Anthropic
from tests.fakes.openai_upstream import FakeOpenAI, Recorded
from tests.fakes.scripts import Chat, Responses, Script
from tests.harness import RunningVdm, running_vdm

#: The key vdm is configured with for each upstream; it must never reach a client.
UPSTREAM_KEY = "sk-upstream-secret-5150"
#: The SDK refuses nothing without a timeout, but a hung vdm must fail the test, not CI.
TIMEOUT = 30.0
#: A 1x1 transparent PNG, as a data URL (what an application sends for a local image).
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()
DATA_URL = f"data:image/png;base64,{PNG}"


@dataclass(frozen=True)
class Upstream:
    """One kind of upstream: how vdm is configured for it and what the client asks for."""

    #: `chat`, `responses` or `anthropic` (test ids).
    kind: str
    #: The model string the client sends (`provider:model`).
    model: str
    script: Callable[[], Script]
    #: `{P}_…` settings beyond the key and the base URL, by suffix.
    settings: tuple[tuple[str, str], ...] = ()

    @property
    def prefix(self) -> str:
        return self.model.split(":", 1)[0].upper()

    def env(self, fake: FakeOpenAI, **extra: str) -> dict[str, str]:
        """vdm's whole configuration for this upstream, pointing at `fake`; vdm itself does
        not retry unless `extra` says so."""
        env = {
            f"{self.prefix}_API_KEY": UPSTREAM_KEY,
            f"{self.prefix}_BASE_URL": fake.base_url,
            "MAX_RETRIES": "0",
        }
        env.update({f"{self.prefix}_{k}": v for k, v in self.settings})
        env.update(extra)
        return env


UPSTREAMS: tuple[Upstream, ...] = (
    # gpt-4o: an OpenAI-format provider sends it to its Chat Completions backend.
    Upstream("chat", "openai:gpt-4o", lambda: Chat("openai")),
    Upstream(
        "responses", "openai:gpt-5.6-terra", Responses, settings=(("API_FORMAT", "responses"),)
    ),
    Upstream("anthropic", "anthropic:claude-sonnet-4-5", Anthropic),
)
KINDS = [u.kind for u in UPSTREAMS]


def upstream(kind: str) -> Upstream:
    return next(u for u in UPSTREAMS if u.kind == kind)


@dataclass
class Stand:
    """A fake upstream, vdm pointed at it, and the SDK pointed at vdm."""

    upstream: Upstream
    script: Script
    fake: FakeOpenAI
    vdm: RunningVdm
    client: openai.OpenAI

    @property
    def kind(self) -> str:
        return self.upstream.kind

    @property
    def model(self) -> str:
        return self.upstream.model

    def answer(self, responder: Callable[[Recorded], Any]) -> None:
        """Answer every next model call with `responder(request)`."""
        self.fake.default = responder

    def calls(self) -> list[Recorded]:
        """The model calls the fake received, oldest first."""
        return [r for r in self.fake.requests if r.method == "POST"]


@contextmanager
def stand(kind: str, **env: str) -> Iterator[Stand]:
    """A `Stand` for the upstream `kind`; `env` adds to (or overrides) vdm's settings."""
    up = upstream(kind)
    script = up.script()
    with script.server() as fake, running_vdm(up.env(fake, **env)) as vdm:
        client = openai.OpenAI(
            base_url=f"{vdm.url}/v1", api_key="sk-client", max_retries=0, timeout=TIMEOUT
        )
        with client:
            yield Stand(up, script, fake, vdm, client)


class _Answer(Protocol):
    """An HTTP response (the SDK's own httpx, or httpx)."""

    def json(self) -> Any: ...


def openai_error(response: _Answer) -> dict[str, Any]:
    """The `error` object of an error response, checked to be in OpenAI's shape
    (`{"error": {"message": str, "type": str, …}}`), which the SDK reads."""
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert isinstance(error.get("message"), str) and error["message"], error
    assert isinstance(error.get("type"), str) and error["type"], error
    return error


def upstream_images(kind: str, request: Recorded) -> list[str]:
    """The images a request carries in its dialect's own form, each as a data URL (Chat:
    `image_url` parts; Responses: `input_image` parts; Anthropic: base64 `image` blocks)."""
    body = request.json
    found: list[str] = []
    if kind == "chat":
        for message in body.get("messages", []):
            for part in _parts(message.get("content")):
                if part.get("type") == "image_url":
                    found.append(str(part["image_url"]["url"]))
    elif kind == "responses":
        for item in body.get("input", []):
            for part in _parts(item.get("content")):
                if part.get("type") == "input_image":
                    found.append(str(part["image_url"]))
    else:
        for message in body.get("messages", []):
            for block in _parts(message.get("content")):
                if block.get("type") == "image":
                    source = block["source"]
                    assert source["type"] == "base64", source
                    found.append(f"data:{source['media_type']};base64,{source['data']}")
    return found


def _parts(content: Any) -> list[dict[str, Any]]:
    return [p for p in content if isinstance(p, dict)] if isinstance(content, list) else []


def sse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """`(event, data)` of each event of a Responses SSE body (the type from the data)."""
    out: list[tuple[str, dict[str, Any]]] = []
    for block in raw.decode().split("\n\n"):
        data = [line[5:].strip() for line in block.splitlines() if line.startswith("data:")]
        if data:
            payload = json.loads("\n".join(data))
            out.append((str(payload.get("type")), payload))
    return out
