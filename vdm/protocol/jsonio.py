"""JSON on the hot path: fast C parsers with the standard library's answers (pure).

Every body vdm parses or writes per request goes through here: the client's request, the
upstream request, the upstream answer, each upstream stream event and the client's answer.
The C parsers are 3–6x faster than `json`, but differ from it in a few corners vdm relied
on, so those fall back to the standard library, which then decides exactly as before:

- bodies are read by jiter (pydantic-core's `from_json`, with `NaN` and `Infinity`
  refused), which keeps integers beyond 64 bits exact. orjson is faster on a stream's small
  events, whose numbers never reach a client or a provider (`exact_ints=False`), but reads
  such an integer as a float, and a body of 40 KB costs it a fresh 0.5 MB scratch buffer
  per parse (its own mapping, given back at once: vdm/server/serve.py keeps glibc's
  threshold fixed), which cost more than the parse itself;
- what the C parsers refuse (`NaN`, `Infinity`, UTF-16 bodies, a byte order mark, an
  unpaired surrogate escape, invalid UTF-8, nesting deeper than 200 for jiter, plain bad
  JSON): `json` accepts it or raises its own error, with the message vdm has always quoted.
  `loads_strict` says which one read a body;
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
from pydantic_core import from_json


def loads(data: bytes | str, *, exact_ints: bool = True, **stdlib: Any) -> Any:
    """The JSON value of `data`, as `json.loads(data, **stdlib)` would return it (`stdlib`,
    e.g. `parse_constant`, applies where the standard library decides: see the module).
    `exact_ints=False` allows integers beyond 64 bits to be read as floats, for a caller
    none of whose numbers reach a client or a provider: an OpenAI Chat stream's chunk,
    whose tool arguments are strings."""
    if exact_ints:
        return loads_strict(data, **stdlib)[0]
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data, **stdlib)


def loads_strict(data: bytes | str, **stdlib: Any) -> tuple[Any, bool]:
    """`loads(data)`, and whether `data` was strict JSON (RFC 8259, UTF-8): False when only
    the standard library's leniency read it, so that the value may hold what no encoder
    writes as UTF-8 (an unpaired surrogate) or JSON has not (`NaN`)."""
    try:
        return from_json(data, allow_inf_nan=False), True
    except ValueError:
        return json.loads(data, **stdlib), False


def dumps(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON bytes."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError too: what only the standard library writes
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def tool_arguments(value: Any) -> str:
    """A tool call's input as the `arguments` string OpenAI's APIs carry: compact JSON, as
    the models write their own calls (and fewer tokens than `json.dumps`' spaced form)."""
    return dumps(value).decode()
