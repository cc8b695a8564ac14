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
    gave_no_limit,
    messages_request_from_chat,
    wants_usage_chunk,
)
from vdm.protocol.chat_from_events import ChatStreamEncoder, chat_completion_from_message
from vdm.protocol.errors import VdmError
from vdm.protocol.openai_errors import openai_error_response
from vdm.server.asgi import Incoming, Receive, Send, send_bytes
from vdm.server.exchange import Exchange
from vdm.server.frontend import StreamEncoder
from vdm.server.messages import serve
from vdm.server.state import Gateway


async def send_openai_error(send: Send, exc: VdmError, forwarded: bool = False) -> None:
    """`exc` as an OpenAI client gets it: the upstream's own answer relayed when the client's
    body was `forwarded` to it, else vdm's in OpenAI's envelope (`translated_error`)."""
    if forwarded:
        status, body, headers = openai_error_response(exc)
    else:
        status, body, headers = openai_error_response(translated_error(exc), frozenset())
    await send_bytes(send, status, body, headers)


def translated_error(exc: VdmError) -> VdmError:
    """`exc` as vdm reports it to a client whose request was translated: the upstream's
    message and status, but not its `param`, which names a field of the provider's dialect
    (a Responses provider's `input[3]` means nothing to a Chat client that sent
    `messages`), nor its body, which is in that dialect's words."""
    if exc.upstream is None:
        return exc
    return VdmError(
        exc.status,
        exc.message,
        error_type=exc.error_type,
        headers=exc.headers,
        code=exc.code,
        overflow=exc.overflow,
        unavailable=exc.unavailable,
    )


#: Where Chat Completions clients call.
CHAT_PATH = "/v1/chat/completions"


class ChatFrontend:
    """OpenAI Chat Completions clients."""

    dialect = "openai"

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.include_usage = wants_usage_chunk(body)
        #: The client declared the deprecated `functions` and no `tools`: it reads the answer
        #: in that form (`function_call`), as OpenAI gave it.
        self.legacy = isinstance(body.get("functions"), list) and not body.get("tools")
        self._canonical: dict[str, Any] | None = None
        self.max_tokens_default = False

    def canonical(self) -> dict[str, Any]:
        if self._canonical is None:
            self._canonical = messages_request_from_chat(self.body)
            self.max_tokens_default = gave_no_limit(self.body)
        return self._canonical

    def stream_encoder(self, model: str) -> StreamEncoder:
        return ChatStreamEncoder(model, self.include_usage, legacy=self.legacy)

    def answer(self, message: dict[str, Any], model: str, reasoning_tokens: int) -> dict[str, Any]:
        return chat_completion_from_message(
            message, model, reasoning_tokens=reasoning_tokens, legacy=self.legacy
        )

    async def send_error(
        self, send: Send, exc: VdmError, stream: bool, forwarded: bool = False
    ) -> None:
        await send_openai_error(send, exc, forwarded)

    @staticmethod
    def stream_tail(exc: VdmError) -> bytes:
        """An error chunk and `[DONE]`."""
        return ChatStreamEncoder("", False).error(exc)


async def chat_completions(
    gateway: Gateway, incoming: Incoming, receive: Receive, send: Send
) -> None:
    """`POST /v1/chat/completions`."""
    head = parse_head(incoming.body)
    check_choices(head.data)
    frontend = ChatFrontend(head.data)
    await serve(Exchange(gateway, incoming, head, frontend), receive, send)
