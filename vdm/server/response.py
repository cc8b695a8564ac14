"""What the app puts around a handler's answer and sends without one: `Response`, the
client's `send` that remembers how far the answer got and adds vdm's headers; which client
dialect ends a stream with an error; the answers to a WebSocket upgrade and to running out of
file descriptors."""

from __future__ import annotations

import asyncio
import logging

from vdm.protocol.errors import VdmError
from vdm.server.asgi import Message, Receive, Scope, Send
from vdm.server.frontend import AnthropicFrontend, Frontend
from vdm.server.logs import MAX_BODY
from vdm.server.passthrough import header_value
from vdm.server.task_scope import TaskScope
from vdm.usage.trace import Trace, new_request_id

log = logging.getLogger(__name__)

#: The paths of OpenAI clients: their errors are in OpenAI's shape.
OPENAI_PATHS = frozenset({"/v1/chat/completions", "/v1/responses"})
#: The response headers naming the request: vdm's id, the upstream's, vdm's own time.
REQUEST_ID_HEADER = b"request-id"
UPSTREAM_ID_HEADER = b"x-vdm-upstream-request-id"
OVERHEAD_HEADER = b"x-vdm-overhead-ms"


class Response:
    """The client's `send`, remembering how far the response got (so that a request ended
    at shutdown is ended properly) and adding the CORS headers an allowed origin needs.

    A stream's write that waits longer than `timeout` for the client to read (a client that
    stopped reading) ends the request: its cancel scope is cancelled, which cancels the
    upstream call, and every later write is dropped."""

    __slots__ = (
        "send",
        "trace",
        "extra",
        "started",
        "finished",
        "sse",
        "timeout",
        "cancel",
        "stalled",
        "handling",
        "openai",
    )

    def __init__(self, send: Send, trace: Trace, timeout: float | None = None) -> None:
        self.send = send
        self.trace = trace
        #: An OpenAI client's endpoint: errors in OpenAI's shape.
        self.openai = trace.path in OPENAI_PATHS
        self.extra: list[tuple[bytes, bytes]] = []
        self.started = False
        self.finished = False
        self.sse = False
        self.timeout = timeout
        #: The request's cancel scope, once it runs (`App._serve`).
        self.cancel: TaskScope | None = None
        self.stalled = False
        #: A handler runs (`App._serve`): the request's body is its to read.
        self.handling = False

    async def __call__(self, message: Message) -> None:
        if self.stalled:
            return
        kind = message["type"]
        if kind == "http.response.start":
            self.started = True
            message = {**message, "headers": self._head(message)}
        elif kind == "http.response.body":
            body = message.get("body", b"")
            trace = self.trace
            trace.bytes_out += len(body)
            if trace.response_body is not None and trace.bytes_out - len(body) <= MAX_BODY:
                trace.response_body.append(body)  # the request log keeps at most this much
            if not message.get("more_body", False):
                self.finished = True
        if kind != "http.response.body" or not message.get("more_body", False):
            # A head, or a whole answer's (last) write: the socket's buffers take it.
            await self.send(message)
            return
        # A stream's write: waits while the client does not read. asyncio's own timeout, not
        # anyio's scope: a third of the cost, on every write of every stream.
        waiting = asyncio.timeout(self.timeout)
        try:
            async with waiting:
                await self.send(message)
        except TimeoutError:
            if not waiting.expired():  # the send's own error, not the wait's end
                raise
            self.stalled = True
            log.warning(
                "the client read nothing for %g s (SEND_TIMEOUT): request ended", self.timeout
            )
            if self.cancel is not None:
                self.cancel.cancel()

    def _head(self, message: Message) -> list[tuple[bytes, bytes]]:
        """The response's headers with the request's ids and vdm's overhead: an upstream's
        own `request-id` (relayed by the Anthropic-format path) moves to
        `x-vdm-upstream-request-id`, vdm's id takes its place."""
        trace = self.trace
        trace.status = message["status"]
        headers: list[tuple[bytes, bytes]] = []
        for name, value in message.get("headers", ()):
            if name == REQUEST_ID_HEADER:
                trace.upstream_request_id = value.decode("latin-1")
                continue
            if name == b"content-type" and value.startswith(b"text/event-stream"):
                self.sse = True
            headers.append((name, value))
        if trace.upstream_request_id:
            headers.append((UPSTREAM_ID_HEADER, header_value(trace.upstream_request_id)))
        overhead = trace.take_overhead() * 1000
        headers.append((REQUEST_ID_HEADER, trace.request_id.encode()))
        headers.append((OVERHEAD_HEADER, f"{overhead:.2f}".encode()))
        headers.extend(self.extra)
        return headers


def out_of_descriptors() -> VdmError:
    return VdmError(
        503,
        "vdm is out of file descriptors (too many connections at once); retry shortly",
        headers={"retry-after": "1"},
    )


#: What a WebSocket upgrade is answered: Codex tries `GET /v1/responses` over a WebSocket
#: first and falls back to `POST /v1/responses` on a 404 (a 500 or a hang would cost it
#: retries), in the OpenAI error shape Codex reads.
WEBSOCKET_REFUSAL = (
    b'{"error":{"message":"vdm does not serve WebSockets: send POST %s over HTTP",'
    b'"type":"invalid_request_error","param":null,"code":"websocket_not_supported"}}'
)


async def refuse_websocket(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer a WebSocket upgrade at once with a plain HTTP 404 (ASGI's denial response, when
    the server has it; else the handshake is closed, which the client sees as a 403)."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    path = header_value(scope.get("path", "/"))
    body = WEBSOCKET_REFUSAL % path
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (REQUEST_ID_HEADER, new_request_id().encode()),
    ]
    await send({"type": "websocket.http.response.start", "status": 404, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body, "more_body": False})


def stream_frontend(path: str) -> type[Frontend]:
    """The frontend of the client dialect spoken at `path`, which knows how that dialect's
    stream ends with an error (`Frontend.stream_tail`): Anthropic's but at the OpenAI
    clients' paths (a live feed's stream too)."""
    from vdm.server.chat_frontend import CHAT_PATH, ChatFrontend
    from vdm.server.responses_frontend import RESPONSES_PATH, ResponsesFrontend

    frontends: dict[str, type[Frontend]] = {
        CHAT_PATH: ChatFrontend,
        RESPONSES_PATH: ResponsesFrontend,
    }
    return frontends.get(path, AnthropicFrontend)
