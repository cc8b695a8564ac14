"""Settings from the environment (and `.env` in the working directory).

Providers are discovered from `{PROVIDER}_API_KEY` variables; names follow the original
Vandamme Proxy (see docs/configuration.md) so that its users' `.env` files keep working.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

ApiFormat = Literal["openai", "anthropic"]

#: Providers whose base URL and format are known, so `{P}_API_KEY` alone is enough.
PRESETS: dict[str, tuple[str, ApiFormat]] = {
    "openai": ("https://api.openai.com/v1", "openai"),
    "anthropic": ("https://api.anthropic.com", "anthropic"),
}

#: Variables that end in _API_KEY but do not name a provider.
NOT_PROVIDERS = frozenset({"PROXY"})

_KEY_VAR = re.compile(r"^([A-Z][A-Z0-9_]*?)_API_KEY$")


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the variable and the fix."""


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One upstream provider."""

    name: str
    api_keys: tuple[str, ...]
    base_url: str
    api_format: ApiFormat = "openai"
    timeout: float = 90.0
    max_retries: int = 2
    custom_headers: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # never show keys, even in a traceback
        return (
            f"ProviderConfig(name={self.name!r}, base_url={self.base_url!r}, "
            f"api_format={self.api_format!r}, keys={len(self.api_keys)})"
        )


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server needs, resolved once at start."""

    providers: Mapping[str, ProviderConfig] = field(default_factory=dict)
    default_provider: str | None = None
    host: str = "127.0.0.1"
    port: int = 8082
    log_level: str = "INFO"
    request_timeout: float = 90.0
    max_retries: int = 2
    max_tokens_limit: int | None = None
    #: Seconds of upstream silence after which a `ping` event is sent on a stream.
    ping_interval: float = 5.0
    #: Problems found while loading (e.g. a provider without a base URL), shown by /health.
    problems: tuple[str, ...] = ()

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
        """Settings from `env` (default: os.environ) over `.env` in `cwd`."""
        merged = dict(read_dotenv((cwd or Path.cwd()) / ".env"))
        merged.update(os.environ if env is None else env)
        return cls.from_mapping(merged)

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> Settings:
        request_timeout = _float(env, "REQUEST_TIMEOUT", 90.0)
        max_retries = _int(env, "MAX_RETRIES", 2)
        providers: dict[str, ProviderConfig] = {}
        problems: list[str] = []
        for var in sorted(env):
            match = _KEY_VAR.match(var)
            if not match or match.group(1) in NOT_PROVIDERS or not env[var].strip():
                continue
            prefix = match.group(1)
            name = prefix.lower()
            preset_url, preset_format = PRESETS.get(name, ("", "openai"))
            base_url = env.get(f"{prefix}_BASE_URL", "").strip() or preset_url
            if not base_url:
                problems.append(
                    f"provider {name!r}: {prefix}_API_KEY is set but {prefix}_BASE_URL is not; "
                    f"set {prefix}_BASE_URL to its OpenAI-compatible endpoint (e.g. https://host/v1)"
                )
                continue
            api_format = env.get(f"{prefix}_API_FORMAT", "").strip().lower() or preset_format
            if api_format not in ("openai", "anthropic"):
                raise ConfigError(
                    f"{prefix}_API_FORMAT={api_format!r}: use 'openai' or 'anthropic'"
                )
            providers[name] = ProviderConfig(
                name=name,
                api_keys=tuple(env[var].split()),
                base_url=base_url.rstrip("/"),
                api_format=api_format,  # type: ignore[arg-type]
                timeout=_float(env, f"{prefix}_TIMEOUT", request_timeout),
                max_retries=_int(env, f"{prefix}_MAX_RETRIES", max_retries),
                custom_headers=_headers(env, prefix),
            )
        default = env.get("VDM_DEFAULT_PROVIDER", "").strip().lower() or None
        if default is not None and default not in providers:
            problems.append(
                f"VDM_DEFAULT_PROVIDER={default!r} is not a configured provider "
                f"(configured: {', '.join(providers) or 'none'})"
            )
            default = None
        if default is None and providers:
            default = "openai" if "openai" in providers else next(iter(providers))
        limit = env.get("MAX_TOKENS_LIMIT", "").strip()
        return cls(
            providers=providers,
            default_provider=default,
            host=env.get("HOST", "").strip() or "127.0.0.1",
            port=_int(env, "PORT", 8082),
            log_level=(env.get("LOG_LEVEL", "").strip() or "INFO").upper(),
            request_timeout=request_timeout,
            max_retries=max_retries,
            max_tokens_limit=_int(env, "MAX_TOKENS_LIMIT", 0) if limit else None,
            ping_interval=_float(env, "VDM_PING_INTERVAL", 5.0),
            problems=tuple(problems),
        )


def _headers(env: Mapping[str, str], prefix: str) -> dict[str, str]:
    """`CUSTOM_HEADER_X_FOO` (all providers) then `{P}_CUSTOM_HEADER_X_FOO`, as `X-FOO`."""
    headers: dict[str, str] = {}
    for scope in ("CUSTOM_HEADER_", f"{prefix}_CUSTOM_HEADER_"):
        for var, value in env.items():
            if var.startswith(scope) and len(var) > len(scope):
                headers[var[len(scope) :].replace("_", "-")] = value
    return headers


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a whole number") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a number of seconds") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r}: must be greater than 0")
    return value


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a `.env` file: `export ` prefixes, quotes and comments handled."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return {}
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "").isalnum():
            log.warning("%s:%d: ignored a line that is not KEY=VALUE", path, number)
            continue
        value = value.strip()
        if value[:1] in ("'", '"') and value.endswith(value[0]) and len(value) > 1:
            value = value[1:-1]
            if raw.strip().split("=", 1)[1].strip().startswith('"'):
                value = value.replace("\\n", "\n").replace('\\"', '"')
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values
