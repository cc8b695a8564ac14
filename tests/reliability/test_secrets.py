"""No configured secret leaves vdm: not in its logs at DEBUG, its answers, `/health`,
`/v1/models` or `vdm config show`, whatever the upstreams do.

vdm (real Hypercorn on loopback) runs with a proxy key and one provider of every kind: OpenAI
Chat Completions with two keys, Responses, native Gemini, Anthropic-format, a `!PASSTHRU` one
(the client's own key is a secret too), an Azure-style one sending `api-key`, and one whose
port is closed. Most carry a credential custom header (`{P}_CUSTOM_HEADER_X_AUTH_TOKEN`). Each
fake upstream is driven through every path: a good answer, then errors 400/401/429/500/503 that
quote back every header it received (Authorization, x-api-key, api-key, x-goog-api-key, the
custom headers), a stream whose data line is not JSON and quotes them too, and a silence that
times out; each non-streamed and streamed. Every log record of every logger is captured
(formatted, tracebacks included) as `vdm serve` writes it, through the redacting filter its
handler carries; the client's own key, which that filter cannot know, must not be in any
record even before it. The filter and the stream redactor are tested on their own below.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tests.fakes import faults
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI, JsonReply, Recorded, Reply, SseReply
from tests.fakes.responses_upstream import FakeResponses
from tests.harness import KEEP_ENV, Place, running_vdm
from vdm.config.secrets import RedactingFilter, StreamRedactor, install_redaction, mask, redact
from vdm.config.settings import Settings
from vdm.server.serve import configure_logging

# Each secret has a distinctive middle: a leak that is cut short still shows it.
PROXY_KEY = "vdm-proxy-Q7rT2mX9kL4pW8zN-0001"
CHAT_KEYS = ("sk-chat-A3fK9qW2eR7tY5uI-0002", "sk-chat-B8nM4vC6xZ1aS3dF-0003")
RESPONSES_KEY = "sk-resp-G5hJ7kL2pO9iU4yT-0004"
GEMINI_KEY = "AIzaGemini-R2eW8qA5sD1fG6hJ-0005"
ANTHROPIC_KEY = "sk-ant-api03-K4lZ7xC2vB9nM5qW-0006"
AZURE_KEY = "azurekey-E1rT6yU3iO8pA4sD-0007"
DEAD_KEY = "sk-dead-F9gH2jK5lZ7xC3vB-0008"
CLIENT_KEY = "sk-ant-client-own-N6mQ1wE8rT4yU2iO-0009"  # the !PASSTHRU client's key
HEADER_SECRETS = {
    "OPENAI": "xauth-chat-P3aS7dF1gH9jK5lZ-0010",
    "RESP": "xauth-resp-Z8xC4vB2nM6qW1eR-0011",
    "GEMINI": "xauth-gem-T5yU9iO3pA7sD2fG-0012",
    "ANTHROPIC": "xauth-ant-H6jK1lZ8xC4vB9nM-0013",
    "AZURE": "xauth-azure-Q2wE5rT8yU1iO4pA-0014",
}
SECRETS = (
    PROXY_KEY,
    *CHAT_KEYS,
    RESPONSES_KEY,
    GEMINI_KEY,
    ANTHROPIC_KEY,
    AZURE_KEY,
    DEAD_KEY,
    CLIENT_KEY,
    *HEADER_SECRETS.values(),
)


def _leaks(text: str) -> list[str]:
    """The secrets `text` shows, whole or in part: any 10 characters of one past its first 3
    (its masked form shows at most a 3-character prefix and its last 4), so a secret cut
    short by a quote that stops mid-way is found too."""
    return [s for s in SECRETS if any(s[i : i + 10] in text for i in range(3, len(s) - 9))]


# -- the upstreams ------------------------------------------------------------------------------


class Upstream:
    """One fake upstream answering every request in the current `mode`."""

    def __init__(self, fake: FakeOpenAI, dialect: faults.Dialect) -> None:
        self.fake = fake
        self.dialect = dialect
        self.mode = "ok"
        self._good = fake.default
        fake.default = self._reply

    def _reply(self, request: Recorded) -> Reply:
        if self.mode == "ok":
            good = self._good
            return good(request) if callable(good) else good
        if self.mode == "timeout":
            return faults.stall_before_headers(3.0)
        # Credentials first: an error that quotes only the start of a body still shows them.
        headers = sorted(request.headers.items(), key=lambda kv: kv[0] not in CREDENTIALS)
        echo = f"you sent {json.dumps(dict(headers))} to {request.path}?{request.query}"
        if self.mode == "garbage":
            # The credentials at every offset modulo 10: a quote of the start cut at any
            # length ends inside one of them, past its first 13 characters, now and then.
            spread = "".join("~" * k + v for v in _credentials(request) for k in range(10))
            return SseReply([f"data: {spread} {echo}\n\n".encode()], done=False)
        status = int(self.mode)
        headers = {"retry-after": "1"} if status == 429 else {}
        body = faults.error_body(status, echo, self.dialect)
        return JsonReply(body, status=status, headers=headers)


def _credentials(request: Recorded) -> list[str]:
    return [v for k, v in request.headers.items() if k in CREDENTIALS]


MODES = ("ok", "400", "500", "503", "garbage", "timeout", "429", "401")
CREDENTIALS = {"authorization", "x-api-key", "api-key", "x-goog-api-key", "x-auth-token"}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def upstreams() -> Iterator[dict[str, Upstream]]:
    fakes: dict[str, tuple[FakeOpenAI, faults.Dialect]] = {
        "openai": (FakeOpenAI(), "openai"),
        "resp": (FakeResponses(), "openai"),
        "gemini": (FakeGemini(api_key=GEMINI_KEY), "gemini"),
        "anthropic": (FakeAnthropic(), "anthropic"),
        "passthru": (FakeAnthropic(), "anthropic"),
        "azure": (FakeOpenAI(), "openai"),
    }
    for fake, _ in fakes.values():
        fake.start()
    try:
        yield {name: Upstream(fake, dialect) for name, (fake, dialect) in fakes.items()}
    finally:
        for fake, _ in fakes.values():
            fake.stop()


def _env(up: dict[str, Upstream]) -> dict[str, str]:
    env = {
        "PROXY_API_KEY": PROXY_KEY,
        "LOG_LEVEL": "DEBUG",
        "MAX_RETRIES": "0",
        "REQUEST_TIMEOUT": "0.4",
        "OPENAI_API_KEY": " ".join(CHAT_KEYS),
        "OPENAI_BASE_URL": up["openai"].fake.base_url,
        "OPENAI_CUSTOM_HEADER_X_TEAM": "blue",
        "RESP_API_KEY": RESPONSES_KEY,
        "RESP_BASE_URL": up["resp"].fake.base_url,
        "RESP_API_FORMAT": "responses",
        "GEMINI_API_KEY": GEMINI_KEY,
        "GEMINI_BASE_URL": up["gemini"].fake.base_url,
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        "ANTHROPIC_BASE_URL": up["anthropic"].fake.base_url,
        "PASSTHRU_API_KEY": "!PASSTHRU",
        "PASSTHRU_API_FORMAT": "anthropic",
        "PASSTHRU_BASE_URL": up["passthru"].fake.base_url,
        "AZURE_API_KEY": AZURE_KEY,
        "AZURE_BASE_URL": up["azure"].fake.url,
        "DEAD_API_KEY": DEAD_KEY,
        "DEAD_BASE_URL": f"http://127.0.0.1:{_closed_port()}/v1",
        "VDM_DEFAULT_PROVIDER": "openai",
    }
    for prefix, value in HEADER_SECRETS.items():
        env[f"{prefix}_CUSTOM_HEADER_X_AUTH_TOKEN"] = value
    return env


#: Per kind, its models: the first for every mode but 429, the others for the 429s
#: (non-streamed, streamed), so a key cooling for one model leaves the next request's alone.
MODELS = {
    "openai": ("openai:gpt-4o-mini", "openai:gpt-4o", "openai:gpt-4.1"),
    "resp": ("resp:gpt-4.1-mini", "resp:gpt-4o", "resp:gpt-4.1"),
    "gemini": ("gemini:gemini-2.5-flash", "gemini:gemini-2.5-pro", "gemini:gemini-2.0-flash"),
    "anthropic": (
        "anthropic:claude-haiku-4-5",
        "anthropic:claude-sonnet-4-5",
        "anthropic:claude-opus-4-1",
    ),
    "passthru": (
        "passthru:claude-haiku-4-5",
        "passthru:claude-sonnet-4-5",
        "passthru:claude-opus-4-1",
    ),
    "azure": ("azure:deployment-a", "azure:deployment-b", "azure:deployment-c"),
}


# -- capturing every log record -----------------------------------------------------------------


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured() -> Iterator[tuple[_Capture, _Capture]]:
    """Every record of every logger at DEBUG, twice: as emitted (`raw`), and as `vdm serve`
    writes it (`served`: its handler masks the configured secrets; the caller installs that
    filter once the settings are known). `raw` comes first: the filter edits records."""
    raw, served = _Capture(), _Capture()
    root = logging.getLogger()
    loggers = [root, *(logging.getLogger(n) for n in list(logging.root.manager.loggerDict))]
    levels = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    root.addHandler(raw)
    root.addHandler(served)
    try:
        yield raw, served
    finally:
        root.removeHandler(raw)
        root.removeHandler(served)
        for lg, level in levels:
            lg.setLevel(level)


# -- the test -----------------------------------------------------------------------------------


def _show(response: httpx.Response) -> str:
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    return f"{response.status_code}\n{headers}\n{response.text}"


def _hello(model: str, stream: bool) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 32,
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
    }


def test_no_secret_in_logs_answers_health_or_models(
    upstreams: dict[str, Upstream], captured: tuple[_Capture, _Capture]
) -> None:
    raw, served = captured
    env = _env(upstreams)
    install_redaction(served, Settings.from_mapping(env).secrets)
    outputs: list[tuple[str, str]] = []
    statuses: dict[tuple[str, str, bool], int] = {}
    auth = {"x-api-key": PROXY_KEY, "authorization": f"Bearer {CLIENT_KEY}"}
    with running_vdm(env) as vdm, httpx.Client(base_url=vdm.url, timeout=10) as http:
        for name in ("/health", "/v1/models", "/v1/aliases"):
            outputs.append((f"GET {name}", _show(http.get(name, headers=auth))))
        for kind, models in MODELS.items():
            model = models[0]
            for mode in MODES:
                upstreams[kind].mode = mode
                for stream in (False, True):
                    asked = models[1 + stream] if mode == "429" else model
                    response = http.post("/v1/messages", json=_hello(asked, stream), headers=auth)
                    statuses[kind, mode, stream] = response.status_code
                    outputs.append((f"{kind} {mode} stream={stream}", _show(response)))
            if kind in ("anthropic", "passthru"):
                upstreams[kind].mode = "ok"
                counted = http.post(
                    "/v1/messages/count_tokens", json=_hello(model, False), headers=auth
                )
                outputs.append((f"{kind} count_tokens", _show(counted)))
        for stream in (False, True):
            dead = http.post("/v1/messages", json=_hello("dead:gpt-4o", stream), headers=auth)
            statuses["dead", "connect", stream] = dead.status_code
            outputs.append((f"dead stream={stream}", _show(dead)))
        wrong = http.post("/v1/messages", json=_hello("x", False), headers={"x-api-key": "no"})
        outputs.append(("wrong proxy key", _show(wrong)))
        for name in ("/health", "/v1/models"):
            outputs.append((f"GET {name} after", _show(http.get(name, headers=auth))))
    outputs.append(("log as vdm serve writes it", "\n".join(served.lines)))
    # The client's own key is no configured secret: the filter does not know it, so no log
    # record may carry it in the first place.
    raw_log = "\n".join(raw.lines)
    found_raw = [s for s in _leaks(raw_log) if s == CLIENT_KEY]

    # The paths were really taken: good answers, the upstreams' errors, the timeouts.
    for kind in MODELS:
        seen = {
            f"{mode} stream={stream}": statuses[kind, mode, stream]
            for mode in MODES
            for stream in (False, True)
        }
        assert seen["ok stream=False"] == seen["ok stream=True"] == 200, (kind, seen)
        assert seen["400 stream=False"] == seen["400 stream=True"] == 400, (kind, seen)
        assert seen["429 stream=False"] == seen["429 stream=True"] == 429, (kind, seen)
        assert seen["500 stream=False"] >= 500 and seen["timeout stream=True"] >= 500, seen
    assert statuses["dead", "connect", False] >= 500
    for upstream in upstreams.values():
        received = [r for r in upstream.fake.requests if r.method == "POST"]
        assert len(received) >= len(MODES), upstream.fake
    sent_secrets = json.dumps([r.headers for u in upstreams.values() for r in u.fake.requests])
    assert all(s in sent_secrets for s in HEADER_SECRETS.values())
    assert CLIENT_KEY in sent_secrets  # the upstreams did have every secret to echo
    assert len(served.lines) > 50

    found = {label: leaks for label, text in outputs if (leaks := _leaks(text))}
    if found_raw:
        found["log as emitted"] = found_raw
    assert not found, json.dumps(found, indent=1)


# -- vdm config show ----------------------------------------------------------------------------


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Place:
    for name in list(os.environ):
        if name not in KEEP_ENV and not name.startswith("PYTEST_"):
            monkeypatch.delenv(name)
    place = Place.make(tmp_path)
    monkeypatch.setenv("HOME", str(place.home))
    monkeypatch.chdir(place.cwd)
    return place


def test_config_show_masks_every_secret(place: Place, upstreams: dict[str, Upstream]) -> None:
    from vdm.cli.main import app

    env = _env(upstreams)
    runner = CliRunner()
    outputs = []
    commands = (
        ["config", "show"],
        ["config", "show", "--json"],
        ["config", "show", "--resolve", "passthru:claude-haiku-4-5"],
        ["config", "env"],
        ["config", "validate"],
    )
    for args in commands:
        result = runner.invoke(app, args, env=env)
        outputs.append((" ".join(args), result.output))
    assert "openai" in outputs[0][1] and mask(CHAT_KEYS[0]) in outputs[0][1]
    found = {label: leaks for label, text in outputs if (leaks := _leaks(text))}
    assert not found, json.dumps(found, indent=1)


# -- the redacting log filter -------------------------------------------------------------------


def _logged(
    secrets: tuple[str, ...], emit: Callable[[logging.Logger], None]
) -> tuple[str, logging.Handler]:
    handler = _Capture()
    install_redaction(handler, secrets)
    logger = logging.getLogger("tests.secrets.filter")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return "\n".join(handler.lines), handler


def test_filter_masks_messages_arguments_and_tracebacks() -> None:
    key = CHAT_KEYS[0]

    def emit(logger: logging.Logger) -> None:
        logger.debug("sent %s to %s", {"authorization": f"Bearer {key}"}, "upstream")
        logger.info(f"plain text with {HEADER_SECRETS['OPENAI']}")
        try:
            raise RuntimeError(f"upstream said: bad key {key}")
        except RuntimeError:
            logger.exception("failed")
        logger.warning("nothing secret here: %d", 42)

    text, _ = _logged((key, HEADER_SECRETS["OPENAI"]), emit)
    assert key not in text and HEADER_SECRETS["OPENAI"] not in text
    assert mask(key) in text and mask(HEADER_SECRETS["OPENAI"]) in text
    assert "RuntimeError: upstream said: bad key" in text  # the traceback is still there
    assert "nothing secret here: 42" in text


def test_filter_leaves_records_without_secrets_untouched() -> None:
    records: list[logging.LogRecord] = []

    def emit(logger: logging.Logger) -> None:
        logger.info("%s and %s", "a", "b")

    handler = _Capture()
    handler.emit = records.append  # type: ignore[method-assign]
    install_redaction(handler, (CHAT_KEYS[0], "abc"))  # "abc": too short to be masked
    logger = logging.getLogger("tests.secrets.untouched")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    (record,) = records
    assert record.msg == "%s and %s" and record.args == ("a", "b")


def test_installing_twice_keeps_one_filter() -> None:
    handler = logging.NullHandler()
    install_redaction(handler, ("first-secret",))
    install_redaction(handler, ("second-secret",))
    assert len([f for f in handler.filters if isinstance(f, RedactingFilter)]) == 1


def test_configure_logging_installs_the_filter_on_its_handler() -> None:
    handler = _Capture()
    root = logging.getLogger()
    before = (root.level, root.handlers[:])
    root.handlers[:] = []  # pytest's own handlers would make basicConfig a no-op
    try:
        configure_logging("DEBUG", handler=handler, secrets=(ANTHROPIC_KEY,))
        logging.getLogger("vdm.test").warning("upstream echoed %s", ANTHROPIC_KEY)
    finally:
        root.handlers[:] = before[1]
        root.setLevel(before[0])
    assert captured_text(handler) and ANTHROPIC_KEY not in captured_text(handler)
    assert mask(ANTHROPIC_KEY) in captured_text(handler)


def captured_text(handler: _Capture) -> str:
    return "\n".join(handler.lines)


# -- the stream redactor ------------------------------------------------------------------------


@pytest.mark.parametrize("nested", [False, True], ids=["distinct", "one-inside-another"])
def test_stream_redactor_masks_secrets_split_anywhere_across_reads(nested: bool) -> None:
    secrets = (CHAT_KEYS[0], CHAT_KEYS[1], HEADER_SECRETS["OPENAI"])
    if nested:
        secrets += ("sk-chat-", "W2eR7tY5")  # the start and the middle of the first key
    pieces = ["data: ", "sk-", "sk-chat-A3", *secrets, "\n\n", "x", '{"k":"', "-0002"]
    rng = random.Random(11)
    for _ in range(2000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 10))).encode()
        cuts = sorted(rng.sample(range(len(text) + 1), min(len(text) + 1, rng.randint(0, 6))))
        redactor = StreamRedactor(secrets)
        out, previous = b"", 0
        for cut in [*cuts, len(text)]:
            out += redactor.feed(text[previous:cut])
            previous = cut
        out += redactor.flush()
        assert not [s for s in secrets if s.encode() in out], (text, cuts, out)
        if not nested:  # then exactly what masking the whole text at once gives
            assert out == redact(text.decode(), secrets).encode(), (text, cuts)
        elif not [s for s in secrets if s.encode() in text]:
            assert out == text


def test_stream_redactor_holds_nothing_back_at_an_event_end() -> None:
    redactor = StreamRedactor(CHAT_KEYS)
    event = b'event: ping\ndata: {"type": "ping"}\n\n'
    assert redactor.feed(event) == event
    assert redactor.feed(b"data: sk-ch") == b"data: "  # might be the start of a key
    assert redactor.feed(b"oose\n\n") == b"sk-choose\n\n"
    assert redactor.flush() == b""
