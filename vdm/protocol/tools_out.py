"""The client's tools as each translated dialect declares them: names fitted to the
provider's rules, the definitions, and `tool_choice` (Chat, Responses, native Gemini).

A name a provider would refuse gets a stable alias recorded in `target.tool_names`, so the
decoder maps the model's calls back to the client's name; `tool_name` serves both OpenAI
dialects (and must: a session may move between them), `function_name` native Gemini. The
tools sent are those `translation.client_tools` keeps.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from typing import Any

from vdm.protocol.anthropic import MessagesRequest, ToolChoice
from vdm.protocol.capabilities import ModelCaps
from vdm.protocol.codec import Target
from vdm.protocol.errors import VdmError
from vdm.protocol.gemini_native_schema import native_parameters
from vdm.protocol.gemini_schema import gemini_schema
from vdm.protocol.translation import ClientTool
from vdm.protocol.translation import client_tools as _client_tools
from vdm.protocol.web_search import search_stub

log = logging.getLogger(__name__)

#: OpenAI function names: `^[a-zA-Z0-9_-]{1,64}$` (Anthropic allows 128); Gemini's compat
#: endpoint and Groq refuse longer ones too.
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_NOT_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_-]")
#: Gemini function names: a letter or `_` first, then letters, digits, `_.:-`, at most 64.
_FUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}")
_NOT_FUNCTION_CHARS = re.compile(r"[^A-Za-z0-9_.:-]")
#: Anthropic `tool_choice.type` -> OpenAI's (both dialects); `tool` names the function.
_OPENAI_CHOICES = {"auto": "auto", "any": "required", "none": "none"}
#: Anthropic `tool_choice.type` -> Gemini's `functionCallingConfig.mode`.
_GEMINI_MODES = {"auto": "AUTO", "any": "ANY", "none": "NONE", "tool": "ANY"}


def tool_name(name: str, target: Target) -> str:
    """The name OpenAI-style APIs accept for a client tool: itself, or a stable alias
    recorded in `target.tool_names` so the decoder maps calls back (Claude Code's MCP tools,
    `mcp__plugin_…`, run past 64 characters). Shared by the Chat and Responses encoders."""
    if _TOOL_NAME.match(name):
        return name
    return _alias(name, _NOT_NAME_CHARS.sub("_", name)[:55], target)


def function_name(name: str, target: Target) -> str:
    """`name` as Gemini takes it (a letter or `_` first, then letters, digits, `_.:-`, at most
    64): Anthropic allows a leading digit or dash. Other names become `t_<name>_<hash>`,
    recorded so the answers' calls map back to the client's name."""
    if _FUNCTION_NAME.fullmatch(name):
        return name
    return _alias(name, "t_" + _NOT_FUNCTION_CHARS.sub("_", name)[:53], target)


def _alias(name: str, stem: str, target: Target) -> str:
    digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:8]
    alias = f"{stem}_{digest}"
    target.tool_names[alias] = name
    return alias


def _forced(choice: ToolChoice, rename: Callable[[str], str]) -> str:
    """The provider's name of the tool `tool_choice: {"type": "tool"}` forces."""
    if not choice.name:
        raise VdmError(400, "tool_choice.name: required when tool_choice.type is tool")
    return rename(choice.name)


def client_tools(req: MessagesRequest, target: Target, searches: bool) -> list[ClientTool]:
    """The client's tools, plus a `web_search` function standing in for its web search
    server tool where the provider cannot search (`searches` False): the model may call it,
    and the decoder answers the call with an error result."""
    tools = _client_tools(req)
    stub = None if searches else search_stub(req, target)
    return tools if stub is None else [*tools, stub]


# --- per dialect ------------------------------------------------------------------------------


def chat_tools(req: MessagesRequest, target: Target) -> dict[str, Any]:
    """The Chat Completions fields for the client's tools: `tools`, `tool_choice` and
    `parallel_tool_calls` (only when the client turned parallel calls off); none without
    tools."""
    tools = client_tools(req, target, target.caps.web_search == "openrouter")
    if not tools:
        return {}
    fields: dict[str, Any] = {
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": tool_name(t.name, target),
                    "description": t.description,
                    "parameters": chat_parameters(t.input_schema, target.caps),
                },
            }
            for t in tools
        ]
    }
    choice = req.tool_choice
    if choice is not None:
        if choice.type == "tool":
            name = _forced(choice, lambda n: tool_name(n, target))
            fields["tool_choice"] = {"type": "function", "function": {"name": name}}
        else:
            fields["tool_choice"] = _OPENAI_CHOICES[choice.type]
        if choice.disable_parallel_tool_use:
            fields["parallel_tool_calls"] = False
    return fields


def chat_parameters(schema: dict[str, Any] | None, caps: ModelCaps) -> dict[str, Any]:
    """A JSON schema as a Chat provider takes it: the client's, or the subset Gemini's compat
    endpoint compiles; no schema is an object without properties."""
    if not schema:
        return {"type": "object", "properties": {}}
    if not caps.gemini_schema:
        return schema
    dropped: set[str] = set()
    cleaned = gemini_schema(schema, dropped)
    if dropped:
        log.debug("tool schema keywords Gemini does not take, dropped: %s", sorted(dropped))
    return cleaned


def responses_tools(req: MessagesRequest, target: Target) -> dict[str, Any]:
    """The Responses API fields for the client's tools: flat function `tools`, `tool_choice`,
    and `parallel_tool_calls` (always said); none without tools."""
    tools = []
    for tool in client_tools(req, target, target.caps.web_search == "responses"):
        schema = dict(tool.input_schema or {"type": "object", "properties": {}})
        schema.pop("$schema", None)
        tools.append(
            {
                "type": "function",
                "name": tool_name(tool.name, target),
                "description": tool.description,
                "parameters": schema,
                # Explicit: without it the Responses API tries strict mode on the schema.
                "strict": False,
            }
        )
    if not tools:
        return {}
    fields: dict[str, Any] = {"tools": tools}
    choice = req.tool_choice
    if choice is not None:
        if choice.type == "tool":
            name = _forced(choice, lambda n: tool_name(n, target))
            fields["tool_choice"] = {"type": "function", "name": name}
        else:
            fields["tool_choice"] = _OPENAI_CHOICES[choice.type]
    disabled = choice is not None and bool(choice.disable_parallel_tool_use)
    fields["parallel_tool_calls"] = not disabled
    return fields


def gemini_tools(req: MessagesRequest, target: Target) -> dict[str, Any]:
    """The `generateContent` fields for the client's tools: one `functionDeclarations` tool
    (schemas as `parametersJsonSchema`) and `toolConfig`; none without tools. Google Search
    cannot go beside function declarations: with any, the web search is a stub too."""
    functions = _client_tools(req)
    tools = client_tools(req, target, target.caps.web_search == "gemini" and not functions)
    if not tools:
        return {}
    declarations = []
    for tool in tools:
        notes: set[str] = set()
        declaration: dict[str, Any] = {"name": function_name(tool.name, target)}
        if tool.description:
            declaration["description"] = tool.description
        declaration["parametersJsonSchema"] = native_parameters(tool.input_schema, notes)
        if notes:
            log.debug("tool %r schema for Gemini: %s", tool.name, ", ".join(sorted(notes)))
        declarations.append(declaration)
    fields: dict[str, Any] = {"tools": [{"functionDeclarations": declarations}]}
    choice = req.tool_choice
    if choice is not None:
        config: dict[str, Any] = {"mode": _GEMINI_MODES[choice.type]}
        if choice.type == "tool":
            config["allowedFunctionNames"] = [_forced(choice, lambda n: function_name(n, target))]
        if choice.disable_parallel_tool_use:
            log.debug("disable_parallel_tool_use has no Gemini equivalent: ignored")
        fields["toolConfig"] = {"functionCallingConfig": config}
    return fields
