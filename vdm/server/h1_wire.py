"""HTTP/1.1 response framing, byte for byte as h11 writes it for Hypercorn (no I/O).

`fast_h1.HttptoolsProtocol` writes its responses with these functions so that a client sees
the same bytes from it as from Hypercorn's stock h11 protocol: the status line without a
reason phrase, the headers in the order given with their names as given, `Transfer-Encoding:
chunked` appended when the body's length is unknown (or no framing and a close for an HTTP/1.0
client), and `Connection: close` rewritten the way h11 does when the connection will not be
reused.
"""

from __future__ import annotations

import re
from enum import Enum

import h11

#: A header name (RFC 9110 token) and a stripped header value, as h11 validates them: a
#: response header carrying CR or LF would split the response.
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_VALUE = re.compile(rb"(?:[\x21-\x7e\x80-\xff](?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?")
_DIGITS = re.compile(rb"[0-9]+")
#: Header names seen valid, and how many are remembered at most.
_GOOD_NAMES: set[bytes] = set()
_GOOD_NAMES_MAX = 512
#: A final chunk without trailers.
LAST_CHUNK = b"0\r\n\r\n"


class Framing(Enum):
    """How the body of a response is delimited on the wire."""

    LENGTH = "content-length"
    CHUNKED = "chunked"
    UNTIL_CLOSE = "http/1.0"


def comma_tokens(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    """The lowercased, comma-separated values of every `name` header (h11's get_comma_header)."""
    found: list[bytes] = []
    for key, value in headers:
        if key.lower() == name:
            for token in value.split(b","):
                token = token.strip().lower()
                if token:
                    found.append(token)
    return found


def _validated(
    headers: list[tuple[bytes, bytes]], trusted: int
) -> tuple[list[tuple[bytes, bytes]], bytes | None, bool, bool]:
    """h11's normalize_and_validate for a response: duplicate equal Content-Lengths fold into
    one, conflicting ones or a Transfer-Encoding other than one `chunked` raise
    LocalProtocolError. Headers from index `trusted` on are Hypercorn's own and not checked.
    Returns the headers, the Content-Length (if any), whether the body is chunked and whether
    a Connection header says `close`."""
    out: list[tuple[bytes, bytes]] = []
    length: bytes | None = None
    chunked = close = False
    index = 0
    for name, value in headers:
        if index < trusted and not (
            (name in _GOOD_NAMES or _good_name(name)) and _VALUE.fullmatch(value)
        ):
            raise h11.LocalProtocolError(f"Illegal header {name!r}: {value!r}")
        index += 1
        lower = name.lower()
        if lower == b"content-length":
            lengths = {part.strip() for part in value.split(b",")}
            if len(lengths) != 1:
                raise h11.LocalProtocolError("conflicting Content-Length headers")
            value = lengths.pop()
            if not _DIGITS.fullmatch(value):
                raise h11.LocalProtocolError("bad Content-Length")
            if length is not None:
                if length != value:
                    raise h11.LocalProtocolError("conflicting Content-Length headers")
                continue
            length = value
        elif lower == b"transfer-encoding":
            if chunked:
                raise h11.LocalProtocolError("multiple Transfer-Encoding headers")
            value = value.lower()
            if value != b"chunked":
                raise h11.LocalProtocolError("Only Transfer-Encoding: chunked is supported")
            chunked = True
        elif lower == b"connection" and not close:
            close = b"close" in comma_tokens([(lower, value)], b"connection")
        out.append((name, value))
    return out, length, chunked, close


def _good_name(name: bytes) -> bool:
    """Whether `name` is a token; the few names an app uses are remembered (a set lookup is
    cheaper than the match, per header of every response)."""
    if not _TOKEN.fullmatch(name):
        return False
    if len(_GOOD_NAMES) < _GOOD_NAMES_MAX:
        _GOOD_NAMES.add(name)
    return True


def _without(headers: list[tuple[bytes, bytes]], name: bytes) -> list[tuple[bytes, bytes]]:
    return [(key, value) for key, value in headers if key.lower() != name]


def response_head(
    status: int,
    headers: list[tuple[bytes, bytes]],
    *,
    trusted: int,
    method: bytes,
    http_10: bool,
    keep_alive: bool,
) -> tuple[bytes, Framing, int, bool]:
    """The head of a final response to a `method` request and how to frame its body.

    `http_10`: the client spoke HTTP/1.0 (no chunked encoding); `keep_alive`: the request
    allows the connection to be reused. Returns the head's bytes, the framing, the declared
    length (for LENGTH) and whether the connection may be reused after this response."""
    headers, declared, chunked, close = _validated(headers, trusted)
    need_close = False
    length = 0
    if status in (204, 304):
        framing = Framing.LENGTH  # no body whatever the headers say
    else:
        if not chunked and declared is not None:
            framing, length = Framing.LENGTH, int(declared)
        else:
            headers, need_close = _chunked_headers(headers, http_10)
            framing = Framing.UNTIL_CLOSE if http_10 else Framing.CHUNKED
    if method == b"HEAD":  # headers as for a GET (h11 does so), but never a body
        framing, length, need_close = Framing.LENGTH, 0, False
    if not keep_alive or need_close:
        tokens = set(comma_tokens(headers, b"connection"))
        tokens.discard(b"keep-alive")
        tokens.add(b"close")
        headers = _without(headers, b"connection")
        headers.extend((b"Connection", token) for token in sorted(tokens))
    # `close`: the app's own Connection header says so (where the branch above rewrote it,
    # `keep_alive` or `need_close` already says no).
    reusable = keep_alive and not need_close and not close
    return _head(status, headers), framing, length, reusable


def _chunked_headers(
    headers: list[tuple[bytes, bytes]], http_10: bool
) -> tuple[list[tuple[bytes, bytes]], bool]:
    """A body of unknown length: chunked for HTTP/1.1, delimited by closing for HTTP/1.0."""
    headers = _without(_without(headers, b"content-length"), b"transfer-encoding")
    if http_10:
        return headers, True
    headers.append((b"Transfer-Encoding", b"chunked"))
    return headers, False


def informational_head(status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
    """A 1xx response (100 Continue), headers as given."""
    return _head(status, headers)


def _head(status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
    return b"HTTP/1.1 %d \r\n%s\r\n" % (status, b"".join([b"%s: %s\r\n" % p for p in headers]))


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body."""
    return b"%x\r\n%b\r\n" % (len(data), data)


class RequestHead:
    """A parsed request head, with what h11 derives from it for the connection."""

    __slots__ = ("method", "target", "version", "headers", "keep_alive", "expect")

    def __init__(
        self,
        method: bytes,
        target: bytes,
        version: str,
        headers: list[tuple[bytes, bytes]],
        names: list[bytes],
    ) -> None:
        """`headers` with their names in lower case, `names` those names in order."""
        self.method, self.target, self.version, self.headers = method, target, version, headers
        http_11 = version == "1.1"
        self.keep_alive = http_11 and (
            b"connection" not in names or b"close" not in comma_tokens(headers, b"connection")
        )
        self.expect = (
            http_11 and b"expect" in names and b"100-continue" in comma_tokens(headers, b"expect")
        )
