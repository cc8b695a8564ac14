"""`tool-schema`: configured keywords and formats stripped from tool schemas, property names
and data left alone, the Gemini subset on request, nothing changed when nothing applies."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from vdm.middleware import Context
from vdm.middleware.tool_schema import ToolSchema
from vdm.protocol.anthropic import MessagesRequest

pytestmark = pytest.mark.anyio

CTX = Context("mycorp", "m", None, "m", "anthropic", "openai", "r", False, False)

#: A Claude-Code-shaped schema, with a property *named* like the keywords stripped.
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "url": {"type": "string", "format": "uri"},
        "when": {"type": "string", "format": "date-time"},
        "format": {"type": "string", "description": "a property named format"},
        "additionalProperties": {"type": "boolean"},
        "nested": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"mail": {"type": "string", "format": "email"}},
                "additionalProperties": False,
            },
        },
        "choice": {"anyOf": [{"type": "string", "format": "uri"}, {"type": "null"}]},
        "config": {"type": "object", "default": {"format": "uri", "$schema": "kept: data"}},
    },
    "required": ["url"],
    "additionalProperties": False,
}


def _request(schema: dict[str, Any]) -> MessagesRequest:
    return MessagesRequest.model_validate(
        {
            "model": "m",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [
                {"name": "fetch", "input_schema": schema},
                {"type": "web_search_20250305", "name": "web_search"},
            ],
        }
    )


async def test_strips_keywords_and_formats_at_every_level_but_never_names_or_data() -> None:
    original = copy.deepcopy(SCHEMA)
    middleware = ToolSchema(
        {"strip": ["$schema", "additionalProperties"], "strip-formats": ["uri"]}
    )
    out = await middleware.on_request(CTX, _request(SCHEMA))
    assert out is not None
    schema = out.tools[0].input_schema  # type: ignore[index]
    assert schema is not None
    assert "$schema" not in schema and "additionalProperties" not in schema
    props = schema["properties"]
    assert props["url"] == {"type": "string"}
    assert props["when"] == {"type": "string", "format": "date-time"}  # not listed: kept
    assert "format" in props and "additionalProperties" in props  # property names
    assert props["nested"]["items"] == {
        "type": "object",
        "properties": {"mail": {"type": "string", "format": "email"}},
    }
    assert props["choice"]["anyOf"][0] == {"type": "string"}
    assert props["config"]["default"] == {"format": "uri", "$schema": "kept: data"}
    # The server tool is untouched, and the client's schema is never changed in place.
    assert out.tools[1].type == "web_search_20250305"  # type: ignore[index]
    assert SCHEMA == original


async def test_star_strips_every_format() -> None:
    out = await ToolSchema({"strip-formats": ["*"]}).on_request(CTX, _request(SCHEMA))
    assert out is not None
    props = out.tools[0].input_schema["properties"]  # type: ignore[index]
    assert props["url"] == props["when"] == {"type": "string"}
    assert props["nested"]["items"]["properties"]["mail"] == {"type": "string"}
    assert props["format"] == SCHEMA["properties"]["format"]  # a name, not the keyword
    assert props["config"] == SCHEMA["properties"]["config"]


async def test_default_strips_only_dollar_schema() -> None:
    out = await ToolSchema().on_request(CTX, _request(SCHEMA))
    assert out is not None
    schema = out.tools[0].input_schema  # type: ignore[index]
    assert schema == {k: v for k, v in SCHEMA.items() if k != "$schema"}


async def test_gemini_subset_exposes_vdms_own_cleaner() -> None:
    out = await ToolSchema({"subset": "gemini"}).on_request(CTX, _request(SCHEMA))
    assert out is not None
    schema = out.tools[0].input_schema  # type: ignore[index]
    assert schema is not None
    assert "additionalProperties" not in schema
    assert schema["properties"]["choice"] == {"type": "string", "nullable": True}


async def test_nothing_to_strip_returns_none() -> None:
    plain = {"type": "object", "properties": {"q": {"type": "string"}}}
    assert await ToolSchema().on_request(CTX, _request(plain)) is None


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"strip": "format"}, "strip must be a list of strings"),
        ({"strip-formats": [1]}, "strip-formats must be a list of strings"),
        ({"subset": "openai"}, "subset must be one of gemini"),
        ({"drop": []}, "unknown option drop"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ToolSchema(options)
