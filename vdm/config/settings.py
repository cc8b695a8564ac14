"""Settings: the configuration layers (vdm/config/sources.py) turned into providers, aliases
and server settings, resolved once at start.

Providers are discovered from `{PROVIDER}_API_KEY` (from any layer); names follow the original
Vandamme Proxy (docs/configuration.md) so that its users' `.env` files keep working.

Provider discovery is in vdm/config/provider_discovery.py, aliases and fallbacks in
vdm/config/alias_discovery.py; this module holds the server settings, the checks of their
values, and the public names importers have always found here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vdm.config.alias_discovery import AliasDiscovery
from vdm.config.names import (
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
    PASSTHRU,
    Alias,
    ApiFormat,
    Auth,
    ProviderConfig,
    chain_warnings,
    claude_warning,
)
from vdm.config.provider_discovery import NOT_PROVIDERS, ProviderDiscovery
from vdm.config.routing_rules import Rule, RuleError, parse_rules
from vdm.config.secrets import is_credential_name
from vdm.config.sources import (
    ConfigError,
    Layer,
    Value,
    env_layer,
    load_layers,
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
    "NOT_PROVIDERS",
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

#: The log's line formats (`LOG_FORMAT`); vdm/server/logs.py writes them.
LOG_FORMATS = ("text", "json")
#: `EVENT_LOOP`: auto is uvloop when it is installed, else asyncio's own (vdm/server/event_loop.py).
EVENT_LOOPS = ("auto", "uvloop", "asyncio")
#: `HTTP_PARSER`: auto and httptools use httptools where it can be, else h11
#: (vdm/server/fast_h1.py).
HTTP_PARSERS = ("auto", "httptools", "h11")

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
    #: `vdm server start`'s server processes, sharing one listening socket (`WORKERS`,
    #: `--workers`; vdm/cli/workers.py).
    workers: int = 1
    #: The event loop: "auto", "uvloop" or "asyncio" (`EVENT_LOOP`).
    event_loop: str = "auto"
    #: The HTTP/1.1 parser: "auto", "httptools" or "h11" (`HTTP_PARSER`).
    http_parser: str = "auto"
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


class _Builder(ProviderDiscovery, AliasDiscovery):
    """Builds Settings from the merged layers (vdm/config/merged_layers.py)."""

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
            workers=read_positive(self.values, "WORKERS") or 1,
            event_loop=self._choice("EVENT_LOOP", EVENT_LOOPS),
            http_parser=self._choice("HTTP_PARSER", HTTP_PARSERS),
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
        return self._choice("LOG_FORMAT", LOG_FORMATS)

    def _choice(self, var: str, allowed: tuple[str, ...]) -> str:
        """One of `allowed` (any case; the first when unset), else a ConfigError naming them."""
        found = self.get(var, allowed[0]).strip().lower() or allowed[0]
        if found not in allowed:
            where = self.values[var].source
            raise ConfigError(
                f"{var}={found!r} ({where}): expected one of {', '.join(allowed)}", var=var
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
