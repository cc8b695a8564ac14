"""Prices per million tokens, and the estimated cost of one request's usage.

The packaged table (`prices.toml`) is extended by the `[prices]` tables of the user's
configuration files; a user entry wins over a packaged one for the same name.

A price may carry what providers actually bill beyond four flat rates: 1-hour cache writes
(Anthropic bills them at 2× input, 5-minute ones at 1.25×), a long-prompt tier (a request
whose prompt exceeds `above` tokens is billed at other rates, whole: OpenAI above 272K,
Claude Haiku 5.5 above 100K), and off-peak hours (DeepSeek bills half outside its peak hours).
That is why a cost is computed per request, not from a session's totals.
"""

from __future__ import annotations

import re
import time
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from functools import lru_cache
from importlib import resources
from typing import Any

from vdm.protocol.bedrock_from_anthropic import claude_name
from vdm.protocol.context import DISCOVERY_PREFIX
from vdm.protocol.vertex_from_anthropic import claude_name as vertex_claude_name

#: Rate fields of a price entry (and of its `long` tier), in dollars per million tokens.
RATE_FIELDS = ("input", "output", "cache-read", "cache-write", "cache-write-1h")
#: Every field a `[prices]` entry may have.
PRICE_FIELDS = (*RATE_FIELDS, "long", "off-peak", "peak-hours-utc")
#: Anthropic usage keys vdm keeps for the two cache-write lifetimes (flattened from
#: `usage.cache_creation.ephemeral_5m_input_tokens` / `ephemeral_1h_input_tokens`).
CACHE_5M = "ephemeral_5m_input_tokens"
CACHE_1H = "ephemeral_1h_input_tokens"
#: The Claude families Claude Code names without a version (`--model opus`).
CLAUDE_FAMILIES = ("opus", "sonnet", "haiku", "fable", "mythos")

_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")
_FAMILY_WORD = re.compile(r"(?:^|[^a-z])(" + "|".join(CLAUDE_FAMILIES) + r")(?:[^a-z]|$)")


class PriceError(ValueError):
    """A `[prices]` entry that cannot be used."""


@dataclass(frozen=True, slots=True)
class Price:
    """Dollars per million tokens, and the rules that change them for one request."""

    input: float
    output: float
    cache_read: float
    #: Cache writes whose lifetime is not 1 hour (Anthropic's default 5 minutes).
    cache_write: float
    #: 1-hour cache writes; None: the `cache_write` rate.
    cache_write_1h: float | None = None
    #: Rates for a whole request whose prompt (input + cache reads + cache writes) exceeds
    #: `long_above` tokens.
    long: Price | None = None
    long_above: int = 0
    #: Multiplier outside `peak_hours_utc` (Monday to Friday); 1.0: no off-peak rate.
    off_peak: float = 1.0
    peak_hours_utc: frozenset[int] = frozenset()

    def cost(self, usage: Mapping[str, int], at: float | None = None) -> float:
        """Dollars for one request's Anthropic usage fields (`input_tokens` excludes cache
        reads and writes) at unix time `at` (now when None)."""
        read = usage.get("cache_read_input_tokens", 0)
        written = usage.get("cache_creation_input_tokens", 0)
        rates = self
        if self.long is not None:
            prompt = usage.get("input_tokens", 0) + read + written
            if prompt > self.long_above:
                rates = self.long
        hour = min(usage.get(CACHE_1H, 0), written)
        one_hour_rate = rates.cache_write if rates.cache_write_1h is None else rates.cache_write_1h
        dollars = (
            usage.get("input_tokens", 0) * rates.input
            + usage.get("output_tokens", 0) * rates.output
            + read * rates.cache_read
            + (written - hour) * rates.cache_write
            + hour * one_hour_rate
        ) / 1_000_000
        if self.off_peak != 1.0 and not self._peak(time.time() if at is None else at):
            dollars *= self.off_peak
        return dollars

    def _peak(self, at: float) -> bool:
        moment = time.gmtime(at)
        return moment.tm_wday < 5 and moment.tm_hour in self.peak_hours_utc


def _number(name: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise PriceError(f"[prices] {name!r}: {key} must be a number ≥ 0, got {value!r}")
    return float(value)


def _rates(name: str, entry: Mapping[str, Any], base: Price | None) -> Price:
    """The rates of an entry; without `base`, cache reads and writes default to `input`,
    with one (a `long` tier), every rate left out is the base's."""
    values = {k: _number(name, k, v) for k, v in entry.items() if k in RATE_FIELDS}
    if base is None:
        if "input" not in values or "output" not in values:
            raise PriceError(f"[prices] {name!r}: needs both input and output")
        base = Price(values["input"], values["output"], values["input"], values["input"], None)
    return Price(
        input=values.get("input", base.input),
        output=values.get("output", base.output),
        cache_read=values.get("cache-read", base.cache_read),
        cache_write=values.get("cache-write", base.cache_write),
        cache_write_1h=values.get("cache-write-1h", base.cache_write_1h),
    )


def parse_price(name: str, entry: Any) -> Price:
    """A `[prices]` entry: `{ input = 2.5, output = 10, cache-read = 1.25 }`, optionally with
    `cache-write-1h`, a `long = { above = 272000, input = 5, output = 22.5 }` tier and
    `off-peak = 0.5, peak-hours-utc = [1, 2, 3]`."""
    if not isinstance(entry, Mapping):
        raise PriceError(f"[prices] {name!r}: expected a table like {{ input = 1, output = 2 }}")
    unknown = sorted(set(entry) - set(PRICE_FIELDS))
    if unknown:
        raise PriceError(
            f"[prices] {name!r}: unknown field {unknown[0]!r} (use {', '.join(PRICE_FIELDS)})"
        )
    price = _rates(name, entry, None)
    long = entry.get("long")
    if long is not None:
        if not isinstance(long, Mapping) or "above" not in long:
            raise PriceError(f"[prices] {name!r}: long must be a table with `above` (tokens)")
        extra = sorted(set(long) - {*RATE_FIELDS, "above"})
        if extra:
            raise PriceError(f"[prices] {name!r}: unknown field long.{extra[0]!r}")
        above = long["above"]
        if isinstance(above, bool) or not isinstance(above, int) or above < 0:
            raise PriceError(f"[prices] {name!r}: long.above must be a whole number of tokens")
        # Rates the tier leaves out are the base ones.
        tier = _rates(name, long, price)
        price = replace(price, long=tier, long_above=above)
    if "off-peak" in entry:
        hours = entry.get("peak-hours-utc")
        if not isinstance(hours, list) or not all(
            isinstance(h, int) and not isinstance(h, bool) and 0 <= h < 24 for h in hours
        ):
            raise PriceError(
                f"[prices] {name!r}: off-peak needs peak-hours-utc, a list of hours 0-23"
            )
        price = replace(
            price,
            off_peak=_number(name, "off-peak", entry["off-peak"]),
            peak_hours_utc=frozenset(hours),
        )
    return price


def _names(provider: str, model: str) -> Iterator[tuple[str, str]]:
    """(qualified, bare) name pairs to look up, most specific first: as given, without a
    `[1m]`-style suffix or a date (`gpt-5.2-2025-12-11`, `claude-sonnet-4-5-20250929`), a
    Bedrock id's Claude model, and Claude's dotted versions as Anthropic spells them
    (`claude-sonnet-4.5`)."""
    bare = model.lower().strip()
    seen: set[str] = set()
    # A Bedrock id (`global.anthropic.claude-sonnet-4-6-v1:0`) or a Vertex one
    # (`claude-sonnet-4-6@20260217`) is priced as its Claude model: their global endpoints
    # charge Anthropic's list prices.
    claude = vertex_claude_name(claude_name(bare))
    for name in (
        bare,
        bare.split("[", 1)[0],
        _DATE_SUFFIX.sub("", bare.split("[", 1)[0]),
        claude,
        _DATE_SUFFIX.sub("", claude),
    ):
        for variant in (name, name.replace(".", "-") if "claude" in name else name):
            if variant and variant not in seen:
                seen.add(variant)
                yield f"{provider.lower()}:{variant}", variant


class PriceTable:
    """Looks up the price of `provider:model`: exact names first, then the longest pattern.

    A vendor-prefixed id (`openai/gpt-5-mini` on OpenRouter) that has no entry of its own is
    priced as the vendor's model: routers pass the vendor's price through."""

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
        self._found: dict[tuple[str, str], Price | None] = {}

    @classmethod
    def with_user(cls, user: Mapping[str, Price]) -> PriceTable:
        return cls(user, packaged_prices())

    def lookup(self, provider: str, model: str) -> Price | None:
        key = (provider, model)
        if key in self._found:
            return self._found[key]
        price = self._lookup(provider, model)
        if price is None and "/" in model:
            price = self._lookup("", model.rsplit("/", 1)[1])
        if len(self._found) > 4096:  # a long-running server sees unbounded names
            self._found.clear()
        self._found[key] = price
        return price

    def _lookup(self, provider: str, model: str) -> Price | None:
        names = list(_names(provider, model))
        for exact, patterns in self._tables:
            for qualified, bare in names:
                found = exact.get(qualified) if provider else None
                found = found or exact.get(bare)
                if found is not None:
                    return found
            for pattern, price in patterns:
                for qualified, bare in names:
                    if (provider and fnmatchcase(qualified, pattern)) or fnmatchcase(bare, pattern):
                        return price
        return None

    def claude(self, requested: str) -> Price | None:
        """Anthropic's price for the model a client asked for, if it named a Claude model."""
        name = claude_model(requested)
        return None if name is None else self.lookup("anthropic", name)


@lru_cache(maxsize=512)  # a few names, asked for with every request's accounting
def claude_model(requested: str) -> str | None:
    """The Claude model a requested name stands for: `claude-opus-4-6`,
    `anthropic:claude-sonnet-4-5-20250929` (its model part), or a family word (`haiku`,
    `my-sonnet`: vdm routes names with these words as Claude Code's families); else None."""
    # `claude-vdm/<name>` is vdm's discoverable id for a routed name, not a Claude model.
    name = requested.lower().strip().removeprefix(DISCOVERY_PREFIX)
    if ":" in name:
        name = name.split(":", 1)[1]
    if "claude" in name:
        return name
    family = _FAMILY_WORD.search(name)
    return family.group(1) if family else None


def _is_pattern(name: str) -> bool:
    return any(c in name for c in "*?[")


@lru_cache(maxsize=1)
def packaged_prices() -> dict[str, Price]:
    return {name: parse_price(name, entry) for name, entry in _packaged()["prices"].items()}


@lru_cache(maxsize=1)
def packaged_unpriced() -> dict[str, str]:
    """Models the packaged presets route to whose price could not be verified: name → why."""
    return {str(k): str(v) for k, v in _packaged().get("unpriced", {}).items()}


def _packaged() -> dict[str, Any]:
    text = resources.files("vdm.usage").joinpath("prices.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


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
