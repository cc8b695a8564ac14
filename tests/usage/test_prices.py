"""Prices: the packaged table, user entries over it, patterns, and entries that are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from vdm.config.settings import Settings
from vdm.usage.prices import Price, PriceError, PriceTable, parse_price, user_prices


@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        ("openai", "gpt-4o", (2.5, 10.0, 1.25)),
        ("openai", "gpt-4o-2024-08-06", (2.5, 10.0, 1.25)),
        ("openai", "gpt-4o-mini", (0.15, 0.6, 0.075)),  # not gpt-4o's price
        ("azure", "gpt-4o-mini-2024-07-18", (0.15, 0.6, 0.075)),
        ("anthropic", "claude-opus-4-5-20251101", (5.0, 25.0, 0.5)),
        ("anthropic", "claude-opus-4-1-20250805", (15.0, 75.0, 1.5)),
        ("anthropic", "claude-opus-4-20250514", (15.0, 75.0, 1.5)),
        ("anthropic", "claude-opus-4-0", (15.0, 75.0, 1.5)),  # the alias of Opus 4
        ("anthropic", "claude-sonnet-4-5-20250929", (3.0, 15.0, 0.3)),
        ("ollama", "qwen3:8b", (0.0, 0.0, 0.0)),
    ],
)
def test_packaged_prices(provider: str, model: str, expected: tuple[float, ...]) -> None:
    price = PriceTable.with_user({}).lookup(provider, model)
    assert price is not None
    assert (price.input, price.output, price.cache_read) == expected


def test_unknown_models_have_no_price() -> None:
    assert PriceTable.with_user({}).lookup("mycorp", "house-model") is None


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


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (5, "expected a table"),
        ({"input": 1}, "needs both input and output"),
        ({"input": 1, "output": "2"}, "must be a number"),
        ({"input": -1, "output": 2}, "must be a number"),
        ({"input": 1, "output": 2, "cached": 1}, "unknown field 'cached'"),
    ],
)
def test_bad_entries_are_refused_with_the_reason(entry: object, message: str) -> None:
    with pytest.raises(PriceError, match=message):
        parse_price("x", entry)


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
