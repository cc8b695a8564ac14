"""OpenAI Responses answer/stream -> canonical (Anthropic) message/events (pure).

`message_from_response` converts a whole `response` object; `ResponsesStreamDecoder`
(vdm/protocol/events_from_responses.py, re-exported here) is the stream state machine
(../shared/reference/dialects.md A2, A3); what both read is in responses_output.py:

- a `reasoning` item becomes a thinking block: its summary (or raw reasoning text) streams as
  thinking deltas, and when the item is done its id and encrypted content are sealed into the
  block's signature (`vdm-rs1:`, vdm/protocol/signatures.py) so the client hands them back on
  the next turn. A reasoning item without any text still becomes a block, signature only, so
  it can be replayed.
- a `message` item's `output_text` and `refusal` parts become text; a `function_call` item a
  tool_use block whose arguments stream as `input_json_delta`.
- `response.completed` / `response.incomplete` end the message; `response.failed` and
  `error` events raise VdmError; a body that ends before any of them is a 502.

How the stream orders items (one at a time, unannounced ones decoded whole) is in
events_from_responses.py.
"""

from __future__ import annotations

import logging
from typing import Any

from vdm.protocol.anthropic_from_openai import tool_input
from vdm.protocol.anthropic_stream import anthropic_message, new_tool_id
from vdm.protocol.codec import Target
from vdm.protocol.events_from_responses import ResponsesStreamDecoder
from vdm.protocol.responses_output import (
    ERROR_STATUS,
    INCOMPLETE_REASONS,
    error_from_failure,
    part_texts,
    reasoning_text,
    stop_reason,
    usage_from_responses,
)
from vdm.protocol.search_stub import answer_stub_calls
from vdm.protocol.signatures import pack_reasoning
from vdm.protocol.web_search import (
    citation_titles,
    search_blocks,
    search_query,
    search_results,
    server_tool_id,
    url_citation,
)

__all__ = [
    "ERROR_STATUS",
    "INCOMPLETE_REASONS",
    "ResponsesStreamDecoder",
    "error_from_failure",
    "message_from_response",
    "usage_from_responses",
]

log = logging.getLogger(__name__)


def message_from_response(
    response: dict[str, Any], target: Target, *, thinking: bool = True
) -> dict[str, Any]:
    """The Anthropic Message for a non-streaming Responses answer (`thinking=False`: the
    client switched thinking off, reasoning items are left out)."""
    if response.get("status") == "failed" or isinstance(response.get("error"), dict):
        raise error_from_failure(response.get("error"))
    content: list[dict[str, Any]] = []
    tool_use = refusal = False
    searches = 0
    titles = citation_titles(response.get("output"))
    for item in response.get("output") or ():
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "reasoning":
            text, encrypted = reasoning_text(item), item.get("encrypted_content")
            if thinking and (text or encrypted):
                signature = pack_reasoning(str(item.get("id") or ""), encrypted)
                content.append({"type": "thinking", "thinking": text, "signature": signature})
        elif kind == "message":
            for part in item.get("content") or ():
                texts = part_texts([part], "output_text", "refusal")
                refusal = refusal or (bool(texts) and part.get("type") == "refusal")
                content.extend(_text_block(t, part) for t in texts)
        elif kind == "web_search_call":
            query = search_query(item)
            if query is None:
                log.debug("dropped a web_search_call that was not a search")
                continue
            searches += 1
            call = server_tool_id(str(item.get("id") or ""))
            content.extend(search_blocks(call, query, search_results(item, titles)))
        elif kind == "function_call":
            tool_use = True
            content.append(
                {
                    "type": "tool_use",
                    "id": target.client_tool_id(item.get("call_id") or new_tool_id()),
                    "name": target.client_tool_name(item.get("name") or ""),
                    "input": tool_input(item.get("arguments")),
                }
            )
        else:
            log.debug("dropped a %s output item", kind)
    message = anthropic_message(
        target.requested,
        content,
        stop_reason(response, tool_use, refusal),
        None,
        usage_from_responses(response.get("usage")),
        searches,
    )
    return answer_stub_calls(message, target)


def _text_block(text: str, part: dict[str, Any]) -> dict[str, Any]:
    """A text block, with the part's `url_citation` annotations as its citations."""
    block: dict[str, Any] = {"type": "text", "text": text}
    citations = [url_citation(text, a) for a in part.get("annotations") or ()]
    if any(citations):
        block["citations"] = [c for c in citations if c]
    return block
