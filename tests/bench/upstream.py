"""The benchmark's fake OpenAI upstream, in its own process: ``python -m tests.bench.upstream``.

A minimal HTTP/1.1 server on a raw ``asyncio.Protocol``: it reads the request head and a
``Content-Length`` body, picks the reply by the first ``"model":"<scenario model>"`` in the
body (at its start from vdm, after the messages from claude-code-router), and
writes pre-rendered bytes (one ``transport.write`` for instant replies; for paced streams,
``call_at`` timers at fixed times from the stream's start, no task). Its cost per request is
the same whether the request comes from the load generator directly or through vdm, and small
next to vdm's.

It prints ``PORT <n>`` on stdout once listening. ``GET /stats`` answers the requests counted
per model, the TCP connections accepted (does vdm reuse its connections?) and the last body
received per model (so the runner can check that the direct body is byte for byte what vdm
sends). ``GET /v1/models`` lists the scenarios' models, as a provider answers `vdm wrap`'s
pre-flight.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import signal
import subprocess
import sys

from tests.bench.scenarios import BY_MODEL, ReplyPlan, reply_plan

_PLANS: dict[bytes, ReplyPlan] = {m.encode(): reply_plan(s) for m, s in BY_MODEL.items()}
_MODEL_KEY = b'"model":"'
_NOT_FOUND_BODY = b'{"error":{"message":"unknown route or model","type":"not_found"}}'
_NOT_FOUND = (
    b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
    % (len(_NOT_FOUND_BODY), _NOT_FOUND_BODY)
)
_BAD = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
#: `GET /v1/models`, as OpenAI lists models: what `vdm wrap`'s pre-flight asks for.
_MODELS_BODY = json.dumps(
    {
        "object": "list",
        "data": [{"id": m.decode(), "object": "model", "owned_by": "bench"} for m in _PLANS],
    }
).encode()
_MODELS = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
    len(_MODELS_BODY),
    _MODELS_BODY,
)

counts: dict[str, int] = {}
last_body: dict[str, bytes] = {}
#: TCP connections accepted, so the runner can see whether vdm reuses its upstream connections.
connections = [0]


class _Conn(asyncio.Protocol):
    __slots__ = ("transport", "buf", "busy", "timer", "loop")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.busy = False
        self.timer: asyncio.TimerHandle | None = None
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        connections[0] += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._process()

    def _process(self) -> None:
        buf = self.buf
        transport = self.transport
        while transport is not None and not self.busy:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).lower()
            at = head.find(b"\ncontent-length:")
            length = 0
            if at >= 0:
                eol = head.find(b"\r\n", at + 1)
                length = int(head[at + 16 : eol if eol > 0 else len(head)])
            elif b"\ntransfer-encoding:" in head:
                transport.write(_BAD)  # the benchmark's clients always send Content-Length
                transport.close()
                return
            if len(buf) < end + 4 + length:
                return
            body = bytes(buf[end + 4 : end + 4 + length])
            del buf[: end + 4 + length]
            if head.startswith(b"get /stats"):
                self._stats()
                continue
            if head.startswith(b"get /v1/models "):
                transport.write(_MODELS)
                continue
            self._answer(head, body)

    def _stats(self) -> None:
        assert self.transport is not None
        data = json.dumps(
            {
                "counts": counts,
                "connections": connections[0],
                "last_body": {m: base64.b64encode(b).decode() for m, b in last_body.items()},
            }
        ).encode()
        self.transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (len(data), data)
        )

    def _answer(self, head: bytes, body: bytes) -> None:
        transport = self.transport
        assert transport is not None
        plan = None
        if head.startswith(b"post ") and b"/chat/completions " in head:
            # vdm writes "model" first; claude-code-router after "messages", which may hold
            # other "model" keys (tool schemas): the first value naming a scenario wins.
            at = body.find(_MODEL_KEY)
            while at >= 0:
                start = at + len(_MODEL_KEY)
                model = body[start : body.find(b'"', start)]
                plan = _PLANS.get(model)
                if plan is not None:
                    name = model.decode()
                    counts[name] = counts.get(name, 0) + 1
                    last_body[name] = body
                    break
                at = body.find(_MODEL_KEY, start)
        if plan is None:
            transport.write(_NOT_FOUND)
            return
        writes = plan.writes
        transport.write(writes[0])
        if len(writes) > 1:
            self.busy = True
            # Write i is due at `began + i * interval`, as a model's tokens come at its own
            # pace: a late write (this loop busy, the box's cores shared with the proxy) does
            # not push the later ones back, which a chain of call_later did, lengthening a
            # stream by the sum of its delays and measuring the box more than the proxy.
            began = self.loop.time()
            self.timer = self.loop.call_at(
                began + plan.interval, self._next, writes, 1, began, plan.interval
            )

    def _next(self, writes: tuple[bytes, ...], i: int, began: float, interval: float) -> None:
        transport = self.transport
        if transport is None:
            return
        transport.write(writes[i])
        i += 1
        if i < len(writes):
            self.timer = self.loop.call_at(
                began + i * interval, self._next, writes, i, began, interval
            )
            return
        self.timer = None
        self.busy = False
        if self.buf:
            self._process()


def start() -> tuple[subprocess.Popen[bytes], int]:
    """Run this module in its own process; return it and its port."""
    # Imported here: the upstream process itself needs neither (tests.harness loads vdm).
    from tests.bench.client import stop
    from tests.bench.scenarios import REPO
    from tests.harness import clean_env

    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.upstream", "--port", "0"],
        cwd=REPO,
        env=clean_env(PYTHONPATH=str(REPO)),
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line.startswith("PORT "):
        stop(proc)
        raise RuntimeError(f"the fake upstream did not start: {line!r}")
    return proc, int(line.split()[1])


async def main(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Conn, host, port, backlog=1024, reuse_address=True)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    asyncio.run(main(args.host, args.port))


if __name__ == "__main__":
    cli(sys.argv[1:])
