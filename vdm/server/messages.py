"""`POST /v1/messages` and `POST /v1/messages/count_tokens`.

Each request is an `Exchange`. Only its head (model, stream) is read before routing
(vdm/protocol/anthropic_head.py): for an Anthropic-format provider
vdm/server/passthrough.py forwards the client's body as it is; for any other the request is
validated, and the provider's backend encodes it and decodes the answer.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

import anyio
from anyio.abc import TaskGroup

from vdm.protocol.anthropic import CountTokensRequest
from vdm.protocol.anthropic_head import parse_head, validated
from vdm.protocol.anthropic_stream import PING, AnthropicStreamEncoder
from vdm.protocol.errors import VdmError, anthropic_error_event
from vdm.routing.resolve import resolve
from vdm.server import passthrough
from vdm.server.asgi import (
    DRAIN_SECONDS,
    JSON_HEADERS,
    SSE_HEADERS,
    Incoming,
    Receive,
    Send,
    run_until_disconnect,
    send_json,
)
from vdm.server.exchange import Exchange
from vdm.server.state import Gateway
from vdm.upstream.backends import backend

log = logging.getLogger("vdm.requests")

#: Send translated events once this many are waiting, even if more upstream data is ready.
_MAX_PENDING = 512


async def create_message(
    gateway: Gateway, incoming: Incoming, receive: Receive, send: Send
) -> None:
    exchange = Exchange(gateway, incoming, parse_head(incoming.body))
    try:
        exchange.resolve()
        work: Callable[[TaskGroup], Awaitable[None]]
        if not exchange.backend.translated:
            call = passthrough.Passthrough(exchange)
            work = partial(call.stream if exchange.stream else call.answer, send)
        elif exchange.stream:
            work = _StreamRelay(exchange, send, gateway.settings.ping_interval).run
        else:
            work = partial(_answer, exchange, send)
        if not await run_until_disconnect(receive, work) and not exchange.delivered:
            exchange.fail("client disconnected")
    except VdmError as exc:
        exchange.fail(f"error {exc.status}", None if exchange.routed else exc.message)
        raise
    except Exception:
        exchange.fail("internal error")
        raise
    except BaseException:  # cancelled: the server stopped before the request finished
        exchange.fail("cancelled")
        raise
    finally:
        exchange.finish()


async def _answer(exchange: Exchange, send: Send, _: TaskGroup) -> None:
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
                call=exchange.call,
            )
            exchange.data_arrived()
            message = backend.decode(reply, request, target)
            break
        except VdmError as exc:
            if not exchange.recover(exc):
                raise
    exchange.usage.update(message["usage"])
    await send_json(send, 200, message)
    exchange.delivered = True


class _StreamRelay:
    """Relays one upstream stream as Anthropic SSE: the backend's decoder turns provider
    bytes into canonical events, the Anthropic encoder turns those into client bytes.

    Errors before the upstream answered propagate as VdmError (a normal JSON error response);
    errors after the stream started become an SSE `error` event and the stream is closed.
    The answer is complete when the decoder is `done`: the client's response ends there
    (`message_stop`), whatever the upstream does next.
    """

    def __init__(self, exchange: Exchange, send: Send, interval: float) -> None:
        self.exchange = exchange
        self.decoder = exchange.backend.stream_decoder(exchange.translated, exchange.target)
        self.encoder = AnthropicStreamEncoder(exchange.requested_model)
        self.send = send
        self.interval = interval
        self.last_sent = time.monotonic()
        self.closing = False
        self.pending: list[bytes] = []
        #: The response started: nothing can be retried any more.
        self.started = False

    async def _ping(self) -> None:
        """`ping` events while the upstream is silent, so clients do not give up."""
        while not self.closing:
            await anyio.sleep(max(self.interval - (time.monotonic() - self.last_sent), 0.01))
            if not self.closing and time.monotonic() - self.last_sent >= self.interval:
                self.last_sent = time.monotonic()
                await self.send({"type": "http.response.body", "body": PING, "more_body": True})

    async def _flush(self) -> None:
        """Send the events translated so far in one ASGI message."""
        if self.pending:
            body = b"".join(self.pending)
            self.pending.clear()
            self.last_sent = time.monotonic()
            await self.send({"type": "http.response.body", "body": body, "more_body": True})

    async def run(self, tg: TaskGroup) -> None:
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
                async with exchange.client.stream(
                    path,
                    backend.encode(exchange.translated, target),
                    client_key=exchange.incoming.client_key,
                    on_idle=self._flush,
                    call=exchange.call,
                ) as reads:
                    await self._relay(reads, tg)
                return
            except VdmError as exc:
                if self.started or not exchange.recover(exc):
                    raise

    async def _relay(self, reads: AsyncIterator[bytes], tg: TaskGroup) -> None:
        exchange = self.exchange
        send = self.send
        decoder = self.decoder
        encode = self.encoder.encode
        pending = self.pending
        self.started = True
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        pending.append(self.encoder.start())
        self.last_sent = time.monotonic()
        tg.start_soon(self._ping)
        try:
            async for read in reads:
                exchange.data_arrived()
                encode(decoder.feed(read), pending)
                if decoder.done:
                    break  # the final events go out together with these
                if len(pending) >= _MAX_PENDING:
                    await self._flush()
            encode(decoder.finish(), pending)
        except Exception as exc:  # after the 200 the only way to report is in-stream
            if not isinstance(exc, VdmError):
                log.exception("internal error while relaying a stream")
                exc = VdmError(500, "internal error in vdm while relaying the stream")
            exchange.fail(f"error {exc.status} mid-stream")
            log.warning("stream failed after it started: %s", exc.message)
            pending.append(anthropic_error_event(exc))
        finally:
            exchange.usage = decoder.usage
        tail = b"".join(pending)
        pending.clear()
        self.closing = True
        await send({"type": "http.response.body", "body": tail, "more_body": False})
        if exchange.outcome == "ok":
            exchange.delivered = True  # the tail ended with message_stop
        if decoder.done:
            # Read the end of the upstream body so its connection goes back to the pool.
            with anyio.move_on_after(DRAIN_SECONDS):
                async for _ in reads:
                    pass


async def count_tokens(
    gateway: Gateway, incoming: Incoming
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """`{"input_tokens": N}` and its headers: counted offline for translated providers, by
    the provider itself (the client's body forwarded as it is) for Anthropic-format ones."""
    from vdm.protocol.tokens import count_tokens as count

    head = parse_head(incoming.body)
    route = resolve(head.model, gateway.settings)
    if not backend(route.provider.api_format).translated:
        return await passthrough.count_tokens(
            gateway.client(route.provider), route.model, incoming, head
        )
    request = validated(CountTokensRequest, head)
    tokens = await anyio.to_thread.run_sync(count, request)
    return json.dumps({"input_tokens": tokens}).encode(), JSON_HEADERS
