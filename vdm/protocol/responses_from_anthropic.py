"""Anthropic Messages request -> OpenAI Responses request (pure).

The mapping is ../shared/reference/dialects.md A1 (docs/backends/responses.md sums it up):
the system prompt becomes `instructions`, the history becomes input items (messages,
`function_call`, `function_call_output`, and the `reasoning` items vdm carried through the
client in thinking signatures: vdm/protocol/responses_input.py), tools are flat function tools
(vdm/protocol/tools_out.py), and thinking/effort become `reasoning`. Requests are stateless
(`store: false`): the reasoning the model needs on the next turn travels back encrypted, inside
the thinking block's `vdm-rs1:` signature.
"""

from __future__ import annotations

import logging
from typing import Any

from vdm.protocol.anthropic import MessagesRequest, Tool
from vdm.protocol.capabilities import ModelCaps
from vdm.protocol.codec import Target
from vdm.protocol.openai_request_out import (
    identity,
    json_schema_format,
    safety_identifier,
    sampling,
)
from vdm.protocol.rejected_fields import drop_rejected
from vdm.protocol.responses_input import responses_input
from vdm.protocol.system_prompt import system_text
from vdm.protocol.thinking_budget import budget_effort
from vdm.protocol.tools_out import responses_tools
from vdm.protocol.tools_out import tool_name as tool_name
from vdm.protocol.translation import check, output_schema, strict_compatible
from vdm.protocol.web_search import SOURCES_INCLUDE, responses_search_tool, web_search_tool

log = logging.getLogger(__name__)

#: `max_output_tokens` below 16 is a 400 ("integer_below_min_value").
MIN_OUTPUT_TOKENS = 16


def responses_request_from_messages(req: MessagesRequest, target: Target) -> dict[str, Any]:
    """The Responses API body for `req`, sent to `target.model`."""
    check(req, target)
    caps = target.caps
    body: dict[str, Any] = {"model": target.model}
    instructions = system_text(req.system)
    if instructions:
        body["instructions"] = instructions
    reasoning = _reasoning(req, caps, summary="no-summary" not in target.degraded)
    # `effort: none` switches reasoning off: nothing to replay or to keep.
    thinks = reasoning is not None and reasoning.get("effort") != "none"
    replay = thinks and "no-replay" not in target.degraded
    body["input"] = responses_input(req, target, replay=replay)

    max_tokens = target.output_limit(req.max_tokens)
    if max_tokens is not None:
        body["max_output_tokens"] = max(max_tokens, MIN_OUTPUT_TOKENS)

    body.update(sampling(req, caps))
    if req.stop_sequences:
        log.debug("dropped stop_sequences: the Responses API has no stop parameter")
    body.update(responses_tools(req, target))
    include: list[str] = []
    search = web_search_tool(req)
    if search is not None and caps.web_search == "responses":
        _add_search(body, req, search, reasoning)
        include.append(SOURCES_INCLUDE)

    if reasoning:
        body["reasoning"] = reasoning
    if thinks:
        # Stateless reasoning: the encrypted items come back in the thinking signatures.
        include.insert(0, "reasoning.encrypted_content")
    if include:
        body["include"] = include
    body["store"] = False

    schema = output_schema(req)
    if schema is not None:
        # Structured outputs; strict where OpenAI's strict mode takes the schema as it is.
        text_format = json_schema_format(schema, strict=strict_compatible(schema))
        body["text"] = {"format": {"type": "json_schema", **text_format}}

    if req.metadata is not None and req.metadata.user_id:
        user, session = identity(req.metadata.user_id)
        if caps.prompt_cache_key:
            # OpenAI's own fields: `user` is deprecated there in favour of these two.
            body["safety_identifier"] = safety_identifier(user)
            if session:
                body["prompt_cache_key"] = session
        else:
            body["user"] = user
    if req.stream:
        body["stream"] = True
    drop_rejected(body, caps.rejects, messages=False)
    return body


def _add_search(
    body: dict[str, Any], req: MessagesRequest, search: Tool, reasoning: dict[str, Any] | None
) -> None:
    """OpenAI's `web_search` tool for the client's web search server tool. OpenAI refuses it
    with `minimal` effort ("The following tools cannot be used with reasoning.effort
    'minimal': web_search"), so that becomes `low`; a forced web search is `required`."""
    body.setdefault("tools", []).append(responses_search_tool(search))
    if reasoning is not None and reasoning.get("effort") == "minimal":
        reasoning["effort"] = "low"
    choice = req.tool_choice
    if choice is not None and choice.type == "tool" and choice.name == search.name:
        body["tool_choice"] = "required"


def _reasoning(req: MessagesRequest, caps: ModelCaps, *, summary: bool) -> dict[str, Any] | None:
    """`reasoning` for the client's thinking settings; None when the model does not reason.
    Where the client switched thinking off, the least effort the model takes and no summary
    (with `none`, nothing is replayed either). `summary=False`: the organization may not
    have summaries (it is not verified)."""
    thinking = req.thinking
    if not caps.reasoning:
        return None
    if thinking is not None and thinking.type == "disabled":
        # gpt-5.1+ switch reasoning off with `none`; elsewhere the least the model takes
        # (gpt-5: `minimal`), not its default (`medium`).
        effort = caps.effort("none")
        return None if effort is None else {"effort": effort}
    reasoning: dict[str, Any] = {}
    effort = _effort(req, caps)
    if effort is not None:
        reasoning["effort"] = effort
    # Summaries cost time to first token; ask for them only when the client shows thinking
    # (Claude Code sends `display: "omitted"` when it does not).
    display = (thinking.model_extra or {}).get("display") if thinking is not None else None
    if summary and thinking is not None and display != "omitted":
        reasoning["summary"] = "auto"
    return reasoning


def _effort(req: MessagesRequest, caps: ModelCaps) -> str | None:
    """`output_config.effort` wins; else a budget maps to low/medium/high, adaptive thinking
    to medium; no thinking setting leaves the model's default."""
    effort = (req.output_config or {}).get("effort")
    if isinstance(effort, str) and effort:
        return caps.effort(effort)
    thinking = req.thinking
    if thinking is None:
        return None
    if thinking.type == "enabled" and thinking.budget_tokens:
        return caps.effort(budget_effort(thinking.budget_tokens))
    return caps.effort("medium")
