"""Anthropic Messages request -> Gemini `generateContent` request (pure).

The mapping (docs/backends/gemini.md):

- `system` (minus Claude Code's billing header) -> `systemInstruction`.
- Messages -> `contents` (vdm/protocol/gemini_contents.py: roles, parts, function calls and
  responses paired by order, thought signatures).
- Tools -> one `functionDeclarations` tool with `parametersJsonSchema`
  (vdm/protocol/gemini_native_schema.py); `tool_choice` -> `toolConfig`
  (vdm/protocol/tools_out.py). Tool search results (`tool_reference`) become text naming the
  loaded tools.
- `generationConfig`: output limit, sampling, stop sequences, structured outputs
  (`output_config.format` -> `responseMimeType: application/json` + `responseJsonSchema`),
  and `thinkingConfig` sized as the model's capabilities say (`thinkingBudget` on 2.5,
  `thinkingLevel` on 3.x, never both).
- What has no Gemini equivalent is dropped or degraded as vdm/protocol/translation.py says.
"""

from __future__ import annotations

import logging
from typing import Any

from vdm.protocol import jsonio
from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.capabilities import ModelCaps
from vdm.protocol.codec import Target
from vdm.protocol.gemini_contents import gemini_contents
from vdm.protocol.gemini_native_schema import native_parameters
from vdm.protocol.system_prompt import system_text
from vdm.protocol.thinking_budget import budget_effort
from vdm.protocol.tools_out import gemini_tools
from vdm.protocol.translation import check, output_schema
from vdm.protocol.web_search import web_search_tool

log = logging.getLogger(__name__)

#: Gemini takes at most five stop sequences.
MAX_STOP_SEQUENCES = 5
#: Gemini 2.5 thinking budgets: the range every 2.5 model takes (Flash-Lite starts at 512,
#: Flash and Flash-Lite end at 24576), and a budget per client effort (Google's own
#: low/medium/high mapping on its OpenAI-compatible endpoint: 1K/8K/24K).
BUDGET_RANGE = (512, 24576)
EFFORT_BUDGETS = {
    "minimal": 512,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
    "xhigh": 24576,
    "max": 24576,
}


def gemini_request_from_messages(req: MessagesRequest, target: Target) -> dict[str, Any]:
    """The `generateContent` body for `req` (the model goes in the URL, not the body)."""
    check(req, target)
    body: dict[str, Any] = {}
    system = system_text(req.system)
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    body["contents"] = gemini_contents(req, target)
    body.update(gemini_tools(req, target))
    searches = target.caps.web_search == "gemini" and not target.web_search_stub
    if searches and web_search_tool(req) is not None:
        # (beside function tools the search went as a stub: vdm/protocol/tools_out.py)
        body["tools"] = [*body.get("tools", ()), {"googleSearch": {}}]
    body["generationConfig"] = _generation_config(req, target)
    return body


def _generation_config(req: MessagesRequest, target: Target) -> dict[str, Any]:
    config: dict[str, Any] = {}
    max_tokens = target.output_limit(req.max_tokens)
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    if req.temperature is not None:
        config["temperature"] = req.temperature
    if req.top_p is not None:
        config["topP"] = req.top_p
    if req.top_k is not None:
        config["topK"] = req.top_k
    if req.stop_sequences:
        if len(req.stop_sequences) > MAX_STOP_SEQUENCES:
            log.debug("Gemini takes 5 stop sequences: dropped the rest")
        config["stopSequences"] = list(req.stop_sequences[:MAX_STOP_SEQUENCES])
    schema = output_schema(req)
    if schema is not None:
        config["responseMimeType"] = "application/json"
        config["responseJsonSchema"] = native_parameters(schema)
    thinking = thinking_config(req, target.caps)
    if thinking:
        config["thinkingConfig"] = thinking
    return config


def thinking_config(req: MessagesRequest, caps: ModelCaps) -> dict[str, Any]:
    """`thinkingConfig` for the client's thinking settings (empty: the model's default).

    `output_config.effort` wins over a budget. Thinking switched off sends the least the model
    takes (Gemini 3 Pro cannot switch off, 2.5 Pro neither: no budget is sent there). Thought
    summaries are asked for when the client shows thinking (Claude Code says
    `display: "omitted"` when it does not)."""
    if caps.thinking_config == "none":
        return {}
    thinking = req.thinking
    off = thinking is not None and thinking.type == "disabled"
    effort = (req.output_config or {}).get("effort")
    effort = effort if isinstance(effort, str) and effort else None
    budget = None
    if thinking is not None and thinking.type == "enabled" and thinking.budget_tokens:
        budget = thinking.budget_tokens
    config: dict[str, Any] = {}
    if caps.thinking_config == "level":
        if off:
            config["thinkingLevel"] = caps.efforts[0] if caps.efforts else "low"
        elif effort is not None:
            config["thinkingLevel"] = (
                caps.max_effort if effort in ("max", "xhigh") else caps.effort(effort)
            )
        elif budget is not None:
            config["thinkingLevel"] = caps.effort(budget_effort(budget))
    elif not off:
        if effort is not None:
            config["thinkingBudget"] = EFFORT_BUDGETS.get(effort, -1)
        elif budget is not None:
            low, high = BUDGET_RANGE
            config["thinkingBudget"] = max(low, min(budget, high))
        elif thinking is not None:
            config["thinkingBudget"] = -1  # adaptive: Gemini's dynamic thinking
    display = (thinking.model_extra or {}).get("display") if thinking is not None else None
    if thinking is not None and not off and display != "omitted":
        config["includeThoughts"] = True
    return config


def encode(req: MessagesRequest, target: Target) -> bytes:
    """The request body as compact JSON bytes."""
    payload = gemini_request_from_messages(req, target)
    return jsonio.dumps(payload)
