"""Middleware used by the tests, registered as real plugins (an entry point of a dist-info
made in a temporary directory: `register`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from vdm.middleware import Answer, BaseMiddleware, Context
from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.errors import VdmError
from vdm.protocol.events import Event, TextDelta

#: name → "module:attr" of each test plugin.
PLUGINS = {
    "upper": "tests.middleware.plugins:Upper",
    "canned": "tests.middleware.plugins:Canned",
    "polite": "tests.middleware.plugins:Polite",
    "team-header": "tests.middleware.plugins:TeamHeader",
    "refuse": "tests.middleware.plugins:Refuse",
    "crash": "tests.middleware.plugins:Crash",
    "broken": "tests.middleware.no_such_module:Nothing",
    "sync-hook": "tests.middleware.plugins:SyncHook",
}


def register(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **extra: str) -> None:
    """Install the test plugins as a distribution on `sys.path`, the way pip would: a
    `.dist-info` with `entry_points.txt` in the `vdm.middleware` group."""
    dist = tmp_path / "site" / "vdm_test_plugins-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vdm-test-plugins\nVersion: 1.0\n")
    lines = [f"{name} = {target}" for name, target in {**PLUGINS, **extra}.items()]
    (dist / "entry_points.txt").write_text("[vdm.middleware]\n" + "\n".join(lines) + "\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))


class Upper(BaseMiddleware):
    """Text in capitals: stream deltas and whole answers."""

    async def on_event(self, ctx: Context, event: Event) -> Iterable[Event]:
        if isinstance(event, TextDelta):
            return (TextDelta(event.index, event.text.upper()),)
        return (event,)

    async def on_response(self, ctx: Context, message: dict[str, Any]) -> dict[str, Any]:
        for block in message["content"]:
            if block.get("type") == "text":
                block["text"] = block["text"].upper()
        return message


class Canned(BaseMiddleware):
    """Answers every request itself (`text` option), naming the provider it would have used."""

    async def on_request(self, ctx: Context, request: MessagesRequest) -> Answer:
        text = str(self.options.get("text", "canned"))
        return Answer.text(f"{text} ({ctx.provider}:{ctx.model}, alias {ctx.alias})")


class Polite(BaseMiddleware):
    """Rewords every error the client gets."""

    async def on_error(self, ctx: Context, error: VdmError) -> VdmError:
        return VdmError(error.status, f"sorry: {error.message}", error_type=error.error_type)


class TeamHeader(BaseMiddleware):
    """Adds `x-team` to the upstream call (the `team` option)."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        if not isinstance(self.options.get("team"), str):
            raise ValueError("team must be a string")

    async def on_upstream_headers(self, ctx: Context, headers: dict[str, str]) -> None:
        headers["x-team"] = self.options["team"]


class Refuse(BaseMiddleware):
    """Refuses requests that carry tools, with a 403."""

    async def on_request(self, ctx: Context, request: MessagesRequest) -> None:
        if request.tools:
            raise VdmError(403, "tools are not allowed here")


class Crash(BaseMiddleware):
    """A bug: every request hook raises."""

    async def on_request(self, ctx: Context, request: MessagesRequest) -> None:
        raise RuntimeError("boom")


class SyncHook:
    """Not async: refused at load."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        pass

    def on_request(self, ctx: Context, request: MessagesRequest) -> None:
        return None
