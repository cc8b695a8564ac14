"""vdm's log formats, the systemd journal handler, the request log, and the DEBUG line of
the translated request (vdm/server/logs.py).

The journal handler is checked against a real AF_UNIX datagram socket in a temporary
directory, its datagrams parsed as journald parses them; the DEBUG line against vdm served
by Hypercorn in front of a fake OpenAI upstream.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.harness import running_vdm
from vdm.config.secrets import mask
from vdm.server.logs import (
    MAX_BODY,
    JournalHandler,
    JsonFormatter,
    LogOptions,
    RequestLog,
    TextFormatter,
    check_request_log,
    journal_available,
    journal_field,
)
from vdm.usage.trace import REQUEST_ID

RID = "req_vdm_0123456789abcdef01234567"
SECRET = "sk-logs-secret-key-0123456789"
FIELDS = {
    "request_id": RID,
    "upstream_request_id": "chatcmpl-42",
    "endpoint": "messages",
    "requested": "fast",
    "provider": "openai",
    "model": "gpt-4o-mini",
    "key": mask(SECRET),
    "stream": True,
    "status": 200,
    "input_tokens": 12,
    "output_tokens": 40,
    "ttft_ms": 210.0,
    "duration_ms": 812.0,
    "cost_usd": 0.0001,
    "error": None,
}


def _record(
    msg: str, level: int = logging.INFO, name: str = "vdm.test", **extra: object
) -> logging.LogRecord:
    record = logging.LogRecord(name, level, __file__, 42, msg, None, None, func="caller")
    record.__dict__.update(extra)
    return record


@pytest.fixture
def in_request() -> Iterator[str]:
    token = REQUEST_ID.set(RID)
    try:
        yield RID
    finally:
        REQUEST_ID.reset(token)


# -- formatters ---------------------------------------------------------------------------------


def test_text_lines_of_a_request_carry_its_id(in_request: str) -> None:
    line = TextFormatter().format(_record("retry 1 of 2", name="vdm.upstream.client"))
    assert line.endswith(f" INFO vdm.upstream.client [{RID}]: retry 1 of 2")


def test_text_line_outside_a_request_has_no_id() -> None:
    line = TextFormatter().format(_record("listening"))
    assert line.endswith(" INFO vdm.test: listening") and "[" not in line


def test_text_request_line_names_its_id_once() -> None:
    line = TextFormatter().format(
        _record(f"{RID} client=wrap fast -> openai:gpt-4o-mini 200", vdm_request=FIELDS)
    )
    assert line.count(RID) == 1 and f"vdm.test: {RID} client=wrap" in line


def test_json_line_has_the_fields_and_the_request_fields_at_top_level() -> None:
    record = _record("the request line", vdm_request=FIELDS)
    data = json.loads(JsonFormatter().format(record))
    assert data["level"] == "INFO" and data["logger"] == "vdm.test"
    assert data["message"] == "the request line" and data["request_id"] == RID
    assert data["ts"].endswith("Z") and len(data["ts"]) == len("2026-12-05T10:35:35.123Z")
    for name, value in FIELDS.items():
        assert data[name] == value


def test_json_request_fields_never_replace_the_line_s_own(in_request: str) -> None:
    record = _record("mine", vdm_request={"message": "theirs", "level": "nope", "x": 1})
    data = json.loads(JsonFormatter().format(record))
    assert (data["message"], data["level"], data["x"], data["request_id"]) == (
        "mine",
        "INFO",
        1,
        RID,
    )


def test_json_line_carries_the_exception_masked() -> None:
    try:
        raise RuntimeError(f"upstream said {SECRET}")
    except RuntimeError:
        record = _record("failed", level=logging.ERROR, exc_info=sys.exc_info())
    line = JsonFormatter((SECRET,)).format(record)
    data = json.loads(line)
    assert "RuntimeError" in data["exception"] and mask(SECRET) in data["exception"]
    assert SECRET not in line and "request_id" not in data


# -- the systemd journal ------------------------------------------------------------------------


def parse_journal(data: bytes) -> dict[str, str]:
    """A datagram as journald reads it: `NAME=value\\n`, or `NAME\\n`, a 64-bit
    little-endian length, the value and `\\n`."""
    fields: dict[str, str] = {}
    at = 0
    while at < len(data):
        end = data.index(b"\n", at)
        line = data[at:end]
        if b"=" in line:
            name, _, value = line.partition(b"=")
            at = end + 1
        else:
            name = line
            (size,) = struct.unpack("<Q", data[end + 1 : end + 9])
            value = data[end + 9 : end + 9 + size]
            assert data[end + 9 + size : end + 10 + size] == b"\n"
            at = end + 10 + size
        fields[name.decode()] = value.decode()
    return fields


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "journal.sock"))
    sock.settimeout(5)
    try:
        yield sock
    finally:
        sock.close()


def test_journal_gets_the_record_in_the_native_protocol(journal: socket.socket) -> None:
    handler = JournalHandler(journal.getsockname(), secrets=(SECRET,))
    logger = logging.getLogger("vdm.test.journal")
    logger.addHandler(handler)
    logger.propagate = False
    token = REQUEST_ID.set(RID)
    try:
        logger.warning("line one\nline two with %s", SECRET, extra={"vdm_request": FIELDS})
    finally:
        REQUEST_ID.reset(token)
        logger.removeHandler(handler)
        logger.propagate = True
        handler.close()
    data = journal.recv(1 << 20)
    assert b"MESSAGE\n" in data  # the multi-line message went in the binary form
    fields = parse_journal(data)
    assert fields["SYSLOG_IDENTIFIER"] == "vandamme-proxy"
    assert fields["PRIORITY"] == "4" and fields["LOGGER"] == "vdm.test.journal"
    assert fields["MESSAGE"] == f"line one\nline two with {mask(SECRET)}"
    assert fields["REQUEST_ID"] == RID and fields["CODE_FILE"] == __file__
    assert fields["CODE_FUNC"] == "test_journal_gets_the_record_in_the_native_protocol"
    assert fields["VDM_PROVIDER"] == "openai" and fields["VDM_STATUS"] == "200"
    assert fields["VDM_STREAM"] == "true" and fields["VDM_KEY"] == mask(SECRET)
    assert "VDM_ERROR" not in fields  # None is left out
    assert SECRET.encode() not in data


@pytest.mark.parametrize(
    ("level", "priority"),
    [(logging.DEBUG, "7"), (logging.INFO, "6"), (logging.ERROR, "3"), (logging.CRITICAL, "2")],
)
def test_journal_priorities_are_syslog_levels(level: int, priority: str) -> None:
    fields = parse_journal(JournalHandler("/nowhere").datagram(_record("x", level=level)))
    assert fields["PRIORITY"] == priority


def test_an_oversized_message_is_cut_to_fit_a_datagram(journal: socket.socket) -> None:
    handler = JournalHandler(journal.getsockname())
    huge = "x" * (4 * JournalHandler.MAX_DATAGRAM)
    handler.handle(_record(huge))
    handler.close()
    data = journal.recv(1 << 20)
    assert len(data) <= JournalHandler.MAX_DATAGRAM
    message = parse_journal(data)["MESSAGE"]
    assert message.startswith("xxxx") and message.endswith(f"… [cut: {len(huge)} bytes]")


def test_a_journal_that_is_gone_never_raises_and_says_so_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = JournalHandler(str(tmp_path / "no-journal.sock"))
    for _ in range(50):
        handler.handle(_record("lost"))
    handler.close()
    assert handler.dropped == 50
    assert capsys.readouterr().err.count("cannot write to the systemd journal") == 1


def test_journal_available_is_true_only_for_a_socket(
    journal: socket.socket, tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    plain.write_text("")
    assert journal_available(journal.getsockname())
    assert not journal_available(str(plain)) and not journal_available(str(tmp_path / "none"))


def test_journal_field_forms() -> None:
    assert journal_field("A", "b=c") == b"A=b=c\n"
    assert journal_field("A", "b\nc") == b"A\n" + struct.pack("<Q", 3) + b"b\nc\n"


# -- the request log ----------------------------------------------------------------------------


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_request_log_appends_one_line_per_request_without_bodies(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    log = RequestLog(str(path), secrets=(SECRET,))
    log.write(FIELDS, b'{"model": "fast"}', b"{}")
    log.write({**FIELDS, "request_id": "req_vdm_2", "error": f"echoed {SECRET}"})
    first, second = _lines(path)  # flushed at once, before close()
    log.close()
    assert first == FIELDS  # bodies are off by default
    assert second["request_id"] == "req_vdm_2" and second["error"] == f"echoed {mask(SECRET)}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = RequestLog(str(path))  # a new server appends
    again.write({"request_id": "req_vdm_3"})
    again.close()
    assert [line["request_id"] for line in _lines(path)] == [RID, "req_vdm_2", "req_vdm_3"]


def test_request_log_bodies_are_json_or_text_masked_and_capped(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    log = RequestLog(str(path), bodies=True, secrets=(SECRET,))
    request = json.dumps({"model": "fast", "messages": [{"role": "user", "content": SECRET}]})
    stream = b"event: message_start\ndata: {}\n\n"
    log.write(FIELDS, request.encode(), stream)
    log.write(FIELDS, b"y" * (MAX_BODY + 10), None)
    log.close()
    text = path.read_text()
    small, large = _lines(path)
    assert SECRET not in text
    assert small["request_body"] == {
        "model": "fast",
        "messages": [{"role": "user", "content": mask(SECRET)}],
    }
    assert small["response_body"] == stream.decode()
    assert large["request_body"] == {
        "truncated": True,
        "size": MAX_BODY + 10,
        "text": "y" * MAX_BODY,
    }
    assert large["response_body"] is None


def test_request_log_write_errors_are_logged_once_never_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = RequestLog(str(tmp_path / "requests.jsonl"))
    log.close()
    for _ in range(3):
        log.write(FIELDS)
    errors = [r for r in caplog.records if "cannot write the request log" in r.getMessage()]
    assert len(errors) == 1


def test_an_unwritable_request_log_is_named_before_serving(tmp_path: Path) -> None:
    problem = check_request_log(str(tmp_path / "missing-dir" / "requests.jsonl"))
    assert problem is not None and "missing-dir" in problem
    assert check_request_log(None) is None


def test_log_options_override_the_settings_only_where_given() -> None:
    from vdm.config.settings import Settings

    settings = Settings.from_mapping({"LOG_FORMAT": "json", "REQUEST_LOG": "/tmp/a.jsonl"})
    assert LogOptions().apply(settings) == settings
    changed = LogOptions("debug", "text", "/tmp/b.jsonl", True).apply(settings)
    assert (changed.log_level, changed.log_format) == ("DEBUG", "text")
    assert (changed.request_log, changed.request_log_bodies) == ("/tmp/b.jsonl", True)


# -- DEBUG: the translated request --------------------------------------------------------------


def test_debug_logs_the_translated_request_once_with_secrets_masked(
    fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="vdm.upstream.client")
    env = {"OPENAI_API_KEY": SECRET, "OPENAI_BASE_URL": fake.base_url}
    body = {
        "model": "gpt-4o-mini",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": f"my key is {SECRET}"}],
    }
    with running_vdm(env) as vdm:
        answer = httpx.post(f"{vdm.url}/v1/messages", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.name == "vdm.upstream.client" and r.levelno == logging.DEBUG
    ]
    assert len(lines) == 1, lines
    (line,) = lines
    assert line.startswith("to openai /chat/completions: {")
    assert '"max_completion_tokens":16' in line  # translated: the OpenAI dialect's name
    assert SECRET not in line and mask(SECRET) in line


def test_no_debug_line_at_info(fake: FakeOpenAI, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="vdm.upstream.client")
    env = {"OPENAI_API_KEY": SECRET, "OPENAI_BASE_URL": fake.base_url}
    body = {
        "model": "gpt-4o-mini",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
    }
    with running_vdm(env) as vdm:
        assert httpx.post(f"{vdm.url}/v1/messages", json=body, timeout=10).status_code == 200
    assert not [r for r in caplog.records if r.levelno == logging.DEBUG]


def test_journal_socket_can_be_overridden(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from vdm.server.logs import journal_socket

    monkeypatch.setenv("VDM_JOURNAL_SOCKET", str(tmp_path / "j.sock"))
    assert journal_socket() == str(tmp_path / "j.sock")
    monkeypatch.delenv("VDM_JOURNAL_SOCKET")
    assert journal_socket() == "/run/systemd/journal/socket"
    assert os.sep in journal_socket()


def test_logging_settings_come_from_toml_and_the_environment(tmp_path: Path) -> None:
    from vdm.config.settings import ConfigError, Settings

    (tmp_path / "vandamme-config.toml").write_text(
        'log-format = "json"\nrequest-log = "requests.jsonl"\nrequest-log-bodies = true\n'
    )
    settings = Settings.load({"HOME": str(tmp_path)}, tmp_path)
    assert (settings.log_format, settings.request_log) == ("json", "requests.jsonl")
    assert settings.request_log_bodies
    default = Settings.from_mapping({})
    assert (default.log_format, default.request_log, default.request_log_bodies) == (
        "text",
        None,
        False,
    )
    with pytest.raises(ConfigError, match="LOG_FORMAT='yaml'.*text, json"):
        Settings.from_mapping({"LOG_FORMAT": "yaml"})
