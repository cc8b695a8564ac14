"""Gemini `generateContent` answer / `streamGenerateContent?alt=sse` stream -> canonical
(Anthropic) message / events (pure).

Each SSE `data:` line is a partial `GenerateContentResponse` (no `event:` names, no `[DONE]`);
the answer of a non-streaming call is one whole response, decoded by the same state machine.
Parts of `candidates[0].content`:

- `thought: true` text -> a thinking block; a `thoughtSignature` on it (or on a signature-only
  empty text part) -> that block's signature `vdm-g1:…`, so it travels back
  (vdm/protocol/signatures.py). A signature on a text part with text opens such a block just
  before that text, so the signature goes back on the same part.
- text -> text.
- `functionCall` (always whole) -> a tool_use block `toolu_<22 base62>`, whose id carries the
  call's signature (its own, or that of a thought / signature-only part just before it), and
  one `input_json_delta` with the arguments.

`usageMetadata` -> usage (input excludes cached tokens; output counts thoughts too).
`finishReason` -> stop reason (table below); a prompt blocked by `promptFeedback.blockReason`
is a refusal; an `error` object in the stream is a VdmError. A stream that ends before any
finish reason was cut: `finish()` raises VdmError(502).
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

from vdm.protocol.anthropic_stream import anthropic_message
from vdm.protocol.codec import Target
from vdm.protocol.errors import VdmError, context_overflow, held
from vdm.protocol.events import (
    Blocks,
    BlockStop,
    CitationDelta,
    Event,
    InputJsonDelta,
    MessageEnd,
    ServerToolResultStart,
    ServerToolUseStart,
    SignatureDelta,
    TextDelta,
    TextStart,
    ThinkingDelta,
    ThinkingStart,
    ToolUseStart,
)
from vdm.protocol.reasoning import from_gemini_usage
from vdm.protocol.search_stub import StubAnswers, answer_stub_calls
from vdm.protocol.signatures import id_with_thought, pack_thought
from vdm.protocol.sse import SseDecoder, quote_start
from vdm.protocol.web_search import (
    gemini_citations,
    gemini_queries,
    gemini_results,
    new_server_tool_id,
    query_json,
    search_blocks,
)

log = logging.getLogger(__name__)

#: Gemini `finishReason` -> Anthropic `stop_reason` (STOP is `tool_use` after a call).
STOP_REASONS: dict[str, str] = {
    "STOP": "end_turn",
    "MAX_TOKENS": "max_tokens",
    "SAFETY": "refusal",
    "RECITATION": "refusal",
    "LANGUAGE": "refusal",
    "BLOCKLIST": "refusal",
    "PROHIBITED_CONTENT": "refusal",
    "SPII": "refusal",
    "IMAGE_SAFETY": "refusal",
    "IMAGE_PROHIBITED_CONTENT": "refusal",
    "IMAGE_RECITATION": "refusal",
    "IMAGE_OTHER": "refusal",
    "NO_IMAGE": "refusal",
}
#: Finish reasons that end the turn with a note the user can see: the model tried to call a
#: tool and failed, so there is nothing to run and nothing said.
NOTED = frozenset(
    {
        "MALFORMED_FUNCTION_CALL",
        "UNEXPECTED_TOOL_CALL",
        "TOO_MANY_TOOL_CALLS",
        "MISSING_THOUGHT_SIGNATURE",
        "MALFORMED_RESPONSE",
    }
)
#: Google's error `code` -> the status the client sees (as for HTTP errors).
_ERROR_STATUS = {400: 400, 401: 401, 403: 403, 404: 404, 429: 429, 500: 500, 503: 529, 504: 504}
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def new_tool_base() -> str:
    """`toolu_` + 22 random base62 characters (fixed length: a carried signature follows)."""
    number = int.from_bytes(secrets.token_bytes(16), "big")
    chars = []
    for _ in range(22):
        number, digit = divmod(number, 62)
        chars.append(_BASE62[digit])
    return "toolu_" + "".join(chars)


def usage_from_gemini(metadata: Any) -> dict[str, int]:
    """Anthropic usage from `usageMetadata`: `promptTokenCount` includes the cached tokens;
    tool-use prompts (search results and the like) are input too; thoughts are output."""
    if not isinstance(metadata, dict):
        return {"input_tokens": 0, "output_tokens": 0}
    prompt = int(metadata.get("promptTokenCount") or 0)
    cached = int(metadata.get("cachedContentTokenCount") or 0)
    tool_prompt = int(metadata.get("toolUsePromptTokenCount") or 0)
    output = int(metadata.get("candidatesTokenCount") or 0)
    output += int(metadata.get("thoughtsTokenCount") or 0)
    return {
        "input_tokens": max(prompt - cached, 0) + tool_prompt,
        "output_tokens": output,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    }


def error_from_gemini(error: Any) -> VdmError:
    """Google's in-band error object (`{"code", "message", "status"}`) as a VdmError."""
    if not isinstance(error, dict):
        return VdmError(502, f"upstream error: {error}")
    code = error.get("code")
    status = 502
    if isinstance(code, int):
        status = _ERROR_STATUS.get(code, 400 if 400 <= code < 500 else 502)
    message = str(error.get("message") or error.get("status") or "unknown error")
    overflow = context_overflow(message)
    if overflow is not None:  # worded so Claude Code compacts the conversation
        return VdmError(400, overflow, overflow=True)
    return VdmError(status, f"upstream error: {message}")


class GeminiStreamDecoder:
    """State machine: Gemini SSE bytes (or whole responses, `feed_response`) in, canonical
    events out."""

    def __init__(self, target: Target) -> None:
        self.target = target
        #: Answers the model's calls of the web search stub (vdm/protocol/search_stub.py).
        self._stub = StubAnswers(target)
        self.done = False
        self.finished = False
        self.usage: dict[str, int] = {"input_tokens": 0, "output_tokens": 0}
        self.reasoning_tokens = 0
        #: Gemini's finish reason, or `BLOCKED:<reason>` for a blocked prompt.
        self.finish_reason: str | None = None
        self.finish_message = ""
        self._sse = SseDecoder()
        self._error: VdmError | None = None  # raised by `finish` (see `feed`)
        self._blocks = Blocks()
        self._calls = 0
        #: A signature from a thought or signature-only part, for the next call of the step.
        self._pending: str | None = None
        #: The latest `groundingMetadata` (Google Search), turned into blocks at the end.
        self._grounding: dict[str, Any] | None = None
        self.web_search_requests = 0

    def feed(self, data: bytes) -> list[Event]:
        """Events for one upstream read. Raises VdmError for an in-band upstream error."""
        out: list[Event] = []
        if self.done:
            return out
        try:
            for event in self._sse.feed(data):
                self.feed_response(_response(event.data), out)
        except VdmError as exc:
            self._error, self.done = held(exc, out), True  # see `held`
        return self._stub(out)

    def finish(self) -> list[Event]:
        """Close the open block and the message; raises VdmError if the stream was cut."""
        out: list[Event] = []
        if self._error is not None:
            raise self._error
        if self.finished:
            return out
        if not self.done:  # after the end only a part of what follows may be buffered
            for event in self._sse.flush():
                self.feed_response(_response(event.data), out)
        if self.finish_reason is None:
            raise VdmError(502, "upstream stream ended before the response was complete")
        reason = self.finish_reason
        if reason.startswith("BLOCKED:"):
            self._blocks.text(out, f"[Gemini blocked the request: {reason[8:]}]", key="note")
            stop = "refusal"
        elif reason in NOTED:
            detail = f": {self.finish_message}" if self.finish_message else ""
            self._blocks.text(out, f"[Gemini stopped ({reason}){detail}]", key="note")
            stop = "end_turn"
        elif reason == "STOP" and self._calls:
            stop = "tool_use"
        else:
            stop = STOP_REASONS.get(reason, "end_turn")
        if self._grounding is not None:
            self._ground(self._grounding, out)
        self._blocks.close(out)
        self.finished = True
        out.append(MessageEnd(stop, None, self.usage, self.web_search_requests))
        return self._stub(out)

    def feed_response(self, response: dict[str, Any], out: list[Event]) -> None:
        """Events for one (partial) `GenerateContentResponse`."""
        if "error" in response:
            raise error_from_gemini(response["error"])
        usage = response.get("usageMetadata")
        if usage:
            self.usage = usage_from_gemini(usage)
            self.reasoning_tokens = from_gemini_usage(usage)
        feedback = response.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            self.finish_reason = f"BLOCKED:{feedback['blockReason']}"
            self.done = bool(usage)
            return
        candidates = response.get("candidates")
        if not candidates or not isinstance(candidates[0], dict):
            return
        candidate = candidates[0]
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts or ():
            if isinstance(part, dict):
                self._part(part, out)
        grounding = candidate.get("groundingMetadata")
        if isinstance(grounding, dict):
            self._grounding = grounding
        finish = candidate.get("finishReason")
        if finish:
            self.finish_reason = str(finish)
            self.finish_message = str(candidate.get("finishMessage") or "")
            # The usage normally arrives with the finish reason: then the answer is whole.
            self.done = bool(usage)

    def _part(self, part: dict[str, Any], out: list[Event]) -> None:
        signature = part.get("thoughtSignature")
        signature = signature if isinstance(signature, str) and signature else None
        call = part.get("functionCall")
        if isinstance(call, dict):
            self._call(call, signature or self._pending, out)
            self._pending = None
            return
        text = part.get("text")
        text = text if isinstance(text, str) else ""
        blocks = self._blocks
        if part.get("thought"):
            if text:
                if signature and blocks.is_open("thinking") and blocks.signature:
                    blocks.close(out)  # a thought with another signature: its own block
                blocks.thinking(out, text)
            if signature:
                self._sign(signature, out)
                self._pending = signature
            return
        if signature:
            # The signature of this text part: a signature-only thinking block before the
            # text, so the request encoder puts it back on this part. Only a signature-only
            # part signs a call that follows.
            self._sign(signature, out, fresh=True)
            if not text:
                self._pending = signature
        if text:
            blocks.text(out, text)
        elif not signature and part:
            kinds = ", ".join(sorted(part))
            log.debug("ignored a Gemini part (%s)", kinds)

    def _ground(self, metadata: dict[str, Any], out: list[Event]) -> None:
        """Google Search grounding: citations on the open text block, then a
        `server_tool_use` / `web_search_tool_result` pair per query (the sources on the
        first: Gemini does not say which query found which)."""
        blocks = self._blocks
        citations = gemini_citations(metadata)
        if blocks.is_open("text"):
            out.extend(CitationDelta(blocks.open_index, c) for c in citations)
        elif citations:
            log.debug("grounding citations without an open text block: dropped")
        results = gemini_results(metadata)
        queries = gemini_queries(metadata)
        for n, query in enumerate(queries):
            call = new_server_tool_id()
            _, result = search_blocks(call, query, results if n == 0 else [])
            out.append(
                ServerToolUseStart(
                    blocks.open(out, ("search", n)), call, "web_search", query_json(query)
                )
            )
            out.append(ServerToolResultStart(blocks.open(out, ("result", n)), result))
        blocks.close(out)
        self.web_search_requests = len(queries)

    def _sign(self, signature: str, out: list[Event], fresh: bool = False) -> None:
        """Give the open thinking block `signature`, or open a signature-only one."""
        blocks = self._blocks
        if fresh or not blocks.is_open("thinking") or blocks.signature is not None:
            index = blocks.open(out, "thinking")
            out.append(ThinkingStart(index))
        blocks.signature = pack_thought(signature)

    def _call(self, call: dict[str, Any], signature: str | None, out: list[Event]) -> None:
        self._calls += 1
        blocks = self._blocks
        index = blocks.open(out, ("tool", self._calls))
        name = self.target.client_tool_name(str(call.get("name") or ""))
        out.append(ToolUseStart(index, id_with_thought(new_tool_base(), signature), name))
        args = call.get("args")
        if args is None:
            args = {}
        out.append(InputJsonDelta(index, json.dumps(args, ensure_ascii=False)))


def _response(data: str) -> dict[str, Any]:
    try:
        response = json.loads(data)
    except ValueError:
        start = quote_start(data, 200)
        raise VdmError(502, f"upstream sent an event that is not JSON: {start!r}") from None
    if isinstance(response, list) and len(response) == 1 and isinstance(response[0], dict):
        response = response[0]  # an error wrapped in a list, as Google sometimes does
    if not isinstance(response, dict):
        start = quote_start(data, 200)
        raise VdmError(502, f"upstream sent an event that is not an object: {start!r}")
    return response


def message_from_gemini(answer: Any, target: Target) -> dict[str, Any]:
    """The Anthropic Message for a non-streaming `generateContent` answer."""
    if isinstance(answer, list) and len(answer) == 1:
        answer = answer[0]
    if not isinstance(answer, dict):
        raise VdmError(502, "upstream answered with something that is not a response object")
    decoder = GeminiStreamDecoder(target)
    events: list[Event] = []
    decoder.feed_response(answer, events)
    if decoder.finish_reason is None:
        if not answer.get("candidates"):
            raise VdmError(502, "upstream returned a response without candidates")
        decoder.finish_reason = "STOP"  # a whole answer is complete even without a reason
    events.extend(decoder.finish())
    content, stop = _collect(events)
    message = anthropic_message(
        target.requested, content, stop, None, decoder.usage, decoder.web_search_requests
    )
    return answer_stub_calls(message, target)


def _collect(events: list[Event]) -> tuple[list[dict[str, Any]], str]:
    """Content blocks and stop reason from a whole answer's events."""
    content: list[dict[str, Any]] = []
    arguments: dict[int, list[str]] = {}
    stop = "end_turn"
    for event in events:
        if isinstance(event, TextStart):
            content.append({"type": "text", "text": ""})
        elif isinstance(event, ThinkingStart):
            content.append({"type": "thinking", "thinking": "", "signature": ""})
        elif isinstance(event, ToolUseStart):
            content.append({"type": "tool_use", "id": event.id, "name": event.name, "input": {}})
            arguments[len(content) - 1] = []
        elif isinstance(event, TextDelta):
            content[event.index]["text"] += event.text
        elif isinstance(event, ThinkingDelta):
            content[event.index]["thinking"] += event.thinking
        elif isinstance(event, SignatureDelta):
            content[event.index]["signature"] = event.signature
        elif isinstance(event, InputJsonDelta):
            arguments[event.index].append(event.partial_json)
        elif isinstance(event, MessageEnd):
            stop = event.stop_reason
        elif isinstance(event, ServerToolUseStart):
            use = {"type": "server_tool_use", "id": event.id, "name": event.name}
            content.append({**use, "input": json.loads(event.input_json)})
        elif isinstance(event, ServerToolResultStart):
            content.append(dict(event.block))
        elif isinstance(event, CitationDelta):
            content[event.index].setdefault("citations", []).append(dict(event.citation))
        elif isinstance(event, BlockStop):
            continue
    for index, parts in arguments.items():
        value = json.loads("".join(parts)) if parts else {}
        content[index]["input"] = value if isinstance(value, dict) else {"value": value}
    return content, stop
