"""Who sent a request: Claude Code's session, agent and request class.

Claude Code (2.1.330) sends with every model call `X-Claude-Code-Session-Id`; a subagent's
calls also carry `x-claude-code-agent-id` (and `x-claude-code-parent-agent-id` when a subagent
spawned it); the main agent's carry no agent id. With `CLAUDE_CODE_GATEWAY_HINT_HEADERS=1` (which
`vdm wrap` sets for its child) it adds `x-claude-code-request-class` (`main`, `subagent`,
`workflow`, `compaction`, `auxiliary`, `side_reply`) and `x-claude-code-agent-type` (`Explore`,
`general-purpose`, `custom`, ...). Without any of these, the attribution block that opens the
system prompt says `cc_is_subagent=true;` on a subagent's calls (gateway contract C7).

Nothing here rejects anything: an unknown class is kept as it came, a missing header is None.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

SESSION = b"x-claude-code-session-id"
AGENT = b"x-claude-code-agent-id"
PARENT_AGENT = b"x-claude-code-parent-agent-id"
REQUEST_CLASS = b"x-claude-code-request-class"
AGENT_TYPE = b"x-claude-code-agent-type"
_WANTED = frozenset({SESSION, AGENT, PARENT_AGENT, REQUEST_CLASS, AGENT_TYPE})
#: Request classes that are a subagent's work (a workflow run is a subagent run).
SUBAGENT_CLASSES = frozenset({"subagent", "workflow"})
#: Header values longer than this are cut: they are ids, and the recorder keeps some.
_MAX_VALUE = 128
#: The attribution block as Claude Code serializes it (compact JSON), and the marker it
#: carries on a subagent's calls.
_ATTRIBUTION = b'"text":"x-anthropic-billing-header:'
_SUBAGENT_MARK = b"cc_is_subagent=true"


@dataclass(frozen=True, slots=True)
class Caller:
    """Claude Code's description of who made a request (all None for other clients)."""

    session: str | None = None
    agent: str | None = None
    parent_agent: str | None = None
    request_class: str | None = None
    agent_type: str | None = None
    #: The attribution block said `cc_is_subagent=true`.
    marked_subagent: bool = False

    @property
    def subagent(self) -> bool:
        """Whether a subagent made the request: its class says so, or it carries an agent id
        (the main agent's calls carry none), or its attribution block does."""
        if self.request_class is not None and self.request_class in SUBAGENT_CLASSES:
            return True
        return self.agent is not None or self.marked_subagent

    @property
    def role(self) -> str:
        return "subagent" if self.subagent else "main"


NO_CALLER = Caller()


def caller_of(headers: Iterable[tuple[bytes, bytes]], body: bytes) -> Caller:
    """The caller of a request, from its (lower-case, ASGI) headers and raw body."""
    found: dict[bytes, str] = {}
    for name, value in headers:
        if name in _WANTED and name not in found:
            text = value.decode("latin-1").strip()[:_MAX_VALUE]
            if text:
                found[name] = text
    if not found:
        return NO_CALLER
    request_class = found.get(REQUEST_CLASS)
    marked = False
    if AGENT not in found and request_class is None:
        # No hint headers: only then is the body read, and only the attribution block.
        marked = _marked_subagent(body)
    return Caller(
        session=found.get(SESSION),
        agent=found.get(AGENT),
        parent_agent=found.get(PARENT_AGENT),
        request_class=request_class.lower() if request_class else None,
        agent_type=found.get(AGENT_TYPE),
        marked_subagent=marked,
    )


def _marked_subagent(body: bytes) -> bool:
    """Whether the attribution block says `cc_is_subagent=true`. Claude Code writes `system`
    after `messages` and before `tools`, so the last attribution block in the body is the
    system prompt's, not one quoted in a message."""
    start = body.rfind(_ATTRIBUTION)
    if start < 0:
        return False
    end = body.find(b'"', start + len(_ATTRIBUTION))
    block = body[start : end if end > 0 else start + 512]
    return _SUBAGENT_MARK in block
