"""The usage summary of a session: a text table for humans, a dict for `--summary-json`.

Costs were computed per request by the recorder; here they are only added up. A group's cost
is None when none of its requests had a price, and `cost_complete` says whether every request
that used tokens had one.
"""

from __future__ import annotations

from typing import Any

from vdm.usage.prices import claude_model
from vdm.usage.recorder import ModelUsage, Snapshot, Totals
from vdm.usage.trace import GENERATION

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
_TOKEN_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)
_AGENT_LABELS = {"main": "main agent", "subagent": "subagents"}


def _dollars_or_none(cost: float, priced: int) -> float | None:
    return round(cost, 6) if priced else None


def _tokens_dict(totals: Totals) -> dict[str, Any]:
    return {
        "requests": totals.requests,
        "errors": totals.errors,
        "cancelled": totals.cancelled,
        "input_tokens": totals.input_tokens,
        "output_tokens": totals.output_tokens,
        "cache_read_input_tokens": totals.cache_read_input_tokens,
        "cache_creation_input_tokens": totals.cache_creation_input_tokens,
        "reasoning_tokens": totals.reasoning_tokens,
        "retries": totals.retries,
        "failovers": totals.failovers,
        "bytes_in": totals.bytes_in,
        "bytes_out": totals.bytes_out,
    }


def _ms_or_none(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _costs_dict(totals: Totals) -> dict[str, Any]:
    return {
        "cost_usd": _dollars_or_none(totals.cost, totals.priced),
        "cost_complete": totals.unpriced == 0,
        "claude_cost_usd": _dollars_or_none(totals.claude_cost, totals.claude_priced),
        "claude_cost_complete": totals.claude_unpriced == 0,
    }


def model_dict(row: ModelUsage) -> dict[str, Any]:
    """One provider:model's figures, JSON-ready."""
    ttft_p50, ttft_p95 = row.ttfts.summary()
    latency_p50, latency_p95 = row.durations.summary()
    return {
        "provider": row.provider,
        "model": row.model,
        **_tokens_dict(row),
        "errors_by_type": dict(row.errors_by_type.most_common()),
        "failed_over": dict(row.failed_over.most_common()),
        "cache_creation_5m_input_tokens": row.cache_creation_5m_input_tokens,
        "cache_creation_1h_input_tokens": row.cache_creation_1h_input_tokens,
        "ttft_p50_ms": _ms_or_none(ttft_p50),
        "ttft_p95_ms": _ms_or_none(ttft_p95),
        "latency_p50_ms": _ms_or_none(latency_p50),
        "latency_p95_ms": _ms_or_none(latency_p95),
        "total_time_s": round(row.total_time, 3),
        # All of a row's requests have the same price, or none.
        "cost_usd": _dollars_or_none(row.cost, row.priced),
        "claude_cost_usd": _dollars_or_none(row.claude_cost, row.claude_priced),
        "requested": dict(row.requested.most_common()),
    }


def summary_dict(snapshot: Snapshot, **extra: Any) -> dict[str, Any]:
    """The summary as JSON-ready data; `extra` (exit code, duration) goes at the top level."""
    models = [model_dict(row) for row in snapshot.models]
    total = Totals()
    for row in snapshot.models:
        total.merge(row)
    total_dict: dict[str, Any] = {
        **_tokens_dict(total),
        "total_time_s": round(sum(row.total_time for row in snapshot.models), 3),
        **_costs_dict(total),
        "sessions": snapshot.sessions,
        "subagents": snapshot.subagents,
    }
    agents = {
        role: {**_tokens_dict(totals), **_costs_dict(totals)}
        for role, totals in snapshot.agents.items()
    }
    agents["subagent"]["agents"] = snapshot.subagents
    return {
        **extra,
        "models": models,
        "total": total_dict,
        "agents": agents,
        "sessions": snapshot.sessions,
        "request_classes": snapshot.request_classes,
        "rules": snapshot.rules,
        "endpoints": {
            name: {"requests": t.requests, "errors": t.errors}
            for name, t in sorted(snapshot.endpoints.items())
        },
    }


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


def _dollars(cost: float | None, complete: bool = True) -> str:
    if cost is None:
        return "-"
    if 0 < cost < 0.0001:
        text = "<$0.0001"
    else:
        text = f"${cost:,.4f}" if cost < 1 else f"${cost:,.2f}"
    return text if complete else text + "+"


def _row(label: str, group: dict[str, Any], ttft: str, time: str, cost: str) -> list[str]:
    return [
        label,
        str(group["requests"]),
        str(group["errors"]),
        _tokens(group["input_tokens"]),
        _tokens(group["output_tokens"]),
        _cache(group),
        ttft,
        time,
        cost,
    ]


def summary_text(data: dict[str, Any]) -> str:
    """`summary_dict`'s data as an aligned table (no trailing newline)."""
    # A route that only failed over (no request served) is in the JSON, not in the table.
    models = [m for m in data["models"] if m["requests"]]
    if not models:
        return "vdm: no requests went through the session proxy"
    total = data["total"]
    lines = [
        _row(
            f"{m['provider']}:{m['model']}" if m["provider"] else m["model"],
            m,
            _ms(m["ttft_p50_ms"]),
            _seconds(m["total_time_s"]),
            _dollars(m["cost_usd"]),
        )
        for m in models
    ]
    if len(models) > 1:
        lines.append(
            _row(
                "total",
                total,
                "",
                _seconds(total["total_time_s"]),
                _dollars(total["cost_usd"], total["cost_complete"]),
            )
        )
    agents = data.get("agents", {})
    split = agents.get("subagent", {}).get("requests", 0) > 0
    if split:
        lines.append([""] * len(_COLUMNS))
        for role, group in agents.items():
            label = _AGENT_LABELS.get(role, role)
            if role == "subagent" and group.get("agents"):
                label += f" ({group['agents']})"
            lines.append(
                _row(label, group, "", "", _dollars(group["cost_usd"], group["cost_complete"]))
            )
    header = [name for name, _ in _COLUMNS]
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    out = ["vdm: session usage"]
    for row in [header, *lines]:
        if not any(row):  # between the models and the agents
            out.append("")
            continue
        cells = [
            f"{cell:{align}{width}}"
            for cell, (_, align), width in zip(row, _COLUMNS, widths, strict=True)
        ]
        out.append("  " + "  ".join(cells).rstrip())
    out.extend(_footer(data, total))
    return "\n".join(out)


def _footer(data: dict[str, Any], total: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    others = [
        f"{group['requests']} {name}" + (f" ({group['errors']} failed)" if group["errors"] else "")
        for name, group in data.get("endpoints", {}).items()
        if name not in GENERATION and group["requests"]
    ]
    if others:
        lines.append("  other requests: " + ", ".join(others))
    rules = data.get("rules") or {}
    if rules:
        lines.append(
            "  routing rules served: " + ", ".join(f"{name} {n}" for name, n in rules.items())
        )
    sessions = data.get("sessions", 0)
    if sessions:
        subagents = total.get("subagents", 0)
        lines.append(
            f"  Claude Code: {sessions} session{'s' if sessions != 1 else ''}"
            + (f", {subagents} subagent{'s' if subagents != 1 else ''}" if subagents else "")
        )
    claude = total.get("claude_cost_usd")
    if claude is not None:
        asked = sorted(
            {name for m in data["models"] for name in m.get("requested", {}) if claude_model(name)}
        )
        shown = ", ".join(asked[:3]) + (", ..." if len(asked) > 3 else "")
        lines.append(
            f"  on the Claude models asked for ({shown}) the same tokens would cost "
            f"{_dollars(claude, total['claude_cost_complete'])}"
        )
    if total["cost_usd"] is None or not total["cost_complete"]:
        lines.append(
            "  (cost: no price known for some models; add one under [prices] in "
            "vandamme-config.toml)"
        )
    return lines
