"""The Anthropic SSE grammar checker shared by the stream decoder tests, and a harness that
runs a backend's stream decoder through the Anthropic encoder as the server does."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from vdm.protocol.anthropic_stream import AnthropicStreamEncoder
from vdm.protocol.events import Event, StreamDecoder

# --- SSE grammar checker ----------------------------------------------------------------------

DELTA_FOR_BLOCK = {
    "text": {"text_delta", "citations_delta"},
    "thinking": {"thinking_delta", "signature_delta"},
    "redacted_thinking": set(),
    "tool_use": {"input_json_delta"},
    # The provider's web search (vdm/protocol/web_search.py): the result comes whole.
    "server_tool_use": {"input_json_delta"},
    "web_search_tool_result": set(),
}


def parse_sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Our own strict parser of what vdm writes: `event: NAME\\ndata: JSON\\n\\n` frames."""
    text = raw.decode("utf-8")
    assert text == "" or text.endswith("\n\n"), "stream must end with a complete event"
    events = []
    for frame in text.split("\n\n")[:-1]:
        lines = frame.split("\n")
        assert len(lines) == 2, f"expected one event line and one data line: {frame!r}"
        assert lines[0].startswith("event: "), frame
        assert lines[1].startswith("data: "), frame
        events.append((lines[0][len("event: ") :], json.loads(lines[1][len("data: ") :])))
    return events


@dataclass
class Block:
    index: int
    start: dict[str, Any]
    deltas: list[dict[str, Any]] = field(default_factory=list)

    @property
    def type(self) -> str:
        return self.start["type"]  # type: ignore[no-any-return]

    @property
    def text(self) -> str:
        return "".join(d.get("text", "") for d in self.deltas)

    @property
    def thinking(self) -> str:
        return "".join(d.get("thinking", "") for d in self.deltas)

    @property
    def partial_json(self) -> list[str]:
        return [d["partial_json"] for d in self.deltas if d["type"] == "input_json_delta"]

    @property
    def input(self) -> Any:
        joined = "".join(self.partial_json)
        return json.loads(joined) if joined else {}


@dataclass
class Result:
    events: list[tuple[str, dict[str, Any]]]
    message: dict[str, Any]
    blocks: list[Block]
    stop_reason: str | None
    stop_sequence: str | None
    usage: dict[str, Any]

    def of_type(self, kind: str) -> list[Block]:
        return [b for b in self.blocks if b.type == kind]

    @property
    def text(self) -> str:
        return "".join(b.text for b in self.of_type("text"))

    @property
    def thinking(self) -> str:
        return "".join(b.thinking for b in self.of_type("thinking"))


def check_grammar(raw: bytes) -> Result:
    """Assert the Anthropic SSE grammar (DESIGN.md) and return what a client reconstructs."""
    events = parse_sse(raw)
    assert events, "no events"
    for name, data in events:
        assert name == data.get("type"), f"event name {name!r} != data type {data.get('type')!r}"
    names = [name for name, _ in events]
    assert names[0] == "message_start", names
    assert names.count("message_start") == 1, names
    assert names[-2:] == ["message_delta", "message_stop"], names
    assert names.count("message_delta") == 1 and names.count("message_stop") == 1, names

    blocks: list[Block] = []
    open_block: Block | None = None
    for name, data in events[1:-2]:
        if name == "ping":
            continue
        if name == "content_block_start":
            assert open_block is None, f"block {data['index']} starts before the previous stops"
            assert data["index"] == len(blocks), f"index {data['index']}, expected {len(blocks)}"
            assert data["content_block"]["type"] in DELTA_FOR_BLOCK, data
            open_block = Block(data["index"], data["content_block"])
            blocks.append(open_block)
        elif name == "content_block_delta":
            assert open_block is not None, f"delta outside a block: {data}"
            assert data["index"] == open_block.index, f"delta for {data['index']} in {open_block}"
            assert data["delta"]["type"] in DELTA_FOR_BLOCK[open_block.type], (
                f"{data['delta']['type']} in a {open_block.type} block"
            )
            open_block.deltas.append(data["delta"])
        elif name == "content_block_stop":
            assert open_block is not None, f"stop outside a block: {data}"
            assert data["index"] == open_block.index
            if open_block.type == "text":
                assert any(d.get("text") for d in open_block.deltas), "empty text block"
            if open_block.type == "thinking":
                # Empty thinking is valid only with a signature (display "omitted", or a
                # Responses reasoning item without summary that must be replayed).
                assert any(d.get("thinking") or d.get("signature") for d in open_block.deltas), (
                    "empty thinking block without a signature"
                )
            open_block = None
        else:
            raise AssertionError(f"unexpected event {name!r} inside the message")
    assert open_block is None, "message_delta while a block is open"

    start = events[0][1]["message"]
    assert start["type"] == "message" and start["role"] == "assistant"
    assert start["content"] == []
    delta = events[-2][1]
    return Result(
        events=events,
        message=start,
        blocks=blocks,
        stop_reason=delta["delta"]["stop_reason"],
        stop_sequence=delta["delta"].get("stop_sequence"),
        usage=delta.get("usage") or {},
    )


class Translation:
    """A stream decoder and the Anthropic encoder, fed as the server feeds them: `start()`
    once, `feed(bytes)` per upstream read, `finish()` at the end; each returns client bytes."""

    def __init__(self, decoder: StreamDecoder, model: str = "m") -> None:
        self.decoder = decoder
        self.encoder = AnthropicStreamEncoder(model)
        self.events: list[Event] = []

    def _encode(self, events: list[Event]) -> list[bytes]:
        self.events.extend(events)
        out: list[bytes] = []
        if not self.encoder.started:
            out.append(self.encoder.start())
        self.encoder.encode(events, out)
        return out

    def start(self) -> bytes:
        return self.encoder.start()

    def feed(self, data: bytes) -> list[bytes]:
        return self._encode(self.decoder.feed(data))

    def finish(self) -> list[bytes]:
        return self._encode(self.decoder.finish())
