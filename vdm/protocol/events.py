"""Canonical stream events: what every backend's stream decoder produces and every frontend's
encoder consumes (DESIGN.md, "dialects as codecs around canonical events").

The canonical form is the Anthropic Messages API, so the events follow its stream grammar:
blocks are opened, receive deltas and are closed, one at a time, with indexes counting from 0
without gaps; the message ends with its stop reason and usage. Events are small slotted
values, compared and hashed by value and never changed once made (not `frozen`: a frozen
dataclass is made at twice the cost, and a stream makes one per delta); `Blocks` is the
helper decoders share to open and close blocks in order.

A decoder is sans-I/O: `feed(bytes) -> list[Event]` for each upstream read, `finish() ->
list[Event]` at the end of the body. It raises `VdmError` for an in-band upstream error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias


@dataclass(slots=True, unsafe_hash=True)
class TextStart:
    index: int


@dataclass(slots=True, unsafe_hash=True)
class ThinkingStart:
    index: int


@dataclass(slots=True, unsafe_hash=True)
class RedactedThinkingStart:
    """A `redacted_thinking` block: Anthropic encrypted the reasoning, and `data` is all
    there is (no deltas follow, only the `BlockStop`). A client must send it back unchanged
    for the tool loop to go on with thinking on, so an encoder hands it over whole, as it
    hands over a thinking block's signature; it is never a `ThinkingStart`, whose signed
    text it would be taken for."""

    index: int
    data: str


@dataclass(slots=True, unsafe_hash=True)
class ToolUseStart:
    index: int
    id: str
    name: str


@dataclass(slots=True, unsafe_hash=True)
class TextDelta:
    index: int
    text: str


@dataclass(slots=True, unsafe_hash=True)
class ThinkingDelta:
    index: int
    thinking: str


@dataclass(slots=True, unsafe_hash=True)
class SignatureDelta:
    """The signature of a thinking block, sent once just before the block stops."""

    index: int
    signature: str


@dataclass(slots=True, unsafe_hash=True)
class InputJsonDelta:
    index: int
    partial_json: str


@dataclass(slots=True, unsafe_hash=True)
class BlockStop:
    index: int


@dataclass(slots=True, unsafe_hash=True)
class ServerToolUseStart:
    """A `server_tool_use` block: a tool the provider ran itself (its web search, mapped to
    Anthropic's `web_search`). Known whole when it starts, so `input_json` rides along; the
    Anthropic encoder sends it as one `input_json_delta`, other dialects skip the block."""

    index: int
    id: str
    name: str
    input_json: str


@dataclass(slots=True, unsafe_hash=True)
class ServerToolResultStart:
    """A server tool's result block (`web_search_tool_result`), whole in its start event as
    Anthropic streams it; `block` is the Anthropic content block."""

    index: int
    block: Mapping[str, Any] = field(hash=False)


@dataclass(slots=True, unsafe_hash=True)
class CitationDelta:
    """A citation of the open text block (`citations_delta`): `citation` is Anthropic's
    `web_search_result_location`."""

    index: int
    citation: Mapping[str, Any] = field(hash=False)


@dataclass(slots=True, unsafe_hash=True)
class MessageEnd:
    """The end of the message: Anthropic stop reason, matched stop sequence, final usage
    (`input_tokens` excludes cache reads and writes), and the provider's web searches
    (`usage.server_tool_use.web_search_requests`)."""

    stop_reason: str
    stop_sequence: str | None = None
    usage: Mapping[str, int] = field(default_factory=dict)
    web_search_requests: int = 0


Event: TypeAlias = (
    TextStart
    | ThinkingStart
    | RedactedThinkingStart
    | ToolUseStart
    | TextDelta
    | ThinkingDelta
    | SignatureDelta
    | InputJsonDelta
    | BlockStop
    | MessageEnd
    | ServerToolUseStart
    | ServerToolResultStart
    | CitationDelta
)


class StreamDecoder(Protocol):
    """A backend's stream decoder: provider bytes in, canonical events out."""

    #: The upstream said the response is over (`[DONE]`, `response.completed`, a finish
    #: reason, ...): the rest of the body only needs draining.
    done: bool
    #: Anthropic usage so far (`input_tokens` excludes cache reads).
    usage: dict[str, int]
    #: Reasoning tokens within the output, when the provider says (vdm/protocol/reasoning.py).
    reasoning_tokens: int

    def feed(self, data: bytes) -> list[Event]: ...

    def finish(self) -> list[Event]:
        """Close the open block and end the message; raises VdmError if the upstream body
        ended before the response was complete."""
        ...


class Blocks:
    """Opens and closes content blocks in order, one at a time, with gap-free indexes.

    Each open block has a `key` chosen by the decoder (e.g. `("tool", 2)` for the third
    parallel call) so it can tell whether a fragment belongs to the block that is open.
    """

    __slots__ = ("next_index", "open_key", "open_index", "signature")

    def __init__(self) -> None:
        self.next_index = 0
        self.open_key: object = None
        self.open_index = -1
        #: Sent as the open thinking block's `signature_delta` when it closes.
        self.signature: str | None = None

    def is_open(self, key: object) -> bool:
        return self.open_key is not None and self.open_key == key

    def close(self, out: list[Event]) -> None:
        if self.open_key is not None:
            if self.signature is not None:
                out.append(SignatureDelta(self.open_index, self.signature))
                self.signature = None
            out.append(BlockStop(self.open_index))
            self.open_key = None

    def open(self, out: list[Event], key: object) -> int:
        """Close the open block, if any, and return the index of a new one under `key` (the
        caller appends its start event)."""
        self.close(out)
        self.open_key = key
        self.open_index = self.next_index
        self.next_index += 1
        return self.open_index

    def text(self, out: list[Event], text: str, key: object = "text") -> None:
        """Append text, opening a text block under `key` unless it is the open one; empty
        text never opens a block."""
        if not text:
            return
        open_key = self.open_key  # `is_open`, inlined: this runs for every text delta
        if open_key is None or open_key != key:
            out.append(TextStart(self.open(out, key)))
        out.append(TextDelta(self.open_index, text))

    def thinking(
        self,
        out: list[Event],
        text: str,
        key: object = "thinking",
        signature: str | None = None,
    ) -> None:
        """Append reasoning text, opening a thinking block under `key` if needed; a new
        block's `signature` is sent when it closes."""
        if not text:
            return
        if not self.is_open(key):
            out.append(ThinkingStart(self.open(out, key)))
            self.signature = signature
        out.append(ThinkingDelta(self.open_index, text))
