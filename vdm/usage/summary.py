"""The usage summary of a session: a text table for humans, a dict for `--summary-json`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vdm.usage.prices import PriceTable
from vdm.usage.recorder import ModelUsage

_COLUMNS = (
    ("provider:model", "<"),
    ("requests", ">"),
    ("errors", ">"),
    ("input", ">"),
    ("output", ">"),
    ("cache r/w", ">"),
    ("ttft p50", ">"),
    ("time", ">"),
    ("cost", ">"),
)


def _cost(row: ModelUsage, prices: PriceTable) -> float | None:
    price = prices.lookup(row.provider, row.model)
    if price is None:
        return None
    return price.cost(
        {
            "input_tokens": row.input_tokens,
            "output_tokens": row.output_tokens,
            "cache_read_input_tokens": row.cache_read_input_tokens,
            "cache_creation_input_tokens": row.cache_creation_input_tokens,
        }
    )


def summary_dict(rows: Sequence[ModelUsage], prices: PriceTable, **extra: Any) -> dict[str, Any]:
    """The summary as JSON-ready data; `extra` (exit code, duration) goes at the top level."""
    models: list[dict[str, Any]] = []
    for row in rows:
        ttft = row.ttft_p50
        cost = _cost(row, prices)
        models.append(
            {
                "provider": row.provider,
                "model": row.model,
                "requests": row.requests,
                "errors": row.errors,
                "input_tokens": row.input_tokens,
                "output_tokens": row.output_tokens,
                "cache_read_input_tokens": row.cache_read_input_tokens,
                "cache_creation_input_tokens": row.cache_creation_input_tokens,
                "ttft_p50_ms": None if ttft is None else round(ttft * 1000, 1),
                "total_time_s": round(row.total_time, 3),
                "cost_usd": None if cost is None else round(cost, 6),
            }
        )
    costs = [m["cost_usd"] for m in models]
    total = {
        key: sum(m[key] for m in models)
        for key in (
            "requests",
            "errors",
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        )
    }
    total["total_time_s"] = round(sum(m["total_time_s"] for m in models), 3)
    # A total cost only counts priced models; `cost_complete` says whether that is all of them.
    total["cost_usd"] = (
        round(sum(c for c in costs if c is not None), 6)
        if any(c is not None for c in costs)
        else None
    )
    total["cost_complete"] = all(c is not None for c in costs)
    return {**extra, "models": models, "total": total}


def _tokens(n: int) -> str:
    return f"{n:,}"


def _cache(row: dict[str, Any]) -> str:
    return f"{row['cache_read_input_tokens']:,}/{row['cache_creation_input_tokens']:,}"


def _ms(ms: float | None) -> str:
    return "-" if ms is None else _seconds(ms / 1000)


def _seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m{rest:02d}s"


def _dollars(cost: float | None) -> str:
    if cost is None:
        return "-"
    if 0 < cost < 0.0001:
        return "<$0.0001"
    return f"${cost:,.4f}" if cost < 1 else f"${cost:,.2f}"


def summary_text(data: dict[str, Any]) -> str:
    """`summary_dict`'s data as an aligned table (no trailing newline)."""
    models = data["models"]
    if not models:
        return "vdm: no requests went through the session proxy"
    total = data["total"]
    lines = [
        [
            f"{m['provider']}:{m['model']}" if m["provider"] else m["model"],
            str(m["requests"]),
            str(m["errors"]),
            _tokens(m["input_tokens"]),
            _tokens(m["output_tokens"]),
            _cache(m),
            _ms(m["ttft_p50_ms"]),
            _seconds(m["total_time_s"]),
            _dollars(m["cost_usd"]),
        ]
        for m in models
    ]
    if len(models) > 1:
        cost = _dollars(total["cost_usd"])
        lines.append(
            [
                "total",
                str(total["requests"]),
                str(total["errors"]),
                _tokens(total["input_tokens"]),
                _tokens(total["output_tokens"]),
                _cache(total),
                "",
                _seconds(total["total_time_s"]),
                cost
                + ("+" if total["cost_usd"] is not None and not total["cost_complete"] else ""),
            ]
        )
    header = [name for name, _ in _COLUMNS]
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    out = ["vdm: session usage"]
    for row in [header, *lines]:
        cells = [
            f"{cell:{align}{width}}"
            for cell, (_, align), width in zip(row, _COLUMNS, widths, strict=True)
        ]
        out.append("  " + "  ".join(cells).rstrip())
    if total["cost_usd"] is None or not total["cost_complete"]:
        out.append(
            "  (cost: no price known for some models; add one under [prices] in "
            "vandamme-config.toml)"
        )
    return "\n".join(out)
