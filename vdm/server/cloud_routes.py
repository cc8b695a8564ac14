"""The routes of Claude Code in Bedrock or Vertex mode, which carry the model in the path
(so they are not in the routes table): matched by `cloud_route`, served by the cloud
frontends (vdm/server/bedrock_frontend.py, vdm/server/vertex_frontend.py)."""

from __future__ import annotations

from vdm.server import bedrock_frontend as bedrock
from vdm.server import vertex_frontend as vertex
from vdm.server.asgi import Receive, Scope, Send
from vdm.server.routes import Handler, read_incoming, request_key
from vdm.server.state import Gateway


async def _bedrock(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    """Claude Code in Bedrock mode: `POST /model/{id}/invoke`, `/invoke-with-response-stream`
    and `/count-tokens` (vdm/server/bedrock_frontend.py; `App._http` re-frames the answer)."""
    path = scope["path"].rstrip("/")
    operation = bedrock.operation_of(path)
    assert operation is not None  # `cloud_route` chose this handler by it
    model = bedrock.model_id(scope.get("raw_path") or path.encode(), operation)
    incoming = await read_incoming(gateway, scope, receive)
    await bedrock.serve_operation(gateway, incoming, model, operation, receive, send)


async def _inference_profiles(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    request_key(gateway, scope)
    await bedrock.inference_profiles(send)


async def _vertex(gateway: Gateway, scope: Scope, receive: Receive, send: Send) -> None:
    """Claude Code in Vertex mode (vdm/server/vertex_frontend.py)."""
    call = vertex.call_of(scope.get("raw_path") or scope["path"].rstrip("/").encode())
    incoming = await read_incoming(gateway, scope, receive)
    await vertex.predict(gateway, incoming, call, receive, send)


def cloud_route(method: str, path: str) -> tuple[Handler, str] | None:
    """The handler and endpoint name (for accounting) of the paths Claude Code calls in
    Bedrock or Vertex mode, which carry the model in the path; None for any other path."""
    operation = bedrock.operation_of(path)
    if operation is not None and method == "POST":
        return _bedrock, "count_tokens" if operation == bedrock.COUNT_TOKENS else "messages"
    if bedrock.is_profiles(path) and method == "GET":
        return _inference_profiles, "other"
    if vertex.is_predict(path) and method == "POST":
        return _vertex, "count_tokens" if vertex.is_count(path) else "messages"
    return None
