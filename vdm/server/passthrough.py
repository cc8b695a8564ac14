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
import time
from typing import Any

from anyio.abc import TaskGroup

from vdm.protocol.anthropic import ANTHROPIC_VERSION
from vdm.protocol.anthropic_observe import AnthropicStreamObserver, usage_of
from vdm.protocol.errors import VdmError, anthropic_error_event
from vdm.server.asgi import SSE_HEADERS, Incoming, Send, send_bytes
from vdm.upstream.client import UpstreamClient

log = logging.getLogger("vdm.requests")

MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
_FORWARDED = (b"anthropic-version", b"anthropic-beta")
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

    A thinking block without a signature was made by vdm from another provider's reasoning
    (a conversation that changed model on the way); Anthropic rejects such blocks, so they are
    left out. Signed thinking blocks, and everything else, go through untouched.
    """
    foreign = b'"signature":""' in body or b'"signature": ""' in body
    if model == requested and not foreign:
        return body
    data: dict[str, Any] = json.loads(body)
    data["model"] = model
    if foreign:
        for message in data.get("messages") or ():
            if not isinstance(message, dict) or message.get("role") != "assistant":
                continue
            content = message.get("content")
            if isinstance(content, list):
                message["content"] = [b for b in content if not _foreign_thinking(b)]
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def _foreign_thinking(block: Any) -> bool:
    return (
        isinstance(block, dict) and block.get("type") == "thinking" and not block.get("signature")
    )


class Passthrough:
    """One request to an Anthropic-format provider."""

    def __init__(
        self, client: UpstreamClient, model: str, incoming: Incoming, requested: str
    ) -> None:
        self.client = client
        self.data = with_model(incoming.body, requested, model)
        self.headers = forwarded_headers(incoming.headers)
        self.client_key = incoming.client_key
        self.outcome = "ok"
        self.usage: dict[str, int] = {}
        #: When the first upstream data arrived (perf_counter), for time to first token.
        self.first_data: float | None = None
        self._pending: list[bytes] = []
        self._send: Send | None = None

    async def answer(self, send: Send, _: TaskGroup) -> None:
        body, headers = await self.client.post_bytes(
            MESSAGES_PATH, self.data, client_key=self.client_key, headers=self.headers
        )
        self.first_data = time.perf_counter()
        try:
            self.usage = usage_of(json.loads(body))
        except (ValueError, AttributeError):
            pass
        content_type = headers.get("content-type", "application/json").encode("latin-1")
        await send_bytes(send, 200, body, [(b"content-type", content_type)])

    async def count_tokens(self) -> bytes:
        body, _ = await self.client.post_bytes(
            COUNT_TOKENS_PATH, self.data, client_key=self.client_key, headers=self.headers
        )
        return body

    async def _flush(self) -> None:
        if self._pending and self._send is not None:
            body = b"".join(self._pending)
            self._pending.clear()
            await self._send({"type": "http.response.body", "body": body, "more_body": True})

    async def stream(self, send: Send, _: TaskGroup) -> None:
        """Relay the upstream's SSE bytes as they come; a failure after the start is an SSE
        `error` event, and a stream that ends without `message_stop` is reported the same way."""
        self._send = send
        observer = AnthropicStreamObserver()
        pending = self._pending
        last = b""
        async with self.client.stream(
            MESSAGES_PATH,
            self.data,
            client_key=self.client_key,
            headers=self.headers,
            on_idle=self._flush,
        ) as reads:
            await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            try:
                async for read in reads:
                    if self.first_data is None:
                        self.first_data = time.perf_counter()
                    pending.append(read)
                    observer.feed(read)
                    last = read
                    if len(pending) >= _MAX_PENDING:
                        await self._flush()
                if not observer.ended_cleanly:
                    raise VdmError(502, "upstream stream ended before the response was complete")
            except VdmError as exc:
                self.outcome = f"error {exc.status} mid-stream"
                log.warning("stream failed after it started: %s", exc.message)
                if last and not last.endswith((b"\n\n", b"\r\n\r\n")):
                    pending.append(b"\n\n")  # end the cut event so the error is read as one
                pending.append(anthropic_error_event(exc))
            if observer.error is not None and self.outcome == "ok":
                self.outcome = "upstream error mid-stream"
            self.usage = observer.usage
            body = b"".join(pending)
            pending.clear()
            await send({"type": "http.response.body", "body": body, "more_body": False})
