"""The recorder's snapshot as the JSON of `/metrics/running-totals` and the dashboard: the same
figures as the `vdm wrap` summary (vdm/usage/summary.py), filterable by provider, model and
Claude Code session, with the endpoints, sessions, recent errors and time series beside.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from vdm.usage.recorder import ModelUsage, SessionUsage, Snapshot, Totals
from vdm.usage.summary import model_dict, summary_dict
from vdm.usage.trace import Trace

#: Sessions and errors listed on the dashboard.
MAX_LISTED = 50


def _brief(totals: Totals) -> dict[str, Any]:
    return {
        "requests": totals.requests,
        "errors": totals.errors,
        "input_tokens": totals.input_tokens,
        "output_tokens": totals.output_tokens,
        "cost_usd": round(totals.cost, 6) if totals.priced else None,
    }


def _matches(row: ModelUsage, provider: str | None, model: str | None) -> bool:
    return (provider is None or row.provider == provider) and (model is None or row.model == model)


def running_totals(
    snapshot: Snapshot, query: Mapping[str, str], version: str = ""
) -> dict[str, Any]:
    """Totals since the start, of every request or of those matching `query`'s `provider`,
    `model` (the routed one) and `session` (a Claude Code session id)."""
    provider = query.get("provider") or None
    model = query.get("model") or None
    session = query.get("session") or None
    rows = snapshot.models
    if session is not None:
        found = next((s for s in snapshot.session_rows if s.session == session), None)
        rows = sorted(
            found.models.values() if found is not None else [], key=lambda m: (-m.requests, m.key)
        )
    rows = [row for row in rows if _matches(row, provider, model)]
    data = summary_dict(
        Snapshot(
            models=rows,
            agents=snapshot.agents,
            sessions=snapshot.sessions,
            subagents=snapshot.subagents,
            request_classes=snapshot.request_classes,
            endpoints=snapshot.endpoints,
        )
    )
    return {
        "keys": [
            {"provider": provider_name, "key": key, **_brief(t)}
            for (provider_name, key), t in sorted(snapshot.keys.items())
            if provider is None or provider_name == provider
        ],
        "clients": [{"client": name, **_brief(t)} for name, t in sorted(snapshot.clients.items())],
        "version": version,
        "started_at": round(snapshot.started_at, 3),
        "uptime_s": round(time.time() - snapshot.started_at, 3),
        "filter": {"provider": provider, "model": model, "session": session},
        **data,
    }


def _session_dict(row: SessionUsage) -> dict[str, Any]:
    return {
        "session": row.session,
        "requests": row.requests,
        "errors": row.errors,
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "cache_read_input_tokens": row.cache_read_input_tokens,
        "cache_creation_input_tokens": row.cache_creation_input_tokens,
        "cost_usd": round(row.cost, 6) if row.priced else None,
        "first_seen": round(row.first_seen, 3),
        "last_seen": round(row.last_seen, 3),
        "subagents": len(row.agents),
        "models": [m.key for m in sorted(row.models.values(), key=lambda m: -m.requests)],
    }


def sessions(snapshot: Snapshot) -> list[dict[str, Any]]:
    """The Claude Code sessions seen, most recent first."""
    return [_session_dict(row) for row in snapshot.session_rows[:MAX_LISTED]]


def recent_errors(snapshot: Snapshot) -> list[dict[str, Any]]:
    """The latest failed requests, newest first."""
    return [
        {
            "at": round(e.at, 3),
            "request_id": e.request_id,
            "endpoint": e.endpoint,
            "requested": e.requested,
            "provider": e.provider,
            "model": e.model,
            "status": e.status,
            "type": e.type,
            "message": e.message,
        }
        for e in snapshot.errors[:MAX_LISTED]
    ]


def active_requests(traces: Iterable[Trace]) -> dict[str, Any]:
    """The requests being served now, the oldest first."""
    now = time.perf_counter()
    active = [
        {
            "request_id": t.request_id,
            "endpoint": t.endpoint,
            "requested": t.requested,
            "provider": t.provider,
            "model": t.model,
            "stream": t.stream,
            "client": t.client,
            "session": t.caller.session,
            "started_at": round(t.at, 3),
            "elapsed_ms": round((now - t.started) * 1000, 1),
            "ttft_ms": None if t.ttft is None else round(t.ttft * 1000, 1),
        }
        for t in sorted(traces, key=lambda t: t.started)
    ]
    return {"count": len(active), "active": active}


__all__ = ["active_requests", "model_dict", "recent_errors", "running_totals", "sessions"]
