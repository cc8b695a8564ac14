"""What an OpenAI Chat Completions answer says, read alike whole (`message_from_chat`) and
streamed (`ChatStreamDecoder`, both in vdm/protocol/anthropic_from_openai.py): usage, the stop
reason, in-band errors, tool call arguments and ids, and reasoning in its several places.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from vdm.protocol.anthropic_stream import new_tool_id
from vdm.protocol.codec import Target
from vdm.protocol.errors import VdmError
from vdm.protocol.signatures import id_with_thought, safe_tool_id

log = logging.getLogger(__name__)

#: OpenAI finish_reason -> Anthropic stop_reason.
STOP_REASONS: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
    # Mistral: the context window, not max_tokens, cut the answer; either way it is cut.
    "model_length": "max_tokens",
}

#: finish_reasons that say the answer failed: an error, never a quiet `end_turn` the client
#: would take for a complete answer. DeepSeek `insufficient_system_resource`: "the request is
#: interrupted due to insufficient resource of the inference system" (api-docs, create chat
#: completion); Mistral and OpenRouter `error`.
ERROR_FINISH: dict[str, tuple[int, str]] = {
    "insufficient_system_resource": (
        529,
        "upstream ran out of inference capacity and cut the answer off "
        "(finish_reason insufficient_system_resource); retry later",
    ),
    "error": (502, "upstream failed while generating the answer (finish_reason error)"),
}


def usage_from_chat(usage: dict[str, Any] | None) -> dict[str, int]:
    """Anthropic usage from an OpenAI usage object; `input_tokens` excludes cache reads.

    Cached tokens come from `prompt_tokens_details.cached_tokens` (OpenAI, most providers) or
    `prompt_cache_hit_tokens` (DeepSeek).
    """
    if not usage:
        return {"input_tokens": 0, "output_tokens": 0}
    prompt = int(usage.get("prompt_tokens") or 0)
    details = usage.get("prompt_tokens_details") or {}
    cached = int(details.get("cached_tokens") or usage.get("prompt_cache_hit_tokens") or 0)
    return {
        "input_tokens": max(prompt - cached, 0),
        "output_tokens": int(usage.get("completion_tokens") or 0),
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    }


def chunk_usage(chunk: dict[str, Any]) -> dict[str, Any] | None:
    """A stream chunk's usage object, where the provider put it."""
    usage = chunk.get("usage")
    if usage:
        return usage  # type: ignore[no-any-return]
    groq = chunk.get("x_groq")  # Groq reports stream usage here
    return groq.get("usage") if isinstance(groq, dict) else None


def stop_reason(
    finish_reason: str | None,
    choice: dict[str, Any],
    stop_sequences: list[str] | None,
    had_tool_calls: bool,
) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence). A stop sequence is reported only when the provider says
    which one matched (vLLM `stop_reason`, SGLang `matched_stop`). Raises VdmError for a
    finish_reason that says the generation failed (ERROR_FINISH)."""
    failed = ERROR_FINISH.get(finish_reason or "")
    if failed is not None:
        raise VdmError(*failed)
    if had_tool_calls and finish_reason in (None, "stop", "tool_calls", "function_call"):
        return "tool_use", None
    if finish_reason == "stop" and stop_sequences:
        matched = choice.get("stop_reason") or choice.get("matched_stop")
        if isinstance(matched, str) and matched in stop_sequences:
            return "stop_sequence", matched
    return STOP_REASONS.get(finish_reason or "stop", "end_turn"), None


def error_from_chunk(error: Any) -> VdmError:
    """A provider's in-band error object (`{"error": {...}}`) as a VdmError."""
    message = str(error.get("message") or error) if isinstance(error, dict) else str(error)
    code = error.get("code") if isinstance(error, dict) else None
    status = code if isinstance(code, int) and 400 <= code < 600 else 500
    return VdmError(status, f"upstream error: {message}")


def tool_input(arguments: str | None) -> dict[str, Any]:
    """A tool call's `input` from its JSON arguments; arguments that are not a JSON object
    are kept visibly (`_raw_arguments`) so the client's schema check fails loudly."""
    if not arguments:
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        log.warning("tool call arguments are not valid JSON; passing them as _raw_arguments")
        return {"_raw_arguments": arguments}
    return value if isinstance(value, dict) else {"value": value}


def thought_signature(call: dict[str, Any]) -> str | None:
    """Gemini's `extra_content.google.thought_signature` on a tool call, if any."""
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    return signature if isinstance(signature, str) and signature else None


def message_reasoning(message: dict[str, Any]) -> str | None:
    """The reasoning text of a message or delta (`reasoning_content`, or `reasoning`)."""
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    return reasoning if isinstance(reasoning, str) and reasoning else None


def content_parts(content: Any) -> list[tuple[str, str]]:
    """(`"text"` or `"thinking"`, text) of a message's (or delta's) `content`.

    Mistral's reasoning models (Magistral, and others with `reasoning_effort`) send a list
    of chunks, `[{"type": "thinking", "thinking": [{"type": "text", "text": …}]},
    {"type": "text", "text": …}]` (docs.mistral.ai reasoning), streamed and not.
    """
    if isinstance(content, str):
        return [("text", content)] if content else []
    if not isinstance(content, list):
        return []
    parts: list[tuple[str, str]] = []
    for chunk in content:
        if not isinstance(chunk, dict):
            continue
        kind = chunk.get("type")
        if kind == "text":
            text = chunk.get("text")
            if isinstance(text, str) and text:
                parts.append(("text", text))
        elif kind == "thinking":
            inner = chunk.get("thinking")
            if isinstance(inner, str):
                inner = [{"type": "text", "text": inner}]
            for item in inner if isinstance(inner, list) else ():
                text = item.get("text") if isinstance(item, dict) else None
                if isinstance(text, str) and text:
                    parts.append(("thinking", text))
        else:
            log.debug("dropped a %r content chunk from the answer", kind)
    return parts


def client_call_id(target: Target, upstream_id: str | None, signature: str | None) -> str:
    """The tool_use id the client sees for a provider's call: the client's own where the
    encoder renamed it, else the provider's, encoded if Anthropic would refuse it."""
    if not upstream_id:
        base = new_tool_id()
    elif upstream_id in target.tool_ids:
        base = target.tool_ids[upstream_id]
    else:
        base = safe_tool_id(upstream_id)
    return id_with_thought(base, signature)
