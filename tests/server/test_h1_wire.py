"""Response framing (vdm/server/h1_wire.py) and the server headers of fast_h1, without a server:
the bytes and errors must be h11's, however often a header has been seen before."""

from __future__ import annotations

import h11
import pytest
from hypercorn.config import Config

from vdm.server import fast_h1, h1_wire


def h11_head(status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    conn.next_event()
    return conn.send(h11.Response(status_code=status, headers=headers, reason=b"")) or b""


HEADS = [
    [(b"content-type", b"application/json"), (b"content-length", b"12")],
    [(b"content-length", b"3"), (b"Content-Length", b"3"), (b"x-a", b"b c")],
    [(b"content-type", b"text/event-stream")],
    [(b"transfer-encoding", b"Chunked"), (b"content-length", b"5")],
    [(b"connection", b"close"), (b"content-length", b"0")],
]


@pytest.mark.parametrize("headers", HEADS)
def test_a_response_head_is_h11s(headers: list[tuple[bytes, bytes]]) -> None:
    for _ in range(2):  # a second time, with the names remembered
        head, *_ = h1_wire.response_head(
            200, headers, trusted=len(headers), method=b"GET", http_10=False, keep_alive=True
        )
        assert head == h11_head(200, headers)


BAD = [
    [(b"x y", b"1")],
    [(b"x-a", b"a\r\nInjected: 1")],
    [(b"x-a", b" padded")],
    [(b"content-length", b"1"), (b"content-length", b"2")],
    [(b"content-length", b"x")],
    [(b"transfer-encoding", b"gzip")],
]


@pytest.mark.parametrize("headers", BAD)
def test_a_header_h11_refuses_is_refused(headers: list[tuple[bytes, bytes]]) -> None:
    good = [(b"x-a", b"1"), (b"content-type", b"text/plain")]
    h1_wire.response_head(200, good, trusted=2, method=b"GET", http_10=False, keep_alive=True)
    with pytest.raises(h11.LocalProtocolError):
        h11_head(200, headers)
    with pytest.raises(h11.LocalProtocolError):
        h1_wire.response_head(
            200, headers, trusted=len(headers), method=b"GET", http_10=False, keep_alive=True
        )


def test_the_server_headers_are_made_again_each_second(monkeypatch: pytest.MonkeyPatch) -> None:
    config = Config()
    now = [1_000_000_000.2]
    monkeypatch.setattr(fast_h1.time, "time", lambda: now[0])
    monkeypatch.setattr("hypercorn.config.time", lambda: now[0])
    first = fast_h1._server_headers(config)
    assert (b"date", b"Sun, 09 Sep 2001 01:46:40 GMT") in first
    now[0] += 0.7
    assert fast_h1._server_headers(config) == first
    now[0] += 0.2
    assert (b"date", b"Sun, 09 Sep 2001 01:46:41 GMT") in fast_h1._server_headers(config)
    other = Config()
    other.include_server_header = False
    assert fast_h1._server_headers(other) == [(b"date", b"Sun, 09 Sep 2001 01:46:41 GMT")]
