"""Claude Code in Bedrock mode: Bedrock's runtime API, answered on vdm's Anthropic path.

`CLAUDE_CODE_USE_BEDROCK=1` with `ANTHROPIC_BEDROCK_BASE_URL` pointing at vdm (and
`CLAUDE_CODE_SKIP_BEDROCK_AUTH=1`: vdm ignores a SigV4 signature) makes Claude Code call
`POST /model/{id}/invoke` and `/invoke-with-response-stream` (gateway contract C12). A
Bedrock request is an Anthropic request in other clothes, so vdm takes the clothes off at the
edge and serves the rest as any `/v1/messages` request (vdm/server/messages.py `serve`, with
the Anthropic frontend): the body gets its model from the URL and its betas go to the
`anthropic-beta` header (vdm/protocol/cloud_requests.py); the model id is routed like any
name (vdm/routing/resolve.py reads Bedrock ids and ARNs as model names), to any provider.

The answer is put back in Bedrock's clothes by `BedrockSend`, a wrapper of the ASGI `send`
that the app puts around every response on these paths (vdm/server/app.py), so that every
way an Anthropic answer is written (a forwarded stream relayed byte for byte, a translated
one, a middleware's answer, an error before or during the stream, vdm's own end at
shutdown) reaches the client re-framed, in one place (vdm/protocol/bedrock_frames.py): a
stream as event-stream `chunk` frames, an error as AWS's.
"""

from __future__ import annotations

import json
from urllib.parse import unquote

from vdm.protocol.anthropic_head import parse_head
from vdm.protocol.bedrock_frames import EVENTSTREAM, BedrockFramer, aws_error
from vdm.protocol.cloud_requests import bedrock_count_body, messages_body
from vdm.protocol.errors import VdmError
from vdm.server.asgi import Incoming, Message, Receive, Send, send_json
from vdm.server.exchange import Exchange
from vdm.server.frontend import AnthropicFrontend, as_anthropic
from vdm.server.messages import count_tokens, serve
from vdm.server.state import Gateway

#: The operations of Bedrock's runtime API vdm answers: path suffix -> streams.
INVOKE = "/invoke"
INVOKE_STREAM = "/invoke-with-response-stream"
COUNT_TOKENS = "/count-tokens"
#: Where Bedrock's paths start.
PREFIX = "/model/"
#: The operations at `/model/{id}{operation}`, the longest first.
OPERATIONS = (INVOKE_STREAM, INVOKE, COUNT_TOKENS)
#: Bedrock's control plane: the inference profiles Claude Code lists.
PROFILES = "/inference-profiles"


def operation_of(path: str) -> str | None:
    """The runtime operation of `path` (`/invoke`, ...), None if it is none of them."""
    if not path.startswith(PREFIX):
        return None
    return next((s for s in OPERATIONS if path.endswith(s)), None)


def is_profiles(path: str) -> bool:
    return path == PROFILES or path.startswith(PROFILES + "/")


def is_bedrock(path: str) -> bool:
    """A path of Bedrock's APIs, served or not: its answer, an error included, is AWS's."""
    return path.startswith(PREFIX) or is_profiles(path)


def model_id(raw_path: bytes, suffix: str) -> str:
    """The model id of a `/model/{id}/{operation}` path, percent-decoded from the raw path
    (an inference-profile ARN's `/` comes as `%2F`, its `:` as `%3A` or as it is)."""
    path = raw_path.decode("latin-1").rstrip("/")
    middle = path[len(PREFIX) : len(path) - len(suffix)]
    found = unquote(middle)
    if not found.strip():
        raise VdmError(400, f"no model id in the path: POST {PREFIX}{{modelId}}{suffix}")
    return found


async def serve_operation(
    gateway: Gateway, incoming: Incoming, model: str, operation: str, receive: Receive, send: Send
) -> None:
    """Serve `POST /model/{model}{operation}`."""
    if operation == COUNT_TOKENS:
        await count(gateway, incoming, model, receive, send)
    else:
        await invoke(gateway, incoming, model, operation == INVOKE_STREAM, receive, send)


async def invoke(
    gateway: Gateway, incoming: Incoming, model: str, stream: bool, receive: Receive, send: Send
) -> None:
    """`POST /model/{model}/invoke` (`stream` False) or `/invoke-with-response-stream`."""
    body, betas = messages_body(incoming.body, model, stream)
    head = parse_head(body)
    incoming = as_anthropic(incoming, body, betas)
    await serve(Exchange(gateway, incoming, head, AnthropicFrontend(head.data)), receive, send)


async def count(
    gateway: Gateway, incoming: Incoming, model: str, receive: Receive, send: Send
) -> None:
    """`POST /model/{model}/count-tokens`: counted as `/v1/messages/count_tokens` counts
    (the provider's own count where it has one), answered `{"inputTokens": n}`."""
    body, betas = messages_body(bedrock_count_body(incoming.body), model, False)
    await count_tokens(gateway, as_anthropic(incoming, body, betas), receive, send)


async def inference_profiles(send: Send) -> None:
    """`GET /inference-profiles` (Bedrock's control plane, which Claude Code may ask which
    cross-region profiles exist): none of vdm's own, so an empty list; any model id is
    taken anyway."""
    await send_json(send, 200, {"inferenceProfileSummaries": []})


class BedrockSend:
    """The ASGI `send` of a response on a Bedrock path: the Anthropic answer written inside
    goes out in Bedrock's shape. A JSON message goes as it is (InvokeModel answers the
    message itself); an SSE stream becomes event-stream frames; an error (any status but
    200) becomes AWS's `{"message"}` with `x-amzn-ErrorType`; a count_tokens answer
    (`counting`) becomes `{"inputTokens": n}`."""

    __slots__ = ("send", "counting", "_framer", "_held", "_start")

    def __init__(self, send: Send, counting: bool = False) -> None:
        self.send = send
        self.counting = counting
        self._framer: BedrockFramer | None = None
        #: A whole answer to rewrite: its head (held until its body is in) and body.
        self._start: Message | None = None
        self._held: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            headers = message.get("headers", [])
            content_type = next((v for n, v in headers if n == b"content-type"), b"")
            if message["status"] == 200 and content_type.startswith(b"text/event-stream"):
                self._framer = BedrockFramer()
                kept = [(n, v) for n, v in headers if n != b"content-type"]
                headers = [(b"content-type", EVENTSTREAM), *kept]
                await self.send({**message, "headers": headers})
            elif message["status"] == 200 and not self.counting:
                await self.send(message)
            else:
                self._start = message
            return
        if kind != "http.response.body":
            await self.send(message)
            return
        body = message.get("body", b"")
        more = message.get("more_body", False)
        if self._framer is not None:
            framed = self._framer.feed(body)
            if not more:
                framed += self._framer.finish()
            await self.send({**message, "body": framed})
            return
        if self._start is None:
            await self.send(message)
            return
        self._held.append(body)
        if not more:
            await self._rewritten(self._start, b"".join(self._held))

    async def _rewritten(self, start: Message, body: bytes) -> None:
        status = start["status"]
        extra: list[tuple[bytes, bytes]] = []
        if status == 200:  # counting
            body = _input_tokens(body)
        else:
            body, kind = aws_error(status, body)
            extra.append((b"x-amzn-errortype", kind.encode()))
        headers = [
            (n, v)
            for n, v in start.get("headers", ())
            if n not in (b"content-type", b"content-length")
        ]
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *extra,
        ]
        await self.send({**start, "headers": headers})
        await self.send({"type": "http.response.body", "body": body, "more_body": False})


def _input_tokens(body: bytes) -> bytes:
    """`{"input_tokens": n}` as Bedrock's CountTokens answers it."""
    data = json.loads(body)
    return json.dumps({"inputTokens": data["input_tokens"]}).encode()
