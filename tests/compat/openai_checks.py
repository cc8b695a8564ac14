"""The client dimension of the compatibility matrix: OpenAI clients through vdm's
`/v1/chat/completions` and `/v1/responses`, against every provider family's strict fake.

A cell is one (client, family) pair; its checks reuse the family's script adapter
(tests/fakes/scripts.py) to answer and to read what reached the provider, exactly as the
Claude Code checks do (tests/compat/checks.py). The client is the official `openai` SDK: what
it parses (typed chunks and events) is what an application built on it sees. Where the
provider speaks the client's dialect (a Chat client and a Chat Completions provider, a
Responses client and a Responses provider), vdm forwards the body with only the model
renamed; anywhere else it translates, and these checks hold either way.

The checks for each client live in tests/compat/chat_client.py and
tests/compat/responses_client.py; this module holds what they share.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import openai

from tests.compat.families import Family
from tests.fakes.openai_upstream import FakeOpenAI, JsonReply, Recorded, Reply
from tests.fakes.scripts import Script, ToolCall, ToolResult

#: The SDK refuses nothing without a timeout, but a hung vdm must fail the check, not CI.
TIMEOUT = 30.0
#: The provider messages the errors checks expect back, word for word.
BAD = "Invalid 'metadata.user_id': string too long. Expected at most 512 characters."
LIMITED = "Rate limit reached for requests per minute (RPM): Limit 60, Used 60, Requested 1."


@dataclass
class ClientStand:
    """One (client, family) cell's test stand: the family's fake, vdm pointed at it, the
    `openai` SDK pointed at vdm."""

    family: Family
    script: Script
    fake: FakeOpenAI
    client: openai.OpenAI

    @property
    def model(self) -> str:
        """What the client asks for (`provider:model`)."""
        return self.family.client_model

    def forwarded(self, dialect: str) -> bool:
        """Whether vdm forwards a `dialect` client's body to this family unchanged."""
        return self.script.dialect == dialect

    def answer(self, responder: Callable[[Recorded], Reply]) -> None:
        """Forget earlier requests; answer the next ones with `responder`."""
        self.fake.clear()
        self.fake.default = responder

    def served(self) -> list[Recorded]:
        """The model calls the fake received since `answer`, oldest first."""
        return [r for r in self.fake.requests if r.method == "POST"]


def with_retry_after(reply: Reply, seconds: str) -> Reply:
    assert isinstance(reply, JsonReply), reply
    return dataclasses.replace(reply, headers={**(reply.headers or {}), "retry-after": seconds})


def check_turn_two(
    s: ClientStand, request: Recorded, name: str, args: dict[str, Any], output: str
) -> None:
    """What a strict provider must have got on turn 2 of a tool loop: the one call, its
    result paired with it, and (where the provider hands out reasoning state) that state
    back unchanged."""
    calls: list[ToolCall] = s.script.tool_calls(request)
    answered: list[ToolResult] = s.script.tool_results(request)
    assert [c.name for c in calls] == [name], calls
    assert json.loads(calls[0].arguments) == args, calls
    assert [r.text for r in answered] == [output], answered
    assert [r.call_id for r in answered] == [c.id for c in calls], (calls, answered)
    if s.family.state:
        issued = s.script.issued[-1:]
        assert issued, "turn 1 handed out no reasoning state"
        assert s.script.reasoning_state(request) == issued


@dataclass(frozen=True)
class ClientCheck:
    id: str
    #: The column heading.
    title: str
    run: Callable[[ClientStand], None]

    @property
    def legend(self) -> str:
        """What the check does, for the document (its docstring, on one line)."""
        return " ".join((self.run.__doc__ or "").split())


@dataclass(frozen=True)
class Client:
    """One OpenAI client of the matrix."""

    id: str
    #: What the document calls it.
    name: str
    #: The dialect vdm forwards unchanged (the Script `dialect` of such a provider).
    dialect: str
    checks: tuple[ClientCheck, ...]
