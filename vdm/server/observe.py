"""What the gateway tells about itself: `/metrics/running-totals`, `/metrics/active-requests`
(JSON, or SSE for live views), `/metrics` (Prometheus) and the dashboard's state, all read
from the one recorder (vdm/usage/recorder.py) and the requests running now.

Every endpoint here needs a viewer's credential when the server is protected (the proxy key,
a `vdm wrap` session's secret or dashboard token, the dashboard's login cookie:
vdm/server/dashboard.py `check_viewer`). No payload holds a secret: keys are masked,
clients are labels, base URLs have their credentials removed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

import anyio

from vdm import __version__
from vdm.config.secrets import safe_url
from vdm.config.settings import Settings
from vdm.server.asgi import Receive, Scope, Send, run_until_disconnect, send_bytes
from vdm.server.catalog import alias_entries
from vdm.server.state import Gateway
from vdm.usage.views import active_requests as active_view
from vdm.usage.views import recent_errors, sessions
from vdm.usage.views import running_totals as totals_view

#: Seconds between two events of a live feed, and between heartbeat comments.
INTERVAL_S = 1.0
HEARTBEAT_S = 15.0
_JSON = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
_SSE = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),
]


def query_of(scope: Scope) -> dict[str, str]:
    return dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))


def running_totals(gateway: Gateway, query: Mapping[str, str]) -> dict[str, Any]:
    return totals_view(gateway.usage.snapshot(), query, __version__)


def active_requests(gateway: Gateway) -> dict[str, Any]:
    return active_view(gateway.active.values())


def providers(settings: Settings, gateway: Gateway | None = None) -> dict[str, dict[str, Any]]:
    """Each provider's format, base URL (credentials removed), masked keys, and the keys
    cooling down in the running `gateway` (for one model or all, until when)."""
    cooling = gateway.cooling() if gateway is not None else {}
    return {
        name: {
            "base_url": safe_url(p.base_url),
            "api_format": p.api_format,
            "keys": p.masked_keys,
            "cooling": [
                {
                    "key": c.key,
                    "model": c.model,
                    "until": round(c.until, 3),
                    "seconds_left": round(c.seconds_left, 3),
                    "status": c.status,
                }
                for c in cooling.get(name, [])
            ],
        }
        for name, p in settings.providers.items()
    }


#: Seconds a dashboard state is reused: every open dashboard's feed ticks each second, and
#: one state (a snapshot, percentiles sorted per model) serves them all.
STATE_REUSE_S = 0.5


def dashboard_state(gateway: Gateway) -> dict[str, Any]:
    """Everything the dashboard shows, in one payload (built at most every `STATE_REUSE_S`)."""
    now = time.monotonic()
    cached = gateway.dashboard_cache
    if cached is not None and now - cached[0] < STATE_REUSE_S:
        return cached[1]
    state = _dashboard_state(gateway)
    gateway.dashboard_cache = (now, state)
    return state


def _dashboard_state(gateway: Gateway) -> dict[str, Any]:
    snapshot = gateway.usage.snapshot()
    return {
        "running_totals": totals_view(snapshot, {}, __version__),
        "active": active_requests(gateway),
        "timeseries": {
            "bucket_s": gateway.usage.series.bucket,
            "points": gateway.usage.series.points(time.time()),
        },
        "providers": [
            {"name": name, **info} for name, info in providers(gateway.settings, gateway).items()
        ],
        "aliases": alias_entries(gateway.settings),
        "recent_errors": recent_errors(snapshot),
        "sessions": sessions(snapshot),
    }


def _dumps(data: object) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def sse_event(name: str, data: object) -> bytes:
    """One SSE event; compact JSON has no raw newline, so `data` is a single line."""
    return b"event: " + name.encode() + b"\ndata: " + _dumps(data) + b"\n\n"


def wants_stream(scope: Scope) -> bool:
    """Whether a GET asks for the live feed: `Accept: text/event-stream` or `?stream=1`."""
    for name, value in scope["headers"]:
        if name == b"accept" and b"text/event-stream" in value:
            return True
    return query_of(scope).get("stream", "") in ("1", "true")


async def live_feed(
    gateway: Gateway,
    receive: Receive,
    send: Send,
    event: str,
    payload: Callable[[], object],
    interval: float = INTERVAL_S,
) -> None:
    """An SSE response: `event` with `payload()` at once, then every `interval` seconds, a
    comment line every `HEARTBEAT_S`. It ends when the client leaves, and at the next tick
    once the server is stopping (`Gateway.stopping`): a live view never holds up a shutdown."""
    await send({"type": "http.response.start", "status": 200, "headers": _SSE})

    async def write(chunk: bytes) -> None:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})

    async def feed() -> None:
        await write(b"retry: 2000\n: vdm\n\n")
        beat = anyio.current_time() + HEARTBEAT_S
        while not gateway.stopping:
            await write(sse_event(event, payload()))
            await anyio.sleep(interval)
            if anyio.current_time() >= beat:
                beat = anyio.current_time() + HEARTBEAT_S
                await write(b": heartbeat\n\n")

    if await run_until_disconnect(receive, feed):
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def send_json_payload(send: Send, data: object) -> None:
    await send_bytes(send, 200, _dumps(data), _JSON)


async def send_prometheus(gateway: Gateway, send: Send) -> None:
    """The Prometheus text of the gateway's figures (read on the event loop: the recorder
    has no locks, and a scrape costs a few milliseconds)."""
    from vdm.usage.prometheus import CONTENT_TYPE, exposition

    body = exposition(gateway.metrics)
    await send_bytes(send, 200, body, [(b"content-type", CONTENT_TYPE.encode())])
