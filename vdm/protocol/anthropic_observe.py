"""Watching an Anthropic Messages stream that is relayed byte for byte, for usage and its end.

The relay never re-frames the bytes; it feeds a copy of each read here. Only `message_start`,
`message_delta`, `message_stop` and `error` events are parsed; deltas are skipped by name.
"""

from __future__ import annotations

import json
from typing import Any

from vdm.protocol.sse import MAX_LINE_BYTES, SseDecoder

_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)
_CACHE_LIFETIMES = ("ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens")
_WATCHED = frozenset({"message_start", "message_delta", "message_stop", "error"})


def usage_of(message: dict[str, Any]) -> dict[str, int]:
    """The integer usage fields of a message or `message_delta` (missing ones left out), and
    the cache writes' lifetimes (`cache_creation.ephemeral_5m_input_tokens` /
    `ephemeral_1h_input_tokens`, kept flat under those names: 1-hour writes cost more)."""
    usage = message.get("usage")
    if not isinstance(usage, dict):
        return {}
    found = {k: int(usage[k]) for k in _USAGE_FIELDS if isinstance(usage.get(k), int)}
    creation = usage.get("cache_creation")
    if isinstance(creation, dict):
        for key in _CACHE_LIFETIMES:
            if isinstance(creation.get(key), int):
                found[key] = int(creation[key])
    return found


class AnthropicStreamObserver:
    """`feed(read)` for every relayed read; then `usage`, `stop_reason`, `complete`, `error`.

    Its decoder is linear and caps a line's length (`max_line_bytes`), so a relayed line that
    never ends costs the relay bounded memory: past the cap `feed` raises a 502 `VdmError`."""

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._decoder = SseDecoder(max_line_bytes)
        self.usage: dict[str, int] = {}
        self.stop_reason: str | None = None
        self.complete = False
        self.error: str | None = None
        #: The type of the upstream's `error` event (`overloaded_error`, ...).
        self.error_type: str | None = None

    def feed(self, data: bytes) -> None:
        for event in self._decoder.feed(data):
            if event.event not in _WATCHED:
                continue
            if event.event == "message_stop":
                self.complete = True
                continue
            try:
                payload = json.loads(event.data)
            except ValueError:
                continue
            if not isinstance(payload, dict):
                continue
            if event.event == "message_start":
                message = payload.get("message")
                if isinstance(message, dict):
                    self.usage.update(usage_of(message))
            elif event.event == "message_delta":
                self.usage.update(usage_of(payload))
                delta = payload.get("delta")
                if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
                    self.stop_reason = delta["stop_reason"]
            else:
                error = payload.get("error")
                self.error = str(error.get("message")) if isinstance(error, dict) else "error"
                kind = error.get("type") if isinstance(error, dict) else None
                self.error_type = kind if isinstance(kind, str) else "api_error"

    @property
    def ended_cleanly(self) -> bool:
        """The upstream finished the message (`message_stop`) or reported an error itself."""
        return self.complete or self.error is not None
