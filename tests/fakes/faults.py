"""Faults a real upstream (or a proxy in front of it) produces, as replies for the fakes.

Every function returns a reply that any fake (`FakeOpenAI`, `FakeAnthropic`, `FakeResponses`,
`FakeGemini`) accepts in `enqueue(...)` or as `.default`::

    with FakeOpenAI() as fake:
        fake.enqueue(faults.drop_mid_stream(after=2))          # the upstream dies mid-stream
        fake.enqueue(faults.rate_limited(retry_after="3"))     # a 429 with Retry-After
        fake.default = faults.faulty(random.Random(7), auto_reply, fault_rate=0.3)

Faults that carry a body are in the shape of the fake's dialect (`dialect="openai"` by default:
Chat Completions and Responses share OpenAI's error shape; `"anthropic"` and `"gemini"` have
their own), built with the fakes' own builders, so a test sees exactly what the provider sends.
The faults below the HTTP layer (a truncated body, a lying content-length, an endless or
dripping body) are `RawReply` bytes written to the socket as they are.

`faulty(...)` mixes good replies with random faults for the soak test; `MENU` names every
fault it can pick and when it applies (a stream fault only to a streaming request).
"""

from __future__ import annotations

import gzip
import random
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias
from urllib.parse import parse_qs

from tests.fakes.anthropic_upstream import (
    anthropic_error,
    anthropic_message,
    anthropic_stream_events,
)
from tests.fakes.gemini_upstream import (
    gemini_chunks,
    gemini_response,
    sse_events,
    text_part,
)
from tests.fakes.openai_upstream import (
    HangReply,
    JsonReply,
    RawReply,
    Recorded,
    Reply,
    ReplySource,
    SseReply,
    _dumps,
    _head,
    _http_chunk,
    completion,
    stream_chunks,
)
from tests.fakes.responses_upstream import (
    ResponsesSseReply,
    message_item,
    response_events,
    response_object,
)

__all__ = [
    "MENU",
    "Dialect",
    "Fault",
    "Faulty",
    "RawReply",
    "bad_gzip",
    "drip",
    "drop_mid_stream",
    "endless_json",
    "error_body",
    "faulty",
    "garbage_sse",
    "good_events",
    "good_json",
    "html_page",
    "huge_sse_line",
    "invalid_utf8_sse",
    "is_stream",
    "random_fault",
    "rate_limited",
    "stall_before_headers",
    "stall_mid_stream",
    "status",
    "truncated_json",
    "wrong_shape",
]

Dialect: TypeAlias = Literal["openai", "responses", "gemini", "anthropic"]

_LAST_CHUNK = b"0\r\n\r\n"
_PIECE = 64 * 1024  # bytes per write for the big bodies


# --------------------------------------------------------------------------------------------
# Good material per dialect (the faults bend it)
# --------------------------------------------------------------------------------------------


def good_json(dialect: Dialect = "openai") -> dict[str, Any]:
    """A valid non-streaming answer in `dialect` ("Hello from fake…")."""
    if dialect == "anthropic":
        return anthropic_message()
    if dialect == "responses":
        return response_object([message_item()])
    if dialect == "gemini":
        return gemini_response([text_part("Hello from fake Gemini")])
    return completion()


def good_events(dialect: Dialect = "openai") -> list[bytes]:
    """A valid stream in `dialect`, one SSE event (with its blank line) per item, as the
    provider frames it: OpenAI's ends with `data: [DONE]`, the others with their own last
    event."""
    if dialect == "anthropic":
        return list(anthropic_stream_events())
    if dialect == "responses":
        return list(ResponsesSseReply(response_events([message_item()]))._event_bytes)
    if dialect == "gemini":
        return sse_events(gemini_chunks([text_part("Hello from fake Gemini")]))
    return [b"data: " + _dumps(c) + b"\n\n" for c in stream_chunks()] + [b"data: [DONE]\n\n"]


def _sse(events: Sequence[Mapping[str, Any] | str | bytes], **options: Any) -> SseReply:
    # Events are pre-framed bytes, so the plain SseReply sends them as they are; `done=False`
    # because good_events already carries OpenAI's `[DONE]`.
    return SseReply(list(events), done=False, **options)


def error_body(status: int, message: str, dialect: Dialect = "openai") -> dict[str, Any]:
    """An error body in `dialect`'s shape (OpenAI's for Chat Completions and Responses)."""
    if dialect == "anthropic":
        body = anthropic_error(status, message=message).body
        assert isinstance(body, dict)
        return body
    if dialect == "gemini":
        names = {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
        name = names.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")
        return {"error": {"code": status, "message": message, "status": name}}
    type_ = "server_error" if status >= 500 else "invalid_request_error"
    if status == 429:
        type_ = "rate_limit_exceeded"
    return {"error": {"message": message, "type": type_, "param": None, "code": None}}


def _raw_head(status: int, headers: Mapping[str, str]) -> bytes:
    return _head(status, {k.lower(): v for k, v in headers.items()}, keep_alive=False)


# --------------------------------------------------------------------------------------------
# Timing faults
# --------------------------------------------------------------------------------------------


def stall_before_headers(seconds: float) -> HangReply:
    """Accept the request and say nothing for `seconds`, then close: an overloaded upstream or
    a load balancer holding the connection (a first-byte timeout must fire)."""
    return HangReply(seconds)


def stall_mid_stream(
    events: Sequence[Mapping[str, Any] | str | bytes] | None = None,
    after: int = 2,
    seconds: float = 30.0,
    *,
    dialect: Dialect = "openai",
) -> SseReply:
    """A stream that goes silent for `seconds` after `after` events, then finishes normally:
    a model stuck mid-answer (an idle-gap timeout must fire). `events` are framed SSE events
    (default: `good_events(dialect)`; a dict is sent as `data: <json>`)."""
    return _sse(events or good_events(dialect), pauses={after: seconds})


def drip(
    body: bytes,
    bytes_per_second: float,
    *,
    status: int = 200,
    content_type: str = "application/json",
) -> RawReply:
    """A valid body with a correct `content-length`, sent `bytes_per_second`: a congested or
    malicious upstream that never trips a per-read timeout (only a total deadline helps)."""
    step = max(1, int(bytes_per_second * 0.05))
    head = _raw_head(status, {"content-type": content_type, "content-length": str(len(body))})
    parts = [head] + [body[i : i + step] for i in range(0, len(body), step)]
    return RawReply(parts, delay=step / bytes_per_second)


# --------------------------------------------------------------------------------------------
# Broken bodies
# --------------------------------------------------------------------------------------------


def drop_mid_stream(
    events: Sequence[Mapping[str, Any] | str | bytes] | None = None,
    after: int = 2,
    *,
    dialect: Dialect = "openai",
) -> SseReply:
    """A stream whose connection is reset after `after` events, without the chunked body's end
    or the dialect's last event: an upstream crash or a dropped network."""
    return _sse(events or good_events(dialect), cut_after=after)


def garbage_sse(status: int = 200) -> SseReply:
    """A `text/event-stream` of data lines that are not JSON (and no proper end): a proxy or a
    broken server speaking nonsense with a success status."""
    return _sse(
        [
            b"data: this is not json\n\n",
            b'data: {"truncated": \n\n',
            b"data: <html><body>Bad Gateway</body></html>\n\n",
            b"event: ???\ndata: \x00\x01\x02\n\n",
        ],
        status=status,
    )


def huge_sse_line(size: int, ends: bool = True) -> RawReply:
    """A `text/event-stream` whose first data line is `size` bytes long: with `ends`, a valid
    JSON object padded to that size and ended by a blank line, then the body ends; with
    `ends=False` the line never gets its newline and the connection closes (a decoder must cap a
    line, not buffer it without limit)."""
    head = _raw_head(200, {"content-type": "text/event-stream", "transfer-encoding": "chunked"})
    prefix, suffix = b'data: {"pad":"', b'"}\n\n' if ends else b""
    pad = max(0, size - len(prefix) - len(suffix) + (2 if ends else 0))

    def parts() -> Iterator[bytes]:
        yield head
        yield _http_chunk(prefix)
        left = pad
        block = _http_chunk(b"x" * _PIECE)
        while left >= _PIECE:
            yield block
            left -= _PIECE
        if left:
            yield _http_chunk(b"x" * left)
        if ends:
            yield _http_chunk(suffix) + _LAST_CHUNK

    return RawReply(parts)


def endless_json() -> RawReply:
    """A 200 `application/json` body that never ends (chunked, as fast as the client reads): a
    runaway upstream; a client without a size cap grows without bound. The fake stops at the
    client's leaving (or its 2 GiB limit)."""
    head = _raw_head(200, {"content-type": "application/json", "transfer-encoding": "chunked"})
    opening = _http_chunk(b'{"id":"chatcmpl-endless","object":"chat.completion","choices":[')
    item = b'{"index":0,"message":{"role":"assistant","content":"' + b"y" * 200 + b'"}},'
    block = _http_chunk(item * (_PIECE // len(item)))

    def parts() -> Iterator[bytes]:
        yield head
        yield opening
        while True:
            yield block

    return RawReply(parts)


def endless_stream() -> RawReply:
    """A Chat Completions stream that never ends (content deltas as fast as the client reads):
    a runaway generation. A relay that stops reading it must cancel it; the fake stops at the
    client's leaving (or its 2 GiB limit)."""
    head = _raw_head(200, {"content-type": "text/event-stream", "transfer-encoding": "chunked"})
    delta = {
        "id": "chatcmpl-endless",
        "object": "chat.completion.chunk",
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": "z" * 1000}}],
    }
    event = b"data: " + _dumps(delta) + b"\n\n"
    block = _http_chunk(event * (_PIECE // len(event)))

    def parts() -> Iterator[bytes]:
        yield head
        while True:
            yield block

    return RawReply(parts)


def truncated_json(dialect: Dialect = "openai", body: bytes | None = None) -> RawReply:
    """A 200 `application/json` whose `content-length` promises the whole answer but only half
    arrives before the connection closes: a reset mid-body."""
    payload = body if body is not None else _dumps(good_json(dialect))
    head = _raw_head(200, {"content-type": "application/json", "content-length": str(len(payload))})
    return RawReply([head, payload[: len(payload) // 2]])


def invalid_utf8_sse(dialect: Dialect = "openai") -> SseReply:
    """A good stream in which one text delta carries bytes that are not UTF-8 (`\\xff\\xfe`):
    a buggy server or a corrupting middlebox."""
    events = good_events(dialect)
    for i, event in enumerate(events):
        if b"Hello" in event:
            events[i] = event.replace(b"Hello", b"He\xff\xfe\xc3llo", 1)
            break
    return _sse(events)


def bad_gzip(dialect: Dialect = "openai") -> JsonReply:
    """A JSON answer with `content-encoding: gzip` whose body is a gzip header then garbage."""
    corrupt = gzip.compress(_dumps(good_json(dialect)))[:10] + b"\x00garbage, not deflate\xff" * 4
    return JsonReply(corrupt, headers={"content-encoding": "gzip"})


# --------------------------------------------------------------------------------------------
# Answers that are not what they claim
# --------------------------------------------------------------------------------------------


def status(
    code: int,
    body: bytes | dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    content_type: str | None = None,
    *,
    dialect: Dialect = "openai",
) -> JsonReply:
    """An HTTP error (or any status) with a body in `dialect`'s error shape unless `body` is
    given: 500/502/503 outages, Anthropic's 529 overloaded, a 408, a 401 for a revoked key."""
    if body is None:
        body = error_body(code, f"fake upstream fault: status {code}", dialect)
    merged = dict(headers or {})
    if content_type is not None:
        merged["content-type"] = content_type
    return JsonReply(body, status=code, headers=merged)


def rate_limited(retry_after: str | None = None, *, dialect: Dialect = "openai") -> JsonReply:
    """A 429 in the dialect's rate-limit shape, with a `retry-after` header when given."""
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    message = "Rate limit reached for requests (fake upstream)"
    return JsonReply(error_body(429, message, dialect), status=429, headers=headers)


def html_page(status: int = 200) -> JsonReply:
    """A `text/html` page claiming `status`: a captive portal, a CDN or a corporate proxy
    answering in place of the API."""
    page = (
        b"<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
        b"<body><h1>Checking your browser</h1></body></html>"
    )
    return JsonReply(page, status=status, headers={"content-type": "text/html; charset=utf-8"})


WrongShape: TypeAlias = Literal["foreign", "empty", "list", "wrong_types"]
_FOREIGN: dict[str, Dialect] = {
    "openai": "anthropic",
    "responses": "openai",
    "gemini": "openai",
    "anthropic": "openai",
}


def wrong_shape(dialect: Dialect = "openai", kind: WrongShape = "foreign") -> JsonReply:
    """A 200 of valid JSON that is not `dialect`'s answer: `"foreign"` another dialect's answer
    (a misconfigured API format), `"empty"` `{}`, `"list"` a JSON array, `"wrong_types"` the
    right keys holding values of the wrong type."""
    if kind == "empty":
        return JsonReply({})
    if kind == "list":
        return JsonReply([1, "two", None])
    if kind == "wrong_types":
        body = good_json(dialect)
        for key in ("choices", "content", "output", "candidates"):
            if key in body:
                body[key] = "not a list"
        if "usage" in body:
            body["usage"] = ["not", "an", "object"]
        return JsonReply(body)
    return JsonReply(good_json(_FOREIGN[dialect]))


# --------------------------------------------------------------------------------------------
# Random faults for the soak test
# --------------------------------------------------------------------------------------------


def is_stream(request: Recorded) -> bool:
    """Whether `request` asked for a stream (`"stream": true`, or Gemini's
    `:streamGenerateContent`)."""
    if ":streamGenerateContent" in request.path:
        return "sse" in parse_qs(request.query).get("alt", [])
    data = request.json
    return isinstance(data, dict) and data.get("stream") is True


@dataclass(frozen=True)
class Fault:
    """A named fault of the menu: `make(dialect, stall_seconds)` builds its reply; `when` says
    which requests it fits ("any", "stream" or "json")."""

    make: Callable[[Dialect, float], Reply]
    when: Literal["any", "stream", "json"] = "any"


MENU: dict[str, Fault] = {
    "stall_before_headers": Fault(lambda d, s: stall_before_headers(s)),
    "stall_mid_stream": Fault(lambda d, s: stall_mid_stream(seconds=s, dialect=d), "stream"),
    "drop_mid_stream": Fault(lambda d, s: drop_mid_stream(dialect=d), "stream"),
    "garbage_sse": Fault(lambda d, s: garbage_sse(), "stream"),
    "huge_sse_line": Fault(lambda d, s: huge_sse_line(2 * 1024 * 1024, ends=False), "stream"),
    "invalid_utf8_sse": Fault(lambda d, s: invalid_utf8_sse(d), "stream"),
    "endless_json": Fault(lambda d, s: endless_json(), "json"),
    "drip": Fault(lambda d, s: _slow(d, s), "json"),
    "truncated_json": Fault(lambda d, s: truncated_json(d), "json"),
    "bad_gzip": Fault(lambda d, s: bad_gzip(d), "json"),
    "wrong_shape": Fault(lambda d, s: wrong_shape(d), "json"),
    "html_page": Fault(lambda d, s: html_page()),
    "status_500": Fault(lambda d, s: status(500, dialect=d)),
    "status_502": Fault(lambda d, s: status(502, dialect=d)),
    "status_503": Fault(lambda d, s: status(503, dialect=d)),
    "status_529": Fault(lambda d, s: status(529, dialect=d)),
    "rate_limited": Fault(lambda d, s: rate_limited("1", dialect=d)),
    "rate_limited_bare": Fault(lambda d, s: rate_limited(None, dialect=d)),
}


def _slow(dialect: Dialect, seconds: float) -> RawReply:
    # A drip lasting about twice the stall: longer than an idle timeout tuned to the stall.
    body = _dumps(good_json(dialect))
    return drip(body, max(1.0, len(body) / (2 * seconds)))


def random_fault(
    rng: random.Random,
    dialect: Dialect = "openai",
    request: Recorded | None = None,
    *,
    faults: Sequence[str] | Mapping[str, float] | None = None,
    stall_seconds: float = 5.0,
) -> tuple[str, Reply]:
    """Pick a fault (its name and reply) that fits `request` (any fault when None).

    `faults` restricts the menu to those names, or weighs them (`{"drop_mid_stream": 3, …}`).
    """
    weights = _weights(faults)
    stream = None if request is None else is_stream(request)
    fitting = [
        (name, w)
        for name, w in weights.items()
        if stream is None or MENU[name].when in ("any", "stream" if stream else "json")
    ]
    if not fitting:
        raise ValueError(f"no fault in {sorted(weights)} fits this request")
    name = rng.choices([n for n, _ in fitting], weights=[w for _, w in fitting])[0]
    return name, MENU[name].make(dialect, stall_seconds)


def _weights(faults: Sequence[str] | Mapping[str, float] | None) -> dict[str, float]:
    if faults is None:
        return dict.fromkeys(MENU, 1.0)
    weights = dict(faults) if isinstance(faults, Mapping) else dict.fromkeys(faults, 1.0)
    unknown = sorted(set(weights) - set(MENU))
    if unknown:
        raise ValueError(f"unknown faults {unknown}; known: {sorted(MENU)}")
    return weights


class Faulty:
    """A reply source (`fake.default = Faulty(...)`) answering `good` most of the time and a
    random fitting fault with probability `fault_rate`. `counts` tallies what was sent
    ("good" or the fault's name), for the soak test's report.

    Called on the fake's own thread only, so the counter needs no lock."""

    def __init__(
        self,
        rng: random.Random,
        good: ReplySource,
        *,
        dialect: Dialect = "openai",
        fault_rate: float = 0.3,
        faults: Sequence[str] | Mapping[str, float] | None = None,
        stall_seconds: float = 5.0,
    ) -> None:
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be within [0, 1], not {fault_rate}")
        self.rng = rng
        self.good = good
        self.dialect: Dialect = dialect
        self.fault_rate = fault_rate
        self.weights = _weights(faults)
        self.stall_seconds = stall_seconds
        self.counts: Counter[str] = Counter()

    def __call__(self, request: Recorded) -> Reply:
        if self.rng.random() < self.fault_rate:
            try:
                name, reply = random_fault(
                    self.rng,
                    self.dialect,
                    request,
                    faults=self.weights,
                    stall_seconds=self.stall_seconds,
                )
            except ValueError:  # nothing on the menu fits this request: answer well
                pass
            else:
                self.counts[name] += 1
                return reply
        self.counts["good"] += 1
        return self.good(request) if callable(self.good) else self.good


def faulty(
    rng: random.Random,
    good: ReplySource,
    fault_rate: float = 0.3,
    faults: Sequence[str] | Mapping[str, float] | None = None,
    *,
    dialect: Dialect = "openai",
    stall_seconds: float = 5.0,
) -> Faulty:
    """`Faulty(...)`: a `(Recorded) -> Reply` usable as `fake.default`."""
    return Faulty(
        rng,
        good,
        dialect=dialect,
        fault_rate=fault_rate,
        faults=faults,
        stall_seconds=stall_seconds,
    )
