"""Each fault of `tests.fakes.faults` produces what it claims, seen by plain httpx (or a raw
socket where httpx would hide the bytes), so a reliability test that uses one is testing vdm
and not a fault that never happened."""

from __future__ import annotations

import json
import random
import socket
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.fakes import faults
from tests.fakes.anthropic_upstream import FakeAnthropic, anthropic_auto_reply
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI, RawReply, Recorded, auto_reply
from tests.fakes.responses_upstream import FakeResponses

CHAT = "/chat/completions"


def _wait_until(predicate: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


@pytest.fixture
def http(fake: FakeOpenAI) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.base_url, timeout=5) as client:
        yield client


def _recorded(body: dict[str, object], path: str = "/v1/chat/completions") -> Recorded:
    return Recorded("POST", path, "", {}, json.dumps(body).encode())


# --------------------------------------------------------------------------------------------
# RawReply
# --------------------------------------------------------------------------------------------


def test_raw_reply_writes_its_bytes_and_keep_serves_the_next_request(fake: FakeOpenAI) -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\n"
    fake.enqueue(RawReply([head, b"he", b"llo"], delay=0.01, end="keep"))
    request = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}"
    with socket.create_connection(("127.0.0.1", fake.port), timeout=2) as sock:
        sock.sendall(request)
        data = b""
        while not data.endswith(b"hello"):
            data += sock.recv(65536)
        assert data == head + b"hello"
        sock.sendall(request)  # same connection: the default reply answers
        more = b""
        while b"Hello from fake" not in more:
            more += sock.recv(65536)
    assert fake.request_count == 2
    assert fake.disconnects == 0


def test_raw_reply_can_send_broken_http(fake: FakeOpenAI, http: httpx.Client) -> None:
    fake.enqueue(RawReply([b"NOT HTTP AT ALL\r\n\r\n"]))
    with pytest.raises(httpx.RemoteProtocolError):
        http.post(CHAT, json={})


def test_raw_reply_abort_resets_after_flushing(fake: FakeOpenAI) -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n"
    fake.enqueue(RawReply([head, b"partial"], end="abort"))
    request = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}"
    with socket.create_connection(("127.0.0.1", fake.port), timeout=2) as sock:
        sock.sendall(request)
        data = b""
        with pytest.raises(ConnectionResetError):
            for _ in range(100):
                chunk = sock.recv(65536)
                if not chunk:
                    break  # a FIN, not the reset asked for: fails below
                data += chunk
        assert data == head + b"partial"
    assert fake.disconnects == 0


def test_endless_body_stops_when_the_client_leaves(fake: FakeOpenAI) -> None:
    fake.enqueue(faults.endless_json())
    with httpx.Client(base_url=fake.base_url, timeout=5) as client:
        with client.stream("POST", CHAT, json={}) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"] == "application/json"
            received = 0
            for piece in resp.iter_raw():
                received += len(piece)
                if received > 8 * 1024 * 1024:
                    break
            assert received > 8 * 1024 * 1024  # it really is endless (well past any cap)
    assert fake.wait_for_disconnect(2)
    assert fake.disconnects == 1
    assert _wait_until(lambda: fake.active_streams == 0)


def test_raw_reply_limit_bounds_an_endless_body(fake: FakeOpenAI, http: httpx.Client) -> None:
    endless = faults.endless_json()
    fake.enqueue(RawReply(endless.parts, limit=300_000))
    with pytest.raises(httpx.RemoteProtocolError):  # closed mid chunked body at the limit
        http.post(CHAT, json={})
    assert fake.disconnects == 0


# --------------------------------------------------------------------------------------------
# Timing faults
# --------------------------------------------------------------------------------------------


def test_stall_before_headers_says_nothing(fake: FakeOpenAI) -> None:
    fake.enqueue(faults.stall_before_headers(30))
    started = time.monotonic()
    with httpx.Client(base_url=fake.base_url, timeout=httpx.Timeout(5, read=0.3)) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.post(CHAT, json={})
    assert 0.25 < time.monotonic() - started < 2
    assert fake.wait_for_disconnect(2)


def test_stall_mid_stream_pauses_after_n_events_then_finishes(
    fake: FakeOpenAI, http: httpx.Client
) -> None:
    fake.enqueue(faults.stall_mid_stream(after=2, seconds=0.4))
    arrivals: list[float] = []
    with http.stream("POST", CHAT, json={"stream": True}) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic())
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert gaps[1] >= 0.35  # between event 2 and event 3
    assert max(gaps[:1] + gaps[2:]) < 0.2
    assert len(arrivals) == len(faults.good_events("openai"))


def test_drip_sends_a_valid_body_slowly(fake: FakeOpenAI, http: httpx.Client) -> None:
    body = json.dumps({"ok": True, "pad": "z" * 40}).encode()
    fake.enqueue(faults.drip(body, bytes_per_second=len(body) / 0.5))
    started = time.monotonic()
    resp = http.post(CHAT, json={})
    assert 0.4 < time.monotonic() - started < 2
    assert resp.json() == {"ok": True, "pad": "z" * 40}


# --------------------------------------------------------------------------------------------
# Broken bodies
# --------------------------------------------------------------------------------------------


def test_drop_mid_stream_resets_after_n_events(fake: FakeOpenAI, http: httpx.Client) -> None:
    fake.enqueue(faults.drop_mid_stream(after=3))
    events: list[str] = []
    with pytest.raises(httpx.RemoteProtocolError):
        with http.stream("POST", CHAT, json={"stream": True}) as resp:
            for line in resp.iter_lines():
                if line.startswith("data: "):
                    events.append(line)
    assert len(events) == 3
    assert "[DONE]" not in "".join(events)


def test_garbage_sse_is_not_json(fake: FakeOpenAI, http: httpx.Client) -> None:
    fake.enqueue(faults.garbage_sse())
    resp = http.post(CHAT, json={"stream": True})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/event-stream"
    data = [ln[6:] for ln in resp.content.split(b"\n") if ln.startswith(b"data: ")]
    assert len(data) == 4
    for item in data:
        with pytest.raises(ValueError):
            json.loads(item)


@pytest.mark.parametrize("ends", [True, False])
def test_huge_sse_line(fake: FakeOpenAI, http: httpx.Client, ends: bool) -> None:
    size = 3 * 1024 * 1024 + 17
    fake.enqueue(faults.huge_sse_line(size, ends=ends))
    if ends:
        resp = http.post(CHAT, json={"stream": True})
        lines = resp.content.split(b"\n")
        assert len(lines[0]) == size
        assert lines[1:] == [b"", b""]
        assert len(json.loads(lines[0][6:])["pad"]) > size - 20
        return
    received = b""
    with pytest.raises(httpx.RemoteProtocolError):  # closed without the chunked end
        with http.stream("POST", CHAT, json={"stream": True}) as resp:
            for piece in resp.iter_bytes():
                received += piece
    assert len(received) == size
    assert b"\n" not in received


def test_truncated_json_is_cut_short(fake: FakeOpenAI, http: httpx.Client) -> None:
    fake.enqueue(faults.truncated_json())
    with pytest.raises(httpx.RemoteProtocolError):
        http.post(CHAT, json={})
    fake.enqueue(faults.truncated_json())
    request = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}"
    with socket.create_connection(("127.0.0.1", fake.port), timeout=2) as sock:
        sock.sendall(request)
        data = b""
        for _ in range(100):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
    assert 0 < len(body) < length


def test_invalid_utf8_sse(fake: FakeOpenAI, http: httpx.Client) -> None:
    fake.enqueue(faults.invalid_utf8_sse())
    resp = http.post(CHAT, json={"stream": True})
    assert b"\xff\xfe" in resp.content
    with pytest.raises(UnicodeDecodeError):
        resp.content.decode("utf-8")
    assert resp.content.endswith(b"data: [DONE]\n\n")  # otherwise a complete, good stream


def test_bad_gzip(fake: FakeOpenAI, http: httpx.Client) -> None:
    fake.enqueue(faults.bad_gzip())
    with pytest.raises(httpx.DecodingError):
        http.post(CHAT, json={})


# --------------------------------------------------------------------------------------------
# Answers that are not what they claim, in each dialect's shape
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [500, 502, 503, 529, 408])
def test_status_in_openai_shape(fake: FakeOpenAI, http: httpx.Client, code: int) -> None:
    fake.enqueue(faults.status(code))
    resp = http.post(CHAT, json={})
    assert resp.status_code == code
    assert set(resp.json()["error"]) == {"message", "type", "param", "code"}


#: A body the (strict) fake Anthropic takes, so that the fault, not a rule, answers it.
ANTHROPIC_BODY = {"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


def test_status_in_anthropic_and_gemini_shapes() -> None:
    with FakeAnthropic() as ant, httpx.Client(base_url=ant.url, timeout=5) as client:
        ant.enqueue(faults.status(529, dialect="anthropic"))
        resp = client.post("/v1/messages", json=ANTHROPIC_BODY)
        assert resp.status_code == 529
        assert resp.json()["type"] == "error"
        assert resp.json()["error"]["type"] == "overloaded_error"
    with FakeGemini() as gem, httpx.Client(base_url=gem.url, timeout=5) as client:
        gem.enqueue(faults.status(503, dialect="gemini"))
        path = "/v1beta/models/gemini-3-pro-preview:generateContent"
        resp = client.post(
            path,
            json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
            headers={"x-goog-api-key": "k"},
        )
        assert resp.status_code == 503
        assert resp.json()["error"]["status"] == "UNAVAILABLE"


def test_status_with_custom_body_and_content_type(fake: FakeOpenAI, http: httpx.Client) -> None:
    fake.enqueue(faults.status(502, body=b"upstream connect error", content_type="text/plain"))
    resp = http.post(CHAT, json={})
    assert (resp.status_code, resp.text) == (502, "upstream connect error")
    assert resp.headers["content-type"] == "text/plain"


def test_rate_limited_with_and_without_retry_after(fake: FakeOpenAI, http: httpx.Client) -> None:
    fake.enqueue(faults.rate_limited("7"), faults.rate_limited(None))
    first, second = http.post(CHAT, json={}), http.post(CHAT, json={})
    assert (first.status_code, first.headers["retry-after"]) == (429, "7")
    assert second.status_code == 429
    assert "retry-after" not in second.headers
    assert first.json()["error"]["type"] == "rate_limit_exceeded"


def test_html_page_claims_success(fake: FakeOpenAI, http: httpx.Client) -> None:
    fake.enqueue(faults.html_page())
    resp = http.post(CHAT, json={})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert resp.text.startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("dialect", ["openai", "responses", "gemini", "anthropic"])
@pytest.mark.parametrize("kind", ["foreign", "empty", "list", "wrong_types"])
def test_wrong_shape_is_valid_json_of_another_shape(
    fake: FakeOpenAI, http: httpx.Client, dialect: faults.Dialect, kind: faults.WrongShape
) -> None:
    fake.enqueue(faults.wrong_shape(dialect, kind))
    resp = http.post(CHAT, json={})
    assert resp.status_code == 200
    body = resp.json()
    good = faults.good_json(dialect)
    assert body != good
    if kind == "foreign":
        main = {"openai": "choices", "responses": "output", "gemini": "candidates"}
        assert main.get(dialect, "content") not in body
    if kind == "wrong_types":
        assert set(body) == set(good)


# --------------------------------------------------------------------------------------------
# Random faults for the soak test
# --------------------------------------------------------------------------------------------


def test_faulty_mixes_good_replies_and_fitting_faults() -> None:
    chooser = faults.faulty(random.Random(3), auto_reply, fault_rate=0.5)
    stream, plain = _recorded({"stream": True}), _recorded({})
    for _ in range(400):
        chooser(stream)
        chooser(plain)
    counts = chooser.counts
    assert 300 < counts["good"] < 500
    assert set(counts) - {"good"} == set(faults.MENU)  # every fault turns up
    again = faults.faulty(random.Random(3), auto_reply, fault_rate=0.5)
    for _ in range(400):
        again(stream)
        again(plain)
    assert again.counts == counts  # a seed replays the same run


def test_faulty_picks_only_what_fits_and_what_is_allowed() -> None:
    only = faults.faulty(random.Random(1), auto_reply, 1.0, {"drop_mid_stream": 1, "status_503": 3})
    for _ in range(200):
        only(_recorded({}))  # drop_mid_stream needs a stream: always the 503
    assert only.counts == {"status_503": 200}
    stream_only = faults.faulty(random.Random(1), auto_reply, 1.0, ["garbage_sse"])
    assert stream_only(_recorded({})) is auto_reply(_recorded({}))  # nothing fits: good
    assert stream_only.counts == {"good": 1}
    with pytest.raises(ValueError, match="unknown faults"):
        faults.faulty(random.Random(1), auto_reply, 0.3, ["no_such_fault"])


def test_faulty_as_default_of_each_fake() -> None:
    with FakeAnthropic() as ant, httpx.Client(base_url=ant.url, timeout=5) as client:
        ant.default = faults.faulty(
            random.Random(0), anthropic_auto_reply, 1.0, ["rate_limited"], dialect="anthropic"
        )
        resp = client.post("/v1/messages", json={**ANTHROPIC_BODY, "stream": True})
        assert resp.status_code == 429
        assert resp.json()["error"]["type"] == "rate_limit_error"
    with FakeResponses() as rsp, httpx.Client(base_url=rsp.base_url, timeout=5) as client:
        rsp.enqueue(faults.drop_mid_stream(after=1, dialect="responses"))
        with pytest.raises(httpx.RemoteProtocolError):
            client.post(
                "/responses", json={"model": "gpt-5.6-terra", "input": "hi", "stream": True}
            )


def test_is_stream_reads_each_dialect() -> None:
    assert faults.is_stream(_recorded({"stream": True}))
    assert not faults.is_stream(_recorded({"stream": "yes"}))
    path = "/v1beta/models/gemini-3-pro-preview:streamGenerateContent"
    assert faults.is_stream(Recorded("POST", path, "alt=sse", {}, b"{}"))
    assert not faults.is_stream(Recorded("POST", path, "", {}, b"{}"))
