"""`POST /v1/responses`: OpenAI Responses clients in (Codex CLI, the OpenAI SDK).

Each request goes the way Anthropic clients' do (vdm/server/messages.py `serve`), as an
`Exchange` whose `Frontend` (vdm/server/frontend.py) is `ResponsesFrontend`: a Responses
provider gets the client's body (vdm/server/relay.py), any other the canonical request
(vdm/protocol/anthropic_request_from_responses.py), and its answer comes back through
vdm/protocol/responses_from_events.py, namespaces and custom tools restored. Errors are in
OpenAI's shape, and a failure after the stream started is a `response.failed`.

vdm is stateless: a request must carry its whole history (`store: false`, as Codex sends);
`previous_response_id`, `conversation` and `background` are refused with a 400 that says so.
"""

from __future__ import annotations

from typing import Any

from vdm.protocol.anthropic_head import parse_head
from vdm.protocol.anthropic_request_from_responses import (
    gave_no_limit,
    messages_request_from_responses,
    refuse_stateful,
)
from vdm.protocol.errors import VdmError
from vdm.protocol.responses_from_events import (
    ResponsesStreamEncoder,
    response_from_message,
    responses_error_stream,
)
from vdm.protocol.responses_tools import ToolRoutes
from vdm.server.asgi import SSE_HEADERS, Incoming, Receive, Send, send_bytes
from vdm.server.chat_frontend import send_openai_error
from vdm.server.exchange import Exchange
from vdm.server.frontend import StreamEncoder
from vdm.server.messages import serve
from vdm.server.state import Gateway

#: Where Responses clients call (Codex also tries a WebSocket there first: vdm/server/app.py).
RESPONSES_PATH = "/v1/responses"


class ResponsesFrontend:
    """OpenAI Responses clients (Codex CLI)."""

    dialect = "responses"

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        #: The client's names of the tools sent upstream (namespaces, custom tools).
        self.tools = ToolRoutes()
        self._canonical: dict[str, Any] | None = None
        self.max_tokens_default = False

    def canonical(self) -> dict[str, Any]:
        if self._canonical is None:
            self._canonical, self.tools = messages_request_from_responses(self.body)
            self.max_tokens_default = gave_no_limit(self.body)
        return self._canonical

    def stream_encoder(self, model: str) -> StreamEncoder:
        return ResponsesStreamEncoder(model, self.tools, self.body)

    def answer(self, message: dict[str, Any], model: str, reasoning_tokens: int) -> dict[str, Any]:
        return response_from_message(
            message, model, self.tools, self.body, reasoning_tokens=reasoning_tokens
        )

    async def send_error(
        self, send: Send, exc: VdmError, stream: bool, forwarded: bool = False
    ) -> None:
        """Before a stream started, the failures Codex knows how to take from a stream
        (a context overflow, a rate limit, a server error) are a `response.failed` in an
        HTTP 200 stream (dialects.md B4): as HTTP statuses it would give up or misread
        them. Anything else is an HTTP error in OpenAI's envelope."""
        if stream:
            body = responses_error_stream(exc, str(self.body.get("model") or ""), self.body)
            if body is not None:
                await send_bytes(send, 200, body, SSE_HEADERS)
                return
        await send_openai_error(send, exc, forwarded)

    @staticmethod
    def stream_tail(exc: VdmError) -> bytes:
        """A `response.failed`."""
        return ResponsesStreamEncoder("", ToolRoutes()).error(exc)


async def responses(gateway: Gateway, incoming: Incoming, receive: Receive, send: Send) -> None:
    """`POST /v1/responses`."""
    head = parse_head(incoming.body)
    refuse_stateful(head.data)
    frontend = ResponsesFrontend(head.data)
    await serve(Exchange(gateway, incoming, head, frontend), receive, send)
