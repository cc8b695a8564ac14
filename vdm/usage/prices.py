"""Prices per million tokens, and the estimated cost of a provider:model's usage.

The packaged table (`prices.toml`) is extended by the `[prices]` tables of the user's
configuration files; a user entry wins over a packaged one for the same name.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from importlib import resources
from typing import Any

#: Fields of a price entry, in dollars per million tokens.
PRICE_FIELDS = ("input", "output", "cache-read", "cache-write")


class PriceError(ValueError):
    """A `[prices]` entry that cannot be used."""


@dataclass(frozen=True, slots=True)
class Price:
    """Dollars per million tokens."""

    input: float
    output: float
    cache_read: float
    cache_write: float

    def cost(self, usage: Mapping[str, int]) -> float:
        """Dollars for Anthropic usage fields (`input_tokens` excludes cache reads)."""
        return (
            usage.get("input_tokens", 0) * self.input
            + usage.get("output_tokens", 0) * self.output
            + usage.get("cache_read_input_tokens", 0) * self.cache_read
            + usage.get("cache_creation_input_tokens", 0) * self.cache_write
        ) / 1_000_000


def parse_price(name: str, entry: Any) -> Price:
    """A `[prices]` entry: `{ input = 2.5, output = 10, cache-read = 1.25 }`."""
    if not isinstance(entry, Mapping):
        raise PriceError(f"[prices] {name!r}: expected a table like {{ input = 1, output = 2 }}")
    unknown = sorted(set(entry) - set(PRICE_FIELDS))
    if unknown:
        raise PriceError(
            f"[prices] {name!r}: unknown field {unknown[0]!r} (use {', '.join(PRICE_FIELDS)})"
        )
    values: dict[str, float] = {}
    for key, value in entry.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise PriceError(f"[prices] {name!r}: {key} must be a number ≥ 0, got {value!r}")
        values[key] = float(value)
    if "input" not in values or "output" not in values:
        raise PriceError(f"[prices] {name!r}: needs both input and output")
    return Price(
        input=values["input"],
        output=values["output"],
        cache_read=values.get("cache-read", values["input"]),
        cache_write=values.get("cache-write", values["input"]),
    )


class PriceTable:
    """Looks up the price of `provider:model`: exact names first, then the longest pattern."""

    def __init__(self, *tables: Mapping[str, Price]) -> None:
        #: Highest priority first.
        self._tables = [
            (
                {k.lower(): v for k, v in table.items() if not _is_pattern(k)},
                sorted(
                    ((k.lower(), v) for k, v in table.items() if _is_pattern(k)),
                    key=lambda kv: -len(kv[0]),
                ),
            )
            for table in tables
        ]

    @classmethod
    def with_user(cls, user: Mapping[str, Price]) -> PriceTable:
        return cls(user, packaged_prices())

    def lookup(self, provider: str, model: str) -> Price | None:
        qualified = f"{provider}:{model}".lower()
        bare = model.lower()
        for exact, patterns in self._tables:
            found = exact.get(qualified) or exact.get(bare)
            if found is not None:
                return found
            for pattern, price in patterns:
                if fnmatchcase(qualified, pattern) or fnmatchcase(bare, pattern):
                    return price
        return None


def _is_pattern(name: str) -> bool:
    return any(c in name for c in "*?[")


@lru_cache(maxsize=1)
def packaged_prices() -> dict[str, Price]:
    text = resources.files("vdm.usage").joinpath("prices.toml").read_text(encoding="utf-8")
    entries = tomllib.loads(text).get("prices", {})
    return {name: parse_price(name, entry) for name, entry in entries.items()}


def user_prices(entries: Mapping[str, tuple[Any, str]]) -> tuple[dict[str, Price], list[str]]:
    """The usable `[prices]` entries of the configuration files (name → (entry, source)),
    and a problem for each one that is not, naming its file."""
    prices: dict[str, Price] = {}
    problems: list[str] = []
    for name, (entry, source) in entries.items():
        try:
            prices[name] = parse_price(name, entry)
        except PriceError as exc:
            problems.append(f"{source}: {exc} (ignored)")
    return prices, problems
