"""`POST /v1/chat/completions`: OpenAI Chat Completions clients in (the OpenAI SDK and
everything built on it).

Each request goes the way Anthropic clients' do (vdm/server/messages.py `serve`), as an
`Exchange` whose `Frontend` (vdm/server/frontend.py) is `ChatFrontend`: an OpenAI-format
provider gets the client's body (vdm/server/relay.py), any other the canonical request
(vdm/protocol/anthropic_request_from_chat.py), and its answer comes back through
vdm/protocol/chat_from_events.py. Errors are in OpenAI's shape (`{"error": {message, type,
param, code}}`), mid-stream too (an error chunk, then `[DONE]`).
"""

from __future__ import annotations

from typing import Any

from vdm.protocol.anthropic_head import parse_head
from vdm.protocol.anthropic_request_from_chat import (
    check_choices,
    messages_request_from_chat,
    wants_usage_chunk,
)
from vdm.protocol.chat_from_events import (
    ChatStreamEncoder,
    chat_completion_from_message,
    openai_error_response,
)
from vdm.protocol.errors import VdmError
from vdm.server.asgi import Incoming, Receive, Send, send_bytes
from vdm.server.exchange import Exchange
from vdm.server.frontend import StreamEncoder
from vdm.server.messages import serve
from vdm.server.state import Gateway


async def send_openai_error(send: Send, exc: VdmError) -> None:
    """`exc` as an OpenAI client gets it: an OpenAI-format upstream's own answer relayed,
    or vdm's in OpenAI's envelope."""
    status, body, headers = openai_error_response(exc)
    await send_bytes(send, status, body, headers)


RESPONSES_PATH = "/v1/responses"


class ChatFrontend:
    """OpenAI Chat Completions clients."""

    dialect = "openai"

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.include_usage = wants_usage_chunk(body)
        self._canonical: dict[str, Any] | None = None

    def canonical(self) -> dict[str, Any]:
        if self._canonical is None:
            self._canonical = messages_request_from_chat(self.body)
        return self._canonical

    def stream_encoder(self, model: str) -> StreamEncoder:
        return ChatStreamEncoder(model, self.include_usage)

    def answer(self, message: dict[str, Any], model: str, reasoning_tokens: int) -> dict[str, Any]:
        return chat_completion_from_message(message, model, reasoning_tokens=reasoning_tokens)

    async def send_error(self, send: Send, exc: VdmError, stream: bool) -> None:
        await send_openai_error(send, exc)


async def chat_completions(
    gateway: Gateway, incoming: Incoming, receive: Receive, send: Send
) -> None:
    """`POST /v1/chat/completions`."""
    head = parse_head(incoming.body)
    check_choices(head.data)
    frontend = ChatFrontend(head.data)
    await serve(Exchange(gateway, incoming, head, frontend), receive, send)


def stream_tail(exc: VdmError) -> bytes:
    """What ends a Chat stream that failed outside any relay (the server's own failure after
    the response started): an error chunk and `[DONE]`."""
    return ChatStreamEncoder("", False).error(exc)
