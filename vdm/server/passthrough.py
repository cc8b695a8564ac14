"""Anthropic-format providers: the client's request forwarded as it is, the answer relayed
byte for byte.

The request body changes only in `model` (when an alias or prefix renamed it); unknown fields
and values, `cache_control`, thinking blocks and their signatures all go through: vdm reads
only what routing needs (vdm/protocol/anthropic_head.py). Every `anthropic-*` request header
is forwarded, with `user-agent` and `x-stainless-*`. The answer goes through vdm's one relay
(vdm/server/forward.py): a stream read by read, never re-framed, while a copy is watched for
usage (`AnthropicWatcher`, vdm/protocol/anthropic_observe.py); a non-streaming answer is sent
back untouched, and so is an error (vdm/protocol/errors.py).
The upstream's `request-id` goes back with the answer, and its rate-limit headers only when
the key was the client's own (`!PASSTHRU`).

Byte for byte does not mean blindly: a non-streaming answer that is not an Anthropic message
(not JSON, cut short, an HTML page, another shape) is a 502 that says so, never a 200; a
stream that breaks (dropped, garbled, stalled, or cut by the server's shutdown) ends with an
Anthropic `error` event, never with what looks like a normal end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

from vdm.middleware import Hooks
from vdm.protocol import jsonio
from vdm.protocol.anthropic import ANTHROPIC_VERSION
from vdm.protocol.anthropic_head import Head
from vdm.protocol.anthropic_observe import AnthropicStreamObserver, usage_of
from vdm.protocol.codec import Target
from vdm.protocol.errors import VdmError, anthropic_error_event
from vdm.protocol.sse import quote_start
from vdm.server.asgi import Incoming
from vdm.server.forward import Relay, Usage, answer_headers, not_what_it_claims
from vdm.upstream.backends.anthropic import COUNT_TOKENS_PATH, MESSAGES_PATH, fit_body, fit_output
from vdm.upstream.client import Call, UpstreamClient

if TYPE_CHECKING:
    from vdm.server.exchange import Exchange

#: Request headers forwarded besides `anthropic-*` (an open list: Claude Platform on AWS needs
#: `anthropic-workspace-id`, and new ones come with any release): the client's identity, which
#: a cloud upstream may act on. Credentials, vdm's session header and Claude Code's hints
#: (`x-claude-code-*`, `x-app`) are vdm's to consume, never forwarded.
_FORWARDED_PREFIXES = (b"anthropic-", b"x-stainless-")
_FORWARDED_NAMES = frozenset({b"user-agent"})
#: What a thinking block that Anthropic would reject looks like in the raw body: no signature,
#: or one of vdm's own (`vdm-rc1`, `vdm-rs1:…`, `vdm-g1:…`), as compact or spaced JSON.
_FOREIGN_MARKS = (
    b'"signature":""',
    b'"signature": ""',
    b'"signature":"vdm-',
    b'"signature": "vdm-',
)
#: The response header naming the route that served the request (`provider:model`).
SERVED_BY = b"x-vdm-served-by"


def header_value(text: str) -> bytes:
    """`text` as a header value: printable ASCII only (a model name comes from the client,
    and a control character would break the response's head)."""
    if text.isascii() and text.isprintable():  # nearly always: one C pass, not one per character
        return text.encode("ascii")
    return "".join(c if " " <= c <= "~" else "?" for c in text).encode("ascii")


def _message_of(provider: str, body: bytes) -> dict[str, Any]:
    """The Anthropic message an Anthropic-format upstream answered; a 502 when the body is
    not one (not JSON, truncated, an HTML page, an object of another `type`)."""
    try:
        data = jsonio.loads(body)
    except ValueError:
        start = quote_start(body[:4096].decode("utf-8", "replace").strip(), 60)
        problem = "empty body" if not start else f"not JSON: {start!r}"
        raise not_what_it_claims(provider, "anthropic", problem) from None
    if not isinstance(data, dict) or data.get("type") != "message":
        kind = data.get("type") if isinstance(data, dict) else type(data).__name__
        raise not_what_it_claims(provider, "anthropic", f"type {kind!r}")
    if not isinstance(data.get("content"), list):
        raise not_what_it_claims(provider, "anthropic", "its content is not a list")
    return data


def forwarded_headers(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The client's headers an Anthropic-format upstream gets: every `anthropic-*` (a header
    sent several times, like `anthropic-beta`, joined with commas), `x-stainless-*` and
    `user-agent`; `anthropic-version` defaults to vdm's."""
    found: dict[str, list[str]] = {}
    for name, value in headers:
        name = name.lower()
        if name.startswith(_FORWARDED_PREFIXES) or name in _FORWARDED_NAMES:
            found.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
    forwarded = {name: ",".join(values) for name, values in found.items()}
    forwarded.setdefault("anthropic-version", ANTHROPIC_VERSION)
    return forwarded


def with_model(
    body: bytes,
    requested: str,
    model: str,
    data: dict[str, Any] | None = None,
    target: Target | None = None,
) -> bytes:
    """The body as the provider takes it; the very same bytes when nothing applies. `data` is
    the body already parsed (`Head.data`), changed in place rather than parsed again.

    A thinking block without a signature, or signed by vdm (`vdm-…`), was made by vdm from
    another provider's reasoning (a conversation that changed model on the way); Anthropic
    rejects such blocks, so they are left out, and thinking is turned off for a request whose
    last tool call turn then opens without one. When vdm renamed the model (an alias, a
    prefix), the client may believe it talks to another model than `target`'s: `max_tokens`,
    thinking and effort are fitted to the real one (`fit_body`), as Claude Code sends an
    effort to any model it takes for an Opus. `MAX_TOKENS_LIMIT` holds for every request.
    Everything else goes through untouched.
    """
    foreign = any(mark in body for mark in _FOREIGN_MARKS)
    renamed = model != requested
    limit = target.max_tokens_limit if target is not None else None
    if limit is not None and data is None:
        data = jsonio.loads(body)
    over = limit is not None and isinstance(data, dict) and _above(data.get("max_tokens"), limit)
    if not renamed and not foreign and not over:
        return body
    if data is None:
        data = jsonio.loads(body)
    assert isinstance(data, dict)
    data["model"] = model
    fit_body(data, target if renamed else None)
    if over and not renamed and target is not None:
        fit_output(data, target)
    return jsonio.dumps(data)


def _above(value: Any, limit: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > limit


async def count_tokens(
    client: UpstreamClient, target: Target, incoming: Incoming, head: Head
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The provider's own count of the client's request (fitted to `target` as a request
    would be: the count API refuses what the Messages API refuses), and the headers to
    answer with."""
    model = target.model
    call = Call()
    trace = incoming.trace
    trace.upstream = lambda: call.waited
    try:
        body, headers = await client.post_bytes(
            COUNT_TOKENS_PATH,
            with_model(incoming.body, head.model, model, head.data, target),
            client_key=incoming.client_key,
            headers=forwarded_headers(incoming.headers),
            call=call,
            model=model,
        )
    finally:
        trace.key = call.key
        trace.retries = max(call.attempts - 1, 0)
    try:
        data = jsonio.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("input_tokens"), int):
        raise not_what_it_claims(client.provider.name, "anthropic", "no input_tokens")
    return body, answer_headers(headers.items(), client.provider.passthrough, False)


class AnthropicWatcher:
    """Watches a relayed Anthropic Messages stream (`AnthropicStreamObserver`): usage, the
    end (`message_stop`, or the upstream's own `error` event). The bytes go out as they came,
    never re-framed: a stream that breaks mid-event has that event closed before vdm's
    `error` event, so that the error is read as one."""

    reasoning_tokens = 0  # Anthropic counts thinking within the output tokens, unsplit

    def __init__(self) -> None:
        self.observer = AnthropicStreamObserver()
        #: The last read fed: whether the bytes sent so far end mid-event.
        self.last = b""

    @property
    def usage(self) -> dict[str, int]:
        return self.observer.usage

    def feed(self, read: bytes) -> bytes:
        self.observer.feed(read)
        self.last = read
        return read

    @property
    def complete(self) -> bool:
        return self.observer.ended_cleanly

    @property
    def ended(self) -> bool:
        return self.observer.ended_cleanly

    @property
    def upstream_error(self) -> VdmError | None:
        observer = self.observer
        if observer.error is None:
            return None
        return VdmError(502, observer.error, error_type=observer.error_type or "api_error")

    def rest(self) -> bytes:
        return b""

    def tail(self, redact: Callable[[VdmError], VdmError]) -> bytes:
        return b""

    def error_tail(self, exc: VdmError) -> bytes:
        if self.last and not self.last.endswith((b"\n\n", b"\r\n\r\n")):
            return b"\n\n" + anthropic_error_event(exc)  # end the cut event first
        return anthropic_error_event(exc)

    def whole(self, provider: str, body: bytes) -> Usage | None:
        message = _message_of(provider, body)
        try:
            return usage_of(message), 0
        except (ValueError, AttributeError, TypeError):
            return None


def anthropic_relay(exchange: Exchange) -> Relay:
    """The relay of one request to an Anthropic-format provider: the client's body with its
    model renamed (`with_model`), its headers forwarded (`forwarded_headers`). Middleware
    (docs/middleware.md) may have changed both (`Exchange.prepare`): the body is then the
    request as the hooks left it, encoded again; and a whole answer goes through the response
    hooks (`_responded`). A stream stays byte for byte: event hooks do not run on it."""
    incoming, head = exchange.incoming, exchange.head
    data, body = head.data, incoming.body
    if exchange.rewritten is not None:
        data = exchange.rewritten
        body = jsonio.dumps(data)
    body = with_model(body, head.model, exchange.route.model, data, exchange.target)
    headers = exchange.upstream_headers
    if headers is None:
        headers = forwarded_headers(incoming.headers)
    hooks = exchange.hooks
    rewrite = partial(_responded, hooks) if hooks is not None and hooks.responses else None
    return Relay(exchange, MESSAGES_PATH, body, AnthropicWatcher(), headers, rewrite)


async def _responded(hooks: Hooks, body: bytes) -> bytes:
    """A whole answer's body through the response hooks (the watcher checked it is a
    message), encoded again."""
    message = await hooks.on_response(jsonio.loads(body))
    return jsonio.dumps(message)
