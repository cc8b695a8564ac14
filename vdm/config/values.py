"""Typed readers of configuration values: whole numbers, sizes, flags, seconds, origins.

Each reads one variable from the merged layers (`Value`s by variable name, blank ones left
out) and raises ConfigError naming the variable, where it was set and what it must be.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from vdm.config.sources import ConfigError, Value


def _raw(values: Mapping[str, Value], name: str) -> str:
    found = values.get(name)
    return found.value.strip() if found is not None else ""


def _where(values: Mapping[str, Value], name: str) -> str:
    found = values.get(name)
    return found.source if found is not None else "unset"


def read_int(values: Mapping[str, Value], name: str, default: int) -> int:
    raw = _raw(values, name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(
            f"{name}={raw!r} ({_where(values, name)}): expected a whole number", var=name
        ) from None


def read_bytes(values: Mapping[str, Value], name: str, default: int) -> int:
    """A size in bytes, greater than 0 (`MAX_RESPONSE_BYTES`)."""
    value = read_int(values, name, default)
    if value <= 0:
        raise ConfigError(
            f"{name}={value} ({_where(values, name)}): must be a number of bytes above 0",
            var=name,
        )
    return value


def read_bool(values: Mapping[str, Value], name: str) -> bool:
    raw = _raw(values, name).lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name}={raw!r} ({_where(values, name)}): expected true or false", var=name)


def read_positive(values: Mapping[str, Value], name: str) -> int | None:
    """A whole number above 0, or None when unset."""
    value = read_int(values, name, 0)
    if value < 0 or (value == 0 and _raw(values, name)):
        raise ConfigError(
            f"{name}={_raw(values, name)!r} ({_where(values, name)}): must be greater than 0",
            var=name,
        )
    return value or None


_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://[^/\s]+$")


def read_origins(values: Mapping[str, Value]) -> tuple[str, ...]:
    """ALLOWED_ORIGINS: origins separated by commas or spaces (a TOML list), as browsers send
    them in `Origin`: `scheme://host[:port]`, lower case, no path."""
    found: list[str] = []
    for item in _raw(values, "ALLOWED_ORIGINS").replace(",", " ").split():
        origin = item.lower().rstrip("/")
        if not _ORIGIN.match(origin):
            raise ConfigError(
                f"ALLOWED_ORIGINS: {item!r} ({_where(values, 'ALLOWED_ORIGINS')}) is not an "
                "origin: write it as the browser sends it, e.g. https://app.example.com:8443",
                var="ALLOWED_ORIGINS",
            )
        found.append(origin)
    return tuple(found)


def read_seconds(values: Mapping[str, Value], name: str, default: float) -> float:
    raw = _raw(values, name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(
            f"{name}={raw!r} ({_where(values, name)}): expected a number of seconds", var=name
        ) from None
    if value <= 0:
        raise ConfigError(
            f"{name}={raw!r} ({_where(values, name)}): must be greater than 0", var=name
        )
    return value
