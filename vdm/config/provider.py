"""One upstream provider's configuration (`ProviderConfig`) and one alias (`Alias`), with the
API formats and auth schemes a provider may use."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from vdm.config.aws import AwsAuth
from vdm.config.gcp import GcpConfig
from vdm.config.names import env_prefix, looks_like_provider, provider_key
from vdm.config.secrets import is_credential_name, mask
from vdm.config.timeouts import DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_RETRY_AFTER_CAP, Timeouts
from vdm.protocol.capabilities import family_of

ApiFormat = Literal["openai", "responses", "gemini", "anthropic", "bedrock", "vertex"]
Auth = Literal["bearer", "x-api-key", "api-key", "x-goog-api-key", "sigv4", "google"]
API_FORMATS: tuple[ApiFormat, ...] = (
    "openai",
    "responses",
    "gemini",
    "anthropic",
    "bedrock",
    "vertex",
)
FORMAT_NAMES = {
    "openai": "OpenAI",
    "responses": "OpenAI Responses",
    "gemini": "Gemini",
    "anthropic": "Anthropic",
    "bedrock": "Amazon Bedrock",
    "vertex": "Google Vertex AI",
}
#: The auth scheme of each format, unless `{P}_AUTH` says otherwise.
DEFAULT_AUTH: dict[str, Auth] = {
    "openai": "bearer",
    "responses": "bearer",
    "gemini": "x-goog-api-key",
    "anthropic": "x-api-key",
    # A Bedrock API key (AWS_BEARER_TOKEN_BEDROCK); `sigv4` signs with AWS credentials.
    "bedrock": "bearer",
    # An OAuth access token; `google` gets and refreshes one with google-auth.
    "vertex": "bearer",
}
#: `sigv4`: no key is sent; each request is signed (vdm/config/aws.py, vdm/upstream/aws_auth.py).
#: `google`: no key; a token from Google's credentials (vdm/config/gcp.py, upstream/gcp_auth.py).
AUTH_SCHEMES: tuple[Auth, ...] = (
    "bearer",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "sigv4",
    "google",
)
#: `{P}_API_KEY=!PASSTHRU`: the client's own key is used upstream.
PASSTHRU = "!PASSTHRU"


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One upstream provider."""

    name: str
    api_keys: tuple[str, ...]
    base_url: str
    api_format: ApiFormat = "openai"
    #: Connect, first-byte, idle and total timeouts (vdm/config/timeouts.py).
    timeouts: Timeouts = Timeouts()
    max_retries: int = 2
    custom_headers: Mapping[str, str] = field(default_factory=dict)
    #: How the key is sent: `Authorization: Bearer`, `x-api-key` or Azure's `api-key`.
    auth: Auth = "bearer"
    #: Azure: the `api-version` query parameter; with it, model names are deployment names.
    api_version: str | None = None
    #: `{P}_API_KEY=!PASSTHRU`: each request uses the key the client sent.
    passthrough: bool = False
    #: The longest upstream `Retry-After` honoured, in seconds (`{P}_RETRY_AFTER_CAP`).
    retry_after_cap: float = DEFAULT_RETRY_AFTER_CAP
    #: The largest non-streamed answer read, in bytes (`{P}_MAX_RESPONSE_BYTES`).
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    #: How a `sigv4` provider signs (region, signing name, credentials); None otherwise.
    aws: AwsAuth | None = None
    #: A Vertex provider's project and location, and whether google-auth gives its token.
    gcp: GcpConfig | None = None

    def __repr__(self) -> str:  # never show keys, even in a traceback
        return (
            f"ProviderConfig(name={self.name!r}, base_url={self.base_url!r}, "
            f"api_format={self.api_format!r}, keys={len(self.api_keys)}, "
            f"passthrough={self.passthrough})"
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        """Its keys and the values of its credential custom headers (`X-Auth-Token`, …):
        what must be masked wherever an answer of this provider is shown."""
        headers = (v.strip() for k, v in self.custom_headers.items() if is_credential_name(k))
        aws = self.aws.secrets if self.aws is not None else ()
        return (*self.api_keys, *(v for v in headers if v), *aws)

    @property
    def timeout(self) -> float | None:
        """The first-byte timeout: what `{P}_TIMEOUT` / `REQUEST_TIMEOUT` set."""
        return self.timeouts.first_byte

    @property
    def uses_deployments(self) -> bool:
        """Azure with an `api-version`: model names are deployment names in the URL (except
        on Azure's v1 API, called like OpenAI)."""
        return self.api_version is not None and not self.base_url.endswith("/openai/v1")

    @property
    def family(self) -> str:
        """Its provider family, for the capability table (vdm/protocol/capabilities.py)."""
        return family_of(self.name, self.base_url)

    @property
    def masked_keys(self) -> list[str]:
        return [PASSTHRU] if self.passthrough else [mask(k) for k in self.api_keys]


@dataclass(frozen=True, slots=True)
class Alias:
    """`name` → `target` (a model of `provider`, or `other:model`), and where it was set."""

    name: str
    provider: str
    target: str
    source: str
    #: `alias` (yours: step 2 of model resolution) or `fallback` (step 3).
    kind: Literal["alias", "fallback"] = "alias"
    #: The targets tried, in order, when `target` fails before answering (a list alias:
    #: `fast = ["groq:a", "openai:b"]`); each a model of `provider` or `other:model`.
    failover: tuple[str, ...] = ()


def chain_warnings(
    providers: Mapping[str, ProviderConfig],
    aliases: Iterable[Alias],
    fallbacks: Iterable[Alias],
    failover: Mapping[str, tuple[str, ...]],
    long_context: Mapping[str, str],
) -> list[str]:
    """Failover and long-context targets naming a provider that is not configured: they are
    skipped when a request fails over, which is almost always a mistake."""
    found: list[tuple[str, str]] = []
    for alias in (*aliases, *fallbacks):
        found += [(f"alias {alias.name!r} ({alias.source})", t) for t in alias.failover]
    for key, targets in failover.items():
        found += [(f"failover {key!r}", t) for t in targets]
    found += [(f"long-context {key or '(all models)'!r}", t) for key, t in long_context.items()]
    warnings: list[str] = []
    for where, target in found:
        prefix, sep, _ = target.partition(":")
        if sep and looks_like_provider(prefix) and provider_key(prefix) not in providers:
            warnings.append(
                f"{where}: target {target!r} names provider {prefix!r}, which is not "
                f"configured; it is skipped (configured: {', '.join(providers) or 'none'})"
            )
    return warnings


#: Claude Code's model families, mapped by the legacy variables.
LEGACY_FAMILIES = {"SMALL_MODEL": "haiku", "MIDDLE_MODEL": "sonnet", "BIG_MODEL": "opus"}
#: Claude Code's model names all start so (`claude-sonnet-4-5-20250929`, `claude-opus-4-6`).
CLAUDE_PREFIX = "claude-"


def claude_warning(
    default: ProviderConfig, aliases: Iterable[Alias], fallbacks: Iterable[Alias]
) -> str | None:
    """A warning when Claude Code's model names would reach the default provider unchanged:
    no alias of yours and no fallback of the default provider matches `claude-haiku`,
    `claude-sonnet` or `claude-opus` (docs/routing.md). An Anthropic-format provider is
    assumed to know them (Anthropic itself, a Claude gateway; DeepSeek's and Kimi's
    Anthropic endpoints map them to their own models), and so is Vertex (its ids are
    Claude's with `@` before the date, which its backend writes)."""
    if default.api_format in ("anthropic", "vertex"):
        return None
    mapping = [a.name for a in aliases]
    mapping += [a.name for a in fallbacks if a.provider == default.name]
    families = LEGACY_FAMILIES.values()
    unmapped = [f for f in families if not any(n in f"{CLAUDE_PREFIX}{f}" for n in mapping)]
    if not unmapped:
        return None
    p = env_prefix(default.name)
    legacy = {family: var for var, family in LEGACY_FAMILIES.items()}
    names = ", ".join(f"{CLAUDE_PREFIX}{f}-…" for f in unmapped)
    variables = ", ".join(f"{p}_ALIAS_{f.upper()}=<model>" for f in unmapped)
    return (
        f"Claude Code's model names ({names}) reach provider {default.name!r} unchanged: no "
        f"alias maps them to one of its models. Map them with {variables}, with "
        f'[{default.name}.aliases] in vandamme-config.toml ({unmapped[0]} = "<model>"), or '
        f"with {' / '.join(legacy[f] for f in unmapped)}"
    )
