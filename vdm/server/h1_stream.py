"""The ASGI side of a request on vdm's HTTP/1.1 protocol (`fast_h1.HttptoolsProtocol`).

`AppStream` is Hypercorn's HTTPStream with three shortcuts: a response's head and body go
straight to the protocol (HTTPStream.app_send's checks and states, without its events), a
request body that arrives with its end is one message to the app, and the app is offered the
`vdm.disconnect` scope extension (`Disconnect`), so that it needs no task waiting on
`receive` to learn that the request's stream closed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Protocol, cast

from hypercorn.config import Config
from hypercorn.protocol.events import Event as StreamEvent
from hypercorn.protocol.events import StreamClosed
from hypercorn.protocol.http_stream import ASGIHTTPState, HTTPStream
from hypercorn.typing import AppWrapper, ASGIReceiveEvent, ASGISendEvent, Scope, TaskGroup
from hypercorn.utils import build_and_validate_headers, suppress_body

from vdm.server.asgi import DISCONNECT


class Writer(Protocol):
    """What an `AppStream` writes its response with (`fast_h1.HttptoolsProtocol`)."""

    #: The app sent its last body: it goes out together with the body's end.
    last_body: bool

    async def respond(self, status: int, app_headers: list[tuple[bytes, bytes]]) -> None: ...

    async def send_body(self, data: bytes) -> None: ...

    async def end_body(self) -> None: ...

    async def stream_closed(self) -> None: ...


class Disconnect:
    """The `DISCONNECT` extension of one request: its stream calls `fire` when it closes
    (the client left, or the response ended), where HTTPStream queues the `http.disconnect`.
    Held by the scope and the stream, it holds neither: no reference cycle for the garbage
    collector to find per request."""

    __slots__ = ("gone", "callback")

    def __init__(self) -> None:
        self.gone = False
        self.callback: Callable[[], None] | None = None

    def watch(self, callback: Callable[[], None]) -> None:
        if self.gone:
            callback()
        else:
            self.callback = callback

    def unwatch(self) -> None:
        self.callback = None

    def fire(self) -> None:
        self.gone = True
        callback, self.callback = self.callback, None
        if callback is not None:
            callback()


class _Spawner:
    """The task group an `AppStream` starts its app with: the connection's, the scope given
    the request's `DISCONNECT` extension first (before the app's task can run)."""

    __slots__ = ("group", "disconnect")

    def __init__(self, group: TaskGroup, disconnect: Disconnect) -> None:
        self.group, self.disconnect = group, disconnect

    async def spawn_app(
        self,
        app: AppWrapper,
        config: Config,
        scope: Scope,
        send: Callable[[ASGISendEvent | None], Awaitable[None]],
    ) -> Callable[[ASGIReceiveEvent], Awaitable[None]]:
        cast(Any, scope)["extensions"][DISCONNECT] = self.disconnect  # an HTTP scope
        return await self.group.spawn_app(app, config, scope, send)

    def spawn(self, func: Callable[..., Any], *args: Any) -> None:
        self.group.spawn(func, *args)

    async def __aenter__(self) -> TaskGroup:
        return self

    async def __aexit__(self, exc_type: type, exc_value: BaseException, tb: TracebackType) -> None:
        pass


class AppStream(HTTPStream):
    """Hypercorn's HTTPStream, telling the protocol when a body is the response's last: it
    then goes out with the body's end (a chunked body's last chunk) in one write, not two.

    It also offers the app the `DISCONNECT` scope extension: the stream says when it closes
    to the callback the app registered, where the app would otherwise keep a task waiting on
    `receive` for the `http.disconnect` (a task, a queue wait and a cancellation per
    request)."""

    def __init__(self, protocol: Writer, app: AppWrapper, config: Config, *args: Any) -> None:
        context, group, *rest = args
        self.disconnect = Disconnect()
        super().__init__(app, config, context, _Spawner(group, self.disconnect), *rest)
        self.protocol = protocol

    async def handle(self, event: StreamEvent) -> None:
        if isinstance(event, StreamClosed) and not self.closed:
            self.disconnect.fire()
        await super().handle(event)

    async def app_send(self, message: Any) -> None:
        # A response's head and body go straight to the protocol: HTTPStream.app_send's
        # checks and state changes for these two messages, without the Response, Body and
        # EndBody events and their dispatch (Hypercorn's own path was ~10 % of a small
        # request's Python calls). Anything else (trailers, early hints, the app's end) is
        # HTTPStream's.
        if message is not None:
            kind = message["type"]
            if kind == "http.response.start" and self.state is ASGIHTTPState.REQUEST:
                self.response = message
                headers = build_and_validate_headers(message.get("headers", []))
                await self.protocol.respond(int(message["status"]), headers)
                self.state = ASGIHTTPState.RESPONSE
                return
            if kind == "http.response.body" and self.state is ASGIHTTPState.RESPONSE:
                body = message.get("body", b"")
                last = not message.get("more_body", False)
                protocol = self.protocol
                if last:  # it goes out with the body's end (a chunked body's last chunk)
                    protocol.last_body = True
                if body and not suppress_body(self.scope["method"], int(self.response["status"])):
                    await protocol.send_body(bytes(body))
                if last:
                    if self.response.get("trailers", False):
                        self.state = ASGIHTTPState.TRAILERS
                    else:
                        await protocol.end_body()
                        self.state = ASGIHTTPState.CLOSED
                        await self.config.log.access(
                            self.scope, self.response, time.time() - self.start_time
                        )
                        await protocol.stream_closed()
                return
        await super().app_send(message)

    async def request_end(self, body: bytes) -> None:
        """The request's last body bytes and its end, as one message to the app (HTTPStream
        sends a body and its end as two)."""
        if not self.closed:
            await self.app_put({"type": "http.request", "body": body, "more_body": False})
