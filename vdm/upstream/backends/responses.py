"""The OpenAI Responses backend (`{P}_API_FORMAT=responses`, and automatically the models of
an `openai`-format OpenAI or Azure v1 provider whose capabilities say `wire = "responses"`).

Codecs: vdm/protocol/responses_from_anthropic.py (request) and
vdm/protocol/anthropic_from_responses.py (answer and stream); docs/backends/responses.md.
"""

from __future__ import annotations

from typing import Any

from vdm.config.settings import ProviderConfig
from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.anthropic_from_responses import ResponsesStreamDecoder, message_from_response
from vdm.protocol.codec import Target
from vdm.protocol.errors import VdmError
from vdm.protocol.responses_from_anthropic import responses_request_from_messages
from vdm.upstream.backends.chat import azure_query, json_body, openai_models_path


def _thinking(request: MessagesRequest) -> bool:
    """Whether the client lets thinking blocks through (it did not switch thinking off)."""
    return request.thinking is None or request.thinking.type != "disabled"


class ResponsesBackend:
    name = "responses"
    native_anthropic = False

    def path(self, provider: ProviderConfig, model: str, stream: bool) -> str:
        """`/responses` (the base URL carries the version: `…/v1`, Azure's `…/openai/v1`), or
        Azure's `/openai/responses?api-version=…` when models are deployment names (the
        deployment goes in the body's `model`)."""
        if provider.uses_deployments:
            return f"/openai/responses{azure_query(provider)}"
        return "/responses"

    def headers(self, provider: ProviderConfig) -> dict[str, str]:
        return {}

    def models_path(self, provider: ProviderConfig) -> str:
        return openai_models_path(provider)

    def encode(self, request: MessagesRequest, target: Target) -> bytes:
        return json_body(responses_request_from_messages(request, target))

    def decode(self, answer: Any, request: MessagesRequest, target: Target) -> dict[str, Any]:
        return message_from_response(answer, target, thinking=_thinking(request))

    def stream_decoder(self, request: MessagesRequest, target: Target) -> ResponsesStreamDecoder:
        return ResponsesStreamDecoder(target, thinking=_thinking(request))

    def recover(self, error: VdmError, target: Target) -> str | None:
        """Two rejections that would otherwise fail every request of a session:

        - `param: "reasoning.summary"` (`unsupported_value`): "Your organization must be
          verified to generate reasoning summaries…": ask for none (kept per provider);
        - `code: "invalid_encrypted_content"`: "The encrypted content for item rs_… could
          not be verified." (a key of another organization, a session moved between
          providers): replay no reasoning items.
        """
        if error.status != 400:
            return None
        if error.param == "reasoning.summary" and "verif" in error.message.lower():
            return "no-summary"
        if error.code == "invalid_encrypted_content":
            return "no-replay"
        return None


BACKEND = ResponsesBackend()
