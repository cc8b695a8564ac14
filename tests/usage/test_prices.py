"""Prices: the packaged table (every packaged alias target priced), lookups of dated, dotted
and vendor-prefixed ids, cache writes by lifetime, long prompts, off-peak hours, user entries
over packaged ones, and entries that are refused."""

from __future__ import annotations

import calendar
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from vdm.config.settings import Settings
from vdm.usage.prices import (
    CACHE_1H,
    Price,
    PriceError,
    PriceTable,
    claude_model,
    packaged_unpriced,
    parse_price,
    user_prices,
)

TABLE = PriceTable.with_user({})


def _rates(price: Price | None) -> tuple[float, float, float]:
    assert price is not None
    return (price.input, price.output, price.cache_read)


@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        # The OpenAI preset's haiku / sonnet / opus.
        ("openai", "gpt-5.6-luna", (0.20, 1.20, 0.02)),
        ("openai", "gpt-5.6-terra", (2.00, 12.00, 0.20)),
        ("openai", "gpt-5.6-sol", (5.00, 30.00, 0.50)),
        # Dated ids are priced as their family; a mini is not its family's big brother.
        ("openai", "gpt-5.2-2025-12-11", (1.75, 14.00, 0.175)),
        ("openai", "gpt-4o-2024-08-06", (2.5, 10.0, 1.25)),
        ("azure", "gpt-4o-mini-2024-07-18", (0.15, 0.6, 0.075)),
        ("anthropic", "claude-opus-4-5-20251101", (5.0, 25.0, 0.5)),
        ("anthropic", "claude-opus-4-1-20250805", (15.0, 75.0, 1.5)),
        ("anthropic", "claude-opus-4-20250514", (15.0, 75.0, 1.5)),
        ("anthropic", "claude-opus-4-0", (15.0, 75.0, 1.5)),
        ("anthropic", "claude-sonnet-4-5-20250929", (3.0, 15.0, 0.3)),
        ("anthropic", "claude-opus-5-5", (4.0, 20.0, 0.2)),
        ("anthropic", "claude-sonnet-5-5[1m]", (2.0, 10.0, 0.1)),
        # OpenRouter's vendor/model with Anthropic's dotted version: the vendor's price.
        ("openrouter", "anthropic/claude-sonnet-4.5", (3.0, 15.0, 0.3)),
        ("openrouter", "openai/gpt-5-mini", (0.25, 2.0, 0.025)),
        # A host's own price wins over the vendor's name.
        ("groq", "openai/gpt-oss-120b", (0.15, 0.60, 0.15)),
        ("deepseek", "deepseek-v4-pro", (1.32, 3.96, 0.044)),
        ("moonshot", "kimi-k3", (3.0, 15.0, 0.3)),
        ("ollama", "qwen3:8b", (0.0, 0.0, 0.0)),
    ],
)
def test_packaged_prices(provider: str, model: str, expected: tuple[float, ...]) -> None:
    assert _rates(TABLE.lookup(provider, model)) == pytest.approx(expected)


def _alias_targets() -> list[tuple[str, str]]:
    """(provider, model) of every alias of every packaged preset (vdm/config/defaults.toml)."""
    text = resources.files("vdm.config").joinpath("defaults.toml").read_text(encoding="utf-8")
    targets: list[tuple[str, str]] = []
    for preset, section in tomllib.loads(text).items():
        if not isinstance(section, dict):
            continue
        for target in section.get("aliases", {}).values():
            provider, _, model = str(target).rpartition(":")
            # `provider:model` targets, but not Ollama-style `name:tag` model ids.
            if provider and provider in tomllib.loads(text):
                targets.append((provider, model))
            else:
                targets.append((preset, str(target)))
    return targets


def test_every_packaged_alias_target_has_a_price_or_says_why_not() -> None:
    """A new alias in defaults.toml fails here until prices.toml prices it, or lists it under
    [unpriced] with the reason no price could be found."""
    targets = _alias_targets()
    assert len(targets) >= 30, targets  # the presets' haiku/sonnet/opus, read for real
    unpriced = {name.lower() for name in packaged_unpriced()}
    missing = [
        f"{provider}:{model}"
        for provider, model in targets
        if TABLE.lookup(provider, model) is None and f"{provider}:{model}".lower() not in unpriced
    ]
    assert not missing, f"add a price to vdm/usage/prices.toml (or an [unpriced] reason): {missing}"


def test_unpriced_entries_are_alias_targets_without_a_price() -> None:
    """[unpriced] is not a place to hide prices: each entry is a packaged alias target, has a
    reason, and is removed once a price exists."""
    targets = {f"{p}:{m}".lower() for p, m in _alias_targets()}
    for name, why in packaged_unpriced().items():
        provider, _, model = name.partition(":")
        assert name.lower() in targets, f"{name} is no packaged alias target"
        assert TABLE.lookup(provider, model) is None, f"{name} has a price now"
        assert len(why) > 10


@pytest.mark.parametrize(
    "model",
    [
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "global.anthropic.claude-sonnet-4-5-v1",
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        "claude-sonnet-4-5@20250929",
    ],
)
def test_a_bedrock_or_vertex_id_is_priced_as_its_claude_model(model: str) -> None:
    assert TABLE.lookup("bedrock", model) == TABLE.lookup("anthropic", "claude-sonnet-4-5")
    assert TABLE.lookup("bedrock", model) is not None


def test_unknown_models_have_no_price() -> None:
    assert TABLE.lookup("mycorp", "house-model") is None
    assert TABLE.lookup("gemini", "gemini-pro-latest") is None


def test_user_entries_win_exact_before_patterns() -> None:
    user = {
        "openai:gpt-4o": parse_price("openai:gpt-4o", {"input": 1, "output": 2}),
        "house-*": parse_price("house-*", {"input": 3, "output": 4, "cache-read": 0.5}),
    }
    table = PriceTable.with_user(user)
    assert table.lookup("openai", "gpt-4o") == Price(1.0, 2.0, 1.0, 1.0)
    assert table.lookup("azure", "gpt-4o") == Price(2.5, 10.0, 1.25, 2.5)  # packaged
    assert table.lookup("mycorp", "House-Large") == Price(3.0, 4.0, 0.5, 3.0)


def test_cost_counts_each_kind_of_token_at_its_price() -> None:
    price = Price(input=3.0, output=15.0, cache_read=0.3, cache_write=3.75)
    usage = {
        "input_tokens": 1_000_000,
        "output_tokens": 100_000,
        "cache_read_input_tokens": 2_000_000,
        "cache_creation_input_tokens": 400_000,
    }
    assert price.cost(usage) == pytest.approx(3.0 + 1.5 + 0.6 + 1.5)


def test_one_hour_cache_writes_cost_twice_the_input_five_minute_ones_a_quarter_more() -> None:
    """Claude Code writes most of its prompt cache with the 1-hour lifetime: Anthropic bills
    those at 2x input, the 5-minute ones at 1.25x (Sonnet 4.5: $6 and $3.75 per million)."""
    price = TABLE.lookup("anthropic", "claude-sonnet-4-5")
    assert price is not None
    written = {"cache_creation_input_tokens": 1_000_000}
    assert price.cost(written) == pytest.approx(3.75)  # lifetime unknown: the 5-minute rate
    assert price.cost({**written, CACHE_1H: 1_000_000}) == pytest.approx(6.0)
    assert price.cost({**written, CACHE_1H: 400_000}) == pytest.approx(0.6 * 3.75 + 0.4 * 6.0)


def test_a_long_prompt_moves_the_whole_request_to_the_long_rates() -> None:
    haiku = TABLE.lookup("anthropic", "claude-haiku-5-5")
    assert haiku is not None
    short = {"input_tokens": 10_000, "cache_read_input_tokens": 90_000, "output_tokens": 1_000}
    assert haiku.cost(short) == pytest.approx((10_000 * 0.10 + 90_000 * 0.01 + 1_000 * 0.5) / 1e6)
    # One token more and every token, output included, is billed at 5x.
    long = {**short, "input_tokens": 10_001}
    assert haiku.cost(long) == pytest.approx((10_001 * 0.5 + 90_000 * 0.05 + 1_000 * 2.5) / 1e6)
    # OpenAI counts cached tokens into the prompt too: above 272K, 2x input, 1.5x output.
    terra = TABLE.lookup("openai", "gpt-5.6-terra")
    assert terra is not None
    big = {"input_tokens": 72_001, "cache_read_input_tokens": 200_000, "output_tokens": 1_000}
    assert terra.cost(big) == pytest.approx((72_001 * 4.0 + 200_000 * 0.4 + 1_000 * 18.0) / 1e6)


def test_deepseek_is_half_price_off_peak() -> None:
    price = TABLE.lookup("deepseek", "deepseek-v4-flash")
    assert price is not None
    usage = {"input_tokens": 1_000_000, "output_tokens": 1_000_000}
    monday_peak = calendar.timegm((2026, 12, 7, 2, 30, 0))  # 02:30 UTC, a Monday
    monday_off = calendar.timegm((2026, 12, 7, 12, 0, 0))
    saturday = calendar.timegm((2026, 12, 5, 2, 30, 0))
    assert price.cost(usage, monday_peak) == pytest.approx(0.30 + 1.20)
    assert price.cost(usage, monday_off) == pytest.approx((0.30 + 1.20) / 2)
    assert price.cost(usage, saturday) == pytest.approx((0.30 + 1.20) / 2)


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ("claude-opus-4-6", (5.0, 25.0, 0.5)),
        ("claude-sonnet-4-5-20250929", (3.0, 15.0, 0.3)),
        ("anthropic:claude-haiku-4-5-20251001", (1.0, 5.0, 0.1)),
        ("haiku", (0.10, 0.50, 0.01)),  # Claude Code's families: today's model of each
        ("opus", (4.0, 20.0, 0.2)),
        ("my-sonnet-alias", (2.0, 10.0, 0.1)),
    ],
)
def test_the_claude_model_a_client_asked_for_has_anthropics_price(
    requested: str, expected: tuple[float, ...]
) -> None:
    assert _rates(TABLE.claude(requested)) == pytest.approx(expected)


@pytest.mark.parametrize("requested", ["openai:gpt-4o", "fast", "gpt-5.6-sol", ""])
def test_a_name_that_is_no_claude_model_has_no_claude_price(requested: str) -> None:
    assert TABLE.claude(requested) is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (5, "expected a table"),
        ({"input": 1}, "needs both input and output"),
        ({"input": 1, "output": "2"}, "must be a number"),
        ({"input": -1, "output": 2}, "must be a number"),
        ({"input": 1, "output": 2, "cached": 1}, "unknown field 'cached'"),
        ({"input": 1, "output": 2, "long": {"input": 2}}, "long must be a table with `above`"),
        ({"input": 1, "output": 2, "long": {"above": 10, "x": 1}}, "unknown field long.'x'"),
        ({"input": 1, "output": 2, "long": {"above": -1}}, "whole number of tokens"),
        ({"input": 1, "output": 2, "off-peak": 0.5}, "needs peak-hours-utc"),
        ({"input": 1, "output": 2, "off-peak": 0.5, "peak-hours-utc": [25]}, "hours 0-23"),
    ],
)
def test_bad_entries_are_refused_with_the_reason(entry: object, message: str) -> None:
    with pytest.raises(PriceError, match=message):
        parse_price("x", entry)


def test_a_long_tier_keeps_the_rates_it_leaves_out() -> None:
    price = parse_price(
        "x", {"input": 1, "output": 2, "cache-read": 0.1, "long": {"above": 5, "input": 3}}
    )
    assert price.long == Price(3.0, 2.0, 0.1, 1.0)
    assert price.long_above == 5


def test_prices_come_from_the_config_files_and_bad_ones_are_named(tmp_path: Path) -> None:
    (tmp_path / "vandamme-config.toml").write_text(
        '[prices]\n"my-model" = { input = 1, output = 2 }\n"broken" = { input = 1 }\n'
    )
    settings = Settings.load({"HOME": str(tmp_path)}, tmp_path)
    prices, problems = user_prices(settings.prices)
    assert prices == {"my-model": Price(1.0, 2.0, 1.0, 1.0)}
    (problem,) = problems
    assert str(tmp_path / "vandamme-config.toml") in problem and "'broken'" in problem
    assert not any("prices" in w for w in settings.warnings)  # not an unknown provider section


def test_a_discoverable_id_is_not_taken_for_a_claude_model() -> None:
    # Claude Code's picker sends `claude-vdm/fast` for the alias `fast` (docs/models.md).
    assert claude_model("claude-vdm/fast") is None
    assert claude_model("claude-vdm/openai:gpt-5.6-terra") is None
    assert claude_model("claude-vdm/my-sonnet") == "sonnet"
