"""What `vdm config show --resolve` knows of a request (pure): the facts stated on the
command line, or read from a request body, for the request-aware routing rules."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from vdm.routing.rules import Facts


class Flags(NamedTuple):
    """The request facts stated on the command line (`--thinking`, `--tokens N`, ...)."""

    background: bool
    subagent: bool
    thinking: bool
    images: bool
    web_search: bool
    tokens: int | None


def request_facts(model: str, request: Path | None, flags: Flags) -> Facts:
    """The facts `--resolve` explains the rules with: the `--request` file's, if given, then
    the flags on top (a flag only turns a fact on)."""
    import json

    from vdm.cli.common import fail
    from vdm.routing.rules import Facts, facts_from_body

    facts = Facts()
    if request is not None:
        try:
            body = json.loads(request.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            fail(f"--request {request}: cannot read a JSON body: {exc}")
        if not isinstance(body, dict):
            fail(f"--request {request}: expected a JSON object")
        dialect = dialect_of(body)
        facts = facts_from_body(dialect, body, model)
        facts.count = partial(count_tokens, body, dialect)
    facts.background |= flags.background
    facts.subagent |= flags.subagent
    facts.thinking |= flags.thinking
    facts.images |= flags.images
    facts.web_search |= flags.web_search
    if flags.tokens is not None:
        facts.tokens, facts.count = flags.tokens, None
    return facts


#: Fields only a Chat Completions body has, and only an Anthropic one.
_CHAT_ONLY = frozenset(
    {"reasoning_effort", "web_search_options", "max_completion_tokens", "response_format", "n"}
)
_ANTHROPIC_ONLY = frozenset({"thinking", "system", "stop_sequences", "output_config"})


def dialect_of(body: dict[str, Any]) -> str:
    """The dialect a request body is written in: Responses has `input`; Chat Completions
    has its own fields or OpenAI-only roles; else Anthropic when it has Anthropic's fields
    or `max_tokens` (which Anthropic requires)."""
    if "input" in body and "messages" not in body:
        return "responses"
    messages = body.get("messages")
    roles = (
        {m.get("role") for m in messages if isinstance(m, dict)}
        if isinstance(messages, list)
        else set()
    )
    if _ANTHROPIC_ONLY & body.keys():  # Claude Code's bodies, `role: system` messages and all
        return "anthropic"
    if _CHAT_ONLY & body.keys() or roles & {"system", "developer", "tool"}:
        return "openai"
    return "anthropic" if "max_tokens" in body else "openai"


def count_tokens(body: dict[str, Any], dialect: str) -> int:
    """The input tokens of an Anthropic body, as vdm counts them offline; by size (4 bytes a
    token) for another dialect's or one that does not validate."""
    import json

    from pydantic import ValidationError

    from vdm.protocol.anthropic import MessagesRequest
    from vdm.protocol.tokens import count_tokens

    try:
        if dialect == "anthropic":
            return count_tokens(MessagesRequest.model_validate({"max_tokens": 1, **body}))
    except ValidationError:
        pass
    return len(json.dumps(body)) // 4


def stated(facts: Facts) -> str:
    """The facts the rules were tried with, in words."""
    found = [
        name
        for name, on in (
            ("background", facts.background),
            ("subagent", facts.subagent),
            ("thinking", facts.thinking),
            ("images", facts.images),
            ("web search", facts.web_search),
        )
        if on
    ]
    if facts.tokens is not None:
        found.append(f"{facts.tokens:,} input tokens")
    return ", ".join(found) or "no facts stated (try --thinking, --tokens N, --request FILE)"
