"""What the three translating encoders (Chat, Responses, Gemini) do alike with an Anthropic
request: what they refuse, drop and degrade.

Clients send fields, values and blocks only Anthropic serves, and new ones in any release
(Claude Code's gateway contract, C5). A translated request never gets a 400 for them: each is
dropped or degraded the same way for every provider, with a DEBUG line. The one exception is
auto mode's `safeguards`: dropping it would run the session without the safeguards the client
asked for, so it is a 400 that names it, and the client falls back at once (C14).

| the client sends | the provider gets |
|---|---|
| `safeguards` | nothing: 400 `invalid_request_error` naming `safeguards` |
| `tags`, `context_management`, `container`, `mcp_servers`, any other unknown field | dropped |
| `output_config.format` (JSON schema) | the provider's structured output (each encoder) |
| other `output_config` keys (`task_budget`, ...) | dropped |
| server tools, tool sets (`web_search_…`, `mcp_toolset`, `tool_search_tool_…`) | dropped |
| a tool's `strict`, `defer_loading`, `cache_control`, `input_examples` | dropped |
| a deferred tool (`defer_loading: true`) | sent once loaded (see `client_tools`) |
| `tool_reference` blocks in a tool result | "Tool X loaded." text |
| `cache_control` anywhere | dropped |
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from vdm.protocol.anthropic import (
    MessagesRequest,
    ResultContent,
    TextBlock,
    ToolReferenceBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from vdm.protocol.capabilities import EFFORT_ORDER
from vdm.protocol.codec import Target
from vdm.protocol.errors import VdmError

log = logging.getLogger(__name__)

#: `output_config` keys the encoders read.
OUTPUT_CONFIG_KEYS = frozenset({"effort", "format"})
#: Tool fields the encoders read.
TOOL_FIELDS = frozenset({"name", "type", "description", "input_schema"})
#: `thinking` fields the encoders read (`display` says whether to ask for summaries).
THINKING_FIELDS = frozenset({"type", "budget_tokens", "display"})
#: Anthropic's server-side tool search (`tool_search_tool_regex_20251119`, `…_bm25_…`).
_TOOL_SEARCH_PREFIX = "tool_search_tool"
#: The name structured outputs go by where a provider wants one (OpenAI's
#: `^[a-zA-Z0-9_-]{1,64}$`); Anthropic's format has none.
FORMAT_NAME = "output"


def check(req: MessagesRequest, target: Target) -> None:
    """Refuse what must not be dropped silently (`safeguards`); log what is dropped."""
    extra = req.model_extra or {}
    if extra.get("safeguards") is not None:
        raise VdmError(
            400,
            f"safeguards is not supported by {target.family}:{target.model}: vdm translates "
            "this request for a provider that has no safeguards; use an Anthropic-format "
            "provider for auto mode",
        )
    if log.isEnabledFor(logging.DEBUG):
        _log_dropped(req)


def _log_dropped(req: MessagesRequest) -> None:
    dropped = sorted(req.model_extra or ())  # the fields MessagesRequest does not model
    config = req.output_config or {}
    dropped += [f"output_config.{key}" for key in sorted(set(config) - OUTPUT_CONFIG_KEYS)]
    effort = config.get("effort")
    if effort is not None and effort not in EFFORT_ORDER:
        dropped.append(f"output_config.effort={effort!r}")
    if req.thinking is not None:
        extra = set(req.thinking.model_extra or ()) - THINKING_FIELDS
        dropped += [f"thinking.{key}" for key in sorted(extra)]
    for tool in req.tools or ():
        extra = set(tool.model_extra or ()) - TOOL_FIELDS
        if tool.is_client_tool and extra:
            dropped.append(f"tools[{tool.name}].{{{','.join(sorted(extra))}}}")
    if _has_cache_control(req):
        dropped.append("cache_control")
    if dropped:
        log.debug("dropped what the provider has no equivalent for: %s", ", ".join(dropped))


def _has_cache_control(req: MessagesRequest) -> bool:
    if not isinstance(req.system, str) and any(
        getattr(b, "cache_control", None) for b in req.system or ()
    ):
        return True
    if any((t.model_extra or {}).get("cache_control") for t in req.tools or ()):
        return True
    return any(
        getattr(block, "cache_control", None)
        for message in req.messages
        if not isinstance(message.content, str)
        for block in message.content
    )


# --- tools ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientTool:
    """A tool the provider gets: one the client runs, with its schema."""

    name: str
    description: str
    input_schema: dict[str, Any] | None


def client_tools(req: MessagesRequest) -> list[ClientTool]:
    """The tools a translated request sends, in the client's order.

    Server tools and tool sets run at Anthropic and are dropped. A deferred tool
    (`defer_loading: true`) is on Anthropic seen by the model only once tool search loaded it.
    Claude Code searches on its own side (its ToolSearch tool answers with `tool_reference`
    blocks) and lists in `tools` the deferred tools it loaded, plus a placeholder never to be
    called: a deferred tool is sent once the history references it (a `tool_reference`, a
    call, or `tool_choice`), so the placeholder never is. Where the client relied on
    Anthropic's server-side tool search, which no other provider has, every deferred tool is
    sent: the model could not load any otherwise.
    """
    tools = req.tools or ()
    server_search = any((t.type or "").startswith(_TOOL_SEARCH_PREFIX) for t in tools)
    loaded: set[str] | None = None
    out: list[ClientTool] = []
    dropped: list[str] = []
    for tool in tools:
        if not tool.is_client_tool or tool.name is None:
            dropped.append(tool.name or str(tool.type))
            continue
        if (tool.model_extra or {}).get("defer_loading") is True and not server_search:
            if loaded is None:
                loaded = referenced_tools(req)
            if tool.name not in loaded:
                dropped.append(f"{tool.name} (deferred, not loaded)")
                continue
        out.append(ClientTool(tool.name, tool.description or "", tool.input_schema))
    if dropped:
        log.debug("tools not sent to the provider: %s", ", ".join(dropped))
    return out


def referenced_tools(req: MessagesRequest) -> set[str]:
    """The tool names the history loaded or used: `tool_reference` blocks in tool results,
    tool calls, and a forced `tool_choice`."""
    names: set[str] = set()
    if req.tool_choice is not None and req.tool_choice.name:
        names.add(req.tool_choice.name)
    for message in req.messages:
        if isinstance(message.content, str):
            continue
        for block in message.content:
            if isinstance(block, ToolUseBlock):
                names.add(block.name)
            elif isinstance(block, ToolResultBlock) and isinstance(block.content, list):
                names.update(
                    item.tool_name for item in block.content if isinstance(item, ToolReferenceBlock)
                )
    return names


def loaded_text(names: Iterable[str]) -> str:
    """What a model reads where tool search loaded tools (`tool_reference` blocks)."""
    listed = list(names)
    if len(listed) == 1:
        return f"Tool {listed[0]} loaded."
    return f"Tools {', '.join(listed)} loaded."


def result_content(
    block: ToolResultBlock, rename: Callable[[str], str] | None = None
) -> str | list[ResultContent] | None:
    """A tool result's content with each run of `tool_reference` blocks as one text block
    naming the loaded tools (as the provider knows them: `rename`), which the provider gets
    with the tools themselves. Anything else is left as it is."""
    content = block.content
    if not isinstance(content, list) or not any(
        isinstance(item, ToolReferenceBlock) for item in content
    ):
        return content
    out: list[ResultContent] = []
    names: list[str] = []
    for item in content:
        if isinstance(item, ToolReferenceBlock):
            names.append(rename(item.tool_name) if rename else item.tool_name)
            continue
        if names:
            out.append(TextBlock(text=loaded_text(names)))
            names = []
        out.append(item)
    if names:
        out.append(TextBlock(text=loaded_text(names)))
    return out


# --- structured outputs -----------------------------------------------------------------------


def output_schema(req: MessagesRequest) -> dict[str, Any] | None:
    """The JSON schema of `output_config.format` (structured outputs), or None."""
    fmt = (req.output_config or {}).get("format")
    if fmt is None:
        return None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        if isinstance(schema, dict):
            # The dialect marker is no instruction to the model (and not in OpenAI's subset).
            return {k: v for k, v in schema.items() if k != "$schema"}
    kind = fmt.get("type") if isinstance(fmt, dict) else type(fmt).__name__
    log.debug("output_config.format of type %r is not a JSON schema: dropped", kind)
    return None


#: The keywords OpenAI's strict mode takes (platform.openai.com structured outputs, "supported
#: schemas"); a schema with any other (`minLength`, `default`, `oneOf`, ...) is not strict.
STRICT_KEYWORDS = frozenset(
    {
        *("type", "properties", "required", "additionalProperties", "items", "enum", "const"),
        *("anyOf", "$defs", "definitions", "$ref", "description", "title", "pattern"),
        *("format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"),
        *("multipleOf", "minItems", "maxItems"),
    }
)


def strict_compatible(schema: Any) -> bool:
    """Whether OpenAI's strict mode takes `schema` as it is: an object at the root, every
    object closed (`additionalProperties: false`) with every property required, and only the
    keywords strict mode knows. Anthropic lets properties be optional, and strict mode would
    refuse those schemas with a 400: they go with `strict: false` (the model is asked for the
    schema, not held to it)."""
    return isinstance(schema, dict) and schema.get("type") == "object" and _strict(schema)


def _strict(schema: Any) -> bool:
    if isinstance(schema, list):
        return all(_strict(item) for item in schema)
    if not isinstance(schema, dict):
        return True
    if not STRICT_KEYWORDS.issuperset(schema):
        return False
    if schema.get("type") == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        if schema.get("additionalProperties") is not False or not isinstance(properties, dict):
            return False
        if set(properties) - set(schema.get("required") or ()):
            return False
    for key, value in schema.items():
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            if not all(_strict(sub) for sub in value.values()):
                return False
        elif key in ("items", "anyOf") and not _strict(value):
            return False
    return True


def schema_instruction(schema: dict[str, Any]) -> str:
    """The system prompt text that asks for `schema` where the provider only has JSON mode
    (it also names JSON, which JSON mode requires of the prompt)."""
    dumped = json.dumps(schema, ensure_ascii=False, separators=(",", ":"))
    return (
        "Respond only with a valid json object, with no other text, that matches this JSON "
        f"Schema:\n{dumped}"
    )
