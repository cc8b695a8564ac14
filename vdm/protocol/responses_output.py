"""What both the whole answer and the stream of an OpenAI Responses answer read from it
(pure): its texts, its stop reason, its usage and the error of a failed response, shared by
`anthropic_from_responses` (answer) and `events_from_responses` (stream)."""

from __future__ import annotations

from typing import Any

from vdm.protocol.errors import VdmError, context_overflow

#: `incomplete_details.reason` -> Anthropic stop_reason.
INCOMPLETE_REASONS: dict[str, str] = {
    "max_output_tokens": "max_tokens",
    "content_filter": "refusal",
}
#: Error `code` of a failed response (or an `error` event) -> the HTTP status the client sees.
ERROR_STATUS: dict[str, int] = {
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "server_error": 500,
    "server_is_overloaded": 529,
    "slow_down": 529,
    "context_length_exceeded": 400,
    "invalid_prompt": 400,
    "invalid_encrypted_content": 400,
}


def error_from_failure(error: Any) -> VdmError:
    """The VdmError for a failed response's `error` or an `error` event."""
    if isinstance(error, dict) and isinstance(error.get("error"), dict):
        error = error["error"]  # `{"type": "error", "error": {...}}`
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    message = str(message or code or "the response failed")
    status = ERROR_STATUS.get(code, 500) if isinstance(code, str) else 500
    overflow = context_overflow(message, code)
    code = code if isinstance(code, str) else None
    if overflow is not None:
        return VdmError(400, overflow, code=code, overflow=True)
    return VdmError(status, f"upstream error: {message}", code=code)


def usage_from_responses(usage: Any) -> dict[str, int]:
    """Anthropic usage from a Responses usage object; `input_tokens` excludes cache reads
    and writes, `output_tokens` includes reasoning (as on both APIs)."""
    if not isinstance(usage, dict):
        return {"input_tokens": 0, "output_tokens": 0}
    details = usage.get("input_tokens_details") or {}
    cached = int(details.get("cached_tokens") or 0)
    written = int(details.get("cache_write_tokens") or 0)
    return {
        "input_tokens": max(int(usage.get("input_tokens") or 0) - cached - written, 0),
        "output_tokens": int(usage.get("output_tokens") or 0),
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": written,
    }


def part_texts(parts: Any, *kinds: str) -> list[str]:
    """The texts of the parts of `kinds` (`summary_text`, `output_text`, ...)."""
    out: list[str] = []
    for part in parts if isinstance(parts, list) else ():
        if isinstance(part, dict) and part.get("type") in kinds:
            text = part.get("text") if part.get("type") != "refusal" else part.get("refusal")
            if isinstance(text, str) and text:
                out.append(text)
    return out


def reasoning_text(item: dict[str, Any]) -> str:
    """A reasoning item's summary parts (or raw reasoning text) joined as one thinking text."""
    return "\n\n".join(
        part_texts(item.get("summary"), "summary_text")
        or part_texts(item.get("content"), "reasoning_text")
    )


def stop_reason(response: dict[str, Any], tool_use: bool, refusal: bool) -> str:
    if response.get("status") == "incomplete":
        details = response.get("incomplete_details") or {}
        return INCOMPLETE_REASONS.get(str(details.get("reason")), "end_turn")
    if tool_use:
        return "tool_use"
    return "refusal" if refusal else "end_turn"
