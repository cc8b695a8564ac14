"""What a backend's codecs know of one request's destination, and the state its request
encoder leaves for its response decoder.

A backend encodes the canonical (Anthropic) request for its provider's dialect, then decodes
the answer back into canonical form. Both halves of one request share a `Target`: the model
and its capabilities, the client's model name to echo, and the renames the encoder made
(tool ids a provider needs in another format, tool names too long for it) so the decoder can
undo them.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from vdm.protocol.capabilities import ModelCaps


class ReasoningCache:
    """A bounded in-process memory of reasoning text by tool call id, for clients that drop
    thinking blocks from their history: it may help, it is never required (DESIGN.md)."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._items: OrderedDict[str, str] = OrderedDict()

    def put(self, tool_id: str, reasoning: str) -> None:
        if not tool_id or not reasoning:
            return
        self._items[tool_id] = reasoning
        self._items.move_to_end(tool_id)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def get(self, tool_id: str) -> str | None:
        return self._items.get(tool_id)

    def __len__(self) -> int:
        return len(self._items)


@dataclass(slots=True)
class Target:
    """One request's destination, as the codecs see it."""

    #: The provider family (`vdm.protocol.capabilities.family_of`).
    family: str
    #: The upstream model name (no provider prefix).
    model: str
    caps: ModelCaps
    #: The model name the client asked for, echoed in the answer.
    requested: str
    #: `MAX_TOKENS_LIMIT`: clamp `max_tokens` to it when set.
    max_tokens_limit: int | None = None
    #: Upstream tool call id -> the client's, where the encoder had to rename ids.
    tool_ids: dict[str, str] = field(default_factory=dict)
    #: Upstream tool name -> the client's, where a name did not fit the provider's rules.
    tool_names: dict[str, str] = field(default_factory=dict)
    #: Shared by a gateway's requests (see ReasoningCache); None in pure tests.
    reasoning_cache: ReasoningCache | None = None

    def client_tool_id(self, upstream_id: str) -> str:
        return self.tool_ids.get(upstream_id, upstream_id)

    def client_tool_name(self, upstream_name: str) -> str:
        return self.tool_names.get(upstream_name, upstream_name)
