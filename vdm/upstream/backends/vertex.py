"""Google Vertex AI's rawPredict backend (`{P}_API_FORMAT=vertex`), for Claude models.

`POST {base}/projects/{p}/locations/{l}/publishers/anthropic/models/{id}:rawPredict`, or
`:streamRawPredict` for streams, where the base URL is Vertex's for the location
(vdm/config/gcp.py). The body is the Anthropic Messages request fitted to the model as the
Anthropic backend fits it (`fit_body`), then made Vertex's (vdm/protocol/
vertex_from_anthropic.py); the answer is an Anthropic message, the stream plain Anthropic SSE.
The betas of an Anthropic client's `anthropic-beta` header that Vertex takes go in that header
(`request_headers`). Auth is a bearer token: `{P}_API_KEY`, or google-auth's
(vdm/upstream/gcp_auth.py). Vertex's own errors come in Google's shape, in an array
(`[{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}]`), and are read by
vdm/upstream/failures.py. docs/backends/vertex.md.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from vdm.config.settings import ProviderConfig
from vdm.protocol import jsonio
from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.anthropic_events import AnthropicEventDecoder
from vdm.protocol.codec import Target
from vdm.protocol.errors import VdmError
from vdm.protocol.vertex_from_anthropic import (
    degradation_for,
    raw_predict_body,
    vertex_betas,
    vertex_id,
)
from vdm.upstream.backends import model_segment
from vdm.upstream.backends.anthropic import BACKEND as ANTHROPIC
from vdm.upstream.backends.anthropic import fit_body, without_foreign_thinking
from vdm.upstream.client import UpstreamClient

log = logging.getLogger(__name__)

#: Vertex's list of Anthropic's publisher models (ListPublisherModels, only in v1beta1).
_MODELS = "/v1beta1/publishers/anthropic/models"


def _gcp(provider: ProviderConfig) -> Any:
    if provider.gcp is None:  # settings make one for every vertex provider
        raise VdmError(500, f"provider {provider.name!r} has no Vertex project configured")
    return provider.gcp


def _segment(model: str) -> str:
    """The model id as one path segment (`@` kept: Vertex's ids carry it)."""
    return model_segment(vertex_id(model)).replace("%40", "@")


def _dumps(body: dict[str, Any]) -> bytes:
    return jsonio.dumps(body)


class VertexBackend:
    name = "vertex"
    native_anthropic = False

    def path(self, provider: ProviderConfig, model: str, stream: bool) -> str:
        method = "streamRawPredict" if stream else "rawPredict"
        return f"{_gcp(provider).models_prefix}/{_segment(model)}:{method}"

    def headers(self, provider: ProviderConfig) -> dict[str, str]:
        return {}

    def request_headers(self, target: Target) -> dict[str, str]:
        """The client's betas Vertex takes, in its `anthropic-beta` header."""
        betas = vertex_betas(target.betas, target.degraded)
        return {"anthropic-beta": ",".join(betas)} if betas else {}

    def models_path(self, provider: ProviderConfig) -> str:
        """ListPublisherModels on the same host (its answer, `publisherModels`, adds no
        entries to `GET /v1/models`; it checks the credentials for `vdm health`)."""
        parts = urlsplit(provider.base_url)
        return f"{parts.scheme}://{parts.netloc}{_MODELS}"

    def encode(self, request: MessagesRequest, target: Target) -> bytes:
        body = request.model_dump(mode="json", exclude_unset=True, by_alias=True)
        if request.stream:
            body["stream"] = True
        fit_body(body, target)
        return _dumps(raw_predict_body(body, target.degraded))

    def decode(self, answer: Any, request: MessagesRequest, target: Target) -> dict[str, Any]:
        return ANTHROPIC.decode(answer, request, target)

    def stream_decoder(self, request: MessagesRequest, target: Target) -> AnthropicEventDecoder:
        return AnthropicEventDecoder()

    def recover(self, error: VdmError, target: Target) -> str | None:
        """Betas or a field Vertex refused by name: left out, and the request sent again."""
        return degradation_for(error.message) if error.status == 400 else None


def count_tokens_call(request: dict[str, Any], target: Target) -> tuple[str, bytes]:
    """(path after the models prefix, body) of Vertex's count-tokens for a count_tokens
    request body: the Anthropic body with `model` (Vertex's id) kept, Vertex's version, no
    refused field. No
    betas: count-tokens refuses more of them than the model does (web-search among them,
    providers.md 3c; anthropics/anthropic-sdk-typescript PR#1060) and counting needs none."""
    body = {k: v for k, v in request.items() if k != "model"}
    messages = body.get("messages")
    if isinstance(messages, list):
        body["messages"] = without_foreign_thinking(messages)
    body = raw_predict_body(body)
    body["model"] = vertex_id(target.model)
    return "/count-tokens:rawPredict", _dumps(body)


def tokens_of(answer: Any) -> int:
    """`input_tokens` of count-tokens' answer; a 502 for anything else."""
    found = answer.get("input_tokens") if isinstance(answer, dict) else None
    if not isinstance(found, int) or isinstance(found, bool):
        raise VdmError(502, "Vertex's count-tokens answer has no `input_tokens`")
    return found


async def count_tokens(
    client: UpstreamClient, request: dict[str, Any], target: Target, client_key: str | None
) -> int | None:
    """Vertex's own count of a count_tokens request body, or None when it gives none (a
    model or location it does not count for, any error): the caller counts offline then."""
    path, body = count_tokens_call(request, target)
    prefix = _gcp(client.provider).models_prefix
    try:
        return tokens_of(await client.post_json(prefix + path, body, client_key=client_key))
    except VdmError as exc:
        log.info("Vertex did not count tokens for %s (%s): counted offline", target.model, exc)
        return None


BACKEND = VertexBackend()
