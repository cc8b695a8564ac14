"""OpenAI clients to providers of their own dialect: the body forwarded, the answer relayed.

A Chat Completions client calling an OpenAI-format provider, or a Responses client calling a
Responses one, needs no translation: the client's body goes out with only `model` renamed,
less what the provider refuses (`ModelCaps.rejects`, and state vdm handed the client on turns
another provider answered: vdm/protocol/forward_clean.py), and, for a Chat stream,
`stream_options.include_usage` turned on so that vdm can count the tokens (the usage chunk
is then left out of what the client gets, since it did not ask for it). The answer is
relayed as it came, read by read (vdm/server/forward.py), while a copy is watched for the
usage and the end of the answer (`ChatWatcher`, `ResponsesWatcher`). An upstream error
before the answer keeps the provider's own body (vdm/protocol/chat_from_events.py
`openai_error_response`); a stream that breaks ends the dialect's way (an error chunk and
`[DONE]`, `response.failed`), never with what looks like a normal end, and never glued onto
half an event (`EventFrames`). A Responses stream that ends with a bare `error` event gets a
`response.failed` after it: that is the end Codex acts on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vdm.protocol import jsonio
from vdm.protocol.anthropic_from_openai import usage_from_chat
from vdm.protocol.anthropic_from_responses import usage_from_responses
from vdm.protocol.chat_from_events import DONE
from vdm.protocol.errors import VdmError
from vdm.protocol.forward_clean import clean_forwarded
from vdm.protocol.reasoning import from_chat_usage, from_responses_usage
from vdm.protocol.sse import SseDecoder
from vdm.protocol.sse_frames import EventFrames
from vdm.server.forward import Relay, Usage, not_what_it_claims

if TYPE_CHECKING:
    from vdm.server.exchange import Exchange
    from vdm.server.frontend import StreamEncoder

#: A Chat chunk that may carry usage (an object, not `null`), or an error.
_USAGE = re.compile(rb'"usage"\s*:\s*\{')


def _json(data: str | bytes) -> Any:
    try:
        return jsonio.loads(data)
    except ValueError:
        return None


class _OpenAIWatcher:
    """What the two OpenAI dialects' watchers share: whole events only go out
    (`EventFrames`), so that vdm's own end of a broken stream starts an event of its own and
    the half event is dropped. That end is written by the client's `encoder`; a whole answer
    must hold the dialect's `member` list."""

    #: The backend dialect, and the member its whole answer must hold.
    dialect: str
    member: str

    def __init__(self, encoder: StreamEncoder) -> None:
        self.decoder = SseDecoder()
        self.frames = EventFrames()
        #: Writes vdm's own error at the end of a broken stream, in the client's dialect.
        self.encoder = encoder
        self.usage: dict[str, int] = {}
        self.reasoning_tokens = 0
        self.complete = False
        self.error: str | None = None

    def feed(self, read: bytes) -> bytes:
        return self.frames.feed(self._watch(read))

    def _watch(self, read: bytes) -> bytes:
        raise NotImplementedError

    @property
    def upstream_error(self) -> VdmError | None:
        return None if self.error is None else VdmError(502, self.error)

    def rest(self) -> bytes:
        return self.frames.rest()

    def error_tail(self, exc: VdmError) -> bytes:
        self.frames.drop()  # never glue the error onto half an event
        return self._error(exc)

    def _error(self, exc: VdmError) -> bytes:
        return self.encoder.error(exc)

    def whole(self, provider: str, body: bytes) -> Usage | None:
        answer = _json(body)
        member = self.member
        if not isinstance(answer, dict) or not isinstance(answer.get(member), list):
            problem = "not JSON" if answer is None else f"no {member!r} list"
            raise not_what_it_claims(provider, self.dialect, problem)
        usage = answer.get("usage")
        return self._usage(usage) if isinstance(usage, dict) else None

    def _usage(self, usage: dict[str, Any]) -> Usage:
        raise NotImplementedError


class ChatWatcher(_OpenAIWatcher):
    """Watches a relayed Chat Completions stream: usage, the end (`[DONE]` or a finish
    reason), an error chunk. `strip_usage`: the usage-only chunk (`choices: []`) was asked
    for by vdm, not the client, and is left out of what `feed` returns (the stream is then
    re-framed event by event, its content unchanged)."""

    member = "choices"
    dialect = "openai"

    def __init__(self, encoder: StreamEncoder, strip_usage: bool) -> None:
        super().__init__(encoder)
        self.strip_usage = strip_usage
        #: `complete`: `[DONE]` arrived. A choice finished (some providers end without it).
        self.finished = False

    def _watch(self, read: bytes) -> bytes:
        kept: list[bytes] = []
        for event in self.decoder.feed(read):
            data = event.data
            if data == "[DONE]":
                self.complete = True
                kept.append(DONE)
                continue
            raw = data.encode()
            drop = False
            if _USAGE.search(raw) or b'"error"' in raw or b'"finish_reason":"' in raw:
                drop = self._look(_json(raw))
            elif b'"finish_reason": "' in raw:
                self.finished = True
            if self.strip_usage and not drop:
                kept.append(b"data: " + raw + b"\n\n")
        return b"".join(kept) if self.strip_usage else read

    def _look(self, chunk: Any) -> bool:
        """Learn from one chunk; True when it is the usage-only chunk to leave out."""
        if not isinstance(chunk, dict):
            return False
        error = chunk.get("error")
        if isinstance(error, dict):
            self.error = str(error.get("message") or "error")
        choices = chunk.get("choices")
        if isinstance(choices, list) and any(
            isinstance(c, dict) and c.get("finish_reason") for c in choices
        ):
            self.finished = True
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage, self.reasoning_tokens = self._usage(usage)
            return self.strip_usage and choices == []
        return False

    def _usage(self, usage: dict[str, Any]) -> Usage:
        return usage_from_chat(usage), from_chat_usage(usage)

    @property
    def ended(self) -> bool:
        return self.complete or self.finished

    def tail(self, redact: Callable[[VdmError], VdmError]) -> bytes:
        """What the client still needs at the upstream's end: `[DONE]` if it did not come."""
        return b"" if self.complete else DONE


class ResponsesWatcher(_OpenAIWatcher):
    """Watches a relayed Responses stream: usage and the end (`response.completed`,
    `response.incomplete`), or `response.failed` / `error`. The bytes go out as they came.
    `model` and `body` are the client's: vdm's own `response.failed` names them."""

    member = "output"
    dialect = "responses"
    _ENDS = ("response.completed", "response.incomplete", "response.failed", "error")

    def __init__(self, encoder: StreamEncoder, model: str, body: dict[str, Any]) -> None:
        super().__init__(encoder)
        self.model = model
        self.body = body
        #: The upstream's response id and creation time: vdm's own `response.failed`, if
        #: it must end the stream, continues that response (SDKs refuse a changed id).
        self.response_id: str | None = None
        self.created_at: int | None = None
        #: The upstream ended with a bare `error` event, no `response.failed`: what vdm's own
        #: `response.failed` must say (Codex ignores a bare `error`, B4; the SDK reads on).
        self.bare_error: VdmError | None = None

    def _watch(self, read: bytes) -> bytes:
        for event in self.decoder.feed(read):
            if self.response_id is None and '"response.created"' in event.data[:80]:
                self._created(_json(event.data))
            name = event.event
            if name == "message":  # no `event:` line: the type is in the data
                head = event.data[:80]
                name = next((end for end in self._ENDS if f'"{end}"' in head), name)
            if name in self._ENDS:
                self._end(name, _json(event.data))
        return read

    def _created(self, payload: Any) -> None:
        response = payload.get("response") if isinstance(payload, dict) else None
        if isinstance(response, dict) and isinstance(response.get("id"), str):
            self.response_id = response["id"]
            created = response.get("created_at")
            self.created_at = created if isinstance(created, int) else None

    def _end(self, name: str, payload: Any) -> None:
        if not isinstance(payload, dict):
            return
        response = payload.get("response")
        if isinstance(response, dict) and isinstance(response.get("usage"), dict):
            self.usage, self.reasoning_tokens = self._usage(response["usage"])
        self.bare_error = None  # a terminal event after an `error` answers it
        if name in ("response.completed", "response.incomplete"):
            self.complete = True
            return
        error = response.get("error") if isinstance(response, dict) else payload.get("error")
        if not isinstance(error, dict):
            error = payload
        self.error = str(error.get("message") or name)
        self.complete = True  # the upstream ended the answer, with its own failure
        if name == "error":
            self.bare_error = _upstream_error(error, self.error)

    def _usage(self, usage: dict[str, Any]) -> Usage:
        return usage_from_responses(usage), from_responses_usage(usage)

    @property
    def ended(self) -> bool:
        return self.complete

    @property
    def upstream_error(self) -> VdmError | None:
        return self.bare_error or super().upstream_error

    def tail(self, redact: Callable[[VdmError], VdmError]) -> bytes:
        """After a bare `error` event, which stays, the end Codex acts on."""
        if self.bare_error is None:
            return b""
        return self.error_tail(redact(self.bare_error))

    def _error(self, exc: VdmError) -> bytes:
        """vdm's end of a broken stream: once the upstream's response has started, the
        failure of that response (its id)."""
        if self.response_id is None:
            return self.encoder.error(exc)
        from vdm.protocol.responses_from_events import ResponsesStreamEncoder
        from vdm.protocol.responses_tools import ToolRoutes

        encoder = ResponsesStreamEncoder(
            self.model,
            ToolRoutes(),
            self.body,
            response_id=self.response_id,
            created_at=self.created_at,
        )
        encoder.started = True
        return encoder.error(exc)


#: The HTTP status an upstream's in-stream error code stands for, so that vdm's
#: `response.failed` carries the code Codex acts on (responses_objects.response_error_code):
#: a rate limit retried after its delay, a full context window fatal; anything else is a
#: server error, retried.
_ERROR_STATUS = {
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "context_length_exceeded": 400,
    "invalid_prompt": 400,
}


def _upstream_error(error: dict[str, Any], message: str) -> VdmError:
    """A bare `error` event's payload (`{type, code, message, param}`) as a VdmError."""
    code = error.get("code")
    code = code if isinstance(code, str) else None
    return VdmError(_ERROR_STATUS.get(code or "", 502), message, code=code)


def openai_relay(exchange: Exchange) -> Relay:
    """The relay of one request to a provider of the client's OpenAI dialect: the client's
    body with its model renamed, less what the provider refuses, and for a Chat stream the
    usage asked for."""
    data = dict(exchange.head.data)
    data["model"] = exchange.route.model
    dialect = exchange.backend.name
    chat = dialect == "openai"
    options = data.get("stream_options")
    asked = isinstance(options, dict) and options.get("include_usage") is True
    #: A usage-only chunk (`choices: []`) the client did not ask for is left out.
    strip_usage = chat and exchange.stream and not asked
    target = exchange.target
    rejects = target.caps.rejects
    data = clean_forwarded(data, dialect, target)
    # A provider that refuses `stream_options` (Mistral) sends its usage unasked.
    if strip_usage and "stream_options" not in rejects:
        data["stream_options"] = {
            **(options if isinstance(options, dict) else {}),
            "include_usage": True,
        }
    body = jsonio.dumps(data)
    path = exchange.backend.path(exchange.route.provider, exchange.route.model, False)
    encoder = exchange.frontend.stream_encoder(exchange.requested_model)
    watcher: ChatWatcher | ResponsesWatcher
    if chat:
        watcher = ChatWatcher(encoder, strip_usage)
    else:
        watcher = ResponsesWatcher(encoder, exchange.requested_model, exchange.head.data)
    return Relay(exchange, path, body, watcher, exchange.upstream_headers)
