"""Claude Code in Vertex mode: Vertex AI's rawPredict API, answered on vdm's Anthropic path.

`CLAUDE_CODE_USE_VERTEX=1` with `ANTHROPIC_VERTEX_BASE_URL` pointing at vdm (and
`CLAUDE_CODE_SKIP_VERTEX_AUTH=1`: vdm ignores the Google token) makes Claude Code call
`POST /v1/projects/{p}/locations/{l}/publishers/anthropic/models/{m}:rawPredict`, or
`:streamRawPredict` for a stream, and `…/models/count-tokens:rawPredict` (gateway contract
C13). Vertex's body is Anthropic's without `model` (in the URL, `claude-sonnet-4-5@20250929`)
and with `anthropic_version: vertex-2023-10-16`, and its answers are Anthropic's own: a
message, plain Anthropic SSE, errors in Anthropic's envelope (Vertex relays Claude's; the
SDKs read them as the first-party API's). So the request is made an Anthropic one at the
edge (vdm/protocol/cloud_requests.py) and served as any `/v1/messages` request
(vdm/server/messages.py `serve`), to any provider; nothing of the answer changes. The
project and location in the path are the client's business: vdm routes by the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from vdm.protocol.anthropic_head import parse_head
from vdm.protocol.cloud_requests import messages_body
from vdm.protocol.errors import VdmError
from vdm.protocol.vertex_from_anthropic import claude_name
from vdm.server.asgi import Incoming, Receive, Send
from vdm.server.exchange import Exchange
from vdm.server.frontend import AnthropicFrontend, as_anthropic
from vdm.server.messages import count_tokens, serve
from vdm.server.state import Gateway

#: The path's segment before the model, and the model's name for counting.
MARK = "/publishers/anthropic/models/"
COUNT_TOKENS = "count-tokens"
STREAM_METHOD = ":streamRawPredict"
METHODS = (":rawPredict", STREAM_METHOD)


def is_predict(path: str) -> bool:
    """A rawPredict call on an Anthropic model (other publishers' are not served)."""
    return path.startswith("/v1/projects/") and MARK in path and path.endswith(METHODS)


def is_count(path: str) -> bool:
    return path.endswith(f"{MARK}{COUNT_TOKENS}:rawPredict")


@dataclass(frozen=True, slots=True)
class VertexCall:
    """What a rawPredict path asks: the model (None for count-tokens, whose body names it),
    and whether the answer streams."""

    model: str | None
    stream: bool


def call_of(raw_path: bytes) -> VertexCall:
    """The call of a `…/publishers/anthropic/models/{m}:rawPredict` (or `:streamRawPredict`)
    path, the model percent-decoded and its `@date` made Anthropic's `-date`."""
    path = raw_path.decode("latin-1").rstrip("/")
    tail = path[path.index(MARK) + len(MARK) :]
    name, _, method = tail.rpartition(":")
    model = unquote(name)
    if not model.strip():
        raise VdmError(400, f"no model in the path: POST …{MARK}{{model}}:{method}")
    if model == COUNT_TOKENS:
        return VertexCall(None, False)
    return VertexCall(claude_name(model), f":{method}" == STREAM_METHOD)


async def predict(
    gateway: Gateway, incoming: Incoming, call: VertexCall, receive: Receive, send: Send
) -> None:
    """Serve a rawPredict call as the Anthropic request it is: a message (streamed for
    `:streamRawPredict`), or a count of its tokens."""
    if call.model is None:
        body, betas = messages_body(incoming.body, None, None)
        model = parse_head(body).model
        if claude_name(model) != model:
            body, betas = messages_body(incoming.body, claude_name(model), None)
        await count_tokens(gateway, as_anthropic(incoming, body, betas), receive, send)
        return
    body, betas = messages_body(incoming.body, call.model, True if call.stream else None)
    head = parse_head(body)
    incoming = as_anthropic(incoming, body, betas)
    await serve(Exchange(gateway, incoming, head, AnthropicFrontend(head.data)), receive, send)
