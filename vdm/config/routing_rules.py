"""`[[routing.rules]]`: request-aware routing rules, read and checked at load.

A rule chooses a target by what the request is, before the requested name goes through
aliases (docs/routing.md, "Request-aware routing"):

    [[routing.rules]]
    when = "background"              # one of WHENS
    use = "groq:llama-3.1-8b-instant" # an alias or provider:model, resolved as usual
    model = ["*haiku*"]              # optional: only for these requested names
    above = 100000                   # long-context only: input tokens

Rules are checked here, once, so that a mistake (an unknown `when`, a `use` naming a provider
that is not configured) stops `vdm server start` and is listed by `vdm config validate`
instead of surfacing as a 400 on some request hours later. Matching a request is
vdm/routing/rules.py's.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from vdm.config.names import looks_like_provider, normalize, provider_key

#: What a rule may test, in the order docs/routing.md explains them.
WHENS: tuple[str, ...] = (
    "background",
    "subagent",
    "thinking",
    "long-context",
    "images",
    "web-search",
)
#: The keys a rule table may hold.
_KEYS = frozenset({"when", "use", "model", "above"})


class RuleError(ValueError):
    """A rule that cannot be used; the message names the rule and the fix."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One `[[routing.rules]]` entry, checked."""

    #: One of WHENS.
    when: str
    #: The target: an alias or `provider:model`, resolved like a requested name.
    use: str
    #: Where it was set (a file) and its place there (1-based), for messages.
    source: str
    number: int
    #: Requested-name patterns (normalized, `*`/`?` globs; without a wildcard, contained in
    #: the name as an alias is): the rule applies only to these names. Empty: every name.
    models: tuple[str, ...] = ()
    #: `long-context`: the input tokens above which it applies.
    above: int | None = None

    @property
    def label(self) -> str:
        """How the log line, the trace and `vdm wrap`'s summary name the rule."""
        return self.when if not self.models else f"{self.when}[{','.join(self.models)}]"

    def applies_to(self, requested: str) -> bool:
        """Whether the requested name is one this rule is restricted to (every name when it
        names none)."""
        if not self.models:
            return True
        name = normalize(requested)
        for pattern in self.models:
            if any(c in pattern for c in "*?["):
                if fnmatch.fnmatchcase(name, pattern):
                    return True
            elif pattern in name:
                return True
        return False


def parse_rules(tables: list[Any], source: str, providers: Collection[str]) -> tuple[Rule, ...]:
    """The rules of one `routing.rules` array; RuleError for the first one that is wrong."""
    rules: list[Rule] = []
    for number, table in enumerate(tables, 1):
        where = f"{source}: [[routing.rules]] #{number}"
        if not isinstance(table, Mapping):
            raise RuleError(f"{where}: expected a table (when = ..., use = ...)")
        rules.append(_rule(table, where, source, number, providers))
    return tuple(rules)


def _rule(
    table: Mapping[str, Any], where: str, source: str, number: int, providers: Collection[str]
) -> Rule:
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise RuleError(f"{where}: unknown key {unknown[0]!r}; a rule takes {_known()}")
    when = table.get("when")
    if not isinstance(when, str) or when.strip().lower() not in WHENS:
        raise RuleError(f"{where}: when = {when!r} is not one of {', '.join(WHENS)}")
    when = when.strip().lower()
    use = table.get("use")
    if not isinstance(use, str) or not use.strip():
        raise RuleError(
            f"{where}: `use` must name the target, an alias or provider:model "
            '(use = "openai:gpt-4o")'
        )
    use = use.strip()
    prefix, sep, rest = use.partition(":")
    if sep and looks_like_provider(prefix) and provider_key(prefix) not in providers:
        raise RuleError(
            f"{where}: use = {use!r} names provider {prefix!r}, which is not configured "
            f"(configured: {', '.join(providers) or 'none'})"
        )
    if sep and not rest.strip():
        raise RuleError(f"{where}: use = {use!r} names a provider but no model")
    return Rule(when, use, source, number, _models(table.get("model"), where), _above(table, where))


def _models(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) and v.strip() for v in items):
        raise RuleError(f'{where}: model must be a name pattern or a list of them ("*opus*")')
    return tuple(normalize(v) for v in items)


def _above(table: Mapping[str, Any], where: str) -> int | None:
    above = table.get("above")
    if table.get("when", "").strip().lower() != "long-context":
        if above is not None:
            raise RuleError(f'{where}: `above` applies only to when = "long-context"')
        return None
    if above is None:
        raise RuleError(f'{where}: when = "long-context" needs `above` (input tokens, 100000)')
    if isinstance(above, bool) or not isinstance(above, int) or above < 1:
        raise RuleError(f"{where}: above = {above!r} must be a positive number of tokens")
    return above


def _known() -> str:
    return ", ".join(sorted(_KEYS))
