"""`POST /v1/messages` and `POST /v1/messages/count_tokens`.

Each request is an `Exchange`; its backend (by the provider's dialect) encodes the request and
decodes the answer, or, for Anthropic-format providers, vdm/server/passthrough.py forwards it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import anyio
from anyio.abc import TaskGroup
from pydantic import ValidationError

from vdm.protocol.anthropic import CountTokensRequest, MessagesRequest
from vdm.protocol.anthropic_stream import PING, AnthropicStreamEncoder
from vdm.protocol.errors import VdmError, anthropic_error_event
from vdm.routing.resolve import resolve
from vdm.server import passthrough
from vdm.server.asgi import (
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

#: How long to wait for the rest of an upstream body after its end (`[DONE]`, ...).
DRAIN_SECONDS = 1.0
#: Send translated events once this many are waiting, even if more upstream data is ready.
_MAX_PENDING = 512


def validation_message(error: ValidationError) -> str:
    """`field.path: problem` for the first few errors, as Anthropic words its 400s."""
    parts: list[str] = []
    for item in error.errors(include_url=False)[:3]:
        if item["type"] == "json_invalid":
            return f"invalid JSON body: {item['msg'].removeprefix('Invalid JSON: ')}"
        loc = ".".join(str(p) for p in item["loc"] if not str(p).startswith("function-"))
        parts.append(f"{loc or 'body'}: {item['msg']}")
    more = error.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def parse(model: type[MessagesRequest] | type[CountTokensRequest], body: bytes) -> Any:
    if not body:
        raise VdmError(400, "request body is empty: expected a JSON object")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise VdmError(400, validation_message(exc)) from None


async def create_message(
    gateway: Gateway, incoming: Incoming, receive: Receive, send: Send
) -> None:
    request: MessagesRequest = parse(MessagesRequest, incoming.body)
    exchange = Exchange(gateway, incoming, request)
    try:
        exchange.resolve()
        work: Callable[[TaskGroup], Awaitable[None]]
        if not exchange.backend.translated:
            call = passthrough.Passthrough(exchange)
            work = partial(call.stream if request.stream else call.answer, send)
        elif request.stream:
            work = _StreamRelay(exchange, send, gateway.settings.ping_interval).run
        else:
            work = partial(_answer, exchange, send)
        if not await run_until_disconnect(receive, work):
            exchange.fail("client disconnected")
    except VdmError as exc:
        exchange.fail(f"error {exc.status}")
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
    backend, target, request = exchange.backend, exchange.target, exchange.request
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


class _StreamRelay:
    """Relays one upstream stream as Anthropic SSE: the backend's decoder turns provider
    bytes into canonical events, the Anthropic encoder turns those into client bytes.

    Errors before the upstream answered propagate as VdmError (a normal JSON error response);
    errors after the stream started become an SSE `error` event and the stream is closed.
    """

    def __init__(self, exchange: Exchange, send: Send, interval: float) -> None:
        self.exchange = exchange
        self.decoder = exchange.backend.stream_decoder(exchange.request, exchange.target)
        self.encoder = AnthropicStreamEncoder(exchange.request.model)
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
                    backend.encode(exchange.request, target),
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
        if decoder.done:
            # Read the end of the upstream body so its connection goes back to the pool.
            with anyio.move_on_after(DRAIN_SECONDS):
                async for _ in reads:
                    pass


async def count_tokens(gateway: Gateway, incoming: Incoming) -> bytes:
    """`{"input_tokens": N}`: counted offline for OpenAI-format providers, by the provider
    itself for Anthropic-format ones."""
    from vdm.protocol.tokens import count_tokens as count

    request: CountTokensRequest = parse(CountTokensRequest, incoming.body)
    route = resolve(request.model, gateway.settings)
    if not backend(route.provider.api_format).translated:
        return await passthrough.count_tokens(
            gateway.client(route.provider), route.model, incoming, request.model
        )
    tokens = await anyio.to_thread.run_sync(count, request)
    return json.dumps({"input_tokens": tokens}).encode()
