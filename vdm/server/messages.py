"""`POST /v1/messages` and `POST /v1/messages/count_tokens`.

Each request is an `Exchange`. Only its head (model, stream) is read before routing
(vdm/protocol/anthropic_head.py): for an Anthropic-format provider
vdm/server/passthrough.py forwards the client's body as it is and vdm/server/forward.py
relays the answer; for any other the request is validated, and the provider's backend
encodes it and decodes the answer.

Every answer names the route that served it in `x-vdm-served-by: provider:model` (JSON, SSE
and errors once routed): with failover (vdm/server/exchange.py) it may not be the first one.
An upstream answer that is not what it claims (valid JSON of the wrong shape) is a 502 that
says so; a stream that fails after it started ends with an Anthropic `error` event, a stream
cut by the server's shutdown included.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import anyio

from vdm.middleware import Answer
from vdm.middleware.answer import events_of, message_of
from vdm.protocol.anthropic import CountTokensRequest
from vdm.protocol.anthropic_head import parse_head, validated
from vdm.protocol.errors import VdmError
from vdm.protocol.reasoning import reasoning_tokens
from vdm.server import passthrough
from vdm.server.asgi import (
    JSON_HEADERS,
    SSE_HEADERS,
    Incoming,
    Message,
    Receive,
    Send,
    run_until_disconnect,
    send_bytes,
    send_json,
)
from vdm.server.exchange import Exchange
from vdm.server.forward import (
    SHUTTING_DOWN,
    Draining,
    drain,
    end_cut_stream,
    not_what_it_claims,
)
from vdm.server.frontend import AnthropicFrontend
from vdm.server.passthrough import SERVED_BY, anthropic_relay, forwarded_headers, header_value
from vdm.server.relay import openai_relay
from vdm.server.state import Gateway
from vdm.upstream.backends import backend, counter, request_headers, select

log = logging.getLogger("vdm.requests")

#: Send translated events once this many are waiting, even if more upstream data is ready.
_MAX_PENDING = 512


#: What a decoder raises on valid JSON of a shape it does not expect.
_SHAPE_ERRORS = (KeyError, TypeError, AttributeError, IndexError, ValueError)
#: The member each dialect's answer must hold, and its JSON type, checked before decoding: a
#: lenient decoder would make an empty message of another API's body. (Gemini may answer
#: without `candidates` when it blocks a prompt: its decoder says so.)
_ANSWER_SHAPES: dict[str, tuple[str, type, bool]] = {
    # dialect: (member, type, required)
    "openai": ("choices", list, True),
    "responses": ("output", list, True),
    "gemini": ("candidates", list, False),
    "anthropic": ("content", list, True),
}


async def create_message(
    gateway: Gateway, incoming: Incoming, receive: Receive, send: Send
) -> None:
    """`POST /v1/messages`: an Anthropic client's request."""
    head = parse_head(incoming.body)
    await serve(Exchange(gateway, incoming, head, AnthropicFrontend(head.data)), receive, send)


async def serve(exchange: Exchange, receive: Receive, send: Send) -> None:
    """Serve one generation request, in its frontend's dialect, to its end."""
    served = _served_send(exchange, send)
    try:
        exchange.resolve()
        work = partial(_serve, exchange, served)
        disconnect = exchange.incoming.disconnect
        if not await run_until_disconnect(receive, work, exchange.gateway.loop, disconnect):
            if not exchange.delivered:
                exchange.fail("client disconnected")
    except VdmError as exc:
        exc = exchange.redacted(exc)
        exchange.fail(f"error {exc.status}", None if exchange.routed else exc.message, exc)
        if exchange.routed and not exchange.responded:
            if exchange.hooks is not None:
                exc = await exchange.reported(exc)
            # With the route that failed in x-vdm-served-by.
            await exchange.frontend.send_error(served, exc, exchange.stream, exchange.forwarded)
            return
        raise
    except Exception:
        exchange.fail("internal error")
        raise
    except BaseException:  # cancelled: the server stopped before the request finished
        exchange.fail("cancelled")
        raise
    finally:
        exchange.finish()


def _served_send(exchange: Exchange, send: Send) -> Send:
    """`send` that marks the exchange as answering (no failover after that) and adds
    `x-vdm-served-by` to the response's headers."""

    async def served(message: Message) -> None:
        if message["type"] == "http.response.start":
            exchange.responded = True
            if exchange.routed:
                header = (SERVED_BY, header_value(exchange.served_by))
                message = {**message, "headers": [*message.get("headers", ()), header]}
        await send(message)

    return served


async def _serve(exchange: Exchange, send: Send) -> None:
    """Call the route, and the next one of its failover chain while it fails before
    answering with an error another provider may not have (`Exchange.fail_over`)."""
    while True:
        try:
            hooks = exchange.hooks
            if hooks is not None:
                # The pass-through's header hooks see the client's headers it forwards.
                anthropic = exchange.forwarded and exchange.frontend.dialect == "anthropic"
                forwarded = anthropic and hooks.headers
                extra = forwarded_headers(exchange.incoming.headers) if forwarded else {}
                answer = await exchange.prepare(extra)
                if answer is not None:
                    await _answered(exchange, send, answer)
                    return
            await _work(exchange, send)()
            return
        except VdmError as exc:
            if not exchange.fail_over(exc):
                raise


async def _answered(exchange: Exchange, send: Send, answer: Answer) -> None:
    """Send a middleware's own answer in the client's dialect; no provider is called."""
    model = exchange.requested_model
    message = message_of(answer, model)
    exchange.usage = dict(message["usage"])
    if exchange.stream:
        encoder = exchange.frontend.stream_encoder(model)
        out = [encoder.start()]
        encoder.encode(events_of(message), out)
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        await send({"type": "http.response.body", "body": b"".join(out), "more_body": False})
    else:
        await send_json(send, 200, exchange.frontend.answer(message, model, 0))
    exchange.delivered = True


def _work(exchange: Exchange, send: Send) -> Callable[[], Awaitable[None]]:
    """The call to the exchange's current route, by its backend and the request's kind."""
    if exchange.forwarded:
        forward = anthropic_relay if exchange.frontend.dialect == "anthropic" else openai_relay
        relay = forward(exchange)
        return partial(relay.stream if exchange.stream else relay.answer, send)
    if exchange.stream:
        return _StreamRelay(exchange, send, exchange.gateway.settings.ping_interval).run
    return partial(_answer, exchange, send)


async def _answer(exchange: Exchange, send: Send) -> None:
    """A non-streaming request: one upstream answer, decoded whole. A rejection the backend
    can recover from (`Exchange.recover`) is retried with the request encoded again."""
    backend, target, request = exchange.backend, exchange.target, exchange.translated
    client = exchange.client
    path = backend.path(exchange.route.provider, target.model, False)
    while True:
        try:
            reply = await client.post_json(
                path,
                backend.encode(request, target),
                client_key=exchange.incoming.client_key,
                headers=request_headers(backend, target, exchange.upstream_headers),
                call=exchange.call,
                model=target.model,
            )
            exchange.data_arrived()
            message = _decoded(exchange, reply)
            break
        except VdmError as exc:
            if not exchange.recover(exc):
                raise
    exchange.usage.update(message["usage"])
    exchange.reasoning_tokens = reasoning_tokens(exchange.backend.name, reply)
    hooks = exchange.hooks
    if hooks is not None and hooks.responses:
        message = await hooks.on_response(message)
    answer = exchange.frontend.answer(message, exchange.requested_model, exchange.reasoning_tokens)
    await send_json(send, 200, answer)
    exchange.delivered = True


def _decoded(exchange: Exchange, reply: Any) -> dict[str, Any]:
    """The Anthropic message of an upstream answer; a 502 naming the provider when the
    answer, valid JSON, is not of its dialect's shape (a proxy's page, another API's body)."""
    backend = exchange.backend
    provider = exchange.route.provider.name
    if not isinstance(reply, dict):
        raise not_what_it_claims(provider, backend.name, f"a JSON {type(reply).__name__}")
    shape = _ANSWER_SHAPES.get(backend.name)
    if shape is not None:
        member, kind, required = shape
        value = reply.get(member)
        if (required or value is not None) and not isinstance(value, kind):
            found = "none" if value is None else f"a JSON {type(value).__name__}"
            raise not_what_it_claims(provider, backend.name, f"{member!r}: {found}")
    try:
        message = backend.decode(reply, exchange.translated, exchange.target)
        if not isinstance(message.get("usage"), dict):
            raise KeyError("usage")
    except _SHAPE_ERRORS as exc:
        raise not_what_it_claims(provider, backend.name, exc) from None
    except VdmError as exc:
        if exc.status != 502 or exc.upstream is not None:
            raise
        # The decoder's own "not a valid answer" (a completion without choices, ...).
        raise not_what_it_claims(provider, backend.name, exc.message) from None
    return message


class _StreamRelay:
    """Relays one upstream stream in the client's dialect: the backend's decoder turns
    provider bytes into canonical events, the frontend's encoder turns those into client
    bytes.

    Errors before the upstream answered propagate as VdmError (a normal JSON error response);
    errors after the stream started end it the client's dialect's way (an Anthropic `error`
    event, a Chat error chunk, `response.failed`). The answer is complete when the decoder is
    `done`: the client's response ends there, whatever the upstream does next.
    """

    def __init__(self, exchange: Exchange, send: Send, interval: float) -> None:
        self.exchange = exchange
        self.decoder = exchange.backend.stream_decoder(exchange.translated, exchange.target)
        self.encoder = exchange.frontend.stream_encoder(exchange.requested_model)
        self.send = send
        self.interval = interval
        self.last_sent = time.monotonic()
        self.closing = False
        self.pending: list[bytes] = []
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pinger: asyncio.Task[None] | None = None
        #: The response started: nothing can be retried any more.
        self.started = False

    def _start_ping(self) -> None:
        """Start the keep-alive task once the stream has lasted a ping interval: most
        streams end before, and a task per stream (started, then cancelled) was a measurable
        part of a short stream's CPU."""
        self._ping_timer = None
        if not self.closing:
            # Held: the loop keeps only a weak reference to a task.
            self._pinger = asyncio.get_running_loop().create_task(self._ping())

    async def _ping(self) -> None:
        """Keep-alives (`ping` events, ...) while the upstream is silent, so clients do not
        give up. Ended by the relay (`_stop_ping`); a write that fails ends it too: the
        client is gone, which the relay's own next write or the disconnect watcher reports."""
        try:
            while not self.closing:
                wait = self.interval - (time.monotonic() - self.last_sent)
                if wait > 0.0:
                    await asyncio.sleep(wait)
                if not self.closing and time.monotonic() - self.last_sent >= self.interval:
                    self.last_sent = time.monotonic()
                    # What was encoded but not sent yet goes first: the encoder numbered it
                    # before the keepalive (a Responses `sequence_number`; `response.created`
                    # itself waits here until the first read on a transport without
                    # `on_idle`).
                    body = b"".join(self.pending) + self.encoder.keepalive()
                    self.pending.clear()
                    await self.send({"type": "http.response.body", "body": body, "more_body": True})
        except Exception as exc:
            log.debug("keep-alive ping stopped: %r", exc)

    def _stop_ping(self) -> None:
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None
        if self._pinger is not None:
            self._pinger.cancel()
            self._pinger = None

    async def _flush(self) -> None:
        """Send the events translated so far in one ASGI message."""
        if self.pending:
            body = b"".join(self.pending)
            self.pending.clear()
            self.last_sent = time.monotonic()
            await self.send({"type": "http.response.body", "body": body, "more_body": True})

    async def run(self) -> None:
        """Open the upstream stream and relay it. Until the response starts nothing has
        reached the client: a rejection the backend can recover from (`Exchange.recover`)
        is retried with the request encoded again."""
        exchange = self.exchange
        backend, target = exchange.backend, exchange.target
        path = backend.path(exchange.route.provider, target.model, True)
        while True:
            try:
                # Events are collected and sent when the upstream has nothing more for the
                # moment (`on_idle`): one ASGI send per burst of upstream data.
                stream = exchange.client.stream(
                    path,
                    backend.encode(exchange.translated, target),
                    client_key=exchange.incoming.client_key,
                    headers=request_headers(backend, target, exchange.upstream_headers),
                    on_idle=self._flush,
                    call=exchange.call,
                    model=target.model,
                )
                async with stream as reads:
                    await self._relay(reads, stream)
                return
            except VdmError as exc:
                if self.started or not exchange.recover(exc):
                    raise

    async def _relay(self, reads: AsyncIterator[bytes], stream: Draining) -> None:
        exchange = self.exchange
        send = self.send
        decoder = self.decoder
        encode = self.encoder.encode
        pending = self.pending
        # The event hooks sit between the decoder and the encoder, when any applies.
        hooks = exchange.hooks
        on_events = hooks.on_events if hooks is not None and hooks.events else None
        self.started = True
        exchange.answered()
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        pending.append(self.encoder.start())
        self.last_sent = time.monotonic()
        loop = asyncio.get_running_loop()
        self._ping_timer = loop.call_later(self.interval, self._start_ping)
        try:
            async for read in reads:
                if exchange.first_data is None:  # only the first read is timed
                    exchange.data_arrived()
                events = decoder.feed(read)
                if on_events is not None:
                    events = await on_events(events)
                encode(events, pending, decoder.reasoning_tokens)
                if decoder.done:
                    break  # the final events go out together with these
                if len(pending) >= _MAX_PENDING:
                    await self._flush()
            events = decoder.finish()
            if on_events is not None:
                events = await on_events(events)
            encode(events, pending, decoder.reasoning_tokens)
        except anyio.get_cancelled_exc_class():
            # The client left (nobody reads this), or the server's grace period ended: the
            # client must not take the cut for the end of the answer.
            self.closing = True
            self._stop_ping()
            await end_cut_stream(send, pending, tail=self.encoder.error(SHUTTING_DOWN))
            raise
        except Exception as exc:  # after the 200 the only way to report is in-stream
            if isinstance(exc, _SHAPE_ERRORS):
                # An event of the upstream's that its dialect's decoder cannot read.
                exc = not_what_it_claims(
                    exchange.route.provider.name, exchange.backend.name, exc, stream=True
                )
            elif not isinstance(exc, VdmError):
                log.exception("internal error while relaying a stream")
                exc = VdmError(500, "internal error in vdm while relaying the stream")
            exc = exchange.redacted(exc)
            exchange.fail(f"error {exc.status} mid-stream", error=exc)
            log.warning("stream failed after it started: %s", exc.message)
            if hooks is not None:
                exc = await exchange.reported(exc)
            pending.append(self.encoder.error(exc))
        finally:
            exchange.usage = decoder.usage
            exchange.reasoning_tokens = decoder.reasoning_tokens
            self._stop_ping()
        tail = b"".join(pending)
        pending.clear()
        self.closing = True
        await send({"type": "http.response.body", "body": tail, "more_body": False})
        if exchange.outcome == "ok":
            exchange.delivered = True  # the tail ended with message_stop
        if decoder.done:
            await drain(reads, stream, exchange.gateway)


async def count_tokens(gateway: Gateway, incoming: Incoming, receive: Receive, send: Send) -> None:
    """Answer `{"input_tokens": N}`: counted offline for translated providers, by the
    provider itself (the client's body forwarded as it is) for Anthropic-format ones, a call
    cancelled when the client disconnects (as `/v1/messages` is); by the provider's own
    counter where its format has one (Bedrock's CountTokens, Vertex's count-tokens), else
    offline (and offline too when that counter gives no count)."""
    from vdm.protocol.tokens import count_tokens as count

    head = parse_head(incoming.body)
    trace = incoming.trace
    trace.requested = head.model
    route = gateway.route(head.model)
    trace.provider, trace.model = route.provider.name, route.model
    served = (SERVED_BY, header_value(route.label))
    if backend(route.provider.api_format).native_anthropic:

        async def ask() -> None:
            target = select(route.provider, route.model, head.model)[1]
            body, headers = await passthrough.count_tokens(
                gateway.client(route.provider), target, incoming, head
            )
            await send_bytes(send, 200, body, [*headers, served])

        await run_until_disconnect(receive, ask, gateway.loop, incoming.disconnect)
        return
    request = validated(CountTokensRequest, head)
    tokens = None
    own = counter(route.provider.api_format)
    if own is not None:
        target = select(route.provider, route.model, head.model)[1]
        client = gateway.client(route.provider)
        tokens = await own(client, head.data, target, incoming.client_key)
    if tokens is None:
        tokens = await anyio.to_thread.run_sync(count, request)
    await send_bytes(
        send, 200, json.dumps({"input_tokens": tokens}).encode(), [*JSON_HEADERS, served]
    )
