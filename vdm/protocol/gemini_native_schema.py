"""JSON Schema -> what Gemini's native `parametersJsonSchema` takes (pure).

The native API takes full JSON Schema for a function's parameters (`FunctionDeclaration.
parametersJsonSchema`: unions, `additionalProperties`, `const`, `exclusiveMinimum` all pass),
unlike the proto `Schema` subset its OpenAI-compatible endpoint compiles (that one is
vdm/protocol/gemini_schema.py). Three things still fail there (shared/reference/providers.md
§1b, google-gemini/gemini-cli#13326, router-for-me/CLIProxyAPI#3864):

- a `$ref` Gemini does not resolve: `400 reference to undefined schema at
  properties.target_object.anyOf.1`. Local references (`#/$defs/X`, `#/definitions/X`, any
  pointer into the same document) are inlined and the definitions dropped; a recursive
  reference is cut to `{}` (any value) at its second visit;
- `required` naming a property that `properties` does not define (`property is not defined`):
  such names are pruned;
- the root `$schema` (Claude Code sends `https://json-schema.org/draft/2020-12/schema`): it is
  meaningless to Gemini and dropped.

Property *names* are never mistaken for keywords, and the client's schema is never modified.
"""

from __future__ import annotations

from typing import Any

#: Keywords whose value is a map of name -> subschema.
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "dependentSchemas"})
#: Keywords whose value is a list of subschemas.
_SCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
#: Keywords whose value is one subschema (or, for `items` in old drafts, a list of them).
_SCHEMA_ONE = frozenset(
    {
        *("items", "additionalProperties", "not", "if", "then", "else", "contains"),
        *("propertyNames", "unevaluatedProperties", "unevaluatedItems", "additionalItems"),
    }
)
#: Dropped from every schema object (never from `properties`, where they would be names).
_DROPPED = frozenset({"$schema", "$defs", "definitions"})
#: How deep references may nest before the rest is cut (a guard against huge expansions).
_MAX_DEPTH = 32


def native_parameters(
    schema: dict[str, Any] | None, notes: set[str] | None = None
) -> dict[str, Any]:
    """The `parametersJsonSchema` for a tool's `input_schema`. `notes` collects what was
    changed (for a DEBUG log line)."""
    if not schema:
        return {"type": "object", "properties": {}}
    found = notes if notes is not None else set()
    cleaned = _Cleaner(schema, found).clean(schema, (), 0)
    if not isinstance(cleaned, dict):  # `true` / `false` at the root
        return {"type": "object", "properties": {}}
    if "type" not in cleaned and not any(k in cleaned for k in ("anyOf", "oneOf", "allOf")):
        cleaned["type"] = "object"
    return cleaned


class _Cleaner:
    __slots__ = ("root", "notes")

    def __init__(self, root: dict[str, Any], notes: set[str]) -> None:
        self.root = root
        self.notes = notes

    def clean(self, node: Any, refs: tuple[str, ...], depth: int) -> Any:
        """A copy of the schema `node` with local references inlined. `refs` are the
        references being expanded above it (to cut recursion)."""
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str):
            return self._inline(node, ref, refs, depth)
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _DROPPED:
                # Definitions are only there to be referenced, and are inlined where they are.
                self.notes.add(key)
            elif key in _SCHEMA_MAPS and isinstance(value, dict):
                out[key] = {name: self.clean(sub, refs, depth) for name, sub in value.items()}
            elif key in _SCHEMA_LISTS and isinstance(value, list):
                out[key] = [self.clean(sub, refs, depth) for sub in value]
            elif key in _SCHEMA_ONE:
                if isinstance(value, list):
                    out[key] = [self.clean(sub, refs, depth) for sub in value]
                else:
                    out[key] = self.clean(value, refs, depth)
            else:
                out[key] = value
        if isinstance(out.get("required"), list):
            self._prune_required(out)
        return out

    def _prune_required(self, node: dict[str, Any]) -> None:
        properties = node.get("properties")
        names = properties if isinstance(properties, dict) else {}
        kept = [name for name in node["required"] if isinstance(name, str) and name in names]
        if len(kept) != len(node["required"]):
            self.notes.add("required")
            if kept:
                node["required"] = kept
            else:
                del node["required"]

    def _inline(self, node: dict[str, Any], ref: str, refs: tuple[str, ...], depth: int) -> Any:
        self.notes.add("$ref")
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        target = self._resolve(ref)
        if target is None or ref in refs or depth >= _MAX_DEPTH:
            # Unresolvable (remote, or a broken pointer) or recursive: any value, with the
            # sibling keywords (a description) kept.
            return self.clean(siblings, refs, depth) if siblings else {}
        inlined = self.clean(target, (*refs, ref), depth + 1)
        if not isinstance(inlined, dict):
            return inlined
        if siblings:
            # 2020-12 applies `$ref` beside other keywords as both: the siblings refine it.
            merged = dict(inlined)
            merged.update(self.clean(siblings, refs, depth))
            return merged
        return inlined

    def _resolve(self, ref: str) -> Any:
        """The subschema a local JSON pointer (`#/...`) names in the root, else None."""
        if ref == "#":
            return self.root
        if not ref.startswith("#/"):
            return None
        node: Any = self.root
        for raw in ref[2:].split("/"):
            key = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                return None
        return node
