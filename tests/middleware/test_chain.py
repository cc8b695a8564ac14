"""The chain runs hooks in order, stops at an answer, and turns a middleware's bug into a 500
that names it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from vdm.middleware import Answer, BaseMiddleware, Chain, Context
from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.errors import VdmError
from vdm.protocol.events import BlockStop, Event, TextDelta, TextStart

pytestmark = pytest.mark.anyio

CTX = Context(
    provider="openai",
    model="gpt-4o",
    alias=None,
    requested_model="gpt-4o",
    dialect="anthropic",
    api_format="openai",
    request_id="req_1",
    stream=True,
    forwarded=False,
)


def _request(**kw: Any) -> MessagesRequest:
    body = {"model": "gpt-4o", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    return MessagesRequest.model_validate({**body, **kw})


class Tag(BaseMiddleware):
    """Appends its name to the system prompt and to a list in `scratch`."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    async def on_request(self, ctx: Context, request: MessagesRequest) -> MessagesRequest:
        ctx.scratch.setdefault("seen", []).append(self.name)
        return request.model_copy(update={"system": f"{request.system or ''}{self.name}"})

    async def on_event(self, ctx: Context, event: Event) -> Iterable[Event]:
        if isinstance(event, TextDelta):
            return (TextDelta(event.index, event.text + self.name),)
        return (event,)

    async def on_response(self, ctx: Context, message: dict[str, Any]) -> dict[str, Any]:
        return {**message, "trail": message.get("trail", "") + self.name}

    async def on_error(self, ctx: Context, error: VdmError) -> VdmError:
        return VdmError(error.status, error.message + self.name)


class Answers(BaseMiddleware):
    async def on_request(self, ctx: Context, request: MessagesRequest) -> Answer:
        return Answer.text("mine")


class Nothing(BaseMiddleware):
    async def on_request(self, ctx: Context, request: MessagesRequest) -> None:
        return None


async def test_every_hook_runs_in_the_chains_order() -> None:
    chain = Chain([("a", Tag("a")), ("b", Tag("b"))])
    ctx = Context(**{**{f: getattr(CTX, f) for f in CTX.__dataclass_fields__}, "scratch": {}})
    done = await chain.on_request(ctx, _request())
    assert done.changed and done.answer is None
    assert done.request.system == "ab"
    assert ctx.scratch == {"seen": ["a", "b"]}
    events = await chain.on_events(ctx, [TextStart(0), TextDelta(0, "x"), BlockStop(0)])
    assert events == [TextStart(0), TextDelta(0, "xab"), BlockStop(0)]
    assert (await chain.on_response(ctx, {"content": []}))["trail"] == "ab"
    assert (await chain.on_error(ctx, VdmError(502, "e"))).message == "eab"


async def test_an_answer_stops_the_chain() -> None:
    late = Tag("late")
    chain = Chain([("early", Tag("early")), ("answers", Answers()), ("late", late)])
    ctx = Context(**{**{f: getattr(CTX, f) for f in CTX.__dataclass_fields__}, "scratch": {}})
    done = await chain.on_request(ctx, _request())
    assert done.answer == Answer.text("mine") and done.by == "answers"
    assert ctx.scratch["seen"] == ["early"]


async def test_a_hook_returning_none_leaves_the_request_as_it_is() -> None:
    request = _request()
    done = await Chain([("n", Nothing())]).on_request(CTX, request)
    assert done.request is request and not done.changed


async def test_an_event_hook_may_drop_and_add_events() -> None:
    class Split(BaseMiddleware):
        async def on_event(self, ctx: Context, event: Event) -> Iterable[Event]:
            if isinstance(event, TextDelta):
                return [TextDelta(event.index, c) for c in event.text if c != "-"]
            return [event]

    events = await Chain([("s", Split())]).on_events(CTX, [TextDelta(0, "a-b")])
    assert events == [TextDelta(0, "a"), TextDelta(0, "b")]


async def test_a_middleware_that_fails_is_a_500_naming_it(caplog: pytest.LogCaptureFixture) -> None:
    class Crash(BaseMiddleware):
        async def on_request(self, ctx: Context, request: MessagesRequest) -> None:
            raise KeyError("field")

        async def on_event(self, ctx: Context, event: Event) -> Iterable[Event]:
            return None  # type: ignore[return-value]

    chain = Chain([("crash", Crash())])
    with pytest.raises(VdmError) as caught:
        await chain.on_request(CTX, _request())
    assert caught.value.status == 500
    assert caught.value.message == "middleware 'crash' failed in on_request: KeyError: 'field'"
    assert "middleware 'crash' failed in on_request" in caplog.text
    with pytest.raises(VdmError, match="'crash' failed in on_event: returned a NoneType"):
        await chain.on_events(CTX, [TextDelta(0, "x")])


async def test_a_refusal_keeps_its_status() -> None:
    class Refuse(BaseMiddleware):
        async def on_request(self, ctx: Context, request: MessagesRequest) -> None:
            raise VdmError(403, "not here")

    with pytest.raises(VdmError) as caught:
        await Chain([("r", Refuse())]).on_request(CTX, _request())
    assert (caught.value.status, caught.value.message) == (403, "not here")


async def test_a_failing_error_hook_leaves_the_error_as_it_was() -> None:
    class Bad(BaseMiddleware):
        async def on_error(self, ctx: Context, error: VdmError) -> VdmError:
            raise RuntimeError("oops")

    chain = Chain([("bad", Bad()), ("tag", Tag("!"))])
    assert (await chain.on_error(CTX, VdmError(429, "slow down"))).message == "slow down!"


async def test_a_header_hook_must_set_strings() -> None:
    class Wrong(BaseMiddleware):
        async def on_upstream_headers(self, ctx: Context, headers: dict[str, str]) -> None:
            headers["x-n"] = 1  # type: ignore[assignment]

    with pytest.raises(VdmError, match="'wrong' failed in on_upstream_headers"):
        await Chain([("wrong", Wrong())]).on_upstream_headers(CTX, {})
