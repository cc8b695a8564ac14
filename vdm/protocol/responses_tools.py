"""What a Responses client's tools become upstream, kept for the way back (dialects.md B2).

Codex sends `namespace` tools (a group of functions under one name) and `custom` (freeform)
tools; no other dialect has either. The request decoder flattens a namespace member to one
Anthropic tool named `{namespace}__{name}` (shortened with a hash when too long) and turns a
custom tool into a tool with one string property `input`. The answer's encoder must undo both:
Codex routes a call by `(namespace, name)`, and runs a custom tool only from a
`custom_tool_call` item whose `input` is the raw string. Tools are resent every turn, so this
table is built per request and needs no state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ToolRoutes:
    """The client's names of one request's tools, by the Anthropic tool name sent upstream."""

    #: Flattened Anthropic tool name -> (namespace, the member's own name).
    namespaced: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    #: Anthropic tool names that stand for `custom` (freeform) tools.
    custom: frozenset[str] = frozenset()

    def client_call(self, name: str) -> tuple[str | None, str]:
        """(namespace or None, name) of a call to the Anthropic tool `name`."""
        found = self.namespaced.get(name)
        if found is None:
            return None, name
        return found
