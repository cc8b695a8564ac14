"""Backends by dialect, in a registry keyed by `{P}_API_FORMAT`.

A backend owns everything dialect-specific about talking to a provider: where a request goes
(path, static headers), how the canonical (Anthropic) request is encoded for it, and how its
answers and streams decode back into canonical form. The upstream client stays format-free.

| format | backend | dialect |
|---|---|---|
| `openai` | `chat` | OpenAI Chat Completions |
| `responses` | `responses` | OpenAI Responses |
| `gemini` | `gemini` | Google Gemini `generateContent` |
| `anthropic` | `anthropic` | Anthropic Messages (same as the client's: forwarded as is) |
| `bedrock` | `bedrock` | Amazon Bedrock's InvokeModel (Claude's Messages, AWS framing) |
| `vertex` | `vertex` | Google Vertex AI's rawPredict (Claude's Messages, model in the URL) |

An `openai`-format provider sends a model whose capabilities say `wire = "responses"` (gpt-5.x
reasoning models, gpt-6, o-series and codex models on OpenAI and Azure's v1 API) to the
Responses backend, with no configuration (`select`).

A provider with `{P}_AUTH=sigv4` gets a client that signs every request (`client_for`,
vdm/upstream/aws_auth.py), whatever its format: Bedrock's InvokeModel, or the Anthropic format
on Bedrock's mantle endpoint. One with `{P}_AUTH=google` gets a client that adds a token from
Google's credentials to every request (vdm/upstream/gcp_auth.py).

A backend may add headers of its own to each request (`request_headers`: Vertex's
`anthropic-beta`), and count tokens itself (`COUNTERS`: Bedrock's CountTokens, Vertex's
count-tokens) where the Anthropic format's pass-through cannot.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from vdm.config.settings import ProviderConfig
from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.bedrock_from_anthropic import claude_name
from vdm.protocol.capabilities import caps_for
from vdm.protocol.codec import ReasoningCache, Target
from vdm.protocol.errors import VdmError
from vdm.protocol.events import StreamDecoder
from vdm.protocol.vertex_from_anthropic import claude_name as vertex_claude_name
from vdm.upstream.client import UpstreamClient

if TYPE_CHECKING:
    import httpx

#: `{P}_API_FORMAT` -> the module that holds its backend (imported on first use).
MODULES: dict[str, str] = {
    "openai": "vdm.upstream.backends.chat",
    "responses": "vdm.upstream.backends.responses",
    "gemini": "vdm.upstream.backends.gemini",
    "anthropic": "vdm.upstream.backends.anthropic",
    "bedrock": "vdm.upstream.backends.bedrock",
    "vertex": "vdm.upstream.backends.vertex",
}
#: Formats whose provider counts tokens itself for a translated request: the module holding
#: its `count_tokens(client, body, target, client_key) -> int | None` (None: count offline).
COUNTERS: dict[str, str] = {
    "bedrock": "vdm.upstream.backends.bedrock",
    "vertex": "vdm.upstream.backends.vertex",
}
Counter = Callable[[UpstreamClient, dict[str, Any], Target, str | None], Awaitable[int | None]]


class Backend(Protocol):
    """One dialect's codecs and addressing."""

    #: The `{P}_API_FORMAT` it serves.
    name: str
    #: True only for the Anthropic dialect itself: an Anthropic client's body goes to it as
    #: it came (the pass-through), and it counts tokens of that body itself. Whether a
    #: request is forwarded is the exchange's question (`Exchange.forwarded`: the client's
    #: dialect and the backend's match), not this.
    native_anthropic: bool

    def path(self, provider: ProviderConfig, model: str, stream: bool) -> str:
        """The request path (after the provider's base URL), query included."""
        ...

    def headers(self, provider: ProviderConfig) -> dict[str, str]:
        """Headers every request of this dialect carries (auth is the client's business)."""
        ...

    def models_path(self, provider: ProviderConfig) -> str:
        """Where the provider lists its models."""
        ...

    def encode(self, request: MessagesRequest, target: Target) -> bytes:
        """The upstream request body for `request`."""
        ...

    def decode(self, answer: Any, request: MessagesRequest, target: Target) -> dict[str, Any]:
        """The Anthropic Message for a non-streaming answer (parsed JSON)."""
        ...

    def stream_decoder(self, request: MessagesRequest, target: Target) -> StreamDecoder:
        """A fresh decoder for one streamed answer."""
        ...

    def recover(self, error: VdmError, target: Target) -> str | None:
        """The degradation (a key of `vdm.protocol.codec.DEGRADATIONS`) that makes the
        provider accept the request it just rejected with `error`, or None: the request path
        adds it to `target.degraded`, encodes again and retries once."""
        ...


_loaded: dict[str, Backend] = {}

#: Gemini's answer to a thought signature it cannot verify (minted under another key, model
#: or route): "Corrupted thought signature." / "Invalid thought signature", on the native
#: API and the OpenAI-compatible one alike.
#: Gemini's "Corrupted thought signature." / "Invalid thought signature", and Vertex's
#: "Unable to submit request because Thought signature is not valid." (decolua/9router#301).
_BAD_SIGNATURE = re.compile(
    r"(corrupted|invalid) thought.?signature|thought.?signature is not valid", re.IGNORECASE
)


#: Characters that would change a URL's meaning if a model name carried them into a path
#: (a separator, a query, a fragment, a backslash some servers read as `/`), and control ones.
_NOT_IN_SEGMENT = re.compile(r"[/?#\\\x00-\x1f\x7f]")


def model_segment(model: str) -> str:
    """`model` as one URL path segment (an Azure deployment, a Gemini model): percent-quoted,
    after refusing what would address another resource whatever the quoting (`.`, `..`, an
    empty name: a server or proxy normalises them away) or what a server may decode before
    routing (`%2F` read as `/`). A 400 naming the model, so the client can fix it."""
    if model.strip() in ("", ".", "..") or _NOT_IN_SEGMENT.search(model):
        raise VdmError(
            400,
            f"model name {model!r} cannot be used in the provider's URL: it must not be empty, "
            "`.` or `..`, nor contain `/`, `?`, `#`, `\\` or control characters",
        )
    return quote(model, safe="")


def signature_rejected(error: VdmError, target: Target) -> str | None:
    """ "skip-signatures" when Gemini refused a replayed thought signature, else None."""
    if error.status == 400 and _BAD_SIGNATURE.search(error.message):
        return "skip-signatures"
    return None


def backend(api_format: str) -> Backend:
    """The backend for `api_format` (a key of MODULES)."""
    found = _loaded.get(api_format)
    if found is None:
        module = importlib.import_module(MODULES[api_format])
        found = _loaded[api_format] = module.BACKEND
    return found


def select(
    provider: ProviderConfig,
    model: str,
    requested: str,
    *,
    max_tokens_limit: int | None = None,
    reasoning_cache: ReasoningCache | None = None,
    web_search: bool = False,
) -> tuple[Backend, Target]:
    """The backend for `model` on `provider`, and the codecs' view of the destination. A
    request with Anthropic's web search tool (`web_search`) goes to OpenAI's Responses API
    where only that has search (gpt-4o, gpt-4.1: their Chat Completions has none)."""
    family = provider.family
    # A Bedrock id (`us.anthropic.claude-…-v1:0`) or a Vertex id (`claude-…@20250929`) has
    # the capabilities of its Claude model.
    caps = caps_for(family, vertex_claude_name(claude_name(model)))
    api_format = provider.api_format
    responses = caps.wire == "responses" or (web_search and caps.web_search == "responses")
    if api_format == "openai" and responses and not provider.uses_deployments:
        api_format = "responses"
    target = Target(
        family=family,
        model=model,
        caps=caps,
        requested=requested,
        max_tokens_limit=max_tokens_limit,
        reasoning_cache=reasoning_cache,
    )
    return backend(api_format), target


def client_for(
    provider: ProviderConfig,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    wrap: Callable[[httpx.AsyncBaseTransport], httpx.AsyncBaseTransport] | None = None,
) -> UpstreamClient:
    """A pooled client for `provider`, carrying its dialect's headers, and signing its
    requests when the provider signs with SigV4 (`UpstreamClient` for `transport`, `wrap`)."""
    headers = backend(provider.api_format).headers(provider)
    client = UpstreamClient(provider, headers=headers, transport=transport, wrap=wrap)
    # The signers are imported only for a provider that needs one: a gateway without
    # Bedrock or Vertex starts without them (tests/cli/test_main.py checks).
    if provider.aws is not None:
        from vdm.upstream.aws_auth import signer_for

        signer = signer_for(provider.name, provider.aws)
        if signer is not None:
            client.signer = signer.sign
    if provider.gcp is not None and provider.gcp.adc:
        from vdm.upstream.gcp_auth import authorizer_for

        authorizer = authorizer_for(provider.name, provider.gcp)
        if authorizer is not None:
            client.signer = authorizer.authorize
            client.unauthorized = authorizer.refused
    return client


def request_headers(
    backend: Backend, target: Target, headers: Mapping[str, str] | None
) -> Mapping[str, str] | None:
    """The extra headers of one upstream call: the backend's own for this request (Vertex's
    `anthropic-beta`), then `headers` (the middleware's, which win)."""
    own = getattr(backend, "request_headers", None)
    found: dict[str, str] = own(target) if own is not None else {}
    if not found:
        return headers
    return {**found, **(headers or {})}


def counter(api_format: str) -> Counter | None:
    """The provider's own token counter for a translated request, if its format has one."""
    module = COUNTERS.get(api_format)
    if module is None:
        return None
    found: Counter = importlib.import_module(module).count_tokens
    return found


def models_path(provider: ProviderConfig) -> str:
    """Where `provider` lists its models."""
    return backend(provider.api_format).models_path(provider)
