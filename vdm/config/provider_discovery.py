"""Provider discovery: which providers the user configured, each one's ProviderConfig built
from its variables over the packaged presets, and the default provider.

Names follow the original Vandamme Proxy (docs/configuration.md) so that its users' `.env`
files keep working.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

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
from vdm.config.merged_layers import MergedLayers
from vdm.config.names import env_prefix, provider_key
from vdm.config.provider import (
    API_FORMATS,
    AUTH_SCHEMES,
    DEFAULT_AUTH,
    FORMAT_NAMES,
    PASSTHRU,
    ProviderConfig,
)
from vdm.config.sources import PROVIDER_KEYS, TABLES, ConfigError
from vdm.config.timeouts import Timeouts, read_timeouts
from vdm.config.values import read_bytes, read_int, read_seconds

log = logging.getLogger(__name__)

#: Variables that end in _API_KEY but do not name a provider.
NOT_PROVIDERS = frozenset({"PROXY"})

_KEY_VAR = re.compile(r"^([A-Z][A-Z0-9_]*?)_API_KEY$")
#: Variables whose name may end in _API_KEY without naming a provider: a header `X-Api-Key`
#: (`CUSTOM_HEADER_X_API_KEY`, `OPENAI_CUSTOM_HEADER_X_API_KEY`), an alias, a fallback.
_NOT_KEY_VAR = re.compile(
    r"^CUSTOM_HEADER_|_CUSTOM_HEADER_|_ALIAS_|^VDM_FALLBACK_|^VDM_FAILOVER_|^VDM_LONG_CONTEXT"
)
#: The variable suffixes that are settings of a provider (`OLLAMA_BASE_URL`, `OLLAMA_ALIAS_X`).
_PROVIDER_SUFFIXES = tuple(PROVIDER_KEYS.values())
_PROVIDER_TABLES = tuple(TABLES.values())


class ProviderDiscovery(MergedLayers):
    """Reads the providers out of the merged layers; problems and warnings are collected on
    the way, a wrong format or auth scheme stops the start (ConfigError)."""

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


#: Formats that share one base URL (OpenAI's Chat Completions and Responses).
_URL_FAMILY = {"responses": "openai"}
