"""The relay of a forwarded request: the client's body sent to a provider of its own dialect,
the answer relayed as it came, watched on the way.

A provider that speaks the client's dialect gets the client's body (vdm/server/passthrough.py
prepares it for Anthropic, vdm/server/relay.py for OpenAI's dialects) and its answer goes back
untouched but for secrets it quoted back. What differs between dialects is only what the
relay learns from the answer and how a broken stream ends; that is a `Watcher`. The rest is
here, once: a whole answer checked to be of its dialect (else a 502 that says so), a stream
relayed read by read (sent when the upstream has nothing more for the moment, or once
`_MAX_PENDING` reads wait), ended as soon as the answer's last event came, whatever the
upstream does next; a stream that breaks, is cut short, or is cut by the server's shutdown
ends with an error in the client's dialect, never with what looks like a normal end; and the
rest of a complete upstream body is read so that its connection goes back to the pool.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from vdm.config.secrets import StreamRedactor, redact_bytes
from vdm.protocol.errors import VdmError, relayed_headers
from vdm.server.asgi import DRAIN_SECONDS, SSE_HEADERS, Send, send_bytes

if TYPE_CHECKING:
    from vdm.server.exchange import Exchange
    from vdm.server.state import Gateway

log = logging.getLogger("vdm.requests")

#: Send what has been read once this many reads are waiting, even if more is ready.
_MAX_PENDING = 256
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

#: Anthropic usage fields of an answer, and the reasoning tokens within its output tokens.
Usage = tuple[dict[str, int], int]


class Watcher(Protocol):
    """What one dialect's relay learns from the answer (pure: it sees bytes, does no I/O):
    a copy of each stream read goes through `feed`, a whole answer through `whole`."""

    @property
    def usage(self) -> dict[str, int]:
        """Anthropic usage fields, as far as the stream told them."""
        ...

    @property
    def reasoning_tokens(self) -> int:
        """Reasoning tokens within the output tokens, when the provider says."""
        ...

    def feed(self, read: bytes) -> bytes:
        """The read as the client gets it: as it came, or with what vdm must leave out or
        hold back (half an event). May raise a 502 `VdmError` for a read it cannot take."""
        ...

    @property
    def complete(self) -> bool:
        """The answer's last event came: nothing more is read, the client's response ends."""
        ...

    @property
    def ended(self) -> bool:
        """What came is a whole answer: the upstream may stop here (else it is a 502)."""
        ...

    @property
    def upstream_error(self) -> VdmError | None:
        """The error the upstream itself reported in the stream, if it did."""
        ...

    def rest(self) -> bytes:
        """What `feed` held back, sent at the upstream's normal end."""
        ...

    def tail(self, redact: Callable[[VdmError], VdmError]) -> bytes:
        """vdm's own bytes after the upstream's normal end (`[DONE]` when it did not come, the
        end a client acts on after a bare error); `redact` masks secrets in an error's text."""
        ...

    def error_tail(self, exc: VdmError) -> bytes:
        """What ends a started stream with `exc`, in the client's dialect, after what was
        sent: never glued onto half an event."""
        ...

    def whole(self, provider: str, body: bytes) -> Usage | None:
        """Check a whole (non-streaming) answer: a 502 when `body` is not one of the dialect
        (`not_what_it_claims`); its usage, if it says."""
        ...


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


async def end_cut_stream(send: Send, pending: list[bytes], tail: bytes) -> None:
    """End a started stream whose task is being cancelled (the server's shutdown grace period
    ran out, or the client left) with what was ready and `tail`, an error in the client's
    dialect: shielded from the cancellation and bounded in time."""
    pending.append(tail)
    body = b"".join(pending)
    pending.clear()
    with anyio.move_on_after(CUT_SEND_SECONDS, shield=True):
        await send({"type": "http.response.body", "body": body, "more_body": False})


class Draining(Protocol):
    """An upstream stream whose body can be read to its end (`vdm.upstream.client`'s)."""

    def arrived(self) -> bool: ...

    def rest(self, reads: AsyncIterator[bytes], seconds: float) -> Coroutine[Any, Any, None]: ...


async def drain(reads: AsyncIterator[bytes], stream: Draining, gateway: Gateway) -> None:
    """Read the rest of an upstream body whose answer is complete, so that its connection
    goes back to the pool: at once when all of it has arrived (mostly, it came with the
    last event: no timer then, whose set-up was ~3 % of a stream's CPU); else after the
    request, within `DRAIN_SECONDS` (a `[DONE]` that comes after the usage chunk which
    completed the answer), so that neither the client's request nor its slot waits for it,
    and the end of the answer, which ends the request's work, does not cut it."""
    if stream.arrived():
        async for _ in reads:
            pass
        return
    gateway.spawn(stream.rest(reads, DRAIN_SECONDS))


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


class Relay:
    """One forwarded call: `body` posted to the route's provider at `path` (with `headers`),
    its answer relayed whole (`answer`) or read by read (`stream`) while `watcher` watches;
    what it learns goes to the exchange. `rewrite`, when given, turns a whole answer's body
    into the one the client gets (the middleware's response hooks, checked body in)."""

    def __init__(
        self,
        exchange: Exchange,
        path: str,
        body: bytes,
        watcher: Watcher,
        headers: Mapping[str, str] | None = None,
        rewrite: Callable[[bytes], Awaitable[bytes]] | None = None,
    ) -> None:
        self.exchange = exchange
        self.path = path
        self.body = body
        self.watcher = watcher
        self.headers = headers
        self.rewrite = rewrite
        self.own_account = exchange.route.provider.passthrough
        self._pending: list[bytes] = []
        self._send: Send | None = None

    async def answer(self, send: Send) -> None:
        exchange = self.exchange
        body, headers = await exchange.client.post_bytes(
            self.path,
            self.body,
            client_key=exchange.incoming.client_key,
            headers=self.headers,
            call=exchange.call,
            model=exchange.route.model,
        )
        exchange.data_arrived()
        usage = self.watcher.whole(exchange.route.provider.name, body)
        if usage is not None:
            exchange.usage, exchange.reasoning_tokens = usage
        if self.rewrite is not None:
            body = await self.rewrite(body)
        body = redact_bytes(body, exchange.secrets)
        await send_bytes(send, 200, body, answer_headers(headers.items(), self.own_account, False))
        exchange.delivered = True

    async def _flush(self) -> None:
        if self._pending and self._send is not None:
            body = b"".join(self._pending)
            self._pending.clear()
            await self._send({"type": "http.response.body", "body": body, "more_body": True})

    async def stream(self, send: Send) -> None:
        """Relay the upstream's SSE as it comes; a failure after the start, or an end before
        the answer's, is reported in-stream in the client's dialect.

        The answer is complete at its last event (`Watcher.complete`): the client's response
        ends there, whatever the upstream does next (pause, close, or nothing), and the
        exchange counts as answered even if the client then leaves at once."""
        exchange = self.exchange
        watcher = self.watcher
        self._send = send
        # The bytes go out as they came, but for a credential the upstream quoted back.
        redactor = StreamRedactor(exchange.secrets)
        pending = self._pending
        call = exchange.client.stream(
            self.path,
            self.body,
            client_key=exchange.incoming.client_key,
            headers=self.headers,
            on_idle=self._flush,
            call=exchange.call,
            model=exchange.route.model,
        )
        async with call as reads:
            upstream = exchange.call.headers
            headers = answer_headers(
                upstream.items() if upstream is not None else None, self.own_account, True
            )
            exchange.answered()
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            try:
                async for read in reads:
                    exchange.data_arrived()
                    pending.append(redactor.feed(watcher.feed(read)))
                    if watcher.complete:
                        break  # the final events go out with this read
                    if len(pending) >= _MAX_PENDING:
                        await self._flush()
                if not watcher.ended:
                    raise VdmError(502, "upstream stream ended before the response was complete")
                pending.append(redactor.feed(watcher.rest()))
                pending.append(redactor.flush())
                pending.append(watcher.tail(exchange.redacted))
            except anyio.get_cancelled_exc_class():
                # The client left, or the server's grace period ended: say it was cut.
                exchange.usage = watcher.usage
                pending.append(redactor.flush())
                await end_cut_stream(send, pending, tail=watcher.error_tail(SHUTTING_DOWN))
                raise
            except Exception as exc:  # after the 200 the only way to report is in-stream
                if not isinstance(exc, VdmError):
                    log.exception("internal error while relaying a stream")
                    exc = VdmError(500, "internal error in vdm while relaying the stream")
                exc = exchange.redacted(exc)
                exchange.fail(f"error {exc.status} mid-stream", error=exc)
                log.warning("stream failed after it started: %s", exc.message)
                if exchange.hooks is not None:
                    exc = await exchange.reported(exc)
                pending.append(redactor.flush())
                pending.append(watcher.error_tail(exc))
            finally:
                exchange.usage = watcher.usage
                exchange.reasoning_tokens = watcher.reasoning_tokens
            error = watcher.upstream_error
            if error is not None:
                exchange.fail("upstream error mid-stream", error=exchange.redacted(error))
            body = b"".join(pending)
            pending.clear()
            await send({"type": "http.response.body", "body": body, "more_body": False})
            if watcher.ended and exchange.outcome == "ok":
                exchange.delivered = True
                await drain(reads, call, exchange.gateway)
