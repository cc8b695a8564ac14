"""JSON on the hot path: orjson's speed with the standard library's answers (pure).

Every body vdm parses or writes per request goes through here: the client's request, the
upstream request, the upstream answer, each upstream stream event and the client's answer.
orjson is 3–6x faster than `json`, but differs from it in a few corners vdm relied on, so
those fall back to the standard library, which then decides exactly as before:

- what orjson refuses to parse (`NaN`, `Infinity`, UTF-16 bodies, an unpaired surrogate
  escape, invalid UTF-8, plain bad JSON): `json` accepts it or raises its own error, with
  the message vdm has always quoted;
- an integer beyond 64 bits, which orjson reads as a float (a tool's input would reach the
  provider changed): any run of 19 digits sends the text to `json`, which keeps it exact;
- what orjson refuses to write (an integer beyond 64 bits, a non-string key, an unpaired
  surrogate): `json` writes it, or raises as it did.

Written bytes are compact UTF-8 (`ensure_ascii=False`, `separators=(",", ":")`), byte for
byte what `json.dumps` wrote, except floats below 1e-4 (`0.00001`, not `1e-05`: the same
number) and NaN or infinite floats, which orjson writes as `null` (`json` wrote `NaN`,
which no JSON parser accepts).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

#: Every ASCII digit to `9`: a run of 19 nines in the translated text is a run of 19 digits.
_DIGITS = bytes.maketrans(b"0123456789", b"9999999999")
_NINETEEN = b"9" * 19


def loads(data: bytes | str, *, exact_ints: bool = True, **stdlib: Any) -> Any:
    """The JSON value of `data`, as `json.loads(data, **stdlib)` would return it (`stdlib`,
    e.g. `parse_constant`, applies where the standard library decides: see the module).
    `exact_ints=False` skips the look for integers beyond 64 bits (read as floats then), for
    a caller none of whose numbers reach a client or a provider: an OpenAI Chat stream's
    chunk, whose tool arguments are strings."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data, **stdlib)
    if exact_ints and len(data) >= 19 and _may_hold_big_int(data):
        return json.loads(data, **stdlib)
    return value


def _may_hold_big_int(data: bytes | str) -> bool:
    """Whether `data` holds a run of 19 digits: perhaps an integer beyond 64 bits (more often
    an id in a string; the standard library then parses it, at its own pace)."""
    if isinstance(data, str):  # str.translate is 6x slower than this copy and bytes'
        data = data.encode("utf-8", "surrogatepass")
    return _NINETEEN in data.translate(_DIGITS)


def dumps(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON bytes."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError too: what only the standard library writes
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
