"""The client's side of a request: which dialect it speaks, and how its answers are written.

A generation request enters in one of three dialects, Anthropic Messages (`/v1/messages`),
OpenAI Chat Completions (`/v1/chat/completions`) and OpenAI Responses (`/v1/responses`), and
goes out to a provider in that provider's. The middle of the path (vdm/server/messages.py and
vdm/server/exchange.py: routing, failover, retries, accounting) is the same for all three:
a `Frontend` is what differs, one per request.

- When the provider speaks the client's dialect (`dialect`), the client's body is forwarded
  with only its model renamed (vdm/server/passthrough.py for Anthropic, vdm/server/relay.py
  for OpenAI's dialects), and the answer relayed (vdm/server/forward.py).
- Otherwise the request is converted once to the canonical (Anthropic) form (`canonical`),
  the provider's backend encodes it and decodes the answer into canonical events or a whole
  message, and the frontend writes those in the client's dialect (`stream_encoder`,
  `answer`).
- Errors are written in the client's dialect too (`send_error`), before or during a stream
  (`stream_tail` when vdm itself fails after the response started).

Claude Code in Bedrock or Vertex mode speaks Anthropic's dialect in a cloud's clothes: its
request is made the Anthropic request it stands for at the edge (`as_anthropic`) and served
by `AnthropicFrontend`; Bedrock's answer framing is put back on at the edge too
(vdm/server/bedrock_frontend.py, vertex_frontend.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any, Protocol

from vdm.protocol.anthropic_stream import AnthropicStreamEncoder
from vdm.protocol.errors import VdmError, anthropic_error_event
from vdm.protocol.events import Event
from vdm.server.asgi import Incoming, Send, send_error


class StreamEncoder(Protocol):
    """Canonical events -> the client's stream bytes."""

    def start(self) -> bytes:
        """The stream's first bytes, sent as soon as the upstream answers."""
        ...

    def encode(self, events: Iterable[Event], out: list[bytes], reasoning_tokens: int = 0) -> None:
        """Append the bytes of `events` to `out`; `reasoning_tokens` is the decoder's count
        so far, for the usage written at the end."""
        ...

    def error(self, exc: VdmError) -> bytes:
        """The bytes that end the stream with `exc` (after it started)."""
        ...

    def keepalive(self) -> bytes:
        """What keeps the client waiting during a long upstream silence."""
        ...


class Frontend(Protocol):
    """One request's client dialect."""

    #: The backend (`{P}_API_FORMAT` dialect) that speaks the client's dialect.
    dialect: str
    #: The client set no output limit (`Target.max_tokens_default`); read after `canonical`.
    max_tokens_default: bool

    def canonical(self) -> dict[str, Any]:
        """The request as an Anthropic Messages body (VdmError(400) if it cannot be one);
        asked only when the provider speaks another dialect."""
        ...

    def stream_encoder(self, model: str) -> StreamEncoder:
        """A fresh encoder for one streamed answer, naming `model` (the client's)."""
        ...

    def answer(self, message: dict[str, Any], model: str, reasoning_tokens: int) -> dict[str, Any]:
        """The client's whole answer for a canonical (Anthropic) message."""
        ...

    async def send_error(
        self, send: Send, exc: VdmError, stream: bool, forwarded: bool = False
    ) -> None:
        """Answer `exc` before the response started (`stream`: the client asked for one;
        `forwarded`: the failed call carried the client's own body, so an upstream's error
        answer, in the client's dialect, may be relayed as it came)."""
        ...

    @staticmethod
    def stream_tail(exc: VdmError) -> bytes:
        """What ends a started stream with `exc` when no encoder of the request's is at hand
        (vdm's own failure after the response started, outside any relay): the dialect's
        error end, asked of the frontend's class."""
        ...


class AnthropicFrontend:
    """Anthropic Messages clients (Claude Code, the Anthropic SDKs)."""

    dialect = "anthropic"
    max_tokens_default = False  # Anthropic requires `max_tokens`

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def canonical(self) -> dict[str, Any]:
        return self.data

    def stream_encoder(self, model: str) -> StreamEncoder:
        return AnthropicStreamEncoder(model)

    def answer(self, message: dict[str, Any], model: str, reasoning_tokens: int) -> dict[str, Any]:
        return message

    async def send_error(
        self, send: Send, exc: VdmError, stream: bool, forwarded: bool = False
    ) -> None:
        await send_error(send, exc)

    @staticmethod
    def stream_tail(exc: VdmError) -> bytes:
        """An Anthropic `error` event."""
        return anthropic_error_event(exc)


def as_anthropic(incoming: Incoming, body: bytes, betas: list[str]) -> Incoming:
    """`incoming` as the Anthropic request it stands for: a Bedrock or Vertex client's
    request (vdm/server/bedrock_frontend.py, vertex_frontend.py) made an Anthropic `body`,
    with the betas its body carried added as an `anthropic-beta` header, where the Anthropic
    path reads them (forwarded as they are, or fitted to the provider)."""
    headers = incoming.headers
    if betas:
        beta = ",".join(betas).encode("latin-1", "replace")
        headers = [*headers, (b"anthropic-beta", beta)]
    return replace(incoming, body=body, headers=headers)
