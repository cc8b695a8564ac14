"""`POST /v1/messages` and `POST /v1/messages/count_tokens` for OpenAI-format providers."""

from __future__ import annotations

import json
import logging
import time
from functools import partial
from typing import Any

import anyio
from anyio.abc import TaskGroup
from pydantic import ValidationError

from vdm.protocol.anthropic import CountTokensRequest, MessagesRequest
from vdm.protocol.anthropic_from_openai import PING, MessagesStreamFromChat, message_from_chat
from vdm.protocol.errors import VdmError, anthropic_error_event
from vdm.protocol.openai_from_anthropic import chat_request_from_messages
from vdm.protocol.sse import SseDecoder
from vdm.routing.resolve import Route, resolve
from vdm.server import passthrough
from vdm.server.asgi import (
    SSE_HEADERS,
    Incoming,
    Receive,
    Send,
    run_until_disconnect,
    send_json,
)
from vdm.server.state import Gateway
from vdm.upstream.client import UpstreamClient
from vdm.usage.recorder import Request

log = logging.getLogger("vdm.requests")

#: How long to wait for the rest of an upstream body after `[DONE]`.
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
    started = time.perf_counter()
    request: MessagesRequest = parse(MessagesRequest, incoming.body)
    try:
        route = resolve(request.model, gateway.settings)
    except VdmError:
        gateway.usage.record(Request("", request.model, False, {}, None, 0.0))
        raise
    client = gateway.client(route.provider)
    outcome = "ok"
    usage: dict[str, int] = {}
    first_data: float | None = None
    #: The streaming or passthrough call: its outcome, usage and first data, even when cut.
    call: passthrough.Passthrough | _StreamRelay | None = None
    try:
        if route.provider.api_format == "anthropic":
            call = passthrough.Passthrough(client, route.model, incoming, request.model)
            finished = await run_until_disconnect(
                receive, partial(call.stream if request.stream else call.answer, send)
            )
        elif request.stream:
            data = _chat_body(gateway, request, route)
            call = _StreamRelay(
                request, client, data, send, gateway.settings.ping_interval, route.model
            )
            call.client_key = incoming.client_key
            finished = await run_until_disconnect(receive, call.run)
        else:
            data = _chat_body(gateway, request, route)

            async def answer(_: TaskGroup) -> None:
                nonlocal first_data
                reply = await client.post_json(
                    client.chat_path(route.model), data, client_key=incoming.client_key
                )
                message = message_from_chat(
                    reply, model=request.model, stop_sequences=request.stop_sequences
                )
                usage.update(message["usage"])
                first_data = time.perf_counter()
                await send_json(send, 200, message)

            finished = await run_until_disconnect(receive, answer)
        if not finished:
            outcome = "client disconnected"
    except VdmError as exc:
        outcome = f"error {exc.status}"
        raise
    except Exception:
        outcome = "internal error"
        raise
    except BaseException:  # cancelled: the server stopped before the request finished
        outcome = "cancelled"
        raise
    finally:
        if call is not None:
            usage, first_data = call.usage, call.first_data
            if outcome == "ok":
                outcome = call.outcome
        duration = time.perf_counter() - started
        gateway.usage.record(
            Request(
                route.provider.name,
                route.model,
                outcome == "ok",
                usage,
                None if first_data is None else first_data - started,
                duration,
            )
        )
        log.info(
            "%s -> %s:%s %s%s %.0f ms%s",
            request.model,
            route.provider.name,
            route.model,
            "stream " if request.stream else "",
            outcome,
            duration * 1000,
            "".join(f" {k.removesuffix('_tokens')}={v}" for k, v in usage.items() if v),
        )


def _chat_body(gateway: Gateway, request: MessagesRequest, route: Route) -> bytes:
    payload = chat_request_from_messages(
        request, route.model, max_tokens_limit=gateway.settings.max_tokens_limit
    )
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


class _StreamRelay:
    """Relays one upstream stream as Anthropic SSE.

    Errors before the upstream answered propagate as VdmError (a normal JSON error response);
    errors after the stream started become an SSE `error` event and the stream is closed.
    """

    def __init__(
        self,
        request: MessagesRequest,
        client: UpstreamClient,
        data: bytes,
        send: Send,
        interval: float,
        model: str,
    ) -> None:
        self.translator = MessagesStreamFromChat(
            model=request.model, stop_sequences=request.stop_sequences
        )
        self.client = client
        self.client_key: str | None = None
        self.model = model
        self.data = data
        self.send = send
        self.interval = interval
        self.last_sent = time.monotonic()
        self.closing = False
        self.outcome = "ok"
        self.pending: list[bytes] = []
        #: When the first upstream data arrived (perf_counter), for time to first token.
        self.first_data: float | None = None

    @property
    def usage(self) -> dict[str, int]:
        return self.translator.usage

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
        send = self.send
        translator = self.translator
        pending = self.pending
        # Events are collected and sent when the upstream has nothing more for the moment
        # (`on_idle`): one ASGI send per burst of upstream data, not one per HTTP chunk.
        path = self.client.chat_path(self.model)
        async with self.client.stream(
            path, self.data, client_key=self.client_key, on_idle=self._flush
        ) as reads:
            await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            pending.append(translator.start())
            self.last_sent = time.monotonic()
            tg.start_soon(self._ping)
            decoder = SseDecoder()
            done = False
            try:
                async for read in reads:
                    if self.first_data is None:
                        self.first_data = time.perf_counter()
                    for event in decoder.feed(read):
                        if event.data == "[DONE]":
                            done = True
                            break
                        pending.extend(translator.feed(_chunk(event.data)))
                    if done:
                        break  # the final events go out together with these
                    if len(pending) >= _MAX_PENDING:
                        await self._flush()
                if not done:
                    for event in decoder.flush():
                        if event.data != "[DONE]":
                            pending.extend(translator.feed(_chunk(event.data)))
                if not done and translator.finish_reason is None:
                    raise VdmError(502, "upstream stream ended before the response was complete")
                tail = pending + translator.finish()
            except Exception as exc:  # after the 200 the only way to report is in-stream
                if not isinstance(exc, VdmError):
                    log.exception("internal error while relaying a stream")
                    exc = VdmError(500, "internal error in vdm while relaying the stream")
                self.outcome = f"error {exc.status} mid-stream"
                log.warning("stream failed after it started: %s", exc.message)
                tail = [*pending, anthropic_error_event(exc)]
            pending.clear()
            self.closing = True
            await send({"type": "http.response.body", "body": b"".join(tail), "more_body": False})
            if done:
                # Read the end of the upstream body so its connection goes back to the pool.
                with anyio.move_on_after(DRAIN_SECONDS):
                    async for _ in reads:
                        pass


def _chunk(data: str) -> dict[str, Any]:
    try:
        chunk = json.loads(data)
    except ValueError:
        raise VdmError(502, f"upstream sent an event that is not JSON: {data[:200]!r}") from None
    if not isinstance(chunk, dict):
        raise VdmError(502, f"upstream sent an event that is not an object: {data[:200]!r}")
    return chunk


async def count_tokens(gateway: Gateway, incoming: Incoming) -> bytes:
    """`{"input_tokens": N}`: counted offline for OpenAI-format providers, by the provider
    itself for Anthropic-format ones."""
    from vdm.protocol.tokens import count_tokens as count

    request: CountTokensRequest = parse(CountTokensRequest, incoming.body)
    route = resolve(request.model, gateway.settings)
    if route.provider.api_format == "anthropic":
        call = passthrough.Passthrough(
            gateway.client(route.provider), route.model, incoming, request.model
        )
        return await call.count_tokens()
    tokens = await anyio.to_thread.run_sync(count, request)
    return json.dumps({"input_tokens": tokens}).encode()
