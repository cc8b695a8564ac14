"""The public middleware API: what a hook sees (`Context`), what it may answer with
(`Answer`), and the hooks themselves (`Middleware`, `BaseMiddleware`).

A middleware is a class made once per scope from its options (`factory(options)`), whose
async hooks vdm calls on each request its scope applies to (docs/middleware.md). Every hook is
optional: a class implements the ones it needs, or inherits `BaseMiddleware`'s no-ops, and
vdm calls only those a class defines itself, so an unused hook costs nothing. Context is
passed explicitly to each hook, never through a global (mitmproxy's addons, minus its global
`ctx`); it is a read-only view of the request, with a `scratch` dict the hooks of one request
share.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.errors import VdmError
from vdm.protocol.events import Event

#: The hooks, in the order a request meets them.
HOOKS = ("on_request", "on_upstream_headers", "on_event", "on_response", "on_error")


@dataclass(frozen=True, slots=True)
class Context:
    """What a hook may know of the request it runs for (read only, but `scratch`).

    On failover the request moves to another route: hooks then see a new context for it
    (another `provider` and `model`), with the same `scratch`."""

    #: The configured provider serving the request (`openai`, `groq`, …).
    provider: str
    #: The model sent to the provider (after alias resolution).
    model: str
    #: The alias the client named (`fast`, `openai:fast`), normalised; None otherwise.
    alias: str | None
    #: The model name the client sent, as it sent it.
    requested_model: str
    #: The client's dialect: "anthropic", "openai" (Chat Completions) or "responses".
    dialect: str
    #: The dialect spoken to the provider (its backend: openai, responses, gemini, anthropic).
    api_format: str
    #: vdm's id of the request (its `request-id` header and log line).
    request_id: str
    #: The client asked for a stream.
    stream: bool
    #: The client's body goes to the provider as it is (same dialect): see docs/middleware.md
    #: for the hooks that run then.
    forwarded: bool
    #: Free for the hooks of this request: what one hook learns, a later one may read.
    scratch: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Answer:
    """A request hook's own answer: vdm sends it to the client in the client's dialect
    (streamed if a stream was asked for) and calls no provider.

    `content` holds Anthropic content blocks (`{"type": "text", "text": …}`, `tool_use`
    blocks, …); `usage` Anthropic usage fields (zero tokens by default)."""

    content: tuple[Mapping[str, Any], ...]
    stop_reason: str = "end_turn"
    stop_sequence: str | None = None
    usage: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def text(cls, text: str, stop_reason: str = "end_turn") -> Answer:
        """An answer of one text block."""
        return cls(({"type": "text", "text": text},), stop_reason)


class Middleware(Protocol):
    """The hooks of a middleware, in the order a request meets them. A class may define any
    subset of them (vdm calls only those it defines; `BaseMiddleware` has no-ops for all).

    - `on_request(ctx, request)`: before the request is encoded for the provider. Return a
      new `MessagesRequest` (`request.model_copy(update=…)`; never change `request` in place)
      to rewrite it, an `Answer` to answer it without calling the provider, or None to leave
      it. Raise `VdmError` to refuse it with that status.
    - `on_upstream_headers(ctx, headers)`: the extra headers sent with the call, changed in
      place (the provider's configured headers and its credentials are set after them).
    - `on_event(ctx, event)`: each canonical stream event, in order; return the events that
      replace it (`(event,)` to keep it, `()` to drop it). Keep the stream's grammar.
    - `on_response(ctx, message)`: a whole (non-streamed) answer, an Anthropic message;
      return it, changed or not.
    - `on_error(ctx, error)`: an error about to be sent to the client; return the one to
      send.
    """

    async def on_request(
        self, ctx: Context, request: MessagesRequest
    ) -> MessagesRequest | Answer | None: ...

    async def on_upstream_headers(self, ctx: Context, headers: dict[str, str]) -> None: ...

    async def on_event(self, ctx: Context, event: Event) -> Iterable[Event]: ...

    async def on_response(self, ctx: Context, message: dict[str, Any]) -> dict[str, Any]: ...

    async def on_error(self, ctx: Context, error: VdmError) -> VdmError: ...


class BaseMiddleware:
    """No-op hooks to inherit from: override the ones you need (vdm skips the others).

    vdm makes one instance per scope with the options of the middleware's table in TOML
    (`self.options`); a subclass checks them in `__init__` and raises `ValueError` naming
    the problem: a configuration error that names the scope and its file."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options: Mapping[str, Any] = dict(options or {})

    async def on_request(
        self, ctx: Context, request: MessagesRequest
    ) -> MessagesRequest | Answer | None:
        return None

    async def on_upstream_headers(self, ctx: Context, headers: dict[str, str]) -> None:
        return None

    async def on_event(self, ctx: Context, event: Event) -> Iterable[Event]:
        return (event,)

    async def on_response(self, ctx: Context, message: dict[str, Any]) -> dict[str, Any]:
        return message

    async def on_error(self, ctx: Context, error: VdmError) -> VdmError:
        return error


def defines(middleware: object, hook: str) -> bool:
    """Whether `middleware` has `hook` of its own (not `BaseMiddleware`'s no-op)."""
    found = getattr(type(middleware), hook, None)
    return callable(found) and found is not getattr(BaseMiddleware, hook)
