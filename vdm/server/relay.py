"""OpenAI clients to providers of their own dialect: the body forwarded, the answer relayed.

A Chat Completions client calling an OpenAI-format provider, or a Responses client calling a
Responses one, needs no translation: the client's body goes out with only `model` renamed,
less what the provider refuses (`ModelCaps.rejects`, and state vdm handed the client on turns
another provider answered: vdm/protocol/forward_clean.py), and, for a Chat stream,
`stream_options.include_usage` turned on so that vdm can count the tokens (the usage chunk
is then left out of what the client gets, since it did not ask for it). The answer is
relayed as it came, read by read, while a copy is watched for the usage and the end of the
answer (`ChatWatcher`, `ResponsesWatcher`). An upstream error before the answer keeps the
provider's own body (vdm/protocol/chat_from_events.py `openai_error_response`); a stream
that breaks ends the dialect's way (an error chunk and `[DONE]`, `response.failed`), never
with what looks like a normal end, and never glued onto half an event (`EventFrames`). A
Responses stream that ends with a bare `error` event gets a `response.failed` after it: that
is the end Codex acts on.
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from vdm.config.secrets import StreamRedactor, redact_bytes
from vdm.protocol.anthropic_from_openai import usage_from_chat
from vdm.protocol.anthropic_from_responses import usage_from_responses
from vdm.protocol.chat_from_events import DONE
from vdm.protocol.errors import VdmError
from vdm.protocol.forward_clean import clean_forwarded
from vdm.protocol.reasoning import from_chat_usage, from_responses_usage
from vdm.protocol.sse import SseDecoder
from vdm.protocol.sse_frames import EventFrames
from vdm.server.asgi import DRAIN_SECONDS, Send, send_bytes
from vdm.server.passthrough import (
    SHUTTING_DOWN,
    answer_headers,
    end_cut_stream,
    not_what_it_claims,
)

if TYPE_CHECKING:
    from vdm.server.exchange import Exchange

log = logging.getLogger("vdm.requests")

#: Send what has been read once this many reads are waiting, even if more is ready.
_MAX_PENDING = 256
#: A Chat chunk that may carry usage (an object, not `null`), or an error.
_USAGE = re.compile(rb'"usage"\s*:\s*\{')


def _json(data: str | bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


class ChatWatcher:
    """Watches a relayed Chat Completions stream: usage, the end (`[DONE]` or a finish
    reason), an error chunk. `strip_usage`: the usage-only chunk (`choices: []`) was asked
    for by vdm, not the client, and is left out of what `feed` returns (the stream is then
    re-framed event by event, its content unchanged)."""

    def __init__(self, strip_usage: bool) -> None:
        self.decoder = SseDecoder()
        self.strip_usage = strip_usage
        self.usage: dict[str, int] = {}
        self.reasoning_tokens = 0
        #: `[DONE]` arrived.
        self.complete = False
        #: A choice finished (some providers end without `[DONE]`).
        self.finished = False
        self.error: str | None = None

    def feed(self, read: bytes) -> bytes:
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
            self.usage = usage_from_chat(usage)
            self.reasoning_tokens = from_chat_usage(usage)
            return self.strip_usage and choices == []
        return False

    @property
    def ended(self) -> bool:
        return self.complete or self.finished

    def tail(self) -> bytes:
        """What the client still needs at the upstream's end: `[DONE]` if it did not come."""
        return b"" if self.complete else DONE


class ResponsesWatcher:
    """Watches a relayed Responses stream: usage and the end (`response.completed`,
    `response.incomplete`), or `response.failed` / `error`. The bytes go out as they came."""

    _ENDS = ("response.completed", "response.incomplete", "response.failed", "error")

    def __init__(self) -> None:
        self.decoder = SseDecoder()
        self.usage: dict[str, int] = {}
        self.reasoning_tokens = 0
        self.complete = False
        self.error: str | None = None
        #: The upstream's response id and creation time: vdm's own `response.failed`, if
        #: it must end the stream, continues that response (SDKs refuse a changed id).
        self.response_id: str | None = None
        self.created_at: int | None = None
        #: The upstream ended with a bare `error` event, no `response.failed`: what vdm's own
        #: `response.failed` must say (Codex ignores a bare `error`, B4; the SDK reads on).
        self.bare_error: VdmError | None = None

    def feed(self, read: bytes) -> bytes:
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
            self.usage = usage_from_responses(response["usage"])
            self.reasoning_tokens = from_responses_usage(response["usage"])
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

    @property
    def ended(self) -> bool:
        return self.complete

    def tail(self) -> bytes:
        return b""


Watcher = ChatWatcher | ResponsesWatcher

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


#: The member each dialect's whole answer must hold.
_ANSWER_MEMBER = {"openai": "choices", "responses": "output"}


class OpenAIForward:
    """One request forwarded to a provider of the client's OpenAI dialect."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        #: Writes vdm's own error at the end of a broken stream, in the client's dialect.
        self.encoder = exchange.frontend.stream_encoder(exchange.requested_model)
        data = dict(exchange.head.data)
        data["model"] = exchange.route.model
        dialect = exchange.backend.name
        self.chat = dialect == "openai"
        options = data.get("stream_options")
        asked = isinstance(options, dict) and options.get("include_usage") is True
        #: A usage-only chunk (`choices: []`) the client did not ask for is left out.
        self.strip_usage = self.chat and exchange.stream and not asked
        target = exchange.target
        rejects = target.caps.rejects
        data = clean_forwarded(data, dialect, target.family, target.caps)
        # A provider that refuses `stream_options` (Mistral) sends its usage unasked.
        if self.strip_usage and "stream_options" not in rejects:
            data["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        self.body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        self.path = exchange.backend.path(exchange.route.provider, exchange.route.model, False)
        self.own_account = exchange.route.provider.passthrough
        self._pending: list[bytes] = []
        self._send: Send | None = None

    async def answer(self, send: Send, _: TaskGroup) -> None:
        exchange = self.exchange
        body, headers = await exchange.client.post_bytes(
            self.path,
            self.body,
            client_key=exchange.incoming.client_key,
            call=exchange.call,
            model=exchange.route.model,
        )
        exchange.data_arrived()
        dialect = exchange.backend.name
        answer = _json(body)
        member = _ANSWER_MEMBER[dialect]
        if not isinstance(answer, dict) or not isinstance(answer.get(member), list):
            problem = "not JSON" if answer is None else f"no {member!r} list"
            raise not_what_it_claims(exchange.route.provider.name, dialect, problem)
        usage = answer.get("usage")
        if isinstance(usage, dict):
            if self.chat:
                exchange.usage = usage_from_chat(usage)
                exchange.reasoning_tokens = from_chat_usage(usage)
            else:
                exchange.usage = usage_from_responses(usage)
                exchange.reasoning_tokens = from_responses_usage(usage)
        body = redact_bytes(body, exchange.secrets)
        await send_bytes(send, 200, body, answer_headers(headers.items(), self.own_account, False))
        exchange.delivered = True

    async def _flush(self) -> None:
        if self._pending and self._send is not None:
            body = b"".join(self._pending)
            self._pending.clear()
            await self._send({"type": "http.response.body", "body": body, "more_body": True})

    async def stream(self, send: Send, _: TaskGroup) -> None:
        """Relay the upstream's SSE as it comes; a failure after the start, or an end
        before the answer's, is reported in-stream in the client's dialect."""
        exchange = self.exchange
        self._send = send
        watcher: Watcher = ChatWatcher(self.strip_usage) if self.chat else ResponsesWatcher()
        redactor = StreamRedactor(exchange.secrets)
        # What goes out ends on an event boundary, so that vdm's own end starts on one too.
        frames = EventFrames()
        pending = self._pending
        async with exchange.client.stream(
            self.path,
            self.body,
            client_key=exchange.incoming.client_key,
            on_idle=self._flush,
            call=exchange.call,
            model=exchange.route.model,
        ) as reads:
            upstream = exchange.call.headers
            headers = answer_headers(
                upstream.items() if upstream is not None else None, self.own_account, True
            )
            exchange.answered()
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            try:
                async for read in reads:
                    exchange.data_arrived()
                    pending.append(redactor.feed(frames.feed(watcher.feed(read))))
                    if watcher.complete:
                        break  # the final events go out with this read
                    if len(pending) >= _MAX_PENDING:
                        await self._flush()
                if not watcher.ended:
                    raise VdmError(502, "upstream stream ended before the response was complete")
                pending.append(redactor.feed(frames.rest()))
                pending.append(redactor.flush())
                pending.append(watcher.tail())
                bare = watcher.bare_error if isinstance(watcher, ResponsesWatcher) else None
                if bare is not None:
                    # The upstream's own `error` event stays; the end Codex acts on follows.
                    pending.append(self._error_tail(watcher, exchange.redacted(bare)))
            except anyio.get_cancelled_exc_class():
                exchange.usage = watcher.usage
                frames.drop()
                pending.append(redactor.flush())
                await end_cut_stream(send, pending, tail=self._error_tail(watcher, SHUTTING_DOWN))
                raise
            except Exception as exc:  # after the 200 the only way to report is in-stream
                if not isinstance(exc, VdmError):
                    log.exception("internal error while relaying a stream")
                    exc = VdmError(500, "internal error in vdm while relaying the stream")
                exc = exchange.redacted(exc)
                exchange.fail(f"error {exc.status} mid-stream", error=exc)
                log.warning("stream failed after it started: %s", exc.message)
                frames.drop()  # never glue the error onto half an event
                pending.append(redactor.flush())
                pending.append(self._error_tail(watcher, exc))
            finally:
                exchange.usage = watcher.usage
                exchange.reasoning_tokens = watcher.reasoning_tokens
            if watcher.error is not None:
                bare = watcher.bare_error if isinstance(watcher, ResponsesWatcher) else None
                error = exchange.redacted(bare or VdmError(502, watcher.error))
                exchange.fail("upstream error mid-stream", error=error)
            body = b"".join(pending)
            pending.clear()
            await send({"type": "http.response.body", "body": body, "more_body": False})
            if watcher.ended and exchange.outcome == "ok":
                exchange.delivered = True
                with anyio.move_on_after(DRAIN_SECONDS):
                    async for _rest in reads:
                        pass

    def _error_tail(self, watcher: Watcher, exc: VdmError) -> bytes:
        """vdm's end of a broken stream in the client's dialect: for Responses, the failure
        of the upstream's own response (its id), once it has started."""
        if isinstance(watcher, ResponsesWatcher) and watcher.response_id is not None:
            from vdm.protocol.responses_from_events import ResponsesStreamEncoder
            from vdm.protocol.responses_tools import ToolRoutes

            exchange = self.exchange
            encoder = ResponsesStreamEncoder(
                exchange.requested_model,
                ToolRoutes(),
                exchange.head.data,
                response_id=watcher.response_id,
                created_at=watcher.created_at,
            )
            encoder.started = True
            return encoder.error(exc)
        return self.encoder.error(exc)
