"""The dashboard in a real browser: headless Chromium loads `/dashboard/` from vdm (real
Hypercorn) after scripted traffic through the `anthropic` SDK, and the DOM it builds shows
the models that served the traffic, the error's request id, a cooling key, and a model name
made of markup as text, never run.

Chromium's `--dump-dom` returns once the page has loaded and `--virtual-time-budget` has run
out, but it waits for every open request first: an EventSource open at load would never let
it return. The page opens its live feed `SSE_DELAY_MS` (1.5 s) after its first render, which
comes from a plain fetch; a budget of 1 s dumps the page before the feed opens.

The run saves a screenshot to tests/artifacts/dashboard.png for people to look at.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import anthropic
import pytest

from tests.fakes.anthropic_upstream import (
    AnthropicSseReply,
    FakeAnthropic,
    anthropic_message,
    anthropic_stream_events,
)
from tests.fakes.openai_upstream import (
    FakeOpenAI,
    JsonReply,
    Recorded,
    Reply,
    SseReply,
    completion,
    stream_chunks,
)
from tests.harness import REPO, RunningVdm, clean_env, running_vdm
from vdm.config.secrets import mask

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (.ci/run installs Debian's chromium)"
)

PROXY_KEY = "vdm-browser-proxy-key-31415"
K1, K2 = "sk-browser-key-one-1111", "sk-browser-key-two-2222"
ANT_KEY = "sk-ant-browser-3333"
#: A model name a client made up, in markup: the page must show it, not run it.
HOSTILE = (
    "openai:<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"
)
ARTIFACT = REPO / "tests" / "artifacts" / "dashboard.png"
#: Virtual milliseconds the page gets: its first render, never its SSE (see the docstring).
BUDGET_MS = 1000


def _openai_reply(request: Recorded) -> Reply:
    """K1 is rate-limited for ten minutes (it then cools down); K2 answers with cache hits."""
    if request.headers.get("authorization") == f"Bearer {K1}":
        body = {"error": {"message": "Rate limit reached", "type": "requests", "code": None}}
        return JsonReply(body, status=429, headers={"retry-after": "600"})
    data = request.json
    model = data["model"]
    if data.get("stream"):
        chunks = stream_chunks(
            "Streamed hello", model=model, prompt_tokens=2400, cached_tokens=1800, pieces=3
        )
        return SseReply(chunks, delay=0.01)
    reply = completion("Hello", model=model, prompt_tokens=900, cached_tokens=512)
    return JsonReply(reply)


@pytest.fixture
def upstreams() -> Iterator[tuple[FakeOpenAI, FakeAnthropic]]:
    with FakeOpenAI() as openai_fake, FakeAnthropic() as ant:
        openai_fake.default = _openai_reply
        yield openai_fake, ant


def _env(openai_fake: FakeOpenAI, ant: FakeAnthropic) -> dict[str, str]:
    return {
        "OPENAI_API_KEY": f"{K1} {K2}",
        "OPENAI_BASE_URL": openai_fake.base_url,
        "OPENAI_ALIAS_FAST": "gpt-4o-mini",
        "CLAUDE_API_KEY": ANT_KEY,
        "CLAUDE_BASE_URL": ant.base_url,
        "CLAUDE_API_FORMAT": "anthropic",
        "PROXY_API_KEY": PROXY_KEY,
        "MAX_RETRIES": "0",
    }


def _traffic(vdm: RunningVdm, ant: FakeAnthropic, openai_fake: FakeOpenAI) -> str:
    """Streams and not, two providers, two sessions, one upstream error; returns the
    failed request's id."""

    def client(session: str) -> anthropic.Anthropic:
        return anthropic.Anthropic(
            base_url=vdm.url,
            api_key=PROXY_KEY,
            max_retries=0,
            default_headers={"x-claude-code-session-id": session},
        )

    hi = [{"role": "user", "content": "hi"}]
    one = client("5f1c2a9e-one")
    one.messages.create(model="openai:gpt-4o", max_tokens=20, messages=hi)  # K1 cools down
    with one.messages.stream(model="openai:gpt-4o", max_tokens=20, messages=hi) as stream:
        stream.get_final_message()
    with one.messages.stream(model="fast", max_tokens=20, messages=hi) as stream:
        stream.get_final_message()
    two = client("9b7e4d03-two")
    ant.enqueue(
        JsonReply(anthropic_message("Hi", model="claude-sonnet-4-5", cache_read=3000)),
        AnthropicSseReply(
            anthropic_stream_events("Hi", model="claude-sonnet-4-5", cache_creation=1500)
        ),
    )
    two.messages.create(model="claude:claude-sonnet-4-5", max_tokens=20, messages=hi)
    with two.messages.stream(
        model="claude:claude-sonnet-4-5", max_tokens=20, messages=hi
    ) as stream:
        stream.get_final_message()
    two.messages.create(model=HOSTILE, max_tokens=20, messages=hi)
    openai_fake.enqueue(
        JsonReply({"error": {"message": "model overloaded", "type": "server_error"}}, status=500)
    )
    with pytest.raises(anthropic.APIStatusError) as failed:
        two.messages.create(model="openai:gpt-4o-mini", max_tokens=20, messages=hi)
    request_id = failed.value.response.headers["request-id"]
    assert request_id.startswith("req_vdm_")
    return request_id


def _chromium(tmp_path: Path, url: str, *mode: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    profile = tmp_path / "chromium-profile"
    return subprocess.run(
        [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--window-size=1400,1000",
            f"--virtual-time-budget={BUDGET_MS}",
            *mode,
            url,
        ],
        env=clean_env(HOME=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=30,
    )


class _Dom(HTMLParser):
    """What the tests read from the dumped DOM: model rows, texts, elements, visibility."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, str] = {}  # data-model -> the first cell's text
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.texts: list[str] = []
        self._row: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.append((tag, found))
        if tag == "tr" and found.get("data-model") is not None:
            self._row = found["data-model"]
        elif tag == "td" and self._row is not None and self._row not in self.rows:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self._row is not None:
            self.rows[self._row] = "".join(self._cell)
            self._cell = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        self.texts.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def element(self, id_: str) -> dict[str, str | None]:
        return next(attrs for tag, attrs in self.tags if attrs.get("id") == id_)


def _dom(html: str) -> _Dom:
    dom = _Dom()
    dom.feed(html)
    return dom


def test_the_dashboard_shows_the_traffic_in_a_real_browser(
    tmp_path: Path, upstreams: tuple[FakeOpenAI, FakeAnthropic]
) -> None:
    openai_fake, ant = upstreams
    with running_vdm(_env(openai_fake, ant)) as vdm:
        failed_id = _traffic(vdm, ant, openai_fake)
        # The page's own link carries the key in the fragment (as `vdm wrap --dashboard`'s).
        url = f"{vdm.url}/dashboard/#key={PROXY_KEY}"
        dumped = _chromium(tmp_path, url, "--dump-dom")
        ARTIFACT.parent.mkdir(exist_ok=True)
        shot = _chromium(tmp_path, url, f"--screenshot={ARTIFACT}")

    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = _dom(dumped.stdout)
    # The page logged in with the fragment's key and rendered the state.
    assert "hidden" not in dom.element("main") and "hidden" in dom.element("login")
    for model in ("openai:gpt-4o", "openai:gpt-4o-mini", "claude:claude-sonnet-4-5"):
        assert dom.rows.get(model) == model, sorted(dom.rows)
    assert failed_id in dom.texts
    text = " ".join(dom.texts)
    assert "model overloaded" in text
    assert "favicon" not in text  # the page names its icon: the browser asks vdm for none
    # K1 is cooling for gpt-4o, masked; no key in full anywhere on the page.
    assert mask(K1) in text and "back in" in text
    for secret in (K1, K2, ANT_KEY, PROXY_KEY):
        assert secret not in dumped.stdout
    # The hostile model name is a row whose first cell is its text; nothing in it ran.
    assert dom.rows.get(HOSTILE) == HOSTILE, sorted(dom.rows)
    assert [a.get("src") for tag, a in dom.tags if tag == "script"] == ["dashboard.js"]
    assert not [a for tag, a in dom.tags if tag == "img"]
    title = dumped.stdout.split("<title>", 1)[1].split("</title>", 1)[0]
    assert title == "vdm dashboard"

    assert shot.returncode == 0, shot.stderr[-2000:]
    assert ARTIFACT.stat().st_size > 20_000  # a rendered page, not a blank one
    assert ARTIFACT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_a_credential_the_browser_gets_the_key_form(
    tmp_path: Path, upstreams: tuple[FakeOpenAI, FakeAnthropic]
) -> None:
    openai_fake, ant = upstreams
    with running_vdm(_env(openai_fake, ant)) as vdm:
        dumped = _chromium(tmp_path, f"{vdm.url}/dashboard/", "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = _dom(dumped.stdout)
    assert "hidden" in dom.element("main") and "hidden" not in dom.element("login")
    assert dom.rows == {}


# --- live: the DevTools protocol over a pipe ------------------------------------------------


_TRAMPOLINE = """
import os, sys
read_end, write_end = int(sys.argv[1]), int(sys.argv[2])
if write_end == 3:  # the first dup2 would close it
    write_end = os.dup(write_end)
os.dup2(read_end, 3)
os.dup2(write_end, 4)
os.execv(sys.argv[3], sys.argv[3:])
"""


class _DevTools:
    """Chromium driven over `--remote-debugging-pipe` (NUL-separated JSON on its fds 3 and
    4): no WebSocket client needed, and the page's SSE stays open while the test reads the
    DOM, which `--dump-dom` cannot do."""

    def __init__(self, tmp_path: Path) -> None:
        assert CHROMIUM is not None
        to_browser, commands = os.pipe()
        replies, from_browser = os.pipe()
        args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium-devtools'}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        # A trampoline puts the pipe's ends where Chromium looks for them, then becomes it
        # (a shell cannot: its redirections take one-digit descriptors only).
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _TRAMPOLINE,
                str(to_browser),
                str(from_browser),
                CHROMIUM,
                *args,
            ],
            pass_fds=(to_browser, from_browser),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=clean_env(HOME=str(tmp_path)),
        )
        os.close(to_browser)
        os.close(from_browser)
        self._out = os.fdopen(commands, "wb", buffering=0)
        self._in = os.fdopen(replies, "rb", buffering=0)
        self._buffer = b""
        self._id = 0
        self._session: str | None = None

    def call(self, method: str, params: dict[str, object] | None = None) -> dict[str, Any]:
        self._id += 1
        message: dict[str, object] = {"id": self._id, "method": method, "params": params or {}}
        if self._session is not None:
            message["sessionId"] = self._session
        self._out.write(json.dumps(message).encode() + b"\0")
        for _ in range(10_000):  # events come before the reply; bounded
            while b"\0" not in self._buffer:
                chunk = self._in.read(1 << 16)
                assert chunk, "chromium closed its DevTools pipe"
                self._buffer += chunk
            raw, _, self._buffer = self._buffer.partition(b"\0")
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                assert "error" not in reply, reply["error"]
                result: dict[str, Any] = reply["result"]
                return result
        raise AssertionError(f"no reply to {method}")

    def open(self, url: str) -> None:
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        attached = self.call(
            "Target.attachToTarget", {"targetId": page["targetId"], "flatten": True}
        )
        self._session = attached["sessionId"]
        self.call("Page.navigate", {"url": url})

    def js(self, expression: str) -> Any:
        found = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return found["result"].get("value")

    def wait_for(self, expression: str, expected: Any, seconds: float = 8.0) -> Any:
        deadline = time.monotonic() + seconds
        value = None
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value == expected:
                return value
            time.sleep(0.05)
        raise AssertionError(f"{expression} is {value!r}, not {expected!r}, after {seconds} s")

    def close(self) -> None:
        self._out.close()
        self._in.close()
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


MODEL_ROWS = "[...document.querySelectorAll('tr[data-model]')].map(r => r.dataset.model).sort()"


def test_the_page_updates_live_and_filters_by_session(
    tmp_path: Path, upstreams: tuple[FakeOpenAI, FakeAnthropic]
) -> None:
    openai_fake, ant = upstreams
    hi = [{"role": "user", "content": "hi"}]
    with running_vdm(_env(openai_fake, ant)) as vdm:
        browser = _DevTools(tmp_path)
        try:
            browser.open(f"{vdm.url}/dashboard/#key={PROXY_KEY}")
            browser.wait_for("document.getElementById('conn-text').textContent", "live")
            assert browser.js("location.hash") == ""  # the key left the address bar
            assert browser.js(MODEL_ROWS) == []

            def client(session: str) -> anthropic.Anthropic:
                headers = {"x-claude-code-session-id": session}
                return anthropic.Anthropic(
                    base_url=vdm.url, api_key=PROXY_KEY, max_retries=0, default_headers=headers
                )

            # Traffic after the page loaded shows up without a reload.
            client("session-a").messages.create(model="fast", max_tokens=5, messages=hi)
            client("session-b").messages.create(
                model="claude:claude-sonnet-4-5", max_tokens=5, messages=hi
            )
            both = ["claude:claude-sonnet-4-5", "openai:gpt-4o-mini"]
            browser.wait_for(MODEL_ROWS, both)
            # A click on a session narrows the models table to it; a second one clears it.
            browser.wait_for("document.querySelectorAll('tr[data-session]').length", 2)
            browser.js("document.querySelector('tr[data-session=\"session-b\"]').click()")
            browser.wait_for(MODEL_ROWS, ["claude:claude-sonnet-4-5"])
            browser.js("document.querySelector('tr[data-session=\"session-b\"]').click()")
            browser.wait_for(MODEL_ROWS, both)
        finally:
            browser.close()
