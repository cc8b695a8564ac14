"""The OpenAI Chat Completions backend (`{P}_API_FORMAT=openai`, the default)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from vdm.config.settings import ProviderConfig
from vdm.protocol import jsonio
from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.anthropic_from_openai import ChatStreamDecoder, message_from_chat
from vdm.protocol.codec import Target
from vdm.protocol.errors import VdmError
from vdm.protocol.openai_from_anthropic import chat_request_from_messages
from vdm.upstream.backends import model_segment, signature_rejected


def azure_query(provider: ProviderConfig) -> str:
    return f"?api-version={quote(provider.api_version or '', safe='')}"


def openai_models_path(provider: ProviderConfig) -> str:
    """`/models`, or Azure's `/openai/models?api-version=…`."""
    if provider.uses_deployments:
        return f"/openai/models{azure_query(provider)}"
    return "/models"


def json_body(payload: Any) -> bytes:
    """A request body as compact UTF-8 JSON, encoded once."""
    return jsonio.dumps(payload)


class ChatBackend:
    name = "openai"
    native_anthropic = False

    def path(self, provider: ProviderConfig, model: str, stream: bool) -> str:
        """`/chat/completions`, or for Azure the deployment's URL."""
        if provider.uses_deployments:
            deployment = model_segment(model)
            return f"/openai/deployments/{deployment}/chat/completions{azure_query(provider)}"
        return "/chat/completions"

    def headers(self, provider: ProviderConfig) -> dict[str, str]:
        return {}

    def models_path(self, provider: ProviderConfig) -> str:
        return openai_models_path(provider)

    def encode(self, request: MessagesRequest, target: Target) -> bytes:
        return json_body(chat_request_from_messages(request, target))

    def decode(self, answer: Any, request: MessagesRequest, target: Target) -> dict[str, Any]:
        return message_from_chat(answer, target, request.stop_sequences)

    def stream_decoder(self, request: MessagesRequest, target: Target) -> ChatStreamDecoder:
        return ChatStreamDecoder(target, request.stop_sequences)

    def recover(self, error: VdmError, target: Target) -> str | None:
        """Gemini's OpenAI-compatible endpoint refusing a replayed thought signature (only
        models whose capabilities carry signatures replay any)."""
        return signature_rejected(error, target) if target.caps.thought_signatures else None


BACKEND = ChatBackend()
