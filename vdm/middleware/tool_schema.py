"""`tool-schema`: tool input schemas cut down for a provider that refuses parts of them.

vdm already fits schemas where its capability table knows a provider's rules: Gemini's
OpenAI-compatible endpoint gets the proto subset (vdm/protocol/gemini_schema.py), the native
Gemini API its own fix-ups (vdm/protocol/gemini_native_schema.py). This middleware is the
configurable extra for endpoints the table cannot know (a company's gateway, a self-hosted
server with a strict validator):

    [mycorp.middleware]
    enabled = ["tool-schema"]
    [mycorp.middleware.tool-schema]
    strip = ["$schema", "additionalProperties"]   # keywords removed at every level
    strip-formats = ["uri", "email"]              # `format` values removed ("*": all)
    subset = "gemini"                             # the Gemini proto subset, as above

Only schema keywords are removed: the names under `properties` are the tool's own, and values
such as `default`, `enum` or `examples` are data, never walked. A request whose schemas nothing
applies to goes on unchanged. By default (no options) `$schema` is stripped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vdm.middleware.api import BaseMiddleware, Context
from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.gemini_schema import gemini_schema

_OPTIONS = frozenset({"strip", "strip-formats", "subset"})
_SUBSETS = ("gemini",)
#: Keywords whose value maps names to subschemas.
_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
#: Keywords whose value is a subschema or a list of them.
_SUBSCHEMAS = frozenset(
    {
        *("items", "prefixItems", "additionalItems", "additionalProperties", "contains"),
        *("anyOf", "oneOf", "allOf", "not", "if", "then", "else", "propertyNames"),
        *("unevaluatedProperties", "unevaluatedItems"),
    }
)


class ToolSchema(BaseMiddleware):
    """Strips configured keywords and formats from client tools' `input_schema`."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        unknown = sorted(set(self.options) - _OPTIONS)
        if unknown:
            raise ValueError(f"unknown option {', '.join(unknown)} (use {', '.join(_OPTIONS)})")
        self.strip = _names(self.options.get("strip", ["$schema"]), "strip")
        self.formats = _names(self.options.get("strip-formats", []), "strip-formats")
        subset = self.options.get("subset")
        if subset is not None and subset not in _SUBSETS:
            raise ValueError(f"subset must be one of {', '.join(_SUBSETS)}")
        self.subset: str | None = subset

    async def on_request(self, ctx: Context, request: MessagesRequest) -> MessagesRequest | None:
        tools = request.tools
        if not tools:
            return None
        changed = False
        kept = []
        for tool in tools:
            schema = tool.input_schema
            if isinstance(schema, dict):
                cleaned = self.clean(schema)
                if cleaned != schema:
                    tool = tool.model_copy(update={"input_schema": cleaned})
                    changed = True
            kept.append(tool)
        return request.model_copy(update={"tools": kept}) if changed else None

    def clean(self, schema: dict[str, Any]) -> dict[str, Any]:
        """`schema` with the configured keywords gone (a new object; `schema` is kept)."""
        cleaned = self._clean(schema)
        return gemini_schema(cleaned) if self.subset == "gemini" else cleaned

    def _clean(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self._clean(item) for item in node]
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in self.strip or (key == "format" and self._format(value)):
                continue
            if key in _MAPS and isinstance(value, dict):
                out[key] = {name: self._clean(sub) for name, sub in value.items()}
            elif key in _SUBSCHEMAS:
                out[key] = self._clean(value)
            else:
                out[key] = value
        return out

    def _format(self, value: Any) -> bool:
        return "*" in self.formats or (isinstance(value, str) and value in self.formats)


def _names(value: Any, option: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{option} must be a list of strings")
    return frozenset(value)
