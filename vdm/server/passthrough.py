"""Anthropic-format providers: the client's request forwarded as it is, the answer relayed
byte for byte.

The request body changes only in `model` (when an alias or prefix renamed it); unknown fields,
`cache_control`, thinking blocks and their signatures all go through. `anthropic-version` and
`anthropic-beta` are forwarded. A stream is relayed read by read, never re-framed, while a copy
is watched for usage (vdm/protocol/anthropic_observe.py); a non-streaming answer is sent back
untouched.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from anyio.abc import TaskGroup

from vdm.protocol.anthropic import ANTHROPIC_VERSION
from vdm.protocol.anthropic_observe import AnthropicStreamObserver, usage_of
from vdm.protocol.errors import VdmError, anthropic_error_event
from vdm.protocol.signatures import is_vdm_signature
from vdm.server.asgi import SSE_HEADERS, Incoming, Send, send_bytes
from vdm.upstream.backends.anthropic import COUNT_TOKENS_PATH, MESSAGES_PATH
from vdm.upstream.client import UpstreamClient

if TYPE_CHECKING:
    from vdm.server.exchange import Exchange

log = logging.getLogger("vdm.requests")

_FORWARDED = (b"anthropic-version", b"anthropic-beta")
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


def forwarded_headers(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The client's `anthropic-version` / `anthropic-beta` (several beta headers joined)."""
    found: dict[str, list[str]] = {}
    for name, value in headers:
        if name in _FORWARDED:
            found.setdefault(name.decode(), []).append(value.decode("latin-1"))
    forwarded = {name: ",".join(values) for name, values in found.items()}
    forwarded.setdefault("anthropic-version", ANTHROPIC_VERSION)
    return forwarded


def with_model(body: bytes, requested: str, model: str) -> bytes:
    """The body with `model` replaced and foreign thinking blocks dropped; the very same bytes
    when neither applies.

    A thinking block without a signature, or signed by vdm (`vdm-…`), was made by vdm from
    another provider's reasoning (a conversation that changed model on the way); Anthropic
    rejects such blocks, so they are left out. Thinking blocks Anthropic signed, and
    everything else, go through untouched.
    """
    foreign = any(mark in body for mark in _FOREIGN_MARKS)
    if model == requested and not foreign:
        return body
    data: dict[str, Any] = json.loads(body)
    data["model"] = model
    messages = data.get("messages")
    if foreign and isinstance(messages, list):
        kept: list[Any] = []
        for message in messages:
            if (
                isinstance(message, dict)
                and message.get("role") == "assistant"
                and isinstance(content := message.get("content"), list)
            ):
                message["content"] = [b for b in content if not _foreign_thinking(b)]
                if content and not message["content"]:
                    # Nothing but vdm's thinking (a turn cut by max_tokens while reasoning):
                    # Anthropic refuses an empty message, and there is nothing to keep.
                    continue
            kept.append(message)
        data["messages"] = kept
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def _foreign_thinking(block: Any) -> bool:
    if not isinstance(block, dict) or block.get("type") != "thinking":
        return False
    signature = block.get("signature")
    return signature is None or (isinstance(signature, str) and is_vdm_signature(signature))


async def count_tokens(
    client: UpstreamClient, model: str, incoming: Incoming, requested: str
) -> bytes:
    """The provider's own count of the client's request."""
    body, _ = await client.post_bytes(
        COUNT_TOKENS_PATH,
        with_model(incoming.body, requested, model),
        client_key=incoming.client_key,
        headers=forwarded_headers(incoming.headers),
    )
    return body


class Passthrough:
    """One request to an Anthropic-format provider; what it learns goes to its exchange."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        incoming = exchange.incoming
        self.data = with_model(incoming.body, exchange.request.model, exchange.route.model)
        self.headers = forwarded_headers(incoming.headers)
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
        )
        exchange.data_arrived()
        try:
            exchange.usage = usage_of(json.loads(body))
        except (ValueError, AttributeError):
            pass
        content_type = headers.get("content-type", "application/json").encode("latin-1")
        await send_bytes(send, 200, body, [(b"content-type", content_type)])

    async def _flush(self) -> None:
        if self._pending and self._send is not None:
            body = b"".join(self._pending)
            self._pending.clear()
            await self._send({"type": "http.response.body", "body": body, "more_body": True})

    async def stream(self, send: Send, _: TaskGroup) -> None:
        """Relay the upstream's SSE bytes as they come; a failure after the start is an SSE
        `error` event, and a stream that ends without `message_stop` is reported the same way."""
        exchange = self.exchange
        self._send = send
        observer = AnthropicStreamObserver()
        pending = self._pending
        last = b""
        async with exchange.client.stream(
            MESSAGES_PATH,
            self.data,
            client_key=exchange.incoming.client_key,
            headers=self.headers,
            on_idle=self._flush,
            call=exchange.call,
        ) as reads:
            await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            try:
                async for read in reads:
                    exchange.data_arrived()
                    pending.append(read)
                    observer.feed(read)
                    last = read
                    if len(pending) >= _MAX_PENDING:
                        await self._flush()
                if not observer.ended_cleanly:
                    raise VdmError(502, "upstream stream ended before the response was complete")
            except VdmError as exc:
                exchange.fail(f"error {exc.status} mid-stream")
                log.warning("stream failed after it started: %s", exc.message)
                if last and not last.endswith((b"\n\n", b"\r\n\r\n")):
                    pending.append(b"\n\n")  # end the cut event so the error is read as one
                pending.append(anthropic_error_event(exc))
            finally:
                exchange.usage = observer.usage
            if observer.error is not None:
                exchange.fail("upstream error mid-stream")
            body = b"".join(pending)
            pending.clear()
            await send({"type": "http.response.body", "body": body, "more_body": False})
