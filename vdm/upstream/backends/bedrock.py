"""Amazon Bedrock's InvokeModel backend (`{P}_API_FORMAT=bedrock`), for Claude models.

`POST {base}/model/{model id}/invoke`, or `/invoke-with-response-stream` for streams, where
the base URL is `https://bedrock-runtime.{region}.amazonaws.com` (vdm/config/aws.py). The body
is the Anthropic Messages request fitted to the model as the Anthropic backend fits it
(`fit_body`), then made Bedrock's (vdm/protocol/bedrock_from_anthropic.py); the answer is an
Anthropic message, the stream AWS event-stream frames carrying Anthropic events
(vdm/protocol/anthropic_from_bedrock.py). Auth is the provider's: a Bedrock API key as
`Authorization: Bearer`, or SigV4 (vdm/upstream/aws_auth.py). Bedrock's errors
(`{"message"}` with `x-amzn-ErrorType`) are read by vdm/upstream/failures.py.

The model id is one path segment quoted as the anthropic SDK's Bedrock client quotes it
(`quote(id, safe=":")`): an application-inference-profile ARN's `/` travels as `%2F`
(anthropics/anthropic-sdk-python#740, PR#759). docs/backends/bedrock.md.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import quote, urlsplit

from vdm.config.settings import ProviderConfig
from vdm.protocol import jsonio
from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.anthropic_from_bedrock import BedrockStreamDecoder
from vdm.protocol.bedrock_from_anthropic import (
    claude_name,
    count_tokens_body,
    degradation_for,
    foundation_id,
    invoke_body,
)
from vdm.protocol.codec import Target
from vdm.protocol.errors import VdmError
from vdm.upstream.backends.anthropic import BACKEND as ANTHROPIC
from vdm.upstream.backends.anthropic import DEFAULT_MAX_TOKENS, fit_body, fit_output
from vdm.upstream.client import UpstreamClient

log = logging.getLogger(__name__)

#: What would change the URL's meaning whatever the quoting (a query, a fragment, a backslash
#: some servers read as `/`) or cannot be sent (control characters).
_NOT_IN_ID = re.compile(r"[?#\\\x00-\x1f\x7f]")
#: Bedrock's control plane lists models; the runtime serves none (`models_path`).
_MODELS = "/foundation-models?byProvider=anthropic"


def model_segment(model: str) -> str:
    """`model` as the path segment Bedrock reads: quoted with `:` kept and `/` as `%2F`, after
    refusing what would address another resource (an empty, `.` or `..` part between
    slashes, which a server or proxy normalises away) or could not be sent."""
    if any(part.strip() in ("", ".", "..") for part in model.split("/")) or _NOT_IN_ID.search(
        model
    ):
        raise VdmError(
            400,
            f"model name {model!r} cannot be used in Bedrock's URL: it must be a model id, an "
            "inference profile id or an ARN, with no empty, `.` or `..` part between slashes "
            "and no `?`, `#`, `\\` or control characters",
        )
    return quote(model, safe=":")


def _dumps(body: dict[str, Any]) -> bytes:
    return jsonio.dumps(body)


class BedrockBackend:
    name = "bedrock"
    native_anthropic = False

    def path(self, provider: ProviderConfig, model: str, stream: bool) -> str:
        operation = "invoke-with-response-stream" if stream else "invoke"
        return f"/model/{model_segment(model)}/{operation}"

    def headers(self, provider: ProviderConfig) -> dict[str, str]:
        return {}

    def models_path(self, provider: ProviderConfig) -> str:
        """ListFoundationModels of Bedrock's control plane (`bedrock.{region}…`, same
        signing name), since the runtime lists nothing: an absolute URL when the base URL
        is the runtime's own host, else the path on the base URL (a private endpoint, a
        gateway). Its answer (`modelSummaries`) adds no entries to `GET /v1/models`; what it
        gives is a check of the credentials (`vdm health`)."""
        parts = urlsplit(provider.base_url)
        host = parts.hostname or ""
        if host.startswith("bedrock-runtime."):
            control = host.replace("bedrock-runtime.", "bedrock.", 1)
            return f"{parts.scheme}://{control}{_MODELS}"
        return _MODELS

    def encode(self, request: MessagesRequest, target: Target) -> bytes:
        """The request fitted to the model (its output ceiling, thinking and effort, where
        the id names a Claude model the table knows; only `max_tokens` for an ARN), then in
        Bedrock's shape."""
        body = request.model_dump(mode="json", exclude_unset=True, by_alias=True)
        return _dumps(invoke_body(fitted(body, target), target.degraded, target.betas))

    def decode(self, answer: Any, request: MessagesRequest, target: Target) -> dict[str, Any]:
        return ANTHROPIC.decode(answer, request, target)

    def stream_decoder(self, request: MessagesRequest, target: Target) -> BedrockStreamDecoder:
        return BedrockStreamDecoder()

    def recover(self, error: VdmError, target: Target) -> str | None:
        """A field or beta Bedrock refused by name: left out, and the request sent again."""
        return degradation_for(error.message) if error.status == 400 else None


def fitted(body: dict[str, Any], target: Target) -> dict[str, Any]:
    """`body` fitted to the target model, in place: as the Anthropic backend fits it when the
    id names a known Claude model; for any other id (an application-inference-profile ARN)
    only `max_tokens` and the thinking blocks Anthropic refuses, since guessing the model's
    thinking rules wrong is a 400 where leaving them is not."""
    if claude_name(target.model) != target.model:
        fit_body(body, target)
    else:
        fit_body(body, None)
        if isinstance(body.get("max_tokens"), int):
            fit_output(body, target)
    return body


def count_tokens_call(request: dict[str, Any], target: Target) -> tuple[str, bytes] | None:
    """(path, body) of Bedrock's CountTokens for a count_tokens request body, or None when
    the model id has no bare foundation form (an ARN): count offline then."""
    model = foundation_id(target.model)
    if model is None:
        return None
    # InvokeModel's body requires `max_tokens` (counted as nothing); fitting keeps a thinking
    # budget below it.
    body = {"max_tokens": DEFAULT_MAX_TOKENS, **request}
    invoke = invoke_body(fitted(body, target), target.degraded)
    return f"/model/{model_segment(model)}/count-tokens", count_tokens_body(invoke)


def tokens_of(answer: Any) -> int:
    """`inputTokens` of CountTokens' answer; a 502 for anything else."""
    found = answer.get("inputTokens") if isinstance(answer, dict) else None
    if not isinstance(found, int) or isinstance(found, bool):
        raise VdmError(502, "Bedrock's CountTokens answer has no `inputTokens`")
    return found


async def count_tokens(
    client: UpstreamClient, request: dict[str, Any], target: Target, client_key: str | None
) -> int | None:
    """Bedrock's own count of a count_tokens request body (its CountTokens API), or None
    when it cannot give one (an ARN, a region or model it does not count for, any error):
    the caller counts offline then. CountTokens is free (providers.md 2e)."""
    call = count_tokens_call(request, target)
    if call is None:
        return None
    path, body = call
    try:
        return tokens_of(await client.post_json(path, body, client_key=client_key))
    except VdmError as exc:
        log.info("Bedrock did not count tokens for %s (%s): counted offline", target.model, exc)
        return None


BACKEND = BedrockBackend()
