"""Anthropic Messages request -> OpenAI Chat Completions request (pure).

Fidelity rules (see docs/protocol.md): the system prompt survives (string or blocks, minus
Claude Code's per-version billing header), `role: "system"` entries stay in place, text that
shares a user turn with tool results becomes a user message right after the tool messages,
`is_error` survives as a marker in the tool message, images and PDFs become content parts,
tool search results (`tool_reference`) become text naming the loaded tools, structured outputs
(`output_config.format`) become `response_format`, and nothing Anthropic-only is forwarded
(vdm/protocol/translation.py: what is refused, dropped and degraded).

Per-provider rules come from the target's capabilities (docs/backends/chat.md): reasoning that
must travel back (`reasoning_content`), Gemini thought signatures on tool calls, Gemini's
schema subset, Mistral's tool id format, DeepSeek's thinking switch, and fields a provider
refuses. The messages are built in vdm/protocol/chat_messages.py, the tools in
vdm/protocol/tools_out.py.
"""

from __future__ import annotations

import logging
from typing import Any

from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.capabilities import EFFORT_ORDER, ModelCaps
from vdm.protocol.chat_messages import alnum9 as alnum9
from vdm.protocol.chat_messages import chat_messages, text_only
from vdm.protocol.codec import Target
from vdm.protocol.openai_request_out import identity, json_schema_format, sampling
from vdm.protocol.rejected_fields import drop_rejected
from vdm.protocol.thinking_budget import budget_effort
from vdm.protocol.tools_out import chat_parameters, chat_tools
from vdm.protocol.tools_out import tool_name as tool_name
from vdm.protocol.translation import (
    check,
    output_schema,
    schema_instruction,
    strict_compatible,
)
from vdm.protocol.web_search import last_user_text, openrouter_web_plugin, web_search_tool

log = logging.getLogger(__name__)


def chat_request_from_messages(req: MessagesRequest, target: Target) -> dict[str, Any]:
    """The OpenAI Chat Completions body for `req`, sent to `target.model`."""
    check(req, target)
    caps = target.caps
    body: dict[str, Any] = {"model": target.model, "messages": chat_messages(req, target)}

    max_tokens = target.output_limit(req.max_tokens)
    if max_tokens is not None:
        body[caps.max_tokens_field] = max_tokens

    body.update(sampling(req, caps))
    if req.stop_sequences:
        body["stop"] = list(req.stop_sequences)
    body.update(chat_tools(req, target))
    search = web_search_tool(req)
    if search is not None and caps.web_search == "openrouter":
        body["plugins"] = [openrouter_web_plugin(search)]
        target.web_search_query = last_user_text(req)

    if caps.thinking_switch and req.thinking is not None:
        # DeepSeek V4: thinking is on by default; the client's switch is passed on.
        kind = "disabled" if req.thinking.type == "disabled" else "enabled"
        body["thinking"] = {"type": kind}
    if caps.reasoning:
        effort = reasoning_effort(req, caps)
        if effort is not None:
            body["reasoning_effort"] = effort

    schema = output_schema(req)
    if schema is not None:
        _response_format(body, schema, caps)

    if req.metadata is not None and req.metadata.user_id:
        user, session = identity(req.metadata.user_id)
        body["user"] = user
        if session and caps.prompt_cache_key:
            body["prompt_cache_key"] = session

    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if not caps.images:
        text_only(body)
    if caps.rejects:
        drop_rejected(body, caps.rejects)
    return body


def _response_format(body: dict[str, Any], schema: dict[str, Any], caps: ModelCaps) -> None:
    """Structured outputs: the schema as `response_format`, strict where OpenAI's strict mode
    takes the schema as it is; JSON mode and the schema in the system prompt where the
    provider has no schemas (DeepSeek)."""
    if caps.structured_output == "json_schema":
        strict = not caps.gemini_schema and strict_compatible(schema)
        json_schema = json_schema_format(chat_parameters(schema, caps), strict=strict)
        body["response_format"] = {"type": "json_schema", "json_schema": json_schema}
        return
    body["response_format"] = {"type": "json_object"}
    instruction = schema_instruction(schema)
    messages = body["messages"]
    if messages and messages[0]["role"] == "system":
        messages[0]["content"] = f"{messages[0]['content']}\n\n{instruction}"
    else:
        messages.insert(0, {"role": "system", "content": instruction})
    log.debug("%s has JSON mode only: the output schema went into the system prompt", body["model"])


def reasoning_effort(req: MessagesRequest, caps: ModelCaps) -> str | None:
    """The OpenAI `reasoning_effort` for the client's thinking settings, or None to leave the
    model's default. `output_config.effort` wins over a thinking budget."""
    thinking = req.thinking
    if thinking is not None and thinking.type == "disabled":
        # Switched off: `none` where the model takes it (gpt-5.1+), else its least effort
        # (gpt-5's `minimal`), not its default; a model with its own switch heard it there.
        return None if caps.thinking_switch else caps.effort("none")
    effort = (req.output_config or {}).get("effort")
    if isinstance(effort, str):
        # The nearest the model takes: `xhigh` stays `xhigh` where it exists, `max` becomes
        # the model's top effort, `minimal` its lowest.
        return caps.effort(effort) if effort in EFFORT_ORDER else None
    if thinking is not None and thinking.type == "enabled" and thinking.budget_tokens:
        return caps.effort(budget_effort(thinking.budget_tokens))
    return None
