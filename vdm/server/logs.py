"""vdm's logs: the human and JSON line formats, the systemd journal, and the request log.

Every line written while a request runs carries its id (the `REQUEST_ID` context variable of
vdm/usage/trace.py, or the `vdm_request` fields of the one line logged per finished request
on `vdm.requests`), so `grep req_vdm_…` finds all that one request did.

- text (default): `2026-12-05 10:35:35,123 INFO vdm.upstream.client [req_vdm_…]: …`
- json (`--log-format json`): one object per line, the request's fields at top level.
- journal (`--systemd`): journald's native protocol on its datagram socket, fields
  `REQUEST_ID` and `VDM_*` searchable with `journalctl -t vandamme-proxy VDM_PROVIDER=openai`.
- request log (`--request-log FILE`): one JSON object per finished request, for analysis
  later, with the request and response bodies when asked for (`--request-log-bodies`).

Secrets: the handler's redaction filter (vdm/config/secrets.py) masks them in messages and
tracebacks; the structured fields, which it does not see, are masked here.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import struct
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from vdm.config.secrets import install_redaction, redact
from vdm.config.settings import LOG_FORMATS, Settings
from vdm.usage.trace import REQUEST_ID

FORMATS = LOG_FORMATS
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(vdm_id)s: %(message)s"
#: The journal's socket; `VDM_JOURNAL_SOCKET` overrides it (tests, containers).
JOURNAL_SOCKET = "/run/systemd/journal/socket"
SYSLOG_IDENTIFIER = "vandamme-proxy"
#: Logging levels to syslog priorities (journald's PRIORITY field).
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))
#: A request log body is cut beyond this many bytes.
MAX_BODY = 1024 * 1024


def _fields(record: logging.LogRecord) -> Mapping[str, Any] | None:
    found = getattr(record, "vdm_request", None)
    return found if isinstance(found, Mapping) else None


def request_id_of(record: logging.LogRecord) -> str | None:
    """The id of the request `record` belongs to: its fields', else the running request's."""
    fields = _fields(record)
    if fields is not None and fields.get("request_id"):
        return str(fields["request_id"])
    return REQUEST_ID.get()


def _redact_all(text: str, secrets: tuple[str, ...]) -> str:
    return redact(text, secrets) if secrets else text


class TextFormatter(logging.Formatter):
    """The human format, with ` [req_vdm_…]` after the logger's name while a request runs
    (left out when the message starts with the id already, as the per-request line does)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        rid = request_id_of(record)
        shown = rid and not record.getMessage().startswith(rid)
        record.vdm_id = f" [{rid}]" if shown else ""
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `ts` (ISO 8601, UTC, milliseconds), `level`, `logger`,
    `message`, `request_id` while a request runs, `exception` (the traceback's text) when
    there is one, and the `vdm_request` fields of a per-request line at top level (they never
    replace the first four). `secrets` are masked in the whole line."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(secrets)

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line: dict[str, Any] = {
            "ts": ts.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = request_id_of(record)
        if rid:
            line["request_id"] = rid
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        for name, value in (_fields(record) or {}).items():
            line.setdefault(name, value)
        text = json.dumps(line, ensure_ascii=False, default=str, separators=(",", ":"))
        return _redact_all(text, self.secrets)


def journal_socket() -> str:
    return os.environ.get("VDM_JOURNAL_SOCKET") or JOURNAL_SOCKET


def journal_available(path: str | None = None) -> bool:
    """Whether the journal's socket exists (this is a systemd host with journald running)."""
    try:
        return stat.S_ISSOCK(os.stat(path or journal_socket()).st_mode)
    except OSError:
        return False


def _priority(level: int) -> int:
    return next((p for floor, p in _PRIORITIES if level >= floor), 7)


def journal_field(name: str, value: str) -> bytes:
    """One field in journald's native format: `NAME=value\\n`, or, for a value with a
    newline, `NAME\\n`, its length as a 64-bit little-endian number, the value, `\\n`."""
    data = value.encode("utf-8", "replace")
    if b"\n" in data:
        return name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
    return name.encode() + b"=" + data + b"\n"


def _cut(text: str, limit: int) -> str:
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    marker = f"… [cut: {len(data)} bytes]"
    return data[: max(limit - len(marker.encode()), 0)].decode("utf-8", "ignore") + marker


class JournalHandler(logging.Handler):
    """Records to the systemd journal over its datagram socket, without python-systemd.

    Fields: MESSAGE (the message, with the traceback when there is one), PRIORITY,
    SYSLOG_IDENTIFIER=vandamme-proxy, LOGGER, REQUEST_ID, CODE_FILE/CODE_LINE/CODE_FUNC, and
    each `vdm_request` field as `VDM_<NAME>` (`VDM_PROVIDER`, `VDM_COST_USD`; None left out).

    Size: a datagram must fit the socket's send buffer (about 200 KiB by default), and
    journald would need a memory file passed over the socket for more. So each structured
    field is cut to `MAX_FIELD` bytes and MESSAGE to what is left of `MAX_DATAGRAM`; a cut
    value ends with `… [cut: N bytes]` (N: its whole size).

    A failed send (journald restarting, a full buffer) never reaches vdm: the record is
    dropped, and stderr says so once per `REPORT_SECONDS` with the count dropped since.
    """

    MAX_DATAGRAM = 128 * 1024
    MAX_FIELD = 8 * 1024
    REPORT_SECONDS = 60.0

    def __init__(self, path: str | None = None, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.path = path or journal_socket()
        self.secrets = tuple(secrets)
        self._socket: socket.socket | None = None
        self._reported = float("-inf")
        self.dropped = 0
        self.setFormatter(logging.Formatter("%(message)s"))

    def datagram(self, record: logging.LogRecord) -> bytes:
        """The record in journald's native format."""
        fields = [
            ("PRIORITY", str(_priority(record.levelno))),
            ("SYSLOG_IDENTIFIER", SYSLOG_IDENTIFIER),
            ("LOGGER", record.name),
            ("CODE_FILE", record.pathname),
            ("CODE_LINE", str(record.lineno)),
            ("CODE_FUNC", record.funcName),
        ]
        rid = request_id_of(record)
        if rid:
            fields.append(("REQUEST_ID", rid))
        for name, value in (_fields(record) or {}).items():
            if value is None:
                continue
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            fields.append(("VDM_" + name.upper(), text))
        head = b"".join(
            journal_field(n, _cut(_redact_all(v, self.secrets), self.MAX_FIELD)) for n, v in fields
        )
        room = self.MAX_DATAGRAM - len(head) - 32  # MESSAGE's name and length
        message = _cut(_redact_all(self.format(record), self.secrets), room)
        return journal_field("MESSAGE", message) + head

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = self.datagram(record)
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.sendto(data, self.path)
        except Exception as exc:  # never into vdm: the log is not worth a failed request
            self._dropped(exc)

    def _dropped(self, exc: BaseException) -> None:
        self.dropped += 1
        now = time.monotonic()
        if now - self._reported < self.REPORT_SECONDS:
            return
        self._reported = now
        try:
            sys.stderr.write(
                f"vdm: cannot write to the systemd journal at {self.path}: {exc} "
                f"({self.dropped} record(s) dropped so far)\n"
            )
        except Exception:  # stderr closed too: nothing left to tell
            pass

    def close(self) -> None:
        self.acquire()
        try:
            if self._socket is not None:
                self._socket.close()
                self._socket = None
        finally:
            self.release()
        super().close()


class JournalUnavailable(Exception):
    """`--systemd` on a host without the journal's socket."""


def _body(data: bytes) -> Any:
    """A body as the request log keeps it: parsed JSON when it is JSON, else text; one over
    `MAX_BODY` is kept as `{"truncated": true, "size": bytes, "text": its start}`."""
    if len(data) > MAX_BODY:
        text = data[:MAX_BODY].decode("utf-8", "ignore")
        return {"truncated": True, "size": len(data), "text": text}
    text = data.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


class RequestLog:
    """`--request-log FILE`: one JSON object per finished request (the fields of the
    per-request log line), appended and flushed line by line, for analysis later.

    With `bodies`, `request_body` and `response_body` too (a stream's body is its SSE text).
    The file is created owner-only (0600): bodies are prompts and answers. Secrets are masked
    in every line. A write that fails is said once on the log, and the request goes on.
    """

    def __init__(self, path: str, *, bodies: bool = False, secrets: Iterable[str] = ()) -> None:
        self.path = path
        self.bodies = bodies
        self.secrets = tuple(secrets)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._file = os.fdopen(fd, "a", encoding="utf-8")
        self._lock = threading.Lock()
        self._failed = False

    def write(
        self,
        fields: Mapping[str, Any],
        request_body: bytes | None = None,
        response_body: bytes | None = None,
    ) -> None:
        line = dict(fields)
        if self.bodies:
            line["request_body"] = None if request_body is None else _body(request_body)
            line["response_body"] = None if response_body is None else _body(response_body)
        text = json.dumps(line, ensure_ascii=False, default=str, separators=(",", ":"))
        text = _redact_all(text, self.secrets)
        with self._lock:
            try:
                self._file.write(text + "\n")
                self._file.flush()
            except (OSError, ValueError) as exc:  # ValueError: written after close()
                if not self._failed:
                    self._failed = True
                    logging.getLogger("vdm").error(
                        "cannot write the request log %s: %s (later failures are not logged)",
                        self.path,
                        getattr(exc, "strerror", None) or exc,
                    )

    def close(self) -> None:
        with self._lock:
            try:
                self._file.close()
            except OSError:
                pass


def open_request_log(
    path: str | None, *, bodies: bool = False, secrets: Iterable[str] = ()
) -> RequestLog | None:
    """The request log at `path`, or None when there is none (raises OSError when the file
    cannot be opened: `vdm server start` checks it before it listens)."""
    return None if not path else RequestLog(path, bodies=bodies, secrets=secrets)


@dataclass(frozen=True, slots=True)
class LogOptions:
    """The logging options of `vdm server start` and `vdm wrap`, over the settings' own."""

    level: str | None = None
    fmt: str | None = None
    request_log: str | None = None
    request_log_bodies: bool = False

    def apply(self, settings: Settings) -> Settings:
        return replace(
            settings,
            log_level=(self.level or settings.log_level).upper(),
            log_format=self.fmt or settings.log_format,
            request_log=self.request_log or settings.request_log,
            request_log_bodies=self.request_log_bodies or settings.request_log_bodies,
        )


def check_request_log(path: str | None) -> str | None:
    """Why the request log at `path` cannot be written (None: it can, or there is none):
    said before the server listens, not at its first request."""
    if not path:
        return None
    try:
        RequestLog(path).close()
    except OSError as exc:
        return f"cannot write the request log {path}: {exc.strerror or exc}"
    return None


def configure_logging(
    level: str,
    handler: logging.Handler | None = None,
    secrets: Iterable[str] = (),
    fmt: str = "text",
    systemd: bool = False,
) -> None:
    """vdm's log at `level` in format `fmt` ("text" or "json"), on stderr, `handler`, or the
    systemd journal (`systemd`; JournalUnavailable without its socket), with `secrets` (the
    settings' `secrets`) masked in every record whatever logger it comes from."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}: expected one of {', '.join(FORMATS)}")
    secrets = tuple(secrets)
    if systemd and handler is None:
        path = journal_socket()
        if not journal_available(path):
            raise JournalUnavailable(
                f"--systemd: no systemd journal socket at {path} (journald is not running "
                "here): leave --systemd out to log to stderr"
            )
        handler = JournalHandler(path, secrets)
    handler = handler or logging.StreamHandler(sys.stderr)
    if not isinstance(handler, JournalHandler):
        handler.setFormatter(JsonFormatter(secrets) if fmt == "json" else TextFormatter())
    install_redaction(handler, secrets)
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])
    # httpx logs every request URL at INFO; keep it quiet unless debugging.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
