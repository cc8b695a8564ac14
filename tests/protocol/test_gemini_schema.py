"""JSON Schema -> Gemini's function-declaration subset (`vdm.protocol.gemini_schema`).

Every output is checked against the strict Gemini fake's schema rule
(tests/fakes/chat_rules.py), which quotes the real `Unknown name … Cannot find field` error.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.chat_rules import check
from vdm.protocol.gemini_schema import gemini_schema

CLAUDE_CODE = Path(__file__).resolve().parents[2].parent / "shared" / "protocol" / "claude-code"


def accepted(schema: dict[str, Any]) -> bool:
    body = {
        "model": "gemini-2.5-flash",
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "t", "parameters": schema}}],
    }
    return check("gemini", body, "/v1beta/openai/chat/completions") is None


def clean(schema: dict[str, Any]) -> dict[str, Any]:
    out = gemini_schema(schema)
    assert accepted(out), json.dumps(out)
    return out


def recorded_tool_schemas() -> list[Any]:
    """The tool schemas Claude Code really sent (those the recorder kept whole)."""
    if not CLAUDE_CODE.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason="recordings not found"))]
    found = []
    for path in sorted(CLAUDE_CODE.glob("*.json")):
        body = json.loads(path.read_text()).get("body") or {}
        for tool in body.get("tools") or ():
            if isinstance(tool.get("input_schema"), dict):
                found.append(pytest.param(tool["input_schema"], id=f"{path.stem}-{tool['name']}"))
    return found


@pytest.mark.parametrize("schema", recorded_tool_schemas())
def test_recorded_claude_code_schemas_are_accepted(schema: dict[str, Any]) -> None:
    assert not accepted(schema), "the raw schema must be one Gemini refuses"
    before = copy.deepcopy(schema)
    out = clean(schema)
    assert schema == before, "the client's schema is never modified"
    assert set(out["properties"]) == set(schema["properties"])
    assert out["required"] == schema["required"]
    for name, sub in schema["properties"].items():
        assert out["properties"][name]["type"] == sub["type"]
        assert out["properties"][name]["description"] == sub["description"]


# Modelled on Claude Code's other tools (Read, Edit, TodoWrite, AskUserQuestion, Agent): what
# zod-to-json-schema emits for them.
CLAUDE_CODE_LIKE = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {
        "file_path": {"type": "string", "description": "Absolute path"},
        "offset": {"type": "integer", "exclusiveMinimum": 0, "description": "Line to start at"},
        "limit": {"type": "number", "exclusiveMaximum": 2000},
        "replace_all": {"type": "boolean", "default": False},
        "mode": {"const": "edit"},
        "todos": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "content": {"type": "string", "minLength": 1},
                    "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]},
                    "id": {"type": "string"},
                },
                "required": ["content", "status", "id"],
                "additionalProperties": False,
            },
        },
        "answers": {
            "type": "object",
            "propertyNames": {"type": "string"},
            "additionalProperties": {"type": "string"},
        },
        "model": {"anyOf": [{"type": "string", "enum": ["sonnet", "opus"]}, {"type": "null"}]},
        "url": {"type": "string", "format": "uri"},
        "when": {"type": "string", "format": "date-time"},
        "timeout": {"type": ["number", "null"]},
    },
    "required": ["file_path", "gone"],
    "additionalProperties": False,
}


def test_claude_code_like_schema() -> None:
    assert not accepted(CLAUDE_CODE_LIKE)
    out = clean(CLAUDE_CODE_LIKE)
    props = out["properties"]
    assert props["offset"] == {"type": "integer", "minimum": 1, "description": "Line to start at"}
    assert props["limit"] == {"type": "number", "maximum": 2000}
    assert props["replace_all"] == {"type": "boolean"}
    assert props["mode"] == {"type": "string", "enum": ["edit"]}
    todo = props["todos"]["items"]
    assert todo["required"] == ["content", "status", "id"]
    assert todo["properties"]["status"]["enum"] == ["pending", "in_progress", "completed"]
    assert props["todos"]["minItems"] == 1
    assert props["answers"] == {"type": "object"}
    assert props["model"] == {"type": "string", "enum": ["sonnet", "opus"], "nullable": True}
    assert props["url"] == {"type": "string"}
    assert props["when"] == {"type": "string", "format": "date-time"}
    assert props["timeout"] == {"type": "number", "nullable": True}
    assert out["required"] == ["file_path"]  # names that are not properties are pruned


def test_property_names_that_look_like_keywords_are_kept() -> None:
    schema = {
        "type": "object",
        "properties": {
            "additionalProperties": {"type": "string"},
            "$schema": {"type": "string"},
            "const": {"type": "integer"},
            "format": {"type": "string"},
        },
        "required": ["const", "format"],
    }
    out = clean(schema)
    assert list(out["properties"]) == ["additionalProperties", "$schema", "const", "format"]
    assert out["required"] == ["const", "format"]


def test_local_refs_are_inlined_and_recursion_is_cut() -> None:
    schema = {
        "type": "object",
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "child": {"$ref": "#/$defs/Node"}},
            },
            "Color": {"type": "string", "enum": ["red", "green"]},
        },
        "properties": {
            "root": {"$ref": "#/$defs/Node", "description": "the tree"},
            "color": {"$ref": "#/definitions/Missing"},
            "paint": {"$ref": "#/$defs/Color"},
        },
    }
    out = clean(schema)
    root = out["properties"]["root"]
    assert root["description"] == "the tree"
    assert root["properties"]["name"] == {"type": "string"}
    assert root["properties"]["child"] == {"type": "object"}  # the cycle is cut at once
    assert out["properties"]["color"] == {"type": "object"}
    assert out["properties"]["paint"] == {"type": "string", "enum": ["red", "green"]}
    assert "$defs" not in out


def test_unions_and_all_of() -> None:
    schema = {
        "type": "object",
        "properties": {
            "either": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
            "multi": {"type": ["string", "integer", "null"]},
            "merged": {
                "allOf": [
                    {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                    {"properties": {"b": {"type": "integer"}}, "required": ["b"]},
                ]
            },
        },
    }
    out = clean(schema)
    assert out["properties"]["either"] == {"anyOf": [{"type": "string"}, {"type": "integer"}]}
    assert out["properties"]["multi"] == {
        "anyOf": [{"type": "string"}, {"type": "integer"}],
        "nullable": True,
    }
    merged = out["properties"]["merged"]
    assert merged["type"] == "object"
    assert set(merged["properties"]) == {"a", "b"}
    assert merged["required"] == ["a", "b"]


def test_enums_of_other_types_become_a_description() -> None:
    schema = {
        "type": "object",
        "properties": {
            "level": {"type": "integer", "enum": [1, 2, 3], "description": "Depth."},
            "flag": {"enum": [True, "auto", None]},
        },
    }
    out = clean(schema)
    assert out["properties"]["level"] == {
        "type": "integer",
        "description": "Depth. One of: 1, 2, 3.",
    }
    assert out["properties"]["flag"] == {
        "type": "string",
        "enum": ["true", "auto"],
        "nullable": True,
    }


def test_dropped_keywords_are_reported() -> None:
    dropped: set[str] = set()
    gemini_schema(CLAUDE_CODE_LIKE, dropped)
    assert {"$schema", "additionalProperties", "propertyNames", "default", "format"} <= dropped
    assert "properties" not in dropped and "file_path" not in dropped


@pytest.mark.parametrize("schema", [None, {}, {"properties": {"x": True}}])
def test_degenerate_schemas_become_objects(schema: Any) -> None:
    out = clean(schema)
    assert out["type"] == "object"
