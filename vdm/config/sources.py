"""The configuration layers, each flattened into variables with the place they came from.

TOML mirrors the environment variables, so every layer becomes the same thing: a mapping from
a variable name (`OPENAI_BASE_URL`, `OPENAI_ALIAS_FAST`, `VDM_DEFAULT_PROVIDER`) to a `Value`
that remembers its source. Merging layers is then a dict update, lowest layer first:

    packaged defaults.toml < ~/.config/vandamme-proxy/vandamme-config.toml
        < ./vandamme-config.toml < .env < the environment
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from vdm.config.names import normalize, provider_key

log = logging.getLogger(__name__)

CONFIG_NAME = "vandamme-config.toml"
DEFAULTS_SOURCE = "defaults.toml"

#: Top-level TOML keys and the variable each one sets.
TOP_LEVEL: dict[str, str] = {
    "default-provider": "VDM_DEFAULT_PROVIDER",
    "host": "HOST",
    "port": "PORT",
    "log-level": "LOG_LEVEL",
    "log-format": "LOG_FORMAT",
    "request-log": "REQUEST_LOG",
    "request-log-bodies": "REQUEST_LOG_BODIES",
    "request-timeout": "REQUEST_TIMEOUT",
    "connect-timeout": "CONNECT_TIMEOUT",
    "first-byte-timeout": "FIRST_BYTE_TIMEOUT",
    "idle-timeout": "IDLE_TIMEOUT",
    "total-timeout": "TOTAL_TIMEOUT",
    "max-retries": "MAX_RETRIES",
    "retry-after-cap": "RETRY_AFTER_CAP",
    "max-response-bytes": "MAX_RESPONSE_BYTES",
    "max-tokens-limit": "MAX_TOKENS_LIMIT",
    "proxy-api-key": "PROXY_API_KEY",
    "ping-interval": "VDM_PING_INTERVAL",
    "allow-remote": "ALLOW_REMOTE",
    "allowed-origins": "ALLOWED_ORIGINS",
    "max-connections": "MAX_CONNECTIONS",
    "keep-alive-timeout": "KEEP_ALIVE_TIMEOUT",
    "body-timeout": "BODY_TIMEOUT",
    "send-timeout": "SEND_TIMEOUT",
    "shutdown-grace": "SHUTDOWN_GRACE",
    "workers": "WORKERS",
    "event-loop": "EVENT_LOOP",
    "http-parser": "HTTP_PARSER",
    "small-model": "SMALL_MODEL",
    "middle-model": "MIDDLE_MODEL",
    "big-model": "BIG_MODEL",
}
#: Keys of a provider section (`[openai]`) and the variable suffix each one sets.
PROVIDER_KEYS: dict[str, str] = {
    "api-key": "API_KEY",
    "base-url": "BASE_URL",
    "anthropic-base-url": "ANTHROPIC_BASE_URL",
    "openai-base-url": "OPENAI_BASE_URL",
    "gemini-base-url": "GEMINI_BASE_URL",
    "api-format": "API_FORMAT",
    "api-version": "API_VERSION",
    "auth": "AUTH",
    "key-required": "KEY_REQUIRED",
    "timeout": "TIMEOUT",
    "connect-timeout": "CONNECT_TIMEOUT",
    "first-byte-timeout": "FIRST_BYTE_TIMEOUT",
    "idle-timeout": "IDLE_TIMEOUT",
    "total-timeout": "TOTAL_TIMEOUT",
    "max-retries": "MAX_RETRIES",
    "retry-after-cap": "RETRY_AFTER_CAP",
    "max-response-bytes": "MAX_RESPONSE_BYTES",
    # AWS (Bedrock, and SigV4 for the mantle endpoint): vdm/config/aws.py.
    "region": "REGION",
    "profile": "PROFILE",
    "sigv4-service": "SIGV4_SERVICE",
    # Google Cloud (Vertex AI): vdm/config/gcp.py.
    "project": "PROJECT",
    "location": "LOCATION",
    "credentials": "CREDENTIALS",
}
#: Tables: inside a provider section they set `{P}_{PREFIX}{NAME}`; at top level `{PREFIX}{NAME}`.
TABLES: dict[str, str] = {"aliases": "ALIAS_", "custom-headers": "CUSTOM_HEADER_"}
#: The top-level table of prices per million tokens (`[prices]`), for the usage summary.
PRICES = "prices"
#: Top-level tables that are not providers.
TOP_TABLES: dict[str, str] = {"fallback": "VDM_FALLBACK_", "custom-headers": "CUSTOM_HEADER_"}
#: `[failover]` (docs/routing.md): `key = "p:m"` or `key = ["p:m", "q:n"]` sets
#: `VDM_FAILOVER_{KEY}` (targets joined by commas, as in the environment); `long-context = "p:m"`
#: sets `VDM_LONG_CONTEXT`; `key = {targets = [...], long-context = "p:m"}` sets both, the
#: latter as `VDM_LONG_CONTEXT_{KEY}`. A key is an alias or a `provider:model`.
FAILOVER = "failover"
FAILOVER_VAR = "VDM_FAILOVER_"
LONG_CONTEXT_VAR = "VDM_LONG_CONTEXT"
#: `[middleware]` (docs/middleware.md): the global chain and its options, with
#: `[middleware.aliases.NAME]` for requests naming an alias; `[P.middleware]` for a provider.
#: Kept as tables (their options are structured), checked by vdm/middleware/registry.py.
MIDDLEWARE = "middleware"
#: `[[routing.rules]]` (docs/routing.md): request-aware routing rules, kept as tables and
#: checked by vdm/config/routing_rules.py. The highest layer that sets them wins whole.
ROUTING = "routing"
#: `Settings.middleware` scope keys: the global table, a provider's, an alias's.
GLOBAL_SCOPE = ""
PROVIDER_SCOPE = "provider:"
ALIAS_SCOPE = "alias:"
#: Tables whose values may list several targets: a TOML list becomes `a,b` (an alias's
#: failover chain), not the `a b` of several keys.
_LISTS_WITH_COMMAS = frozenset({"aliases", "fallback"})


class ConfigError(ValueError):
    """A setting that cannot be used; the message names where it is and the fix. `var` is
    the variable at fault, when one is (`PORT` for `PORT=abc`)."""

    def __init__(self, message: str, *, var: str | None = None) -> None:
        super().__init__(message)
        self.var = var


@dataclass(frozen=True, slots=True)
class Value:
    """One setting and where it came from (`env`, a file path, or `defaults.toml`)."""

    value: str
    source: str

    @property
    def is_default(self) -> bool:
        return self.source == DEFAULTS_SOURCE


@dataclass(slots=True)
class Layer:
    """One configuration source, flattened."""

    values: dict[str, Value]
    #: Provider sections the layer declares (`[ollama]`), even empty ones.
    sections: set[str]
    warnings: list[str]
    #: `[prices]` entries: name → (table, source), checked by vdm/usage/prices.py.
    prices: dict[str, tuple[Any, str]] = field(default_factory=dict)
    #: `[middleware]` tables: scope key (`GLOBAL_SCOPE`, `PROVIDER_SCOPE` + provider,
    #: `ALIAS_SCOPE` + alias) → (table, source), unchecked.
    middleware: dict[str, tuple[dict[str, Any], str]] = field(default_factory=dict)
    #: `[[routing.rules]]` of the file, as written (None: the file sets none), and the file.
    rules: tuple[list[Any], str] | None = None


def var_name(name: str) -> str:
    """`my-fast` → `MY_FAST`: the spelling of a name inside a variable."""
    return name.strip().upper().replace("-", "_").replace(".", "_")


def _scalar(value: Any, where: str, sep: str = " ") -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        # Several keys: `api-key = ["k1", "k2"]`; a failover chain (`sep=","`):
        # `fast = ["groq:a", "openai:b"]`.
        return sep.join(value)
    raise ConfigError(f"{where}: expected a string or a number, got {type(value).__name__}")


def flatten_toml(data: Mapping[str, Any], source: str) -> Layer:
    """The variables a parsed TOML document sets; unknown keys become warnings."""
    layer = Layer({}, set(), [])

    def put(var: str, value: Any, where: str, sep: str = " ") -> None:
        layer.values[var] = Value(_scalar(value, f"{source}: {where}", sep), source)

    for key, value in data.items():
        if not isinstance(value, dict):
            if key in TOP_LEVEL:
                put(TOP_LEVEL[key], value, key)
            else:
                layer.warnings.append(f"{source}: unknown key {key!r} (ignored)")
            continue
        if key == PRICES:
            layer.prices.update({name: (entry, source) for name, entry in value.items()})
            continue
        if key == FAILOVER:
            _flatten_failover(value, source, put, layer.warnings)
            continue
        if key == MIDDLEWARE:
            _middleware_tables(value, source, layer)
            continue
        if key == ROUTING:
            _routing_table(value, source, layer)
            continue
        if key in TOP_TABLES:
            sep = "," if key in _LISTS_WITH_COMMAS else " "
            for name, item in value.items():
                put(TOP_TABLES[key] + var_name(name), item, f"[{key}] {name}", sep)
            continue
        prefix = var_name(key)
        if not prefix.replace("_", "").isalnum():
            layer.warnings.append(f"{source}: [{key}] is not a usable provider name (ignored)")
            continue
        if set(value) != {MIDDLEWARE}:  # middleware options alone do not configure it
            layer.sections.add(key.lower().replace("_", "-"))
        for item_key, item in value.items():
            where = f"[{key}] {item_key}"
            if item_key == MIDDLEWARE and isinstance(item, dict):
                scope = PROVIDER_SCOPE + provider_key(key)
                merge_middleware(layer.middleware, {scope: (item, source)})
            elif item_key in PROVIDER_KEYS:
                put(f"{prefix}_{PROVIDER_KEYS[item_key]}", item, where)
            elif item_key in TABLES and isinstance(item, dict):
                sep = "," if item_key in _LISTS_WITH_COMMAS else " "
                for name, target in item.items():
                    var = f"{prefix}_{TABLES[item_key]}{var_name(name)}"
                    put(var, target, f"{where}.{name}", sep)
            else:
                layer.warnings.append(f"{source}: unknown key {item_key!r} in [{key}] (ignored)")
    return layer


def _flatten_failover(
    table: Mapping[str, Any],
    source: str,
    put: Callable[[str, Any, str, str], None],
    warnings: list[str],
) -> None:
    """The variables of a `[failover]` table (see `FAILOVER`)."""
    for name, item in table.items():
        where = f"[{FAILOVER}] {name}"
        if name == "long-context":
            put(LONG_CONTEXT_VAR, item, where, ",")
        elif isinstance(item, dict):
            for sub, value in item.items():
                if sub == "targets":
                    put(FAILOVER_VAR + var_name(name), value, f"{where}.{sub}", ",")
                elif sub == "long-context":
                    put(f"{LONG_CONTEXT_VAR}_{var_name(name)}", value, f"{where}.{sub}", ",")
                else:
                    warnings.append(f"{source}: unknown key {sub!r} in {where} (ignored)")
        else:
            put(FAILOVER_VAR + var_name(name), item, where, ",")


def _routing_table(table: Mapping[str, Any], source: str, layer: Layer) -> None:
    """`[routing]`: its `rules` array (see `ROUTING`); other keys are warnings."""
    for name, item in table.items():
        if name != "rules":
            layer.warnings.append(f"{source}: unknown key {name!r} in [{ROUTING}] (ignored)")
        elif isinstance(item, list):
            layer.rules = (item, source)
        else:
            layer.warnings.append(
                f"{source}: [{ROUTING}] rules must be an array of tables ([[routing.rules]]) "
                "(ignored)"
            )


def _middleware_tables(table: Mapping[str, Any], source: str, layer: Layer) -> None:
    """The scopes of a top-level `[middleware]` table (see `MIDDLEWARE`)."""
    table = dict(table)
    aliases = table.pop("aliases", {})
    merge_middleware(layer.middleware, {GLOBAL_SCOPE: (table, source)})
    if not isinstance(aliases, dict):
        layer.warnings.append(f"{source}: [{MIDDLEWARE}] aliases is not a table (ignored)")
        return
    for name, scope in aliases.items():
        if isinstance(scope, dict):
            # `Fast` and `fast` are one alias: their tables merge.
            merge_middleware(layer.middleware, {ALIAS_SCOPE + normalize(name): (scope, source)})
        else:
            layer.warnings.append(
                f"{source}: [{MIDDLEWARE}.aliases] {name} is not a table (ignored)"
            )


def merge_middleware(
    into: dict[str, tuple[dict[str, Any], str]],
    layer: Mapping[str, tuple[dict[str, Any], str]],
) -> None:
    """A higher layer's `[middleware]` tables over the lower ones', in place: per scope, a key
    it sets replaces the lower one (`enabled` whole), a middleware's options table is merged
    key by key."""
    for scope, (table, source) in layer.items():
        merged = dict(into[scope][0]) if scope in into else {}
        for key, value in table.items():
            below = merged.get(key)
            if isinstance(value, dict) and isinstance(below, dict):
                merged[key] = {**below, **value}
            else:
                merged[key] = value
        into[scope] = (merged, source)


def read_toml(path: Path) -> Layer | None:
    """A TOML file as a layer; None if it does not exist. A malformed file is a ConfigError
    naming the file, the line and the problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return flatten_toml(data, str(path))


@lru_cache(maxsize=1)
def packaged_toml() -> dict[str, Any]:
    """The packaged defaults.toml, parsed (tables in file order). Do not modify it."""
    text = resources.files("vdm.config").joinpath(DEFAULTS_SOURCE).read_text(encoding="utf-8")
    return tomllib.loads(text)


def packaged_defaults() -> Layer:
    return flatten_toml(packaged_toml(), DEFAULTS_SOURCE)


def user_config_path(env: Mapping[str, str]) -> Path | None:
    """`$XDG_CONFIG_HOME/vandamme-proxy/vandamme-config.toml`, else under `~/.config`."""
    base = env.get("XDG_CONFIG_HOME", "").strip()
    if base:
        return Path(base) / "vandamme-proxy" / CONFIG_NAME
    home = env.get("HOME", "").strip()
    if not home:
        return None
    return Path(home) / ".config" / "vandamme-proxy" / CONFIG_NAME


def env_layer(env: Mapping[str, str], source: str) -> Layer:
    return Layer({k: Value(v, source) for k, v in env.items()}, set(), [])


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a `.env` file: `export ` prefixes, quotes and comments handled."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
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
        values[key] = dotenv_parts(value)[0]
    return values


def dotenv_parts(raw: str) -> tuple[str, str]:
    """A `.env` value and its trailing comment: quotes removed (`\\n` and `\\"` unescaped
    inside double quotes), and the ` # comment` after the value returned apart."""
    raw = raw.strip()
    quote = raw[:1]
    if quote in ("'", '"'):
        end = 1
        while (end := raw.find(quote, end)) != -1:
            if quote == '"' and raw[end - 1] == "\\":
                end += 1
                continue
            rest = raw[end + 1 :].strip()
            if not rest or rest.startswith("#"):
                inner = raw[1:end]
                if quote == '"':
                    inner = inner.replace("\\n", "\n").replace('\\"', '"')
                return inner, rest
            break
    value, sep, comment = raw.partition(" #")
    return (value.rstrip(), "#" + comment) if sep else (raw, "")


def load_layers(
    env: Mapping[str, str] | None, cwd: Path | None, errors: list[str] | None = None
) -> list[Layer]:
    """Every layer, lowest first. A malformed TOML file is a ConfigError, or, when `errors`
    is given, recorded there and left out (to list every problem at once)."""
    environ = dict(os.environ if env is None else env)
    cwd = cwd or Path.cwd()
    layers = [packaged_defaults()]
    user = user_config_path(environ)
    for path in (user, cwd / CONFIG_NAME):
        try:
            layer = read_toml(path) if path is not None else None
        except ConfigError as exc:
            if errors is None:
                raise
            errors.append(str(exc))
            continue
        if layer is not None:
            layers.append(layer)
    dotenv = cwd / ".env"
    layers.append(env_layer(read_dotenv(dotenv), str(dotenv)))
    layers.append(env_layer(environ, "env"))
    return layers
