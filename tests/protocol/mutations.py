"""Malformed variants of valid request bodies, for the request converters' fuzz tests.

Each variant replaces one node of a valid body (a leaf, a list, an object, the body's own
fields) with a value of the wrong kind. A converter must answer every one either with a
request or with its 400 (`VdmError`), never another exception: a client's typo must not be
a 500. The bodies are Codex CLI's recorded requests (/work/shared/protocol/codex) and
hand-written ones covering the shapes Codex does not send."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CODEX = Path("/work/shared/protocol/codex")
#: What each node is replaced with in turn: every JSON kind, and the shapes a careless client
#: sends (an object without `type`, an unhashable `type`, a list of junk).
REPLACEMENTS: tuple[Any, ...] = (
    None,
    1,
    "x",
    "",
    True,
    1.5,
    [],
    {},
    [None],
    ["x"],
    {"type": []},
    {"type": "function"},
)
_SCHEMA = {"type": "object", "properties": {"path": {"type": "string"}}}


def codex_bodies() -> list[dict[str, Any]]:
    """The recorded Codex Responses bodies, tool schemas restored as the README says."""
    bodies = []
    for path in sorted(CODEX.glob("*.json")):
        body = json.loads(path.read_text()).get("body")
        if isinstance(body, dict) and "input" in body:
            body.pop("_tool_names", None)
            _restore_schemas(body.get("tools", []))
            bodies.append(body)
    return bodies


def _restore_schemas(tools: list[Any]) -> None:
    """Omitted schemas back (a small object schema); a namespace's members, recorded as bare
    names, back as functions."""
    for tool in tools:
        if tool.pop("_omitted", None) is not None and tool.get("type") == "function":
            tool["parameters"] = copy.deepcopy(_SCHEMA)
        if tool.get("type") == "namespace":
            members = [{"type": "function", "name": n} for n in tool.get("tools", [])]
            for member in members:
                member["parameters"] = copy.deepcopy(_SCHEMA)
            tool["tools"] = members


def paths(node: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every node's path below the root, outermost first."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield at + (key,)
            yield from paths(value, at + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield at + (i,)
            yield from paths(value, at + (i,))


def mutations(body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(description, body with one node replaced) for every node and replacement."""
    for at in list(paths(body)):
        for value in REPLACEMENTS:
            mutated = copy.deepcopy(body)
            node = mutated
            for key in at[:-1]:
                node = node[key]
            node[at[-1]] = value
            yield f"{'.'.join(map(str, at))} = {value!r}", mutated
