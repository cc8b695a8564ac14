"""Which `[[routing.rules]]` entry a request matches, from what the request is.

A rule (vdm/config/routing_rules.py) tests one fact of the request; the first rule whose fact
holds (and whose `model` patterns take the requested name) wins, and its `use` is resolved in
place of the requested name (vdm/routing/resolve.py). The facts come cheaply from the body
already parsed as JSON, in the client's dialect, without validating it
(`facts_from_body`); the headers' part (background, subagent) is the server's to add, from
Claude Code's hint headers (vdm/usage/caller.py). Tokens are counted only when a
long-context rule is reached, through the `count` callable the server gives.

Facts, per dialect (docs/routing.md):

- thinking: Anthropic `thinking.type` `enabled` / `adaptive`; Chat `reasoning_effort`, and
  Responses `reasoning.effort`, other than `none` / `minimal`.
- images: an `image` block (in a message or a tool result); Chat `image_url`, Responses
  `input_image` parts.
- web search: an Anthropic `web_search_*` server tool; Chat `web_search_options`; Responses
  tools of type `web_search*`.
- background: Claude Code's request class `auxiliary` (with hint headers); without hints, a
  requested name containing `haiku` on a request that declares no tools (Claude Code's
  small-model calls: titles, summaries, topic checks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from vdm.config.routing_rules import Rule

#: Efforts that do not ask for reasoning (OpenAI `reasoning_effort`).
_NO_EFFORT = frozenset({"none", "minimal"})
#: Claude Code's request classes that are background work (`x-claude-code-request-class`).
BACKGROUND_CLASSES = frozenset({"auxiliary"})


@dataclass(slots=True)
class Facts:
    """What a request is, as the rules test it. `tokens` is counted on first need through
    `count` (None: nothing to count with)."""

    background: bool = False
    subagent: bool = False
    thinking: bool = False
    images: bool = False
    web_search: bool = False
    tokens: int | None = None
    count: Callable[[], int] | None = field(default=None, repr=False)

    def input_tokens(self) -> int | None:
        if self.tokens is None and self.count is not None:
            self.tokens = self.count()
            self.count = None
        return self.tokens


@dataclass(frozen=True, slots=True)
class Hit:
    """The rule that matched and why, in words for `vdm config show --resolve`."""

    rule: Rule
    why: str


def first_match(
    rules: Iterable[Rule], requested: str, facts: Facts, vision: Callable[[], bool | None]
) -> Hit | None:
    """The first rule that matches; `vision` says whether the model the requested name
    resolves to takes images (None: it cannot be resolved), asked only for an images rule
    on a request with images."""
    for rule in rules:
        if not rule.applies_to(requested):
            continue
        why = _why(rule, facts, vision)
        if why is not None:
            return Hit(rule, why)
    return None


def _why(rule: Rule, facts: Facts, vision: Callable[[], bool | None]) -> str | None:
    when = rule.when
    if when == "background":
        return "a background request (Claude Code's small-model call)" if facts.background else None
    if when == "subagent":
        return "a subagent's request" if facts.subagent else None
    if when == "thinking":
        return "thinking is on" if facts.thinking else None
    if when == "web-search":
        return "the request carries the web_search tool" if facts.web_search else None
    if when == "images":
        if not facts.images or vision() is not False:
            return None
        return "the request has images and the model it names takes none"
    if when == "long-context":
        assert rule.above is not None
        tokens = facts.input_tokens()
        if tokens is None or tokens <= rule.above:
            return None
        return f"{tokens:,} input tokens, above {rule.above:,}"
    return None


def facts_from_body(dialect: str, body: dict[str, Any], requested: str = "") -> Facts:
    """The body's facts (not the headers'), in the client's `dialect` (`anthropic`,
    `openai` for Chat Completions, `responses`); a field of an unexpected shape counts as
    absent, never as an error."""
    if dialect == "openai":
        facts = Facts(
            thinking=_effort(body.get("reasoning_effort")),
            images=_has_part(body.get("messages"), "image_url"),
            web_search=body.get("web_search_options") is not None,
        )
    elif dialect == "responses":
        reasoning = body.get("reasoning")
        tools = body.get("tools")
        facts = Facts(
            thinking=isinstance(reasoning, dict) and _effort(reasoning.get("effort")),
            images=_has_part(body.get("input"), "input_image"),
            web_search=_tool_types(tools, "web_search"),
        )
    else:
        thinking = body.get("thinking")
        facts = Facts(
            thinking=isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"),
            images=_has_part(body.get("messages"), "image"),
            web_search=_tool_types(body.get("tools"), "web_search"),
        )
    # Claude Code's small-model calls, when no hint header says (the server may set it).
    facts.background = "haiku" in requested.lower() and not body.get("tools")
    return facts


def _effort(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() not in _NO_EFFORT


def _tool_types(tools: Any, prefix: str) -> bool:
    """Whether a tool's `type` starts with `prefix` (`web_search_20250305`, `web_search`,
    `web_search_preview`)."""
    if not isinstance(tools, list):
        return False
    return any(
        isinstance(t, dict) and isinstance(t.get("type"), str) and t["type"].startswith(prefix)
        for t in tools
    )


def _has_part(items: Any, kind: str) -> bool:
    """Whether a content part of type `kind` is anywhere in `items` (messages or Responses
    input items, their `content`, and tool results' `content`), without recursing further."""
    if not isinstance(items, list):
        return False
    for item in items:
        if not isinstance(item, dict):
            continue
        if item.get("type") == kind:
            return True
        content = item.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") == kind:
                return True
            inner = part.get("content")  # a tool_result's blocks
            if isinstance(inner, list) and any(
                isinstance(p, dict) and p.get("type") == kind for p in inner
            ):
                return True
    return False
