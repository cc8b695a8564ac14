"""JSON Schema -> the schema subset Gemini compiles for function declarations (pure).

Gemini's OpenAI-compatible endpoint compiles `tools[].function.parameters` into its proto
`Schema`, so any keyword the proto lacks is a 400 (`Invalid JSON payload received. Unknown
name "additionalProperties" at 'tools[0].function_declarations[0].parameters': Cannot find
field.`). Claude Code's schemas carry `$schema`, `additionalProperties`, `exclusiveMinimum`,
`propertyNames`, `const`, unions with null... (shared/reference/providers.md §1a).

`gemini_schema` keeps only the keywords the proto has, converts what has an equivalent
(`const` -> `enum`, `exclusiveMinimum` -> `minimum`, `["string", "null"]` and `anyOf` with
null -> `nullable`, local `$ref` inlined, `allOf` merged) and drops the rest. Property *names*
are never mistaken for keywords. The input is never modified.
"""

from __future__ import annotations

from typing import Any

#: Keywords kept as they are (the proto `Schema` fields vdm relies on).
_KEEP = frozenset(
    {
        "description",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "minProperties",
        "maxProperties",
        "minimum",
        "maximum",
        "pattern",
        "propertyOrdering",
    }
)
#: String formats Gemini accepts; numeric formats it accepts per type.
_FORMATS = {
    "string": frozenset({"enum", "date-time"}),
    "number": frozenset({"float", "double"}),
    "integer": frozenset({"int32", "int64"}),
}
_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object"})
#: How deep `$ref`s may nest before a recursive definition is cut short.
_MAX_REF_DEPTH = 8


def gemini_schema(schema: Any, dropped: set[str] | None = None) -> dict[str, Any]:
    """`schema` cut down to what Gemini's function declarations accept. Keywords that were
    dropped are added to `dropped` (for a DEBUG line)."""
    if not isinstance(schema, dict):
        return {"type": "object", "properties": {}}
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        found = schema.get(key)
        if isinstance(found, dict):
            defs.update({f"#/{key}/{name}": value for name, value in found.items()})
    out = _Cleaner(defs, dropped if dropped is not None else set()).clean(schema, ())
    if "type" not in out and "anyOf" not in out:
        out["type"] = "object"
    return out


class _Cleaner:
    __slots__ = ("defs", "dropped")

    def __init__(self, defs: dict[str, Any], dropped: set[str]) -> None:
        self.defs = defs
        self.dropped = dropped

    def clean(self, node: Any, refs: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(node, dict):
            return {}  # `true` (anything goes) has no proto form: an unconstrained schema
        node = self._resolve(node, refs)
        if isinstance(node.get("allOf"), list):
            node = _merge_all_of(node)
        refs = (*refs, *([node["$ref"]] if isinstance(node.get("$ref"), str) else ()))
        out: dict[str, Any] = {}
        nullable = self._type(node, out)
        nullable = self._union(node, out, refs) or nullable
        for key, value in node.items():
            if key in _KEEP:
                out[key] = value
            elif key == "properties" and isinstance(value, dict):
                # Names are the user's, never keywords: only their schemas are cleaned.
                out["properties"] = {name: self.clean(sub, refs) for name, sub in value.items()}
            elif key in ("items", "prefixItems"):
                first = value[0] if isinstance(value, list) and value else value
                if isinstance(first, dict) and "items" not in out:
                    out["items"] = self.clean(first, refs)
            elif key not in _HANDLED:
                self.dropped.add(key)
        for key in ("exclusiveMinimum", "exclusiveMaximum"):
            if key in node:
                self._exclusive(key, node[key], node, out)
        nullable = self._enum(node, out) or nullable
        self._format(node, out)
        self._required(node, out)
        if node.get("nullable") is True or nullable:
            out["nullable"] = True
        return out

    def _resolve(self, node: dict[str, Any], refs: tuple[str, ...]) -> dict[str, Any]:
        """A local `$ref` replaced by its definition (sibling keys such as a description
        win); a remote, unknown or too deeply recursive one by an open object."""
        ref = node.get("$ref")
        if not isinstance(ref, str):
            return node
        target = self.defs.get(ref)
        if ref == "#":
            target = None  # the whole schema again: recursion with no end in sight
        if not isinstance(target, dict) or ref in refs or len(refs) >= _MAX_REF_DEPTH:
            self.dropped.add("$ref")
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return {"type": "object", **rest}
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        return {**target, **siblings, "$ref": ref}

    def _type(self, node: dict[str, Any], out: dict[str, Any]) -> bool:
        """Sets `type`; a list of types becomes one type (or `anyOf`) plus nullable."""
        kind = node.get("type")
        if isinstance(kind, str):
            if kind in _TYPES:
                out["type"] = kind
            return kind == "null"
        if isinstance(kind, list):
            kinds = [k for k in kind if isinstance(k, str) and k in _TYPES]
            if len(kinds) == 1:
                out["type"] = kinds[0]
            elif kinds:
                out["anyOf"] = [{"type": k} for k in kinds]
            return "null" in kind
        if "const" in node or "enum" in node:
            out["type"] = "string"
        return False

    def _union(self, node: dict[str, Any], out: dict[str, Any], refs: tuple[str, ...]) -> bool:
        """`anyOf` / `oneOf`: null members become `nullable`; a single remaining member is
        merged into the node."""
        members = node.get("anyOf", node.get("oneOf"))
        if not isinstance(members, list):
            return False
        nullable = False
        kept: list[dict[str, Any]] = []
        for member in members:
            if isinstance(member, dict) and member.get("type") == "null":
                nullable = True
            else:
                kept.append(self.clean(member, refs))
        if len(kept) == 1:
            for key, value in kept[0].items():
                out.setdefault(key, value)
        elif kept:
            out["anyOf"] = kept
            out.pop("type", None)
        return nullable

    def _exclusive(self, key: str, value: Any, node: dict[str, Any], out: dict[str, Any]) -> None:
        # Draft 4 used booleans beside minimum/maximum: the bound is kept, the flag dropped.
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.dropped.add(key)
            return
        step = 1 if node.get("type") == "integer" else 0
        if key == "exclusiveMinimum":
            out["minimum"] = max(value + step, out.get("minimum", value + step))
        else:
            out["maximum"] = min(value - step, out.get("maximum", value - step))

    def _enum(self, node: dict[str, Any], out: dict[str, Any]) -> bool:
        """`enum` / `const`: Gemini enums are strings only. A null choice becomes nullable;
        on a non-string type the choices move into the description instead."""
        values = node.get("enum")
        if "const" in node:
            values = [node["const"]]
        if not isinstance(values, list):
            return False
        nullable = None in values
        values = [v for v in values if v is not None]
        if out.get("type", "string") == "string":
            out["enum"] = [v if isinstance(v, str) else _text(v) for v in values]
        elif values:
            choices = ", ".join(_text(v) for v in values)
            hint = f"One of: {choices}."
            out["description"] = f"{out['description']} {hint}" if "description" in out else hint
        return nullable

    def _format(self, node: dict[str, Any], out: dict[str, Any]) -> None:
        fmt = node.get("format")
        if fmt is None:
            return
        if fmt in _FORMATS.get(out.get("type", ""), ()):
            out["format"] = fmt
        else:
            self.dropped.add("format")

    def _required(self, node: dict[str, Any], out: dict[str, Any]) -> None:
        required = node.get("required")
        if not isinstance(required, list):
            return
        names = out.get("properties") or {}
        kept = [name for name in required if isinstance(name, str) and name in names]
        if kept:
            out["required"] = kept


#: Keywords the cleaner reads itself (converted, or folded into another).
_HANDLED = frozenset(
    {
        *("type", "anyOf", "oneOf", "enum", "const", "format", "required", "nullable", "$ref"),
        *("exclusiveMinimum", "exclusiveMaximum"),
    }
)


def _merge_all_of(node: dict[str, Any]) -> dict[str, Any]:
    """`allOf` folded into its node: properties and required lists united, other keys of the
    node itself winning."""
    merged: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    required: list[Any] = []
    for part in [*node["allOf"], {k: v for k, v in node.items() if k != "allOf"}]:
        if not isinstance(part, dict):
            continue
        properties.update(part.get("properties") or {})
        required.extend(part.get("required") or ())
        merged.update({k: v for k, v in part.items() if k not in ("properties", "required")})
    if properties:
        merged["properties"] = properties
    if required:
        merged["required"] = list(dict.fromkeys(required))
    return merged


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
