"""The objects of an OpenAI Responses answer, shared by the streamed and the whole answer
(`responses_from_events`): the `response` object with the request fields it echoes, output
items, usage, and the `error` of a failed response (dialects.md B3, B4).

Built as plain dicts, checked against the `openai` SDK's types in the tests: a client parses
them once, so no pydantic round trip on vdm's side.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Mapping
from typing import Any

from vdm.protocol.chat_from_events import chat_usage, openai_error_code
from vdm.protocol.errors import VdmError
from vdm.protocol.responses_tools import ToolRoutes
from vdm.protocol.signatures import pack_thinking
from vdm.protocol.sse import dumps

log = logging.getLogger(__name__)

#: Anthropic stop_reason -> `incomplete_details.reason`; any other reason completes the
#: response (`tool_use`, `pause_turn`, an unknown future one: never a failure for the client).
INCOMPLETE_REASONS: dict[str, str] = {
    "max_tokens": "max_output_tokens",
    "model_context_window_exceeded": "max_output_tokens",
    "refusal": "content_filter",
}

#: `error.code` values an upstream may have given that Codex acts on better than on ours:
#: an exhausted quota is fatal there ("check your plan"), not a rate limit retried in vain.
_KEPT_CODES = frozenset({"insufficient_quota", "context_length_exceeded"})


def new_id(prefix: str) -> str:
    """`resp_`, `rs_`, `msg_`, `fc_`, `ctc_` + a uuid's hex."""
    return prefix + uuid.uuid4().hex


def responses_usage(usage: Mapping[str, Any], reasoning_tokens: int = 0) -> dict[str, Any]:
    """Responses usage from Anthropic usage (OAI `response_usage.py`): the input count includes
    cache reads and writes, as OpenAI counts them (the same sum as `chat_usage`)."""
    chat = chat_usage(usage, reasoning_tokens)
    return {
        "input_tokens": chat["prompt_tokens"],
        "input_tokens_details": chat["prompt_tokens_details"],
        "output_tokens": chat["completion_tokens"],
        "output_tokens_details": chat["completion_tokens_details"],
        "total_tokens": chat["total_tokens"],
    }


def request_echo(request: Mapping[str, Any] | None) -> dict[str, Any]:
    """The request fields a `response` object repeats; what a client left out gets OpenAI's
    default. `instructions` is never echoed: it can be long and nothing reads it back."""
    req = request or {}
    tools, choice, parallel = (
        req.get("tools"),
        req.get("tool_choice"),
        req.get("parallel_tool_calls"),
    )
    return {
        "instructions": None,
        "max_output_tokens": _typed(req.get("max_output_tokens"), int),
        "parallel_tool_calls": parallel if isinstance(parallel, bool) else True,
        "reasoning": _typed(req.get("reasoning"), dict),
        "store": False,
        "temperature": _typed(req.get("temperature"), (int, float)),
        "text": _typed(req.get("text"), dict) or {"format": {"type": "text"}},
        "tool_choice": choice if isinstance(choice, str | dict) else "auto",
        "tools": tools if isinstance(tools, list) else [],
        "top_p": _typed(req.get("top_p"), (int, float)),
        "metadata": _typed(req.get("metadata"), dict) or {},
    }


def _typed(value: Any, kind: type | tuple[type, ...]) -> Any:
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


def response_object(
    head: Mapping[str, Any],
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None = None,
    *,
    error: dict[str, str] | None = None,
    incomplete: str | None = None,
) -> dict[str, Any]:
    """A `response` object: `head` holds id, created_at, model and the request's echo."""
    return {
        "id": head["id"],
        "object": "response",
        "created_at": head["created_at"],
        "status": status,
        "error": error,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "model": head["model"],
        "output": output,
        **head["echo"],
        "usage": usage,
    }


# --- output items ---------------------------------------------------------------------------


def reasoning_item(item_id: str, text: str, block: dict[str, Any]) -> dict[str, Any]:
    """A thinking block as a reasoning item: its text as the summary (none when the upstream
    sent none: display omitted), the whole block in `encrypted_content`, since the summary a
    client sends back need not be intact and Anthropic wants the block byte-exact."""
    summary = [{"type": "summary_text", "text": text}] if text else []
    return {
        "id": item_id,
        "type": "reasoning",
        "summary": summary,
        "encrypted_content": pack_thinking(block),
    }


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": []}


def message_item(item_id: str, content: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content,
    }


def call_item(
    tools: ToolRoutes,
    tool_name: str,
    call_id: str,
    payload: str,
    status: str,
    item_id: str | None = None,
) -> dict[str, Any]:
    """A `function_call` (payload = JSON arguments) or, for a freeform tool, a
    `custom_tool_call` (payload = its raw input), under the client's own name."""
    namespace, name = tools.client_call(tool_name)
    custom = tool_name in tools.custom
    item: dict[str, Any] = {
        "id": item_id or new_id("ctc_" if custom else "fc_"),
        "type": "custom_tool_call" if custom else "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "input" if custom else "arguments": payload,
    }
    if namespace is not None:
        item["namespace"] = namespace
    return item


def custom_input(arguments: str) -> str:
    """A freeform tool's raw input from the upstream's JSON arguments `{"input": "..."}`;
    arguments that are not that shape are handed over as they came."""
    if not arguments:
        return ""
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return arguments
    if isinstance(parsed, dict) and isinstance(parsed.get("input"), str):
        return str(parsed["input"])
    if isinstance(parsed, str):
        return parsed
    log.debug("custom tool arguments without a string 'input'; sent as they came")
    return arguments


def tool_arguments(tool_input: Any) -> str:
    """A whole tool_use `input` as a JSON string; non-JSON arguments kept by a decoder
    (`_raw_arguments`) go back as the original string (dialects.md D)."""
    if isinstance(tool_input, dict) and set(tool_input) == {"_raw_arguments"}:
        raw = tool_input["_raw_arguments"]
        if isinstance(raw, str):
            return raw
    return dumps(tool_input if tool_input is not None else {})


# --- errors ---------------------------------------------------------------------------------


def response_error_code(exc: VdmError) -> str:
    """The `error.code` of a `response.failed`, chosen for what Codex does with it (B4):
    `context_length_exceeded` is fatal (and says why), `rate_limit_exceeded` is retried
    after the delay in the message, `server_error` is retried, `invalid_prompt` is fatal with
    the message shown; an unknown code is retried."""
    if exc.overflow:
        return "context_length_exceeded"
    if exc.code in _KEPT_CODES:
        return str(exc.code)
    if exc.status == 429:
        return "rate_limit_exceeded"
    if exc.status >= 500:  # 529 too: "server_is_overloaded" would be fatal in Codex
        return "server_error"
    if exc.status == 400:
        return "invalid_prompt"
    return openai_error_code(exc) or "server_error"


def _retry_after(headers: Mapping[str, str]) -> int | None:
    """Whole seconds from `retry-after-ms` or `retry-after` (delta-seconds; an HTTP date is
    not worth parsing here), rounded up so the client never retries early."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            seconds = float(lowered[name]) / scale
        except (KeyError, ValueError):
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return math.ceil(seconds)
    return None


def response_error(exc: VdmError) -> dict[str, str]:
    """`{code, message}`; a rate limit's message ends "Please try again in Ns" when the
    upstream said how long, the phrase Codex parses for its retry delay."""
    code = response_error_code(exc)
    message = exc.message
    if code == "rate_limit_exceeded" and "try again in" not in message.lower():
        seconds = _retry_after(exc.headers)
        if seconds is not None:
            message = f"{message.rstrip()} Please try again in {seconds}s"
    return {"code": code, "message": message}
