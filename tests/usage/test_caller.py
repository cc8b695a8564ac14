"""Who made a request: Claude Code's session, agent and request-class headers, and the
`cc_is_subagent` mark of its attribution block. The header names are checked against the
installed Claude Code itself, so a rename in a new release fails here."""

from __future__ import annotations

import json
import mmap

import pytest

from tests.e2e.conftest import CLAUDE
from tests.harness import PROTOCOL
from vdm.usage.caller import (
    AGENT,
    AGENT_TYPE,
    NO_CALLER,
    PARENT_AGENT,
    REQUEST_CLASS,
    SESSION,
    caller_of,
)

SESSION_ID = b"5ecc5470-016b-4277-80f6-5cec9aafdeaa"


def _body(*, subagent: bool) -> bytes:
    """A request body shaped as Claude Code writes it: messages, then system (its first block
    the attribution header), then tools."""
    mark = " cc_is_subagent=true;" if subagent else ""
    return json.dumps(
        {
            "model": "claude-opus-5-5",
            "messages": [{"role": "user", "content": "hi"}],
            "system": [
                {
                    "type": "text",
                    "text": f"x-anthropic-billing-header: cc_version=2.1.330.930; "
                    f"cc_entrypoint=sdk-cli;{mark}",
                },
                {"type": "text", "text": "You are Claude Code"},
            ],
            "tools": [],
        },
        separators=(",", ":"),
    ).encode()


def test_a_main_agent_request_with_hint_headers() -> None:
    caller = caller_of(
        [(SESSION, SESSION_ID), (REQUEST_CLASS, b"main"), (b"x-app", b"cli")], _body(subagent=False)
    )
    assert caller.session == SESSION_ID.decode()
    assert (caller.request_class, caller.agent, caller.role) == ("main", None, "main")


def test_a_subagent_request_with_hint_headers() -> None:
    headers = [
        (SESSION, SESSION_ID),
        (AGENT, b"a1b2c3"),
        (PARENT_AGENT, b"p9"),
        (REQUEST_CLASS, b"Subagent"),
        (AGENT_TYPE, b"general-purpose"),
    ]
    caller = caller_of(headers, b"")
    assert (caller.agent, caller.parent_agent, caller.agent_type) == (
        "a1b2c3",
        "p9",
        "general-purpose",
    )
    assert caller.request_class == "subagent" and caller.subagent


@pytest.mark.parametrize(
    ("headers", "subagent"),
    [
        # Without hint headers, an agent id alone says subagent (the main agent sends none).
        ([(SESSION, SESSION_ID), (AGENT, b"a1")], True),
        # A subagent's compaction is still the subagent's.
        ([(AGENT, b"a1"), (REQUEST_CLASS, b"compaction")], True),
        ([(REQUEST_CLASS, b"workflow")], True),
        ([(REQUEST_CLASS, b"auxiliary")], False),
        # A class vdm does not know is kept, and is not a subagent's.
        ([(REQUEST_CLASS, b"brand-new-class")], False),
    ],
)
def test_the_role_follows_the_headers(headers: list[tuple[bytes, bytes]], subagent: bool) -> None:
    assert caller_of(headers, _body(subagent=False)).subagent is subagent


def test_without_hint_headers_the_attribution_block_tells_a_subagent() -> None:
    headers = [(SESSION, SESSION_ID)]
    assert caller_of(headers, _body(subagent=True)).role == "subagent"
    assert caller_of(headers, _body(subagent=False)).role == "main"
    # A user message that quotes an attribution block says nothing about the request.
    quoted = json.loads(_body(subagent=False))
    quoted["messages"][0]["content"] = [
        {"type": "text", "text": "x-anthropic-billing-header: cc_is_subagent=true;"}
    ]
    body = json.dumps(quoted, separators=(",", ":")).encode()
    assert caller_of(headers, body).role == "main"


def test_other_clients_have_no_caller_and_values_are_bounded() -> None:
    assert caller_of([(b"user-agent", b"python-httpx")], b"{}") is NO_CALLER
    long = caller_of([(SESSION, b"s" * 10_000)], b"")
    assert long.session is not None and len(long.session) == 128


def test_the_recorded_claude_code_traffic_carries_the_session_header() -> None:
    recorded = json.loads((PROTOCOL / "claude-code" / "04_tool_roundtrip_req1.json").read_text())
    headers = [(k.lower().encode(), str(v).encode()) for k, v in recorded["headers"].items()]
    caller = caller_of(headers, json.dumps(recorded["body"]).encode())
    assert caller.session == recorded["headers"]["X-Claude-Code-Session-Id"]
    assert caller.role == "main"


def test_the_header_names_are_the_ones_claude_code_sends() -> None:
    """Each name vdm reads is in the installed Claude Code binary, as is the switch `vdm wrap`
    sets and the request classes vdm treats as a subagent's."""
    if not CLAUDE.is_file():
        pytest.skip(f"the Claude Code CLI is not installed at {CLAUDE} (make install-claude)")
    # The launcher is the native binary itself (about 380 MB): searched without reading it all.
    with (
        CLAUDE.resolve().open("rb") as file,
        mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data,
    ):
        for name in (AGENT, PARENT_AGENT, REQUEST_CLASS, AGENT_TYPE):
            assert data.find(b'"' + name + b'"') >= 0, name
        assert data.find(b"X-Claude-Code-Session-Id") >= 0  # sent with this spelling
        assert data.find(b"CLAUDE_CODE_GATEWAY_HINT_HEADERS") >= 0
        # Its list of request classes, and the attribution block's subagent mark.
        assert data.find(b'"main","subagent","workflow","compaction"') >= 0
        assert data.find(b"cc_is_subagent=true;") >= 0
