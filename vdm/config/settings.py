"""Settings: the configuration layers (vdm/config/sources.py) turned into providers, aliases
and server settings, resolved once at start.

Providers are discovered from `{PROVIDER}_API_KEY` (from any layer); names follow the original
Vandamme Proxy (docs/configuration.md) so that its users' `.env` files keep working.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vdm.config.aws import (
    BEARER_TOKEN_VAR,
    BEDROCK_FORMAT,
    BEDROCK_PROVIDER,
    SIGV4,
    aws_provider_names,
    bedrock_url,
    credentials_problems,
    ignored_key,
    no_region,
    read_aws,
    region_of,
)
from vdm.config.gcp import GOOGLE, VERTEX_FORMAT, google_provider_names, read_gcp, vertex_url
from vdm.config.gcp import ignored_key as ignored_google_key
from vdm.config.gcp import location_of as vertex_location
from vdm.config.names import (
    env_prefix,
    failover_key,
    looks_like_provider,
    normalize,
    provider_key,
    split_targets,
)
from vdm.config.provider import (
    API_FORMATS,
    AUTH_SCHEMES,
    DEFAULT_AUTH,
    FORMAT_NAMES,
    LEGACY_FAMILIES,
    PASSTHRU,
    Alias,
    ApiFormat,
    Auth,
    ProviderConfig,
    chain_warnings,
    claude_warning,
)
from vdm.config.routing_rules import Rule, RuleError, parse_rules
from vdm.config.secrets import is_credential_name
from vdm.config.sources import (
    DEFAULTS_SOURCE,
    FAILOVER_VAR,
    LONG_CONTEXT_VAR,
    PROVIDER_KEYS,
    TABLES,
    ConfigError,
    Layer,
    Value,
    env_layer,
    load_layers,
    merge_middleware,
    packaged_defaults,
    read_dotenv,
)
from vdm.config.timeouts import (
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_RETRY_AFTER_CAP,
    Timeouts,
    read_timeouts,
)
from vdm.config.values import (
    read_bool,
    read_bytes,
    read_int,
    read_origins,
    read_positive,
    read_seconds,
)

__all__ = [
    "API_FORMATS",
    "AUTH_SCHEMES",
    "DEFAULT_AUTH",
    "PASSTHRU",
    "Alias",
    "ApiFormat",
    "Auth",
    "ConfigError",
    "ProviderConfig",
    "Settings",
    "failover_key",
    "looks_like_provider",
    "normalize",
    "provider_key",
    "read_dotenv",
    "split_targets",
]

log = logging.getLogger(__name__)

#: Variables that end in _API_KEY but do not name a provider.
NOT_PROVIDERS = frozenset({"PROXY"})

_KEY_VAR = re.compile(r"^([A-Z][A-Z0-9_]*?)_API_KEY$")
_ALIAS_VAR = re.compile(r"^([A-Z][A-Z0-9_]*?)_ALIAS_([A-Z0-9_]+)$")
#: Variables whose name may end in _API_KEY without naming a provider: a header `X-Api-Key`
#: (`CUSTOM_HEADER_X_API_KEY`, `OPENAI_CUSTOM_HEADER_X_API_KEY`), an alias, a fallback.
_NOT_KEY_VAR = re.compile(
    r"^CUSTOM_HEADER_|_CUSTOM_HEADER_|_ALIAS_|^VDM_FALLBACK_|^VDM_FAILOVER_|^VDM_LONG_CONTEXT"
)
#: The variable suffixes that are settings of a provider (`OLLAMA_BASE_URL`, `OLLAMA_ALIAS_X`).
_PROVIDER_SUFFIXES = tuple(PROVIDER_KEYS.values())
_PROVIDER_TABLES = tuple(TABLES.values())


#: The log's line formats (`LOG_FORMAT`); vdm/server/logs.py writes them.
LOG_FORMATS = ("text", "json")

#: The one message for "nothing to route to", naming the fix.
NO_PROVIDER = (
    "no provider configured: set OPENAI_API_KEY (or {P}_API_KEY and {P}_BASE_URL for any "
    "OpenAI-compatible endpoint) or run `vdm config setup`"
)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server needs, resolved once at start."""

    providers: Mapping[str, ProviderConfig] = field(default_factory=dict)
    default_provider: str | None = None
    #: Your aliases of configured providers, in provider order (default provider first).
    aliases: tuple[Alias, ...] = ()
    #: Fallback aliases in the order they are tried: [fallback] / VDM_FALLBACK_*, then the
    #: legacy SMALL/MIDDLE/BIG_MODEL, then the packaged ones of configured providers (the
    #: default provider's first). Only the default provider's apply to a name without a
    #: prefix (`bare_fallbacks`); the others answer `provider:name`.
    fallbacks: tuple[Alias, ...] = ()
    #: When set, clients must present it (x-api-key or Authorization: Bearer).
    proxy_api_key: str | None = None
    #: `vdm wrap`: a per-session secret every /v1 request must carry in `x-vdm-session`.
    session_secret: str | None = field(default=None, repr=False)
    #: `vdm wrap --dashboard`: a random token that opens the dashboard (viewing only; never
    #: accepted on /v1), handed to the browser in the printed URL's `#key=` fragment.
    dashboard_token: str | None = field(default=None, repr=False)
    host: str = "127.0.0.1"
    port: int = 8082
    log_level: str = "INFO"
    #: The log's line format: "text" (for people) or "json" (one object per line)
    #: (`LOG_FORMAT`, `--log-format`).
    log_format: str = "text"
    #: A JSONL file that gets one object per finished request (`REQUEST_LOG`), with the
    #: request and response bodies when `request_log_bodies` (`REQUEST_LOG_BODIES`).
    request_log: str | None = None
    request_log_bodies: bool = False
    #: The global upstream timeouts; each provider's own are in its `timeouts`.
    timeouts: Timeouts = Timeouts()
    max_retries: int = 2
    #: `RETRY_AFTER_CAP` and `MAX_RESPONSE_BYTES`; each provider's own are in its config.
    retry_after_cap: float = DEFAULT_RETRY_AFTER_CAP
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    max_tokens_limit: int | None = None
    #: Seconds of upstream silence after which a `ping` event is sent on a stream.
    ping_interval: float = 5.0
    #: Served to a network (`ALLOW_REMOTE`, `vdm server start --allow-remote`): any `Host` is
    #: accepted and a non-loopback address may be bound. Off, only loopback names are (the
    #: DNS-rebinding defence of vdm/server/edge.py).
    allow_remote: bool = False
    #: Browser origins (`https://app.example`) whose requests are served; any other request
    #: carrying an `Origin` header is refused (`ALLOWED_ORIGINS`).
    allowed_origins: tuple[str, ...] = ()
    #: Requests served at once; beyond it a 503 (`MAX_CONNECTIONS`). None: derived from the
    #: descriptor limit when the server starts (vdm/server/serve.py).
    max_connections: int | None = None
    #: Seconds an idle client connection is kept, and the time a client has to send a
    #: request's head (`KEEP_ALIVE_TIMEOUT`).
    keep_alive_timeout: float = 5.0
    #: Seconds a client has to send a whole request body (`BODY_TIMEOUT`).
    body_timeout: float = 30.0
    #: Seconds one write to a client may wait for it to read (`SEND_TIMEOUT`): a client that
    #: stops reading a stream no longer holds its request (and upstream call) open.
    send_timeout: float = 120.0
    #: Seconds in-flight requests get to finish after SIGTERM (`SHUTDOWN_GRACE`).
    shutdown_grace: float = 30.0
    #: Problems found while loading (e.g. a provider without a base URL), shown by /health.
    problems: tuple[str, ...] = ()
    #: Harmless oddities (unknown TOML keys), logged at start and listed by `config validate`.
    warnings: tuple[str, ...] = ()
    #: Every variable that was set, with its source: for `vdm config show`.
    values: Mapping[str, Value] = field(default_factory=dict, repr=False)
    #: `[prices]` entries of the configuration files: name → (entry, source file), unchecked
    #: (vdm/usage/prices.py reads them).
    prices: Mapping[str, tuple[Any, str]] = field(default_factory=dict, repr=False)
    #: `[failover]` / `VDM_FAILOVER_*`: `failover_key` of an alias or `provider:model` → the
    #: targets tried in order when it fails before answering.
    failover: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Where a prompt too long for the model's context window goes: `failover_key` → target,
    #: "" for every model (`VDM_LONG_CONTEXT`).
    long_context: Mapping[str, str] = field(default_factory=dict)
    #: `[middleware]` tables of the configuration files, merged by layer: scope key (""
    #: global, "provider:NAME", "alias:NAME") → (table, last source), unchecked
    #: (vdm/middleware/registry.py reads them; docs/middleware.md).
    middleware: Mapping[str, tuple[dict[str, Any], str]] = field(default_factory=dict, repr=False)
    #: `[[routing.rules]]` (docs/routing.md): request-aware rules, first match wins, tried
    #: before the requested name is resolved (vdm/routing/rules.py).
    rules: tuple[Rule, ...] = ()

    def __repr__(self) -> str:
        return (
            f"Settings(providers={list(self.providers)}, default={self.default_provider!r}, "
            f"aliases={len(self.aliases)}, proxy_key={'set' if self.proxy_api_key else 'unset'})"
        )

    @property
    def bare_fallbacks(self) -> tuple[Alias, ...]:
        """The fallbacks a name without a provider prefix can reach: the default provider's
        (`[fallback]` / VDM_FALLBACK_*, the legacy variables, its packaged ones). Another
        provider's packaged fallbacks are reached only with its prefix (`groq:sonnet`), so
        that adding a provider's key never moves Claude Code's names off the default."""
        return tuple(a for a in self.fallbacks if a.provider == self.default_provider)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every configured secret, for redaction: each provider's `secrets`, vdm's own keys,
        and every credential custom header's value (a provider's `secrets` hold its own)."""
        keys = [k for p in self.providers.values() for k in p.secrets]
        keys.extend(s for s in (self.proxy_api_key, self.session_secret, self.dashboard_token) if s)
        keys.extend(
            v.value.strip()
            for var, v in self.values.items()
            if "CUSTOM_HEADER_" in var and is_credential_name(var) and v.value.strip()
        )
        return tuple(dict.fromkeys(keys))

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
        """All layers: defaults.toml < user TOML < `./vandamme-config.toml` < `.env` in `cwd`
        < `env` (default: os.environ). The user TOML is found from `env`'s HOME."""
        return cls.from_layers(load_layers(env, cwd))

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> Settings:
        """Settings from `env` over the packaged defaults only (no files are read)."""
        return cls.from_layers([packaged_defaults(), env_layer(env, "env")])

    @classmethod
    def from_layers(cls, layers: Iterable[Layer]) -> Settings:
        return _Builder(list(layers)).build()


class _Builder:
    def __init__(self, layers: list[Layer]) -> None:
        self.values: dict[str, Value] = {}
        #: The packaged layer alone (presets), whatever overrides it.
        self.defaults: dict[str, Value] = {}
        self.user_sections: set[str] = set()
        self.warnings: list[str] = []
        self.problems: list[str] = []
        self.prices: dict[str, tuple[Any, str]] = {}
        self.middleware: dict[str, tuple[dict[str, Any], str]] = {}
        #: The highest layer's `[[routing.rules]]` (tables, file), unchecked.
        self.rules: tuple[list[Any], str] | None = None
        #: Where PROXY_API_KEY was set blank (it would turn authentication off), if it was.
        self.blank_proxy_key: str | None = None
        for layer in layers:
            self.prices.update(layer.prices)
            merge_middleware(self.middleware, layer.middleware)
            if layer.rules is not None:
                self.rules = layer.rules
            proxy_key = layer.values.get("PROXY_API_KEY")
            if proxy_key is not None:
                self.blank_proxy_key = None if proxy_key.value.strip() else proxy_key.source
            # An empty value (`OPENAI_BASE_URL=` in a .env) means unset, not "empty".
            self.values.update((k, v) for k, v in layer.values.items() if v.value.strip())
            self.warnings.extend(layer.warnings)
            # The packaged layer; an empty one (a TOML file with only `[ollama]`) is the user's.
            if layer.values and all(v.is_default for v in layer.values.values()):
                self.defaults.update(layer.values)
            else:
                self.user_sections |= layer.sections

    def get(self, var: str, default: str = "") -> str:
        found = self.values.get(var)
        return found.value.strip() if found is not None else default

    def user_set(self, var: str) -> bool:
        found = self.values.get(var)
        return found is not None and not found.is_default and bool(found.value.strip())

    def build(self) -> Settings:
        timeouts, warnings = read_timeouts(self.values)
        self.warnings.extend(warnings)
        max_retries = read_int(self.values, "MAX_RETRIES", 2)
        limits = (
            read_seconds(self.values, "RETRY_AFTER_CAP", DEFAULT_RETRY_AFTER_CAP),
            read_bytes(self.values, "MAX_RESPONSE_BYTES", DEFAULT_MAX_RESPONSE_BYTES),
        )
        providers = {
            p.name: p
            for name in self._provider_names()
            if (p := self._provider(name, timeouts, max_retries, limits)) is not None
        }
        default = self._default_provider(providers)
        order = ([default] if default else []) + [n for n in providers if n != default]
        limit = self.get("MAX_TOKENS_LIMIT")
        self.warnings.extend(self._unknown_aliases(providers))
        aliases = tuple(a for name in order for a in self._aliases(name))
        fallbacks = tuple(self._fallbacks(order, default))
        failover, long_context = self._failover()
        self.warnings.extend(chain_warnings(providers, aliases, fallbacks, failover, long_context))
        if default is not None:
            self.warnings.extend(self._implicit_default(providers, default))
            unmapped = claude_warning(providers[default], aliases, fallbacks)
            self.warnings.extend([unmapped] if unmapped else [])
        return Settings(
            providers={name: providers[name] for name in order},
            default_provider=default,
            aliases=aliases,
            fallbacks=fallbacks,
            proxy_api_key=self._proxy_key(),
            host=self.get("HOST") or "127.0.0.1",
            port=read_int(self.values, "PORT", 8082),
            log_level=(self.get("LOG_LEVEL") or "INFO").upper(),
            log_format=self._log_format(),
            request_log=self.get("REQUEST_LOG") or None,
            request_log_bodies=read_bool(self.values, "REQUEST_LOG_BODIES"),
            timeouts=timeouts,
            max_retries=max_retries,
            retry_after_cap=limits[0],
            max_response_bytes=limits[1],
            max_tokens_limit=read_int(self.values, "MAX_TOKENS_LIMIT", 0) if limit else None,
            ping_interval=read_seconds(self.values, "VDM_PING_INTERVAL", 5.0),
            allow_remote=read_bool(self.values, "ALLOW_REMOTE"),
            allowed_origins=read_origins(self.values),
            max_connections=read_positive(self.values, "MAX_CONNECTIONS"),
            keep_alive_timeout=read_seconds(self.values, "KEEP_ALIVE_TIMEOUT", 5.0),
            body_timeout=read_seconds(self.values, "BODY_TIMEOUT", 30.0),
            send_timeout=read_seconds(self.values, "SEND_TIMEOUT", 120.0),
            shutdown_grace=read_seconds(self.values, "SHUTDOWN_GRACE", 30.0),
            problems=tuple(self.problems),
            warnings=tuple(self.warnings),
            values=dict(self.values),
            prices=dict(self.prices),
            failover=failover,
            long_context=long_context,
            middleware=self.middleware,
            rules=self._rules(providers),
        )

    def _rules(self, providers: Mapping[str, ProviderConfig]) -> tuple[Rule, ...]:
        """The routing rules, checked: a wrong one stops the start (ConfigError)."""
        if self.rules is None:
            return ()
        try:
            return parse_rules(self.rules[0], self.rules[1], providers)
        except RuleError as exc:
            raise ConfigError(str(exc)) from None

    def _log_format(self) -> str:
        found = self.get("LOG_FORMAT", "text").lower()
        if found not in LOG_FORMATS:
            where = self.values["LOG_FORMAT"].source
            raise ConfigError(
                f"LOG_FORMAT={found!r} ({where}): expected one of {', '.join(LOG_FORMATS)}",
                var="LOG_FORMAT",
            )
        return found

    def _proxy_key(self) -> str | None:
        """PROXY_API_KEY; set but blank is an error, never "authentication off"."""
        if self.blank_proxy_key is not None:
            raise ConfigError(
                f"PROXY_API_KEY is set but blank ({self.blank_proxy_key}): a blank proxy key "
                "would let anyone call; set it to a secret (e.g. the output of `python -c "
                "'import secrets; print(secrets.token_urlsafe(24))'`) or remove it to serve "
                "without one",
                var="PROXY_API_KEY",
            )
        return self.get("PROXY_API_KEY") or None

    # -- providers ------------------------------------------------------------------------------

    def _provider_names(self) -> list[str]:
        """Providers the user configured: a key from any layer but the defaults, or, for one
        that needs no key, any setting or a TOML section of its own."""
        names: set[str] = set()
        for var in self.values:
            match = _KEY_VAR.match(var)
            if match and match.group(1) not in NOT_PROVIDERS and self.user_set(var):
                if not _NOT_KEY_VAR.search(var):
                    names.add(match.group(1).lower())
        for var in self.values:
            # Only the provider's own settings count: OLLAMA_HOST configures Ollama, not vdm.
            if var.endswith("_KEY_REQUIRED") and self.get(var).lower() == "false":
                prefix = var.removesuffix("_KEY_REQUIRED")
                if any(self._is_setting_of(prefix, other) for other in self.values):
                    names.add(prefix.lower())
        names |= aws_provider_names(self.values, self.get, self.user_set)
        names |= google_provider_names(self.values, self.get, self.user_set)
        for section in self.user_sections:
            if self.get(f"{env_prefix(section)}_KEY_REQUIRED").lower() == "false":
                names.add(provider_key(section))
            elif provider_key(section) not in names:  # no key, no SigV4, no Bedrock token
                self.warnings.append(
                    f"[{section}] is configured but has no key: set {env_prefix(section)}_API_KEY "
                    f"(or `api-key` in the section, or `!PASSTHRU` to use the client's key)"
                )
        return sorted(names)

    def _is_setting_of(self, prefix: str, var: str) -> bool:
        """Whether the user set `var`, one of provider `prefix`'s settings."""
        rest = var.removeprefix(f"{prefix}_")
        is_setting = rest in _PROVIDER_SUFFIXES or rest.startswith(_PROVIDER_TABLES)
        return rest != var and is_setting and self.user_set(var)

    def _provider(
        self, name: str, timeouts: Timeouts, max_retries: int, limits: tuple[float, int]
    ) -> ProviderConfig | None:
        prefix = env_prefix(name)
        api_format = (self.get(f"{prefix}_API_FORMAT") or "openai").lower()
        if self._openai_url_kept(prefix):
            api_format = "openai"
        if api_format not in API_FORMATS:
            raise ConfigError(
                f"{prefix}_API_FORMAT={api_format!r} ({self._source(f'{prefix}_API_FORMAT')}): "
                f"use one of {', '.join(API_FORMATS)}",
                var=f"{prefix}_API_FORMAT",
            )
        base_url = self._base_url(prefix, api_format)
        region = region_of(self.get, prefix, base_url)
        preset = self.defaults.get(f"{prefix}_API_FORMAT")
        if not base_url and BEDROCK_FORMAT in (api_format, preset and preset.value):
            if not region:
                self.problems.append(no_region(name, prefix))
                return None
            base_url = bedrock_url(api_format, region)
        if not base_url and api_format == VERTEX_FORMAT:
            base_url = vertex_url(vertex_location(self.get, prefix))
        if not base_url:
            example = "https://host" if api_format == "anthropic" else "https://host/v1"
            self.problems.append(
                f"provider {name!r}: {prefix}_API_KEY is set but {prefix}_BASE_URL is not; set "
                f"{prefix}_BASE_URL to its {FORMAT_NAMES[api_format]}-compatible endpoint "
                f"(e.g. {example})"
            )
            return None
        auth = (self.get(f"{prefix}_AUTH") or DEFAULT_AUTH[api_format]).lower()
        if auth not in AUTH_SCHEMES:
            raise ConfigError(
                f"{prefix}_AUTH={auth!r} ({self._source(f'{prefix}_AUTH')}): use one of "
                f"{', '.join(AUTH_SCHEMES)}",
                var=f"{prefix}_AUTH",
            )
        raw_key = self.get(f"{prefix}_API_KEY")
        if not raw_key and name == BEDROCK_PROVIDER:
            raw_key = self.get(BEARER_TOKEN_VAR)
        aws = None
        if auth == SIGV4:  # no key: each request is signed
            if not region:
                self.problems.append(no_region(name, prefix))
                return None
            aws = read_aws(self.get, prefix, base_url, region)
            self.problems.extend(credentials_problems(name, aws))
            if self.user_set(f"{prefix}_API_KEY"):
                self.warnings.append(ignored_key(name, prefix))
            raw_key = ""
        gcp = None
        if api_format == VERTEX_FORMAT or auth == GOOGLE:
            vertex = api_format == VERTEX_FORMAT
            gcp, problems = read_gcp(self.get, prefix, name, base_url, auth == GOOGLE, vertex)
            if gcp is None:
                self.problems.extend(problems)
                return None
            if auth == GOOGLE:  # no key: google-auth gives a token for each request
                if self.user_set(f"{prefix}_API_KEY"):
                    self.warnings.append(ignored_google_key(name, prefix))
                raw_key = ""
        passthrough = raw_key.upper() == PASSTHRU
        return ProviderConfig(
            name=name,
            api_keys=() if passthrough else tuple(raw_key.split()),
            base_url=base_url.rstrip("/"),
            api_format=api_format,
            timeouts=self._timeouts(prefix, timeouts),
            max_retries=read_int(self.values, f"{prefix}_MAX_RETRIES", max_retries),
            custom_headers=self._headers(prefix),
            auth=auth,
            api_version=self.get(f"{prefix}_API_VERSION") or None,
            passthrough=passthrough,
            retry_after_cap=read_seconds(self.values, f"{prefix}_RETRY_AFTER_CAP", limits[0]),
            max_response_bytes=read_bytes(self.values, f"{prefix}_MAX_RESPONSE_BYTES", limits[1]),
            aws=aws,
            gcp=gcp,
        )

    def _timeouts(self, prefix: str, common: Timeouts) -> Timeouts:
        """The provider's own timeouts (`{P}_IDLE_TIMEOUT`, …) over the global ones."""
        timeouts, warnings = read_timeouts(self.values, prefix, common)
        self.warnings.extend(warnings)
        return timeouts

    def _openai_url_kept(self, prefix: str) -> bool:
        """A base URL of the user's that is the preset's OpenAI-compatible endpoint, with no
        format of the user's: they set it when that was the preset's default (Gemini's
        `…/v1beta/openai` before the native API was), so it keeps meaning that dialect."""
        if self.user_set(f"{prefix}_API_FORMAT") or not self.user_set(f"{prefix}_BASE_URL"):
            return False
        compat = self.defaults.get(f"{prefix}_OPENAI_BASE_URL")
        if compat is None:
            return False
        url = self.get(f"{prefix}_BASE_URL").rstrip("/")
        return url == compat.value.rstrip("/") or url.endswith("/openai")

    def _base_url(self, prefix: str, api_format: str) -> str:
        """The user's base URL, else the preset's for the format: `base-url` for the preset's
        own format, else `anthropic-base-url` / `openai-base-url` when a preset is switched to
        another dialect (`openai` and `responses` share theirs)."""
        if self.user_set(f"{prefix}_BASE_URL"):
            return self.get(f"{prefix}_BASE_URL")
        found = self.defaults.get(f"{prefix}_API_FORMAT")
        preset_format = found.value if found is not None else "openai"
        preset = _URL_FAMILY.get(preset_format, preset_format)
        wanted = _URL_FAMILY.get(api_format, api_format)
        if wanted != preset:
            return self.get(f"{prefix}_{wanted.upper()}_BASE_URL")
        return self.get(f"{prefix}_BASE_URL")

    def _headers(self, prefix: str) -> dict[str, str]:
        """`CUSTOM_HEADER_X_FOO` (all providers) then `{P}_CUSTOM_HEADER_X_FOO`, as `X-FOO`."""
        headers: dict[str, str] = {}
        for scope in ("CUSTOM_HEADER_", f"{prefix}_CUSTOM_HEADER_"):
            for var, found in self.values.items():
                if var.startswith(scope) and len(var) > len(scope):
                    headers[var[len(scope) :].replace("_", "-")] = found.value
        return headers

    def _default_provider(self, providers: Mapping[str, ProviderConfig]) -> str | None:
        wanted = provider_key(self.get("VDM_DEFAULT_PROVIDER"))
        if wanted and wanted not in providers:
            self.problems.append(
                f"VDM_DEFAULT_PROVIDER={wanted!r} ({self._source('VDM_DEFAULT_PROVIDER')}) is "
                f"not a configured provider (configured: {', '.join(providers) or 'none'})"
            )
            wanted = ""
        if wanted:
            return wanted
        if not providers:
            return None
        if len(providers) > 1 and "openai" not in providers:
            log.debug("no default provider set: using %s", next(iter(providers)))
        return "openai" if "openai" in providers else next(iter(providers))

    def _implicit_default(self, providers: Mapping[str, ProviderConfig], default: str) -> list[str]:
        """With several providers and none chosen, the default follows a rule (openai, else
        the first by name), so a key added later can take it over, and Claude Code's names
        with it: say which one it is and how to choose."""
        if len(providers) < 2 or self.get("VDM_DEFAULT_PROVIDER"):
            return []
        rule = "openai is configured" if default == "openai" else "first by name"
        return [
            f"{len(providers)} providers are configured ({', '.join(sorted(providers))}) and "
            f"none is chosen as the default: {default!r} ({rule}) gets every model name without "
            f"a provider prefix, Claude Code's included; set VDM_DEFAULT_PROVIDER={default} "
            f'(or default-provider = "{default}" in vandamme-config.toml) so that a key added '
            "later cannot change it"
        ]

    # -- aliases --------------------------------------------------------------------------------

    def _aliases(self, provider: str) -> list[Alias]:
        """`{P}_ALIAS_{NAME}` set by the user for one provider, by name."""
        prefix = env_prefix(provider)
        found: list[Alias] = []
        for var, value in self.values.items():
            match = _ALIAS_VAR.match(var)
            if match and match.group(1) == prefix and not value.is_default and value.value.strip():
                name = normalize(match.group(2))
                targets = split_targets(value.value)
                if targets:
                    label = _label(var, value)
                    found.append(Alias(name, provider, targets[0], label, failover=targets[1:]))
        return sorted(found, key=lambda a: a.name)

    def _fallbacks(self, order: list[str], default: str | None) -> list[Alias]:
        found: list[Alias] = []
        for var, value in sorted(self.values.items()):
            targets = split_targets(value.value)
            if var.startswith("VDM_FALLBACK_") and targets and default is not None:
                name = normalize(var.removeprefix("VDM_FALLBACK_"))
                found.append(
                    Alias(name, default, targets[0], _label(var, value), "fallback", targets[1:])
                )
        for var, family in LEGACY_FAMILIES.items():
            legacy = self.values.get(var)
            if legacy is not None and legacy.value.strip() and default is not None:
                found.append(
                    Alias(family, default, legacy.value.strip(), _label(var, legacy), "fallback")
                )
        for provider in order:
            prefix = env_prefix(provider)
            for var, value in sorted(self.values.items()):
                match = _ALIAS_VAR.match(var)
                if match and match.group(1) == prefix and value.is_default:
                    # A packaged alias the user redefined is theirs, not a fallback.
                    name = normalize(match.group(2))
                    found.append(Alias(name, provider, value.value, DEFAULTS_SOURCE, "fallback"))
        return found

    def _failover(self) -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
        """`VDM_FAILOVER_{KEY}` chains and `VDM_LONG_CONTEXT[_{KEY}]` targets, by
        `failover_key`."""
        chains: dict[str, tuple[str, ...]] = {}
        long_context: dict[str, str] = {}
        for var, value in sorted(self.values.items()):
            targets = split_targets(value.value)
            if var.startswith(FAILOVER_VAR) and targets:
                chains[failover_key(var.removeprefix(FAILOVER_VAR))] = targets
            elif var == LONG_CONTEXT_VAR and targets:
                long_context[""] = targets[0]
            elif var.startswith(f"{LONG_CONTEXT_VAR}_") and targets:
                long_context[failover_key(var.removeprefix(f"{LONG_CONTEXT_VAR}_"))] = targets[0]
        return chains, long_context

    def _unknown_aliases(self, providers: Mapping[str, ProviderConfig]) -> list[str]:
        """Aliases set for providers that are not configured: almost always a mistake."""
        unknown: list[str] = []
        configured = {env_prefix(p) for p in providers}
        for var, value in self.values.items():
            match = _ALIAS_VAR.match(var)
            if match and not value.is_default and match.group(1) not in configured:
                unknown.append(
                    f"{var} ({value.source}): provider {match.group(1).lower()!r} is not "
                    f"configured, so this alias is ignored"
                )
        return unknown

    def _source(self, var: str) -> str:
        found = self.values.get(var)
        return found.source if found is not None else "unset"


#: Formats that share one base URL (OpenAI's Chat Completions and Responses).
_URL_FAMILY = {"responses": "openai"}


def _label(var: str, value: Value) -> str:
    return f"{value.source}: {var}" if value.source in ("env",) else f"{value.source} ({var})"
