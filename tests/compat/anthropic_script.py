"""The Anthropic dialect's script adapter, for the passthrough family of the matrix.

It offers what every adapter of tests/fakes/scripts.py offers (the `Script` protocol), on
:class:`~tests.fakes.anthropic_upstream.FakeAnthropic`: vdm forwards an Anthropic client's
body to an Anthropic-format provider as it is, so reading a request is reading the client's
own body, and a reply is Anthropic's (thinking blocks with their signature, parallel tool_use
blocks, cache counts in `usage`). The reasoning state is the thinking block's signature: it
must come back byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from tests.fakes.anthropic_rules import sign
from tests.fakes.anthropic_upstream import (
    AnthropicSseReply,
    FakeAnthropic,
    anthropic_error,
    anthropic_event,
    anthropic_stream_events,
)
from tests.fakes.openai_upstream import (
    HangReply,
    JsonReply,
    Recorded,
    Reply,
    ToolCallSpec,
    _estimate_tokens,
    _split_text,
)
from tests.fakes.scripts import ToolCall, ToolResult, Usage

_MODEL = "claude-sonnet-4-6"


def _body(request: Recorded) -> dict[str, Any]:
    data = request.json
    return data if isinstance(data, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _blocks(content: Any) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else _dicts(content)


def _text(content: Any) -> str:
    return "".join(str(b.get("text", "")) for b in _blocks(content) if b.get("type") == "text")


def signature(reasoning: str) -> str:
    """An opaque signature standing for `reasoning`, as Anthropic seals a thinking block (the
    strict fake's own seal, so a block carried back unchanged passes its check)."""
    return sign(reasoning)


class Anthropic:
    """The Anthropic Messages API (`FakeAnthropic`)."""

    dialect = "anthropic"

    def __init__(self) -> None:
        self.issued: list[str] = []

    def server(self) -> FakeAnthropic:
        return FakeAnthropic()

    # -- reading ---------------------------------------------------------------------------------

    def _messages(self, request: Recorded, role: str) -> list[dict[str, Any]]:
        return [m for m in _dicts(_body(request).get("messages")) if m.get("role") == role]

    def _content(self, request: Recorded, role: str, kind: str) -> list[dict[str, Any]]:
        return [
            block
            for message in self._messages(request, role)
            for block in _blocks(message.get("content"))
            if block.get("type") == kind
        ]

    def model(self, request: Recorded) -> str:
        return str(_body(request).get("model") or "")

    def is_stream(self, request: Recorded) -> bool:
        return _body(request).get("stream") is True

    def tool_names(self, request: Recorded) -> list[str]:
        return [str(tool.get("name")) for tool in _dicts(_body(request).get("tools"))]

    def tool_parameters(self, request: Recorded, name: str) -> dict[str, Any] | None:
        for tool in _dicts(_body(request).get("tools")):
            if tool.get("name") == name and isinstance(tool.get("input_schema"), dict):
                schema: dict[str, Any] = tool["input_schema"]
                return schema
        return None

    def system_text(self, request: Recorded) -> str:
        system = _body(request).get("system")
        parts = (
            [system] if isinstance(system, str) else [str(b.get("text")) for b in _dicts(system)]
        )
        parts += [_text(m.get("content")) for m in self._messages(request, "system")]
        return "\n\n".join(parts)

    def user_texts(self, request: Recorded) -> list[str]:
        return [_text(m.get("content")) for m in self._messages(request, "user")]

    def tool_calls(self, request: Recorded) -> list[ToolCall]:
        return [
            ToolCall(str(b.get("id")), str(b.get("name")), json.dumps(b.get("input")))
            for b in self._content(request, "assistant", "tool_use")
        ]

    def tool_results(self, request: Recorded) -> list[ToolResult]:
        return [
            ToolResult(str(b.get("tool_use_id")), _text(b.get("content")))
            for b in self._content(request, "user", "tool_result")
        ]

    def has_image(self, request: Recorded) -> bool:
        return bool(self._content(request, "user", "image"))

    def reasoning_state(self, request: Recorded) -> list[str]:
        """The signatures of the thinking blocks the history carries back, in order."""
        return [
            str(b.get("signature"))
            for b in self._content(request, "assistant", "thinking")
            if b.get("signature")
        ]

    def call_id(self, seed: str) -> str:
        return "toolu_01" + hashlib.sha256(seed.encode()).hexdigest()[:22]

    # -- answering -------------------------------------------------------------------------------

    def reply(
        self,
        request: Recorded,
        text: str | None = None,
        tool_calls: Sequence[ToolCallSpec] = (),
        reasoning: str | None = None,
        usage: Usage | None = None,
    ) -> Reply:
        """A message with an optional thinking block, text, and any number of tool_use
        blocks (streamed iff the request asked for a stream)."""
        content: list[dict[str, Any]] = []
        if reasoning:
            sealed = signature(reasoning)
            self.issued.append(sealed)
            content.append({"type": "thinking", "thinking": reasoning, "signature": sealed})
        if text:
            content.append({"type": "text", "text": text})
        for n, spec in enumerate(tool_calls):
            tool_id = str(spec[2]) if len(spec) == 3 else self.call_id(f"{spec[0]}:{n}")
            content.append(
                {"type": "tool_use", "id": tool_id, "name": spec[0], "input": json.loads(spec[1])}
            )
        if not content:
            content.append({"type": "text", "text": "OK"})
        usage = usage or Usage(12, 0, _estimate_tokens(json.dumps(content)))
        message = {
            "id": "msg_01" + hashlib.sha256(request.body).hexdigest()[:22],
            "type": "message",
            "role": "assistant",
            "model": self.model(request) or _MODEL,
            "content": content,
            "stop_reason": "tool_use" if tool_calls else "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": usage.prompt - usage.cached,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": usage.cached,
                "output_tokens": usage.output,
            },
        }
        if not self.is_stream(request):
            return JsonReply(message)
        return AnthropicSseReply(_events(message))

    def error(self, status: int, message: str) -> Reply:
        return anthropic_error(status, message=message)

    def cut(self, request: Recorded, text: str = "Partial text that never ends") -> Reply:
        if self.is_stream(request):
            events = anthropic_stream_events(text, model=self.model(request) or _MODEL, pieces=4)
            # message_start, ping, the text block's start and one delta: then cut.
            return AnthropicSseReply(events, cut_after=4)
        return HangReply(0.0)


def _events(message: dict[str, Any]) -> list[bytes]:
    """`message` as Anthropic streams it: deltas in pieces, one signature_delta per thinking
    block, an empty input_json_delta first in each tool_use block."""
    usage = message["usage"]
    start = dict(message, content=[], stop_reason=None, usage=dict(usage, output_tokens=1))
    events = [anthropic_event({"type": "message_start", "message": start})]
    events.append(anthropic_event({"type": "ping"}))
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "thinking":
            opened: dict[str, Any] = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [
                {"type": "thinking_delta", "thinking": p} for p in _split_text(block[kind], 3)
            ]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif kind == "text":
            opened = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in _split_text(block["text"], 3)]
        else:
            opened = dict(block, input={})
            arguments = json.dumps(block["input"])
            deltas = [
                {"type": "input_json_delta", "partial_json": p}
                for p in ["", *_split_text(arguments, 3)]
            ]
        events.append(
            anthropic_event(
                {"type": "content_block_start", "index": index, "content_block": opened}
            )
        )
        events += [
            anthropic_event({"type": "content_block_delta", "index": index, "delta": delta})
            for delta in deltas
        ]
        events.append(anthropic_event({"type": "content_block_stop", "index": index}))
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    final = {"output_tokens": usage["output_tokens"]}
    events.append(anthropic_event({"type": "message_delta", "delta": delta, "usage": final}))
    events.append(anthropic_event({"type": "message_stop"}))
    return events
