"""Anthropic-format providers: the client's request forwarded as it is, the answer relayed
byte for byte.

The request body changes only in `model` (when an alias or prefix renamed it); unknown fields
and values, `cache_control`, thinking blocks and their signatures all go through: vdm reads
only what routing needs (vdm/protocol/anthropic_head.py). Every `anthropic-*` request header
is forwarded, with `user-agent` and `x-stainless-*`. A stream is relayed read by read, never
re-framed, while a copy is watched for usage (vdm/protocol/anthropic_observe.py); a
non-streaming answer is sent back untouched, and so is an error (vdm/protocol/errors.py).
The upstream's `request-id` goes back with the answer, and its rate-limit headers only when
the key was the client's own (`!PASSTHRU`).

Byte for byte does not mean blindly: a non-streaming answer that is not an Anthropic message
(not JSON, cut short, an HTML page, another shape) is a 502 that says so, never a 200; a
stream that breaks (dropped, garbled, stalled, or cut by the server's shutdown) ends with an
Anthropic `error` event, never with what looks like a normal end.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from vdm.config.secrets import StreamRedactor, redact_bytes
from vdm.protocol.anthropic import ANTHROPIC_VERSION
from vdm.protocol.anthropic_head import Head
from vdm.protocol.anthropic_observe import AnthropicStreamObserver, usage_of
from vdm.protocol.codec import Target
from vdm.protocol.errors import VdmError, anthropic_error_event, relayed_headers
from vdm.protocol.sse import quote_start
from vdm.server.asgi import DRAIN_SECONDS, SSE_HEADERS, Incoming, Send, send_bytes
from vdm.upstream.backends.anthropic import COUNT_TOKENS_PATH, MESSAGES_PATH, fit_body
from vdm.upstream.client import Call, UpstreamClient

if TYPE_CHECKING:
    from vdm.server.exchange import Exchange

log = logging.getLogger("vdm.requests")

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
#: Send what has been read once this many reads are waiting, even if more is ready.
_MAX_PENDING = 256
#: The response header naming the route that served the request (`provider:model`).
SERVED_BY = b"x-vdm-served-by"
#: How long the last event of a stream cut by cancellation may take to send.
CUT_SEND_SECONDS = 1.0
#: The error that ends a stream the server cut (its shutdown grace period ran out).
SHUTTING_DOWN = VdmError(529, "vdm is shutting down", error_type="overloaded_error")
#: Each dialect's name in "answered HTTP 200 with a body that is not …".
_DIALECTS = {
    "openai": "an OpenAI Chat Completions response",
    "responses": "an OpenAI Responses response",
    "gemini": "a Gemini generateContent response",
    "anthropic": "an Anthropic message",
}


def header_value(text: str) -> bytes:
    """`text` as a header value: printable ASCII only (a model name comes from the client,
    and a control character would break the response's head)."""
    return "".join(c if " " <= c <= "~" else "?" for c in text).encode("ascii")


def not_what_it_claims(
    provider: str, dialect: str, problem: Exception | str, *, stream: bool = False
) -> VdmError:
    """A 502 for an upstream answer that is not what it claims: valid HTTP 200 whose body is
    not the dialect's (a proxy's page, another API's body, a cut-short one). `unavailable`:
    another provider may answer (failover)."""
    if isinstance(problem, Exception):
        problem = f"{type(problem).__name__}: {str(problem)[:200]}"
    what = _DIALECTS.get(dialect, f"a {dialect} response")
    if stream:
        text = f"{provider} sent a stream event that is not part of {what} ({problem})"
    else:
        text = f"{provider} answered HTTP 200 with a body that is not {what} ({problem})"
    return VdmError(502, text, unavailable=True)


def _message_of(provider: str, body: bytes) -> dict[str, Any]:
    """The Anthropic message an Anthropic-format upstream answered; a 502 when the body is
    not one (not JSON, truncated, an HTML page, an object of another `type`)."""
    try:
        data = json.loads(body)
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


async def end_cut_stream(
    send: Send, pending: list[bytes], partial: bytes = b"", tail: bytes | None = None
) -> None:
    """End a started stream whose task is being cancelled (the server's shutdown grace period
    ran out, or the client left) with what was ready and an error (`tail`, in the client's
    dialect; an Anthropic `error` event by default): shielded from the
    cancellation and bounded in time. `partial` is the last upstream read, when it may end
    mid-event (the event is then closed so the error is read as one)."""
    if partial and not partial.endswith((b"\n\n", b"\r\n\r\n")):
        pending.append(b"\n\n")
    pending.append(anthropic_error_event(SHUTTING_DOWN) if tail is None else tail)
    body = b"".join(pending)
    pending.clear()
    with anyio.move_on_after(CUT_SEND_SECONDS, shield=True):
        await send({"type": "http.response.body", "body": body, "more_body": False})


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
    effort to any model it takes for an Opus. Everything else goes through untouched.
    """
    foreign = any(mark in body for mark in _FOREIGN_MARKS)
    renamed = model != requested
    if not renamed and not foreign:
        return body
    if data is None:
        data = json.loads(body)
        assert isinstance(data, dict)
    data["model"] = model
    fit_body(data, target if renamed else None)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def answer_headers(
    upstream: Iterable[tuple[str, str]] | None, own_account: bool, stream: bool
) -> list[tuple[bytes, bytes]]:
    """The headers of a relayed answer: the upstream's `relayed_headers` (`request-id`, and
    with the client's own key its rate limits), under vdm's SSE headers for a stream or the
    upstream's `content-type` (JSON by default) otherwise."""
    relayed = relayed_headers(upstream or (), own_account=own_account)
    if stream:
        return [*SSE_HEADERS, *(h for h in relayed if h[0] != b"content-type")]
    if not any(name == b"content-type" for name, _ in relayed):
        relayed.insert(0, (b"content-type", b"application/json"))
    return relayed


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
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("input_tokens"), int):
        raise not_what_it_claims(client.provider.name, "anthropic", "no input_tokens")
    return body, answer_headers(headers.items(), client.provider.passthrough, False)


class Passthrough:
    """One request to an Anthropic-format provider; what it learns goes to its exchange."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        incoming, head = exchange.incoming, exchange.head
        self.data = with_model(
            incoming.body, head.model, exchange.route.model, head.data, exchange.target
        )
        self.headers = forwarded_headers(incoming.headers)
        self.own_account = exchange.route.provider.passthrough
        self._pending: list[bytes] = []
        self._send: Send | None = None

    async def answer(self, send: Send, _: TaskGroup) -> None:
        exchange = self.exchange
        body, headers = await exchange.client.post_bytes(
            MESSAGES_PATH,
            self.data,
            client_key=exchange.incoming.client_key,
            headers=self.headers,
            call=exchange.call,
            model=exchange.route.model,
        )
        exchange.data_arrived()
        message = _message_of(exchange.route.provider.name, body)
        try:
            exchange.usage = usage_of(message)
        except (ValueError, AttributeError, TypeError):
            pass
        body = redact_bytes(body, exchange.secrets)
        await send_bytes(send, 200, body, answer_headers(headers.items(), self.own_account, False))
        exchange.delivered = True

    async def _flush(self) -> None:
        if self._pending and self._send is not None:
            body = b"".join(self._pending)
            self._pending.clear()
            await self._send({"type": "http.response.body", "body": body, "more_body": True})

    async def stream(self, send: Send, _: TaskGroup) -> None:
        """Relay the upstream's SSE bytes as they come; a failure after the start is an SSE
        `error` event, and a stream that ends without `message_stop` is reported the same way.

        The answer is complete at `message_stop`: the client's response ends there, whatever
        the upstream does next (pause, close, or nothing), and the exchange counts as
        answered even if the client then leaves at once."""
        exchange = self.exchange
        self._send = send
        observer = AnthropicStreamObserver()
        # The bytes go out as they came, but for a credential the upstream quoted back.
        redactor = StreamRedactor(exchange.secrets)
        pending = self._pending
        last = b""
        async with exchange.client.stream(
            MESSAGES_PATH,
            self.data,
            client_key=exchange.incoming.client_key,
            headers=self.headers,
            on_idle=self._flush,
            call=exchange.call,
            model=exchange.route.model,
        ) as reads:
            upstream = exchange.call.headers
            headers = answer_headers(
                upstream.items() if upstream is not None else None, self.own_account, True
            )
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            try:
                async for read in reads:
                    exchange.data_arrived()
                    pending.append(redactor.feed(read))
                    observer.feed(read)
                    last = read
                    if observer.ended_cleanly:
                        break  # the final events go out with this read
                    if len(pending) >= _MAX_PENDING:
                        await self._flush()
                pending.append(redactor.flush())
                if not observer.ended_cleanly:
                    raise VdmError(502, "upstream stream ended before the response was complete")
            except anyio.get_cancelled_exc_class():
                # The client left, or the server's grace period ended: say it was cut.
                exchange.usage = observer.usage
                await end_cut_stream(send, pending, last)
                raise
            except Exception as exc:  # after the 200 the only way to report is in-stream
                if not isinstance(exc, VdmError):
                    log.exception("internal error while relaying a stream")
                    exc = VdmError(500, "internal error in vdm while relaying the stream")
                exc = exchange.redacted(exc)
                exchange.fail(f"error {exc.status} mid-stream", error=exc)
                log.warning("stream failed after it started: %s", exc.message)
                pending.append(redactor.flush())
                if last and not last.endswith((b"\n\n", b"\r\n\r\n")):
                    pending.append(b"\n\n")  # end the cut event so the error is read as one
                pending.append(anthropic_error_event(exc))
            finally:
                exchange.usage = observer.usage
            if observer.error is not None:
                exchange.fail(
                    "upstream error mid-stream",
                    error=VdmError(
                        502, observer.error, error_type=observer.error_type or "api_error"
                    ),
                )
            body = b"".join(pending)
            pending.clear()
            await send({"type": "http.response.body", "body": body, "more_body": False})
            if observer.complete and exchange.outcome == "ok":
                exchange.delivered = True
                # Read the end of the upstream body so its connection goes back to the pool.
                with anyio.move_on_after(DRAIN_SECONDS):
                    async for _rest in reads:
                        pass
