"""Upstream timeouts: connect, first byte, idle and total, globally and per provider.

Each bounds one phase of an upstream call (docs/configuration.md#timeouts):

    timeout     bounds                                         variables (global / per provider)
    connect     TCP connect + TLS handshake, per attempt       CONNECT_TIMEOUT / {P}_CONNECT_TIMEOUT
    first byte  request sent -> response headers (the whole    FIRST_BYTE_TIMEOUT, REQUEST_TIMEOUT /
                generation of a non-streamed answer)           {P}_FIRST_BYTE_TIMEOUT, {P}_TIMEOUT
    idle        the longest silence between body reads         IDLE_TIMEOUT / {P}_IDLE_TIMEOUT
    total       the whole call, retries and stream included    TOTAL_TIMEOUT / {P}_TOTAL_TIMEOUT

Defaults: 10, 600, 300 and 3600 s (`Timeouts`).
`REQUEST_TIMEOUT` / `{P}_TIMEOUT` are the older names of the first-byte timeout: the original
Vandamme Proxy's "timeout for non-streaming requests", which is what bounds the wait for an
answer. A provider's own variable beats every global one; of two names at one level, the
explicit one (`FIRST_BYTE_TIMEOUT`) wins. First byte, idle and total accept `none` (no limit).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from vdm.config.sources import ConfigError, Value

#: The four timeouts, in the order of a call.
FIELDS = ("connect", "first_byte", "idle", "total")
#: Each timeout's variables, most explicit first: a provider's own (`{P}` is its prefix), then
#: the global ones.
VARIABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "connect": (("{P}_CONNECT_TIMEOUT",), ("CONNECT_TIMEOUT",)),
    "first_byte": (
        ("{P}_FIRST_BYTE_TIMEOUT", "{P}_TIMEOUT"),
        ("FIRST_BYTE_TIMEOUT", "REQUEST_TIMEOUT"),
    ),
    "idle": (("{P}_IDLE_TIMEOUT",), ("IDLE_TIMEOUT",)),
    "total": (("{P}_TOTAL_TIMEOUT",), ("TOTAL_TIMEOUT",)),
}
#: The longest upstream `Retry-After` honoured by default (`RETRY_AFTER_CAP`), in seconds: a
#: longer wait is relayed to the client instead of cooling a key or holding the call.
DEFAULT_RETRY_AFTER_CAP = 60.0
#: The largest non-streamed answer read by default (`MAX_RESPONSE_BYTES`): 32 MiB.
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
#: Written for "no limit" (connect always has one: a connection that never completes would
#: never be retried).
NO_LIMIT = "none"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """One provider's upstream timeouts, in seconds (None: no limit)."""

    connect: float = 10.0
    first_byte: float | None = 600.0
    idle: float | None = 300.0
    total: float | None = 3600.0
    #: The variable that set each timeout, or the global one to set (for error messages that
    #: name the setting to raise), in FIELDS order.
    names: tuple[str, str, str, str] = field(
        default=("CONNECT_TIMEOUT", "FIRST_BYTE_TIMEOUT", "IDLE_TIMEOUT", "TOTAL_TIMEOUT"),
        compare=False,
    )

    def name(self, which: str) -> str:
        """The variable to raise for timeout `which` (one of FIELDS)."""
        return self.names[FIELDS.index(which)]

    def capped(self, limit: float) -> Timeouts:
        """Every timeout at most `limit` (a probe that must answer within `limit`)."""
        return replace(
            self,
            connect=min(self.connect, limit),
            first_byte=_min(self.first_byte, limit),
            idle=_min(self.idle, limit),
            total=_min(self.total, limit),
        )


def _min(value: float | None, limit: float) -> float:
    return limit if value is None else min(value, limit)


def variables(which: str, prefix: str | None = None) -> tuple[str, ...]:
    """Timeout `which`'s variables in the order they are looked up: provider `prefix`'s own
    (when given), then the global ones."""
    own, common = VARIABLES[which]
    return (*(v.replace("{P}", prefix) for v in own), *common) if prefix else common


def show(seconds: float | None) -> str:
    """A timeout as `vdm config show` prints it."""
    return NO_LIMIT if seconds is None else f"{seconds:g} s"


def read_timeouts(
    values: Mapping[str, Value], prefix: str | None = None, base: Timeouts | None = None
) -> tuple[Timeouts, list[str]]:
    """The timeouts `values` set: provider `prefix`'s own over `base` (the global ones), or
    the global ones over the defaults when `prefix` is None; and a warning for each older
    name that an explicit one overrides with another value."""
    base = base or Timeouts()
    found: dict[str, float | None] = {}
    names: list[str] = []
    warnings: list[str] = []
    for which in FIELDS:
        own, common = VARIABLES[which]
        candidates = [v.replace("{P}", prefix) for v in own] if prefix else list(common)
        present = [v for v in candidates if v in values and values[v].value.strip()]
        if not present:
            found[which] = getattr(base, which)
            names.append(base.name(which))
            continue
        var = present[0]
        found[which] = _seconds(var, values[var], allow_none=which != "connect")
        names.append(var)
        for other in present[1:]:
            if _seconds(other, values[other], allow_none=which != "connect") != found[which]:
                warnings.append(
                    f"{other}={values[other].value.strip()} ({values[other].source}) is ignored: "
                    f"{var}={values[var].value.strip()} ({values[var].source}) sets the same "
                    f"timeout and wins"
                )
    connect = found["connect"]
    assert connect is not None  # `none` is refused for it
    timeouts = Timeouts(
        connect,
        found["first_byte"],
        found["idle"],
        found["total"],
        names=(names[0], names[1], names[2], names[3]),
    )
    return timeouts, warnings


def _seconds(var: str, value: Value, *, allow_none: bool) -> float | None:
    raw = value.value.strip()
    if allow_none and raw.lower() == NO_LIMIT:
        return None
    fix = f" (or `{NO_LIMIT}` for no limit)" if allow_none else ""
    try:
        seconds = float(raw)
    except ValueError:
        raise ConfigError(
            f"{var}={raw!r} ({value.source}): expected a number of seconds{fix}", var=var
        ) from None
    if not seconds > 0 or seconds == float("inf"):
        raise ConfigError(f"{var}={raw!r} ({value.source}): must be greater than 0{fix}", var=var)
    return seconds
