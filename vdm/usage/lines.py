"""A finished request in words: its fields (JSON-ready, for `--log-format json`, the request
log and the journal) and its one human-readable log line.

    req_vdm_4f… wrap fast -> openai:gpt-4o-mini stream ok input=1204 output=87
    cache_read_input=1024 ttft=412ms 1.31s overhead=0.62ms $0.0004

Nothing here is a credential: the client is a label (`wrap`, `proxy`, `key:<hash>`), the key a
masked one.
"""

from __future__ import annotations

from typing import Any

from vdm.usage.trace import GENERATION, Trace

_TOKENS = tuple(
    (name, name.removesuffix("_tokens"))
    for name in (
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "reasoning_tokens",
    )
)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def request_fields(trace: Trace, duration: float, cost: float | None) -> dict[str, Any]:
    """The contract's fields of a finished request (docs/observability.md)."""
    caller = trace.caller
    usage = trace.usage
    return {
        "request_id": trace.request_id,
        "upstream_request_id": trace.upstream_request_id,
        "method": trace.method,
        "path": trace.path,
        "endpoint": trace.endpoint,
        "client": trace.client,
        "session": caller.session,
        "agent": caller.agent,
        "request_class": caller.request_class,
        "rule": trace.rule,
        "requested": trace.requested or None,
        "provider": trace.provider or None,
        "model": trace.model or None,
        "key": trace.key,
        "stream": trace.stream,
        "status": trace.status,
        "outcome": trace.outcome,
        "error_type": trace.error_type,
        "error": trace.error,
        "input_tokens": usage.get("input_tokens", 0),
        "output_tokens": usage.get("output_tokens", 0),
        "cache_read_input_tokens": usage.get("cache_read_input_tokens", 0),
        "cache_creation_input_tokens": usage.get("cache_creation_input_tokens", 0),
        "reasoning_tokens": trace.reasoning_tokens,
        "ttft_ms": _ms(trace.ttft),
        "duration_ms": _ms(duration),
        "overhead_ms": _ms(trace.overhead),
        "cost_usd": None if cost is None else round(cost, 8),
        "retries": trace.retries,
        "failovers": trace.failovers,
        "hops": list(trace.hops),
        "bytes_in": trace.bytes_in,
        "bytes_out": trace.bytes_out,
        "at": round(trace.at, 3),
    }


def _duration(ms: float) -> str:
    return f"{ms:.0f}ms" if ms < 1000 else f"{ms / 1000:.2f}s"


def _dollars(cost: float) -> str:
    return "<$0.0001" if 0 < cost < 0.0001 else f"${cost:.4f}"


def request_line(fields: dict[str, Any], notes: list[str] | None = None) -> str:
    """The human-readable line of a request's `request_fields`."""
    parts = [fields["request_id"], fields["client"]]
    requested = fields["requested"]
    if fields["endpoint"] not in ("messages",):
        parts.append(f"{fields['method']} {fields['path']}")
    target = f"{fields['provider']}:{fields['model']}" if fields["provider"] else None
    hops = "".join(f"{hop} -> " for hop in fields["hops"])
    if requested and target:
        parts.append(f"{requested} -> {hops}{target}")
    elif requested:
        parts.append(f"{requested} -> (not routed)")
    elif target:
        parts.append(target)
    if fields["stream"]:
        parts.append("stream")
    parts.append(fields["outcome"])  # a failure's names its status ("error 502")
    parts.extend(f"{short}={fields[name]}" for name, short in _TOKENS if fields.get(name))
    if fields["ttft_ms"] is not None and fields["endpoint"] in GENERATION:
        parts.append(f"ttft={_duration(fields['ttft_ms'])}")
    parts.append(_duration(fields["duration_ms"]))
    if fields["overhead_ms"] is not None:
        parts.append(f"overhead={fields['overhead_ms']:.2f}ms")
    if fields["retries"]:
        parts.append(f"retries={fields['retries']}")
    if fields["cost_usd"]:
        parts.append(_dollars(fields["cost_usd"]))
    if fields["upstream_request_id"]:
        parts.append(f"upstream_id={fields['upstream_request_id']}")
    parts.extend(notes or ())
    line = " ".join(parts)
    if fields["error"] and fields["outcome"] != "ok":
        line += f": {fields['error']}"
    return line
