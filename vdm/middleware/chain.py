"""One scope's ordered chain of middleware, and how its hooks run.

Every hook runs in the chain's order (the order of `enabled`), for requests and answers
alike, as mitmproxy runs its addons. Each hook kind keeps only the middleware that define it
(`defines`), so the request path asks one question per kind: is there any? A request hook
that answers stops the chain there. A hook that raises `VdmError` refuses the request with it;
any other exception is a bug of the middleware's: logged, and a 500 that names it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from vdm.middleware.api import Answer, Context, defines
from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.errors import VdmError
from vdm.protocol.events import Event

log = logging.getLogger("vdm.middleware")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Requested:
    """What the request hooks made of a request: the request to send (`changed` when a hook
    returned one), or the `answer` a hook gave instead (`by`: its name)."""

    request: MessagesRequest
    changed: bool = False
    answer: Answer | None = None
    by: str | None = None


def _bound(entries: Sequence[tuple[str, object]], hook: str) -> tuple[tuple[str, Any], ...]:
    return tuple((name, getattr(m, hook)) for name, m in entries if defines(m, hook))


class Chain:
    """The middleware of one scope, in order: `(name, instance)` pairs."""

    __slots__ = ("names", "requests", "headers", "events", "responses", "errors")

    def __init__(self, entries: Sequence[tuple[str, object]]) -> None:
        self.names = tuple(name for name, _ in entries)
        self.requests = _bound(entries, "on_request")
        self.headers = _bound(entries, "on_upstream_headers")
        self.events = _bound(entries, "on_event")
        self.responses = _bound(entries, "on_response")
        self.errors = _bound(entries, "on_error")

    def __repr__(self) -> str:
        return f"Chain({', '.join(self.names)})"

    async def on_request(self, ctx: Context, request: MessagesRequest) -> Requested:
        changed = False
        for name, hook in self.requests:
            result = await _call(name, "on_request", hook(ctx, request))
            if isinstance(result, Answer):
                return Requested(request, changed, result, name)
            if isinstance(result, MessagesRequest):
                request, changed = result, True
            elif result is not None:
                raise _broken(name, "on_request", f"returned a {type(result).__name__}")
        return Requested(request, changed)

    async def on_upstream_headers(self, ctx: Context, headers: dict[str, str]) -> None:
        for name, hook in self.headers:
            await _call(name, "on_upstream_headers", hook(ctx, headers))
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
                raise _broken(name, "on_upstream_headers", "set a header that is not a str")

    async def on_events(self, ctx: Context, events: Iterable[Event]) -> list[Event]:
        """`events` through every event hook, each hook over the previous one's output."""
        current = list(events)
        for name, hook in self.events:
            out: list[Event] = []
            for event in current:
                replaced = await _call(name, "on_event", hook(ctx, event))
                try:
                    out.extend(replaced)
                except TypeError:
                    kind = type(replaced).__name__
                    raise _broken(name, "on_event", f"returned a {kind}") from None
            current = out
        return current

    async def on_response(self, ctx: Context, message: dict[str, Any]) -> dict[str, Any]:
        for name, hook in self.responses:
            message = await _call(name, "on_response", hook(ctx, message))
            if not isinstance(message, dict):
                raise _broken(name, "on_response", f"returned a {type(message).__name__}")
        return message

    async def on_error(self, ctx: Context, error: VdmError) -> VdmError:
        """The error the client gets. A hook that fails here is logged and passed over: the
        client still gets an error, the one it would have had."""
        for name, hook in self.errors:
            try:
                found = await hook(ctx, error)
            except Exception:
                log.exception("middleware %r failed in on_error; its error is ignored", name)
                continue
            if isinstance(found, VdmError):
                error = found
            else:
                log.error("middleware %r on_error returned a %s", name, type(found).__name__)
        return error


async def _call(name: str, hook: str, pending: Awaitable[T]) -> T:
    try:
        return await pending
    except VdmError:
        raise
    except Exception as exc:
        log.exception("middleware %r failed in %s", name, hook)
        raise _broken(name, hook, f"{type(exc).__name__}: {str(exc)[:200]}") from None


def _broken(name: str, hook: str, problem: str) -> VdmError:
    """The 500 for a middleware's own failure, naming it (never the request's content)."""
    return VdmError(500, f"middleware {name!r} failed in {hook}: {problem}")


class Hooks:
    """A chain bound to one request's `Context`: what the server calls, asking first whether
    any hook of a kind applies (`requests`, `headers`, `events`, `responses`, `errors`)."""

    __slots__ = ("chain", "context")

    def __init__(self, chain: Chain, context: Context) -> None:
        self.chain = chain
        self.context = context

    @property
    def requests(self) -> bool:
        return bool(self.chain.requests)

    @property
    def headers(self) -> bool:
        return bool(self.chain.headers)

    @property
    def events(self) -> bool:
        return bool(self.chain.events)

    @property
    def responses(self) -> bool:
        return bool(self.chain.responses)

    @property
    def errors(self) -> bool:
        return bool(self.chain.errors)

    async def on_request(self, request: MessagesRequest) -> Requested:
        return await self.chain.on_request(self.context, request)

    async def on_upstream_headers(self, headers: dict[str, str]) -> None:
        await self.chain.on_upstream_headers(self.context, headers)

    async def on_events(self, events: Iterable[Event]) -> list[Event]:
        return await self.chain.on_events(self.context, events)

    async def on_response(self, message: dict[str, Any]) -> dict[str, Any]:
        return await self.chain.on_response(self.context, message)

    async def on_error(self, error: VdmError) -> VdmError:
        return await self.chain.on_error(self.context, error)
