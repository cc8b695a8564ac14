"""A fake OpenAI Responses API upstream: a real HTTP/1.1 server on loopback, strict like the real
one.

It inherits the loopback server, request recording and scripting of
:class:`~tests.fakes.openai_upstream.FakeOpenAI`::

    with FakeResponses() as fake:
        fake.enqueue(responses_reply(reasoning=["Plan"], tool_calls=[("Bash", '{"cmd":"ls"}')]))
        ...  # point vdm at fake.base_url (…/v1)
        assert fake.last.path == "/v1/responses"

``POST …/responses`` is answered only if :func:`check_request` finds nothing the real API
rejects; otherwise with the real status and error (``{"error": {message, type, param,
code}}``), recorded in :attr:`FakeResponses.rejected`. The rules and their real messages:

* unknown top-level parameters (``messages``, ``max_tokens``, ``max_completion_tokens``, Chat's
  ``stream_options.include_usage`` is fine): ``Unknown parameter: 'messages'.``;
* function tools in Chat's nested shape: ``Missing required parameter: 'tools[0].name'.``;
  names outside ``^[a-zA-Z0-9_-]+$`` or longer than 64; ``strict: true`` with a schema strict
  mode cannot take (an omitted ``strict`` is accepted: the API then tries strict mode itself);
* structured outputs (``text.format`` of type ``json_schema``) without ``name``
  (``Missing required parameter: 'text.format.name'.``), or ``strict: true`` with a schema
  strict mode cannot take (``Invalid schema for response_format 'output': In context=(),
  'additionalProperties' is required to be supplied and to be false.``, code
  ``invalid_json_schema``);
* ``temperature`` / ``top_p`` on reasoning models, ``reasoning.effort`` on the others or with a
  value the model does not take, ``max_output_tokens`` below 16;
* ``reasoning.summary`` when :attr:`FakeResponses.verified_org` is False: ``Your organization
  must be verified to generate reasoning summaries. …`` (param ``reasoning.summary``, code
  ``unsupported_value``);
* hosted tools: an Anthropic server tool type (``web_search_20250305``), a ``web_search``
  tool with keys it does not take (``filters`` takes ``allowed_domains`` only,
  ``user_location.type`` is ``approximate``), ``web_search`` with ``minimal`` effort; an
  ``include`` value the API does not list;
* input items: content parts of unknown types (Chat's ``text`` / ``image_url``), a reasoning
  item without ``summary``, with ``status``, without ``encrypted_content`` under
  ``store: false`` (404), with encrypted content this fake never issued, or not followed by
  an output item of its turn; a ``function_call_output`` without its call, a
  ``function_call`` without its output; ``call_id`` longer than 64.

Replies echo what the request asked for, like the real API: reasoning items carry
``encrypted_content`` only when ``include`` asks for it and summaries only when
``reasoning.summary`` is set; web searches (``responses_reply(searches=…)``) run only when
the request has the ``web_search`` tool, with ``action.sources`` only when ``include`` asks
for them. Streams use the real framing (``event: <type>`` lines, a
``sequence_number`` per event, no ``[DONE]``).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from tests.fakes.chat_rules import strict_schema_problem
from tests.fakes.openai_upstream import (
    FAKE_CREATED,
    FakeOpenAI,
    JsonReply,
    Recorded,
    Reply,
    ReplySource,
    SseReply,
    ToolCallSpec,
    _dumps,
    _encode_event,
    _estimate_tokens,
    _split_text,
    auto_reply,
)

__all__ = [
    "FakeResponses",
    "ResponsesSseReply",
    "check_request",
    "encrypted_content",
    "function_call_item",
    "message_item",
    "reasoning_item",
    "response_events",
    "response_object",
    "responses_error",
    "responses_reply",
]

DEFAULT_MODEL = "gpt-5.6-terra"
_DEFAULT_TEXT = "Hello from fake Responses"
_MODELS = JsonReply(
    {
        "object": "list",
        "data": [
            {"id": m, "object": "model", "created": FAKE_CREATED, "owned_by": "system"}
            for m in ("gpt-5.6-terra", "gpt-5.6-luna", "gpt-5.4", "o3", "gpt-4o", "gpt-4.1")
        ],
    }
)

# --------------------------------------------------------------------------------------------
# Builders: pure functions producing realistic Responses objects and events
# --------------------------------------------------------------------------------------------


def _hex(*parts: object, n: int = 48) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:n]


def encrypted_content(item_id: str) -> str:
    """The opaque blob the fake issues for a reasoning item (Fernet-looking, like OpenAI's);
    a function of the id, so the fake can verify a replay without keeping state."""
    digest = hashlib.sha256(f"fake-reasoning:{item_id}".encode()).digest() * 3
    return "gAAAAAB" + base64.urlsafe_b64encode(digest).decode()


def reasoning_item(
    summary: Sequence[str] = (), *, id: str | None = None, encrypted: bool = True
) -> dict[str, Any]:
    item_id = id or "rs_" + _hex("rs", *summary)
    item: dict[str, Any] = {
        "id": item_id,
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": s} for s in summary],
    }
    if encrypted:
        item["encrypted_content"] = encrypted_content(item_id)
    return item


def message_item(
    text: str | None = _DEFAULT_TEXT,
    *,
    refusal: str | None = None,
    id: str | None = None,
    annotations: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if text:
        notes = [dict(a) for a in annotations]
        content.append({"type": "output_text", "annotations": notes, "logprobs": [], "text": text})
    if refusal:
        content.append({"type": "refusal", "refusal": refusal})
    return {
        "id": id or "msg_" + _hex("msg", text, refusal),
        "type": "message",
        "status": "completed",
        "content": content,
        "role": "assistant",
    }


def web_search_call_item(
    query: str, urls: Sequence[str], *, sources: bool, id: str | None = None
) -> dict[str, Any]:
    """A finished `web_search_call` (a search action); `action.sources` only when the request
    asked for them (`include: ["web_search_call.action.sources"]`), as on OpenAI."""
    action: dict[str, Any] = {"type": "search", "query": query}
    if sources:
        action["sources"] = [{"type": "url", "url": u} for u in urls]
    return {
        "id": id or "ws_" + _hex("ws", query),
        "type": "web_search_call",
        "status": "completed",
        "action": action,
    }


def url_citation(url: str, title: str, start: int, end: int) -> dict[str, Any]:
    """An `output_text` annotation citing `url` for the text `[start:end]`."""
    return {
        "type": "url_citation",
        "start_index": start,
        "end_index": end,
        "url": url,
        "title": title,
    }


def function_call_item(
    name: str, arguments: str, *, call_id: str | None = None, id: str | None = None
) -> dict[str, Any]:
    return {
        "id": id or "fc_" + _hex("fc", name, arguments),
        "type": "function_call",
        "status": "completed",
        "arguments": arguments,
        "call_id": call_id or "call_" + _hex("call", name, arguments, n=24),
        "name": name,
    }


def responses_usage(
    input_tokens: int = 12,
    output_tokens: int = 6,
    *,
    cached_tokens: int = 0,
    reasoning_tokens: int = 0,
) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached_tokens},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": input_tokens + output_tokens,
    }


def response_object(
    output: Sequence[Mapping[str, Any]],
    *,
    model: str = DEFAULT_MODEL,
    status: str = "completed",
    usage: Mapping[str, Any] | None = None,
    incomplete_reason: str | None = None,
    error: Mapping[str, Any] | None = None,
    id: str | None = None,
) -> dict[str, Any]:
    """A whole ``response`` object (the non-streaming answer, and the terminal events' payload)."""
    if usage is None and status != "in_progress":
        usage = responses_usage(output_tokens=_estimate_tokens(_dumps(list(output)).decode()))
    return {
        "id": id or "resp_" + _hex("resp", _dumps(list(output))),
        "object": "response",
        "created_at": FAKE_CREATED,
        "status": status,
        "background": False,
        "error": dict(error) if error else None,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": [dict(item) for item in output],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": "medium", "summary": None},
        "store": False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": dict(usage) if usage else None,
        "user": None,
        "metadata": {},
    }


def _item_events(
    index: int, item: Mapping[str, Any], pieces: int | None, arg_pieces: int
) -> list[dict[str, Any]]:
    """The events of one output item, from `output_item.added` to `output_item.done`."""
    kind, item_id = item["type"], item["id"]
    at = {"item_id": item_id, "output_index": index}
    events: list[dict[str, Any]] = []
    if kind == "reasoning":
        # The `added` copy carries no summary yet (and, as on OpenAI, its encrypted content
        # may be incomplete: only the `done` one is to be kept).
        added = dict(item, summary=[])
        if "encrypted_content" in item:
            added["encrypted_content"] = item["encrypted_content"][:24]
        events.append({"type": "response.output_item.added", "output_index": index, "item": added})
        for n, part in enumerate(item["summary"]):
            empty = {"type": "summary_text", "text": ""}
            events.append(
                {
                    "type": "response.reasoning_summary_part.added",
                    **at,
                    "summary_index": n,
                    "part": empty,
                }
            )
            for piece in _split_text(part["text"], pieces):
                events.append(
                    {
                        "type": "response.reasoning_summary_text.delta",
                        **at,
                        "summary_index": n,
                        "delta": piece,
                        "obfuscation": "x3",
                    }
                )
            events.append(
                {
                    "type": "response.reasoning_summary_text.done",
                    **at,
                    "summary_index": n,
                    "text": part["text"],
                }
            )
            events.append(
                {
                    "type": "response.reasoning_summary_part.done",
                    **at,
                    "summary_index": n,
                    "part": part,
                }
            )
    elif kind == "message":
        added = dict(item, status="in_progress", content=[])
        events.append({"type": "response.output_item.added", "output_index": index, "item": added})
        for n, part in enumerate(item["content"]):
            where = {**at, "content_index": n}
            refusal = part["type"] == "refusal"
            empty = {"type": "refusal", "refusal": ""} if refusal else dict(part, text="")
            events.append({"type": "response.content_part.added", **where, "part": empty})
            text = part["refusal"] if refusal else part["text"]
            kind_delta = "response.refusal.delta" if refusal else "response.output_text.delta"
            for piece in _split_text(text, pieces):
                extra = {} if refusal else {"logprobs": [], "obfuscation": "q"}
                events.append({"type": kind_delta, **where, "delta": piece, **extra})
            for k, note in enumerate(part.get("annotations") or ()):
                events.append(
                    {
                        "type": "response.output_text.annotation.added",
                        **where,
                        "annotation_index": k,
                        "annotation": dict(note),
                    }
                )
            if refusal:
                events.append({"type": "response.refusal.done", **where, "refusal": text})
            else:
                events.append(
                    {"type": "response.output_text.done", **where, "text": text, "logprobs": []}
                )
            events.append({"type": "response.content_part.done", **where, "part": dict(part)})
    elif kind == "function_call":
        added = dict(item, status="in_progress", arguments="")
        events.append({"type": "response.output_item.added", "output_index": index, "item": added})
        for piece in _split_text(item["arguments"], arg_pieces):
            events.append(
                {
                    "type": "response.function_call_arguments.delta",
                    **at,
                    "delta": piece,
                    "obfuscation": "z",
                }
            )
        events.append(
            {
                "type": "response.function_call_arguments.done",
                **at,
                "name": item["name"],
                "arguments": item["arguments"],
            }
        )
    elif kind == "web_search_call":
        # The `added` copy has no action yet; the search runs between the progress events.
        added = {"id": item_id, "type": kind, "status": "in_progress"}
        events.append({"type": "response.output_item.added", "output_index": index, "item": added})
        for step in ("in_progress", "searching", "completed"):
            events.append({"type": f"response.web_search_call.{step}", **at})
    else:
        events.append(
            {"type": "response.output_item.added", "output_index": index, "item": dict(item)}
        )
    events.append({"type": "response.output_item.done", "output_index": index, "item": dict(item)})
    return events


def response_events(
    output: Sequence[Mapping[str, Any]],
    *,
    model: str = DEFAULT_MODEL,
    pieces: int | None = None,
    arg_pieces: int = 3,
    status: str = "completed",
    usage: Mapping[str, Any] | None = None,
    incomplete_reason: str | None = None,
    error: Mapping[str, Any] | None = None,
    id: str | None = None,
    shape: str = "streamed",
) -> list[dict[str, Any]]:
    """A streamed response, event by event, as OpenAI sends it: ``response.created``,
    ``response.in_progress``, every item's events, then ``response.completed`` (or
    ``response.incomplete`` / ``response.failed`` for that ``status``), each with its
    ``sequence_number``.

    ``shape`` is how the items come, as Responses-compatible servers do: ``"streamed"``
    (OpenAI: ``added``, deltas, ``done``), ``"whole"`` (one ``output_item.done`` per item, never
    announced) or ``"completed-only"`` (no item events: the output is in the terminal event)."""
    final = response_object(
        output,
        model=model,
        status=status,
        usage=usage,
        incomplete_reason=incomplete_reason,
        error=error,
        id=id,
    )
    start = dict(final, status="in_progress", output=[], usage=None, error=None)
    start["incomplete_details"] = None
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": start},
        {"type": "response.in_progress", "response": start},
    ]
    for index, item in enumerate(output):
        if shape == "streamed":
            events.extend(_item_events(index, item, pieces, arg_pieces))
        elif shape == "whole":
            events.append(
                {"type": "response.output_item.done", "output_index": index, "item": dict(item)}
            )
    terminal = {"completed": "response.completed", "incomplete": "response.incomplete"}
    events.append({"type": terminal.get(status, "response.failed"), "response": final})
    return [{**event, "sequence_number": n} for n, event in enumerate(events)]


def responses_error(
    status: int,
    message: str,
    *,
    type_: str | None = None,
    param: str | None = None,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JsonReply:
    """An error in OpenAI's shape: ``{"error": {message, type, param, code}}``."""
    type_ = type_ or ("server_error" if status >= 500 else "invalid_request_error")
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JsonReply(body, status=status, headers=headers)


@dataclass(frozen=True, eq=False)
class ResponsesSseReply(SseReply):
    """An :class:`SseReply` in the Responses framing: ``event: <type>`` then ``data: <json>``;
    no ``[DONE]`` (the stream ends after its terminal event)."""

    done: bool = False

    @cached_property
    def _event_bytes(self) -> list[bytes]:
        return [
            b"event: " + str(e["type"]).encode() + b"\ndata: " + _dumps(e) + b"\n\n"
            if isinstance(e, Mapping)
            else _encode_event(e)
            for e in self.events
        ]


def _asked(request: Recorded) -> dict[str, Any]:
    data = request.json
    return data if isinstance(data, dict) else {}


def responses_reply(
    text: str | None = None,
    *,
    reasoning: Sequence[str] | None = None,
    tool_calls: Sequence[ToolCallSpec] = (),
    refusal: str | None = None,
    status: str = "completed",
    incomplete_reason: str | None = None,
    error: Mapping[str, Any] | None = None,
    usage: Mapping[str, Any] | None = None,
    pieces: int | None = None,
    arg_pieces: int = 3,
    shape: str = "streamed",
    searches: Sequence[tuple[str, Sequence[str]]] = (),
    citations: Sequence[Mapping[str, Any]] = (),
) -> Callable[[Recorded], Reply]:
    """A scripted answer that adapts to the request as the real API does: a stream iff
    ``stream: true``, the requested model echoed, and the reasoning item (``reasoning``: its
    summary parts) with ``encrypted_content`` only if ``include`` asks for it and its summary
    only if ``reasoning.summary`` is set. Ids differ per request (they derive from the body).
    ``shape``: how a stream sends its items (:func:`response_events`). ``searches``:
    ``(query, urls)`` web searches run before the answer, only when the request has the
    ``web_search`` tool (the model cannot search otherwise), with their sources only when
    ``include`` asks for them; ``citations``: the text's ``url_citation`` annotations."""

    def reply(request: Recorded) -> Reply:
        asked = _asked(request)
        salt = _hex(request.body, n=12)
        output: list[dict[str, Any]] = []
        can_search = any(t.get("type") == "web_search" for t in asked.get("tools") or ())
        with_sources = "web_search_call.action.sources" in (asked.get("include") or ())
        for n, (query, urls) in enumerate(searches if can_search else ()):
            output.append(
                web_search_call_item(query, urls, sources=with_sources, id=f"ws_{salt}{n:02d}")
            )
        if reasoning is not None:
            wants_summary = bool((asked.get("reasoning") or {}).get("summary"))
            include = asked.get("include") or []
            output.append(
                reasoning_item(
                    list(reasoning) if wants_summary else [],
                    id=f"rs_{salt}{_hex('rs', *reasoning, n=36)}",
                    encrypted="reasoning.encrypted_content" in include,
                )
            )
        if text or refusal:
            output.append(
                message_item(
                    text,
                    refusal=refusal,
                    id=f"msg_{salt}{_hex(text, n=36)}",
                    annotations=citations if can_search else (),
                )
            )
        for n, spec in enumerate(tool_calls):
            name, arguments = spec[0], spec[1]
            call = spec[2] if len(spec) == 3 else f"call_{salt}{n:02d}{_hex(name, n=10)}"
            output.append(
                function_call_item(name, arguments, call_id=str(call), id=f"fc_{salt}{n:02d}")
            )
        model = str(asked.get("model") or DEFAULT_MODEL)
        kwargs: dict[str, Any] = {
            "model": model,
            "status": status,
            "usage": usage,
            "incomplete_reason": incomplete_reason,
            "error": error,
            "id": f"resp_{salt}",
        }
        if asked.get("stream") is True:
            return ResponsesSseReply(
                response_events(output, pieces=pieces, arg_pieces=arg_pieces, shape=shape, **kwargs)
            )
        return JsonReply(response_object(output, **kwargs))

    return reply


def responses_auto_reply(request: Recorded) -> Reply:
    """The default answer: "Hello from fake Responses" (streamed iff asked)."""
    return responses_reply(_DEFAULT_TEXT)(request)


# --------------------------------------------------------------------------------------------
# What the real API rejects
# --------------------------------------------------------------------------------------------

#: Top-level parameters of `POST /v1/responses` (openai-python ResponseCreateParams).
PARAMETERS = frozenset(
    {
        # `client_metadata`: Codex 0.169 sends it to OpenAI's API on every turn.
        "access_programs", "background", "background_options", "client_metadata",
        "context_management",
        "conversation", "image", "include", "input", "instructions", "max_output_tokens",
        "max_tool_calls", "metadata", "model", "moderation", "parallel_tool_calls",
        "previous_response_id", "prompt", "prompt_cache_key", "prompt_cache_options",
        "prompt_cache_retention", "reasoning", "safety_identifier", "service_tier", "store",
        "stream", "stream_options", "temperature", "text", "tool_choice", "tools",
        "top_logprobs", "top_p", "truncation", "user",
    }
)  # fmt: skip
_PART_TYPES = (
    "input_text",
    "input_image",
    "output_text",
    "refusal",
    "input_file",
    "computer_screenshot",
    "summary_text",
)
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
#: The keys of a function tool (openai-python FunctionToolParam).
_TOOL_KEYS = frozenset(
    {
        "type", "name", "description", "parameters", "strict", "defer_loading",
        "allowed_callers", "output_schema", "async",
    }
)  # fmt: skip
#: The fake's own knowledge of which models reason, and the efforts each takes.
_REASONING_MODEL = re.compile(r"^(o\d|gpt-5(?!(\.\d+)?-chat)|gpt-([6-9]|\d\d))|codex")
_EFFORTS: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = (
    (re.compile(r"^o\d"), ("low", "medium", "high")),
    (re.compile(r"^gpt-5(-mini|-nano)?$|^gpt-5-\d{4}"), ("minimal", "low", "medium", "high")),
    (re.compile(r"^gpt-5\.1-codex-max"), ("low", "medium", "high", "xhigh")),
    (re.compile(r"^gpt-5\.1"), ("none", "low", "medium", "high")),
    # gpt-5.6 (sol, terra, luna) added `max`.
    (
        re.compile(r"^gpt-5\.([6-9]|\d\d)|^gpt-[6-9]"),
        ("none", "low", "medium", "high", "xhigh", "max"),
    ),
    (re.compile(r"^gpt-5\.\d"), ("none", "low", "medium", "high", "xhigh")),
)


class Rejection(Exception):
    """What the real API would answer instead."""

    def __init__(
        self, message: str, param: str | None = None, code: str | None = None, status: int = 400
    ) -> None:
        super().__init__(message)
        self.message, self.param, self.code, self.status = message, param, code, status

    def reply(self) -> JsonReply:
        return responses_error(self.status, self.message, param=self.param, code=self.code)


def _unknown(param: str) -> Rejection:
    return Rejection(f"Unknown parameter: '{param}'.", param, "unknown_parameter")


def _missing(param: str) -> Rejection:
    return Rejection(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


#: OpenAI's answer to `reasoning.summary` from an organization that is not verified
#: (continuedev/continue#12031, OpenHands/software-agent-sdk#987).
UNVERIFIED_SUMMARY = (
    "Your organization must be verified to generate reasoning summaries. Please go to: "
    "https://platform.openai.com/settings/organization/general and click on Verify "
    "Organization. If you just verified, it can take up to 15 minutes for access to propagate."
)


def check_request(body: Any, *, verified: bool = True) -> Rejection | None:
    """The error the real API answers `body` with, or None if it would accept it
    (`verified=False`: the key belongs to an organization that is not verified)."""
    try:
        _check(body, verified)
    except Rejection as rejection:
        return rejection
    return None


def _check(body: Any, verified: bool = True) -> None:
    if not isinstance(body, dict):
        raise Rejection("We could not parse the JSON body of your request.")
    for key in body:
        if key not in PARAMETERS:
            raise _unknown(key)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _missing("model")
    reasons = bool(_REASONING_MODEL.search(model))
    for key in ("temperature", "top_p"):
        if reasons and key in body:
            raise Rejection(
                f"Unsupported parameter: '{key}' is not supported with this model.", key
            )
    _check_reasoning(body.get("reasoning"), model, reasons)
    if not verified and (body.get("reasoning") or {}).get("summary"):
        raise Rejection(UNVERIFIED_SUMMARY, "reasoning.summary", "unsupported_value")
    limit = body.get("max_output_tokens")
    if isinstance(limit, int) and limit < 16:
        raise Rejection(
            "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, "
            f"but got {limit} instead.",
            "max_output_tokens",
            "integer_below_min_value",
        )
    names = _check_tools(body.get("tools") or [])
    choice = body.get("tool_choice")
    if (
        isinstance(choice, dict)
        and choice.get("type") == "function"
        and choice.get("name") not in names
    ):
        raise Rejection("Tool choice 'function' not found in 'tools' parameter.", "tool_choice")
    _check_text_format((body.get("text") or {}).get("format"))
    _check_include(body.get("include"), body)
    _check_input(body.get("input"), store=body.get("store", True) is not False)


def _check_text_format(fmt: Any) -> None:
    """Structured outputs (mavam/pi-web-providers#14, openai/openai-node#1404)."""
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return
    name = fmt.get("name")
    if not isinstance(name, str) or not name:
        raise _missing("text.format.name")
    if fmt.get("strict") is True:
        problem = strict_schema_problem(fmt.get("schema"))
        if problem:
            raise Rejection(
                f"Invalid schema for response_format '{name}': {problem}",
                "text.format.schema",
                "invalid_json_schema",
            )


def _check_reasoning(reasoning: Any, model: str, reasons: bool) -> None:
    if not isinstance(reasoning, dict):
        return
    effort = reasoning.get("effort")
    if effort is None:
        return
    if not reasons:
        raise Rejection(
            "Unsupported parameter: 'reasoning.effort' is not supported with this model.",
            "reasoning.effort",
            "unsupported_parameter",
        )
    for pattern, efforts in _EFFORTS:
        if pattern.search(model):
            if effort not in efforts:
                listed = ", ".join(f"'{e}'" for e in efforts[:-1]) + f", and '{efforts[-1]}'"
                raise Rejection(
                    f"Unsupported value: '{effort}' is not supported with the '{model}' model. "
                    f"Supported values are: {listed}.",
                    "reasoning.effort",
                    "unsupported_value",
                )
            return


def _check_tools(tools: list[Any]) -> set[str]:
    names: set[str] = set()
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if tool.get("type") != "function":
            _check_hosted_tool(tool, where)
            continue
        name = tool.get("name")
        if not isinstance(name, str):
            raise _missing(f"{where}.name")
        for key in tool:
            if key not in _TOOL_KEYS:
                raise _unknown(f"{where}.{key}")
        if len(name) > 64:
            raise Rejection(
                f"Invalid '{where}.name': string too long. Expected a string with maximum length "
                f"64, but got a string with length {len(name)} instead.",
                f"{where}.name",
                "string_above_max_length",
            )
        if not _TOOL_NAME.match(name):
            raise Rejection(
                f"Invalid '{where}.name': string does not match pattern. Expected a string that "
                "matches the pattern '^[a-zA-Z0-9_-]+$'.",
                f"{where}.name",
                "invalid_value",
            )
        if tool.get("strict", True) is not False:
            problem = strict_schema_problem(tool.get("parameters") or {})
            if problem:
                raise Rejection(
                    f"Invalid schema for function '{name}': {problem}",
                    "tools",
                    "invalid_function_parameters",
                )
        names.add(name)
    return names


#: Anthropic's server tool types, which OpenAI does not know (the other hosted types are not
#: checked: the API takes more than openai-python lists, Codex's `namespace` among them).
_ANTHROPIC_TOOL = re.compile(r"^[a-z_]+_\d{8}$")
_SEARCH_KEYS = frozenset(
    {"type", "filters", "user_location", "search_context_size", "external_web_access"}
)
#: `include` values the API takes (openai-python `ResponseIncludable`).
_INCLUDABLE = (
    "file_search_call.results", "web_search_call.results", "web_search_call.action.sources",
    "message.input_image.image_url", "computer_call_output.output.image_url",
    "code_interpreter_call.outputs", "reasoning.encrypted_content", "message.output_text.logprobs",
)  # fmt: skip


def _check_hosted_tool(tool: dict[str, Any], where: str) -> None:
    kind = tool.get("type")
    if not isinstance(kind, str) or _ANTHROPIC_TOOL.match(kind):
        raise Rejection(f"Invalid value: '{kind}'.", f"{where}.type", "invalid_value")
    if kind != "web_search":
        return
    for key in tool:
        if key not in _SEARCH_KEYS:
            raise _unknown(f"{where}.{key}")
    filters = tool.get("filters")
    if filters is not None:
        for key in filters:
            if key != "allowed_domains":
                raise _unknown(f"{where}.filters.{key}")
        if not isinstance(filters.get("allowed_domains", []), list):
            raise Rejection(
                f"Invalid type for '{where}.filters.allowed_domains': expected an array.",
                f"{where}.filters.allowed_domains",
                "invalid_type",
            )
    location = tool.get("user_location")
    if location is not None and location.get("type") != "approximate":
        raise Rejection(
            f"Invalid value: '{location.get('type')}'. Supported values are: 'approximate'.",
            f"{where}.user_location.type",
            "invalid_value",
        )


def _check_include(include: Any, body: dict[str, Any]) -> None:
    for i, value in enumerate(include if isinstance(include, list) else ()):
        if value not in _INCLUDABLE:
            listed = ", ".join(f"'{v}'" for v in _INCLUDABLE[:-1]) + f", and '{_INCLUDABLE[-1]}'"
            raise Rejection(
                f"Invalid value: '{value}'. Supported values are: {listed}.",
                f"include[{i}]",
                "invalid_value",
            )
    searches = any(t.get("type") == "web_search" for t in body.get("tools") or ())
    if searches and (body.get("reasoning") or {}).get("effort") == "minimal":
        # OpenAI's web search guide: not with minimal reasoning (the wording is unverified).
        raise Rejection(
            "The following tools cannot be used with reasoning.effort 'minimal': web_search.",
            "tools",
            "unsupported_value",
        )


def _check_input(items: Any, *, store: bool) -> None:
    if items is None or isinstance(items, str):
        return
    calls: dict[str, int] = {}
    answered: set[str] = set()
    for i, item in enumerate(items):
        where = f"input[{i}]"
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            _check_message(item, where)
        elif kind == "function_call":
            for key in ("call_id", "name", "arguments"):
                if not isinstance(item.get(key), str):
                    raise _missing(f"{where}.{key}")
            _check_call_id(item["call_id"], where)
            calls[item["call_id"]] = i
        elif kind == "function_call_output":
            call = item.get("call_id")
            if not isinstance(call, str):
                raise _missing(f"{where}.call_id")
            _check_call_id(call, where)
            if "output" not in item:
                raise _missing(f"{where}.output")
            if call not in calls:
                raise Rejection(
                    f"No tool call found for function call output with call_id {call}.", "input"
                )
            answered.add(call)
        elif kind == "reasoning":
            _check_reasoning_item(item, where, store, items[i + 1 : i + 2])
        else:
            raise Rejection(
                f"Invalid value: '{kind}'. Supported values are: 'message', 'reasoning', "
                "'function_call', 'function_call_output', and 'item_reference'.",
                f"{where}.type",
                "invalid_value",
            )
    for call in calls:
        if call not in answered:
            raise Rejection(f"No tool output found for function call {call}.", "input")


def _check_call_id(call: str, where: str) -> None:
    if len(call) > 64:
        raise Rejection(
            f"Invalid '{where}.call_id': string too long. Expected a string with maximum length "
            f"64, but got a string with length {len(call)} instead.",
            f"{where}.call_id",
            "string_above_max_length",
        )


def _check_message(item: dict[str, Any], where: str) -> None:
    if item.get("role") not in ("user", "assistant", "system", "developer"):
        raise Rejection(
            f"Invalid value: '{item.get('role')}'. Supported values are: 'user', 'assistant', "
            "'system', and 'developer'.",
            f"{where}.role",
            "invalid_value",
        )
    content = item.get("content")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _missing(f"{where}.content")
    for j, part in enumerate(content):
        kind = part.get("type")
        if kind not in _PART_TYPES:
            listed = ", ".join(f"'{t}'" for t in _PART_TYPES[:-1]) + f", and '{_PART_TYPES[-1]}'"
            raise Rejection(
                f"Invalid value: '{kind}'. Supported values are: {listed}.",
                f"{where}.content[{j}].type",
                "invalid_value",
            )
        if kind == "input_image" and not (part.get("image_url") or part.get("file_id")):
            raise _missing(f"{where}.content[{j}].image_url")


def _check_reasoning_item(
    item: dict[str, Any], where: str, store: bool, following: list[Any]
) -> None:
    item_id = item.get("id")
    if not isinstance(item_id, str):
        raise _missing(f"{where}.id")
    if "status" in item:
        raise _unknown(f"{where}.status")  # an output-only field
    if not isinstance(item.get("summary"), list):
        raise _missing(f"{where}.summary")
    encrypted = item.get("encrypted_content")
    if encrypted is None and not store:
        raise Rejection(
            f"Item with id '{item_id}' not found. Items are not persisted when `store` is set to "
            "false. Try again with `store` set to true, or remove this item from your input.",
            "input",
            status=404,
        )
    if encrypted is not None and encrypted != encrypted_content(item_id):
        raise Rejection(
            f"The encrypted content for item {item_id} could not be verified. Reason: Encrypted "
            "content could not be decrypted or parsed.",
            None,
            "invalid_encrypted_content",
        )
    after = following[0] if following else None
    follows = isinstance(after, dict) and (
        after.get("type") == "function_call"
        or (after.get("type", "message") == "message" and after.get("role") == "assistant")
    )
    if not follows:
        raise Rejection(
            f"Item '{item_id}' of type 'reasoning' was provided without its required following "
            "item.",
            "input",
        )


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class FakeResponses(FakeOpenAI):
    """A fake OpenAI upstream serving the Responses API on ``127.0.0.1`` (OS-picked port).

    Routes: ``POST …/responses`` (checked by :func:`check_request`, then scripted replies from
    :meth:`enqueue` / :attr:`default`, initially :func:`responses_auto_reply`), ``POST
    …/chat/completions`` (the Chat fake's replies, scripted with :meth:`enqueue_chat`), ``GET
    …/models``; anything else 404 in OpenAI's error shape.
    """

    _thread_name = "fake-responses"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, record: bool = True) -> None:
        super().__init__(host, port, record=record)
        self._default = responses_auto_reply
        self._chat: deque[ReplySource] = deque()
        #: The reply for ``POST …/chat/completions`` when nothing is queued with enqueue_chat.
        self.chat_default: ReplySource = auto_reply
        #: `(request, rejection)` for every Responses request the fake refused.
        self.rejected: list[tuple[Recorded, Rejection]] = []
        #: False: the key's organization is not verified, so `reasoning.summary` is refused.
        self.verified_org = True

    def enqueue_chat(self, *replies: ReplySource) -> None:
        """Queue replies for ``POST …/chat/completions`` (default: the Chat fake's)."""
        self._chat.extend(replies)

    @property
    def responses_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/responses")]

    def _route(self, request: Recorded) -> Reply:
        method, path = request.method, request.path
        if method == "POST" and path.endswith("/responses"):
            rejection = check_request(request.json, verified=self.verified_org)
            if rejection is not None:
                self.rejected.append((request, rejection))
                return rejection.reply()
            return self._next_reply(request)
        if method == "POST" and path.endswith("/chat/completions"):
            source = self._chat.popleft() if self._chat else self.chat_default
            return source(request) if callable(source) else source
        if method == "GET" and path.endswith("/models"):
            return _MODELS
        return self._error_reply(
            404, f"Unknown request URL: {method} {path}. Please check the URL."
        )
