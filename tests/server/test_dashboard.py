"""The dashboard's server side: its assets, its feeds, who may see them, the same-origin rule
of the edge, and a live feed that ends when the client leaves or the server stops.

vdm runs on real Hypercorn on loopback (tests/harness.py) in front of a fake OpenAI upstream;
clients are plain httpx so that each test controls every header and cookie. What a browser
makes of the page is tests/e2e/test_dashboard_browser.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.harness import RunningVdm, clean_env, running_vdm
from vdm.config.settings import Settings
from vdm.protocol.errors import VdmError
from vdm.server import dashboard
from vdm.server.edge import EdgePolicy, check_origin

PROXY_KEY = "vdm-proxy-key-dash-1234abcd"
UPSTREAM_KEY = "sk-upstream-dash-9876zyxw"
VDM = [sys.executable, "-m", "vdm.cli"]
SESSION = "wrap-session-secret-5555"
TOKEN = "dash-token-7777-qwerty"
STATE_KEYS = {
    "running_totals",
    "active",
    "timeseries",
    "providers",
    "aliases",
    "recent_errors",
    "sessions",
}


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as upstream:
        yield upstream


def _env(fake: FakeOpenAI, **extra: str) -> dict[str, str]:
    return {"OPENAI_API_KEY": UPSTREAM_KEY, "OPENAI_BASE_URL": fake.base_url, **extra}


def _get(vdm: RunningVdm, path: str, **kw: Any) -> httpx.Response:
    return httpx.get(f"{vdm.url}{path}", timeout=10, **kw)


def _login(vdm: RunningVdm, key: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{vdm.url}/dashboard/login",
        content=b"{}",
        headers={"content-type": "application/json", "x-api-key": key, **headers},
        timeout=10,
    )


def _message(vdm: RunningVdm, headers: dict[str, str]) -> httpx.Response:
    body = {"model": "gpt-4o", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(f"{vdm.url}/v1/messages", json=body, headers=headers, timeout=10)


# --- assets ---------------------------------------------------------------------------------


def test_the_page_and_its_assets_are_served_with_types_etags_and_304s(fake: FakeOpenAI) -> None:
    with running_vdm(_env(fake)) as vdm:
        moved = _get(vdm, "/dashboard?x=1")
        assert moved.status_code == 308
        assert moved.headers["location"] == "/dashboard/?x=1"

        page = _get(vdm, "/dashboard/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.headers["cache-control"] == "no-cache"
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert '<script src="dashboard.js"' in page.text and "login-form" in page.text

        for name, kind in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
            first = _get(vdm, f"/dashboard/{name}")
            assert first.status_code == 200, name
            assert first.headers["content-type"].startswith(kind)
            assert first.content == (dashboard.ASSET_DIR / name).read_bytes()
            etag = first.headers["etag"]
            again = _get(vdm, f"/dashboard/{name}", headers={"if-none-match": etag})
            assert again.status_code == 304 and again.content == b""
            assert again.headers["etag"] == etag
            stale = _get(vdm, f"/dashboard/{name}", headers={"if-none-match": '"old"'})
            assert stale.status_code == 200 and stale.content == first.content

        # Only the shipped files: nothing else under the directory, nothing outside it.
        assert _get(vdm, "/dashboard/settings.py").status_code == 404
        assert _get(vdm, "/dashboard/..%2Fdashboard.py").status_code == 404
        assert fake.requests == []


# --- the feeds and who may see them ---------------------------------------------------------


def test_an_unprotected_server_shows_the_state_to_anyone(fake: FakeOpenAI) -> None:
    with running_vdm(_env(fake)) as vdm:
        assert _message(vdm, {}).status_code == 200
        state = _get(vdm, "/dashboard/api/state")
        assert state.status_code == 200
        data = state.json()
        assert STATE_KEYS <= set(data)
        models = data["running_totals"]["models"]
        assert [(m["provider"], m["model"], m["requests"]) for m in models] == [
            ("openai", "gpt-4o", 1)
        ]
        assert UPSTREAM_KEY not in state.text


def test_a_protected_server_needs_a_viewer_and_its_login_cookie_is_not_the_key(
    fake: FakeOpenAI,
) -> None:
    with running_vdm(_env(fake, PROXY_API_KEY=PROXY_KEY)) as vdm:
        # The page holds no data and is served to anyone; its feeds are not.
        assert _get(vdm, "/dashboard/").status_code == 200
        for path in ("/dashboard/api/state", "/dashboard/api/events", "/metrics/running-totals"):
            refused = _get(vdm, path)
            assert refused.status_code == 401, path
            assert refused.json()["error"]["type"] == "authentication_error"
        assert _get(vdm, "/dashboard/api/state", headers={"x-api-key": PROXY_KEY}).is_success
        bearer = {"authorization": f"Bearer {PROXY_KEY}"}
        assert _get(vdm, "/dashboard/api/state", headers=bearer).is_success

        wrong = _login(vdm, "not-the-key")
        assert wrong.status_code == 401 and "set-cookie" not in wrong.headers

        good = _login(vdm, PROXY_KEY)
        assert good.status_code == 200
        cookie = good.headers["set-cookie"]
        name, _, rest = cookie.partition("=")
        value = rest.split(";")[0]
        assert name == f"vdm_dashboard_{vdm.port}"
        assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= {p.strip() for p in cookie.split(";")}
        assert PROXY_KEY not in cookie and len(value) == 64

        jar = {name: value}
        state = _get(vdm, "/dashboard/api/state", cookies=jar)
        assert state.status_code == 200 and PROXY_KEY not in state.text
        assert STATE_KEYS <= set(state.json())
        assert _get(vdm, "/metrics/running-totals", cookies=jar).status_code == 200
        forged = {name: "0" * 64}
        assert _get(vdm, "/dashboard/api/state", cookies=forged).status_code == 401
        # Another server's cookie (another port, same host) opens nothing here.
        assert (
            _get(vdm, "/dashboard/api/state", cookies={"vdm_dashboard_1": value}).status_code == 401
        )
        # The cookie is not a credential for the API itself.
        assert _message(vdm, {"cookie": f"{name}={value}"}).status_code == 401
        assert fake.requests == []


def test_the_wrap_dashboard_token_opens_the_dashboard_but_never_the_api(fake: FakeOpenAI) -> None:
    with running_vdm(_env(fake), session_secret=SESSION, dashboard_token=TOKEN) as vdm:
        assert _get(vdm, "/dashboard/api/state").status_code == 401
        assert _get(vdm, "/dashboard/api/state", headers={"x-vdm-session": SESSION}).is_success
        assert _get(vdm, "/dashboard/api/state", headers={"x-api-key": TOKEN}).is_success
        login = _login(vdm, TOKEN)
        assert login.status_code == 200 and TOKEN not in login.headers["set-cookie"]
        name, _, rest = login.headers["set-cookie"].partition("=")
        assert _get(vdm, "/dashboard/api/state", cookies={name: rest.split(";")[0]}).is_success

        for headers in (
            {"x-api-key": TOKEN},
            {"authorization": f"Bearer {TOKEN}"},
            {"x-vdm-session": TOKEN},
        ):
            refused = _message(vdm, headers)
            assert refused.status_code == 401, headers
        assert fake.requests == []
        # The session's own child still gets through.
        assert _message(vdm, {"x-vdm-session": SESSION}).status_code == 200


# --- the edge: the page's own origin --------------------------------------------------------


def test_the_edge_lets_a_page_post_to_its_own_loopback_origin_only(fake: FakeOpenAI) -> None:
    with running_vdm(_env(fake, PROXY_API_KEY=PROXY_KEY)) as vdm:
        own = _login(vdm, PROXY_KEY, origin=f"http://127.0.0.1:{vdm.port}")
        assert own.status_code == 200 and "access-control-allow-origin" not in own.headers
        for origin in (
            "http://evil.example",
            f"http://127.0.0.1:{vdm.port + 1}",
            f"https://127.0.0.1:{vdm.port}",
            "null",
        ):
            refused = _login(vdm, PROXY_KEY, origin=origin)
            assert refused.status_code == 403, origin
            assert "set-cookie" not in refused.headers


def test_same_origin_counts_only_for_a_loopback_host() -> None:
    local = [(b"host", b"localhost:8082"), (b"origin", b"http://localhost:8082")]
    assert check_origin(local, EdgePolicy()) is None
    # Served to a network, any Host is accepted: a DNS-rebinding page names itself in both.
    rebound = [(b"host", b"evil.example:8082"), (b"origin", b"http://evil.example:8082")]
    with pytest.raises(VdmError) as refused:
        check_origin(rebound, EdgePolicy(allow_remote=True))
    assert refused.value.status == 403
    listed = EdgePolicy(True, frozenset({"http://evil.example:8082"}))
    assert check_origin(rebound, listed) == b"http://evil.example:8082"


# --- the live feed --------------------------------------------------------------------------


def _events(lines: Iterator[str], count: int, deadline: float) -> list[dict[str, Any]]:
    """The next `count` `state` events' payloads (bounded by `deadline`)."""
    found: list[dict[str, Any]] = []
    name = None
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: ") and name == "state":
            found.append(json.loads(line[6:]))
            if len(found) == count:
                return found
        assert time.monotonic() < deadline, "the feed is too slow"
    return found


def test_the_feed_sends_state_at_once_and_stops_when_the_client_leaves(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard, "INTERVAL_S", 0.1)
    calls = []
    real = dashboard.dashboard_state

    def counted(gateway: Any) -> dict[str, Any]:
        calls.append(time.monotonic())
        return real(gateway)

    monkeypatch.setattr(dashboard, "dashboard_state", counted)
    with running_vdm(_env(fake)) as vdm, httpx.Client(timeout=10) as client:
        started = time.monotonic()
        with client.stream("GET", f"{vdm.url}/dashboard/api/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
            first, second = _events(response.iter_lines(), 2, started + 5)
        assert STATE_KEYS <= set(first) and STATE_KEYS <= set(second)
        assert calls[0] - started < 1.0  # the first one at once
        # The client has gone: the feed stops building payloads.
        time.sleep(0.5)
        seen = len(calls)
        time.sleep(0.5)
        assert len(calls) == seen, "the feed kept running after the client left"


def test_an_open_feed_does_not_hold_up_the_shutdown(fake: FakeOpenAI) -> None:
    """serve()'s grace period is 5 s here: the feed must end well before it."""
    server = running_vdm(_env(fake))
    vdm = server.__enter__()
    with httpx.Client(timeout=10) as client:
        with client.stream("GET", f"{vdm.url}/dashboard/api/events") as response:
            lines = response.iter_lines()
            _events(lines, 1, time.monotonic() + 5)
            started = time.monotonic()
            server.__exit__(None, None, None)
            assert time.monotonic() - started < 3.0
            rest = list(lines)  # the feed ended cleanly: no error event, no cut
            assert not [line for line in rest if line.startswith("event: error")]


# --- vdm wrap --dashboard -------------------------------------------------------------------

#: A child that waits (bounded) until the test has looked at the dashboard.
WAITING_CHILD = """
import os, sys, time
deadline = time.monotonic() + 20
while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
    time.sleep(0.05)
"""


def test_wrap_dashboard_prints_a_link_whose_token_opens_the_dashboard_only(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    child = tmp_path / "child.py"
    child.write_text(WAITING_CHILD)
    done = tmp_path / "done"
    env = clean_env(HOME=str(tmp_path), OPENAI_API_KEY=UPSTREAM_KEY, OPENAI_BASE_URL=fake.base_url)
    command = [*VDM, "wrap", "--dashboard", "--no-check", "-q", "--"]
    with subprocess.Popen(
        [*command, sys.executable, str(child), str(done)],
        env=env,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stderr is not None
            line = proc.stderr.readline()  # said before the child starts
            match = re.fullmatch(
                r"vdm: dashboard (http://127\.0\.0\.1:(\d+)/dashboard/)#key=(\S+)\n", line
            )
            assert match, line
            url, port, token = match.group(1), int(match.group(2)), match.group(3)
            vdm = RunningVdm(url=f"http://127.0.0.1:{port}", port=port, settings=Settings())
            assert httpx.get(url, timeout=10).status_code == 200
            assert _get(vdm, "/dashboard/api/state").status_code == 401
            login = _login(vdm, token)
            assert login.status_code == 200, login.text
            name, _, rest = login.headers["set-cookie"].partition("=")
            state = _get(vdm, "/dashboard/api/state", cookies={name: rest.split(";")[0]})
            assert state.status_code == 200 and token not in state.text
            assert _message(vdm, {"x-api-key": token}).status_code == 401
            assert fake.requests == []
        finally:
            done.touch()
            proc.wait(30)
    assert proc.returncode == 0
