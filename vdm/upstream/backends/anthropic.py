"""The Anthropic Messages backend (`{P}_API_FORMAT=anthropic`): the client's own dialect.

Requests are not translated: vdm/server/passthrough.py forwards the client's body (only
`model` renamed, vdm's own thinking blocks dropped) and relays the answer byte for byte. This
backend holds the addressing only; its codec methods refuse to be used.
"""

from __future__ import annotations

from typing import Any

from vdm.config.settings import ProviderConfig
from vdm.protocol.anthropic import ANTHROPIC_VERSION, MessagesRequest
from vdm.protocol.codec import Target
from vdm.protocol.errors import VdmError
from vdm.protocol.events import StreamDecoder

MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"


class AnthropicBackend:
    name = "anthropic"
    translated = False

    def path(self, provider: ProviderConfig, model: str, stream: bool) -> str:
        return MESSAGES_PATH

    def headers(self, provider: ProviderConfig) -> dict[str, str]:
        # Anthropic refuses requests without it (GET /v1/models too); a passthrough request
        # sends the client's own instead.
        return {"anthropic-version": ANTHROPIC_VERSION}

    def models_path(self, provider: ProviderConfig) -> str:
        return "/v1/models"

    def encode(self, request: MessagesRequest, target: Target) -> bytes:
        raise TypeError("Anthropic-format requests are forwarded, not encoded")

    def decode(self, answer: Any, request: MessagesRequest, target: Target) -> dict[str, Any]:
        raise TypeError("Anthropic-format answers are relayed, not decoded")

    def stream_decoder(self, request: MessagesRequest, target: Target) -> StreamDecoder:
        raise TypeError("Anthropic-format streams are relayed, not decoded")

    def recover(self, error: VdmError, target: Target) -> str | None:
        return None  # the client's own request: nothing of vdm's to leave out


BACKEND = AnthropicBackend()
