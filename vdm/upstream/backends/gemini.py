"""The native Gemini backend (`{P}_API_FORMAT=gemini`, the `gemini` preset's default).

`POST {base}/models/{model}:generateContent`, or `:streamGenerateContent?alt=sse` for streams,
with the key in `x-goog-api-key` (the default auth of the format); the base URL carries the
version (`https://generativelanguage.googleapis.com/v1beta`). Google's errors
(`{"error": {"code", "message", "status"}}`) reach the client with their message, through the
upstream client. Codecs: vdm/protocol/gemini_from_anthropic.py (request) and
vdm/protocol/anthropic_from_gemini.py (answer and stream); docs/backends/gemini.md.
"""

from __future__ import annotations

from typing import Any

from vdm.config.settings import ProviderConfig
from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.anthropic_from_gemini import GeminiStreamDecoder, message_from_gemini
from vdm.protocol.codec import Target
from vdm.protocol.errors import VdmError
from vdm.protocol.gemini_from_anthropic import encode
from vdm.upstream.backends import model_segment, signature_rejected


def model_path(model: str) -> str:
    """`/models/{model}`: a `models/` prefix (as Gemini's own model list spells names) is
    accepted; the rest must be one path segment (`model_segment`)."""
    return "/models/" + model_segment(model.removeprefix("models/"))


class GeminiBackend:
    name = "gemini"
    native_anthropic = False

    def path(self, provider: ProviderConfig, model: str, stream: bool) -> str:
        if stream:
            return f"{model_path(model)}:streamGenerateContent?alt=sse"
        return f"{model_path(model)}:generateContent"

    def headers(self, provider: ProviderConfig) -> dict[str, str]:
        return {}

    def models_path(self, provider: ProviderConfig) -> str:
        return "/models"

    def encode(self, request: MessagesRequest, target: Target) -> bytes:
        return encode(request, target)

    def decode(self, answer: Any, request: MessagesRequest, target: Target) -> dict[str, Any]:
        return message_from_gemini(answer, target)

    def stream_decoder(self, request: MessagesRequest, target: Target) -> GeminiStreamDecoder:
        return GeminiStreamDecoder(target)

    def recover(self, error: VdmError, target: Target) -> str | None:
        """A replayed thought signature Gemini cannot verify (the history came from another
        key, model or route): send none, with the documented stand-in where one is due."""
        return signature_rejected(error, target)


BACKEND = GeminiBackend()
