"""Anthropic Messages request -> OpenAI Responses request (pure).

The mapping is ../shared/reference/dialects.md A1 (docs/backends/responses.md sums it up):
the system prompt becomes `instructions`, the history becomes input items (messages,
`function_call`, `function_call_output`, and the `reasoning` items vdm carried through the
client in thinking signatures), tools are flat function tools, and thinking/effort become
`reasoning`. Requests are stateless (`store: false`): the reasoning the model needs on the next
turn travels back encrypted, inside the thinking block's `vdm-rs1:` signature.

The Responses API is strict about history: a reasoning item must be followed by its output
item, every `function_call` needs its `function_call_output` and every output its call, and
`call_id`s and tool names have length and character limits. The encoder repairs what a client
may send that breaks those rules rather than let the provider answer 400.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from vdm.protocol.anthropic import (
    Base64Source,
    ContentSource,
    DocumentBlock,
    FileSource,
    ImageBlock,
    MessagesRequest,
    PlainTextSource,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    UrlSource,
)
from vdm.protocol.capabilities import ModelCaps
from vdm.protocol.codec import Target
from vdm.protocol.errors import VdmError
from vdm.protocol.openai_from_anthropic import (
    TOOL_ERROR_PREFIX,
    identity,
    image_url,
    system_text,
    tool_name,
)
from vdm.protocol.signatures import unpack_reasoning
from vdm.protocol.translation import (
    FORMAT_NAME,
    check,
    client_tools,
    output_schema,
    result_content,
    strict_compatible,
)

log = logging.getLogger(__name__)

#: `call_id` is at most 64 characters ("string_above_max_length" otherwise).
_MAX_CALL_ID = 64
#: `max_output_tokens` below 16 is a 400 ("integer_below_min_value").
MIN_OUTPUT_TOKENS = 16
#: What a function call whose result the client never sent gets as its output.
INTERRUPTED = TOOL_ERROR_PREFIX + "tool call was interrupted"
_TOOL_CHOICE = {"auto": "auto", "any": "required", "none": "none"}
#: Claude Code's thinking budget -> effort (dialects.md A1).
_BUDGET_EFFORTS = ((4096, "low"), (16384, "medium"))


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
    body["input"] = _Input(target, replay=replay).build(req)

    max_tokens = target.output_limit(req.max_tokens)
    if max_tokens is not None:
        body["max_output_tokens"] = max(max_tokens, MIN_OUTPUT_TOKENS)

    if caps.sampling:
        if req.temperature is not None:
            body["temperature"] = req.temperature
        if req.top_p is not None:
            body["top_p"] = req.top_p
    if req.stop_sequences:
        log.debug("dropped stop_sequences: the Responses API has no stop parameter")

    tools = _tools(req, target)
    if tools:
        body["tools"] = tools
        choice = req.tool_choice
        if choice is not None:
            if choice.type == "tool":
                if not choice.name:
                    raise VdmError(400, "tool_choice.name: required when tool_choice.type is tool")
                body["tool_choice"] = {"type": "function", "name": tool_name(choice.name, target)}
            else:
                body["tool_choice"] = _TOOL_CHOICE[choice.type]
        disabled = choice is not None and bool(choice.disable_parallel_tool_use)
        body["parallel_tool_calls"] = not disabled

    if reasoning:
        body["reasoning"] = reasoning
    if thinks:
        # Stateless reasoning: the encrypted items come back in the thinking signatures.
        body["include"] = ["reasoning.encrypted_content"]
    body["store"] = False

    schema = output_schema(req)
    if schema is not None:
        # Structured outputs; strict where OpenAI's strict mode takes the schema as it is.
        text_format = {
            "type": "json_schema",
            "name": FORMAT_NAME,
            "schema": schema,
            "strict": strict_compatible(schema),
        }
        body["text"] = {"format": text_format}

    if req.metadata is not None and req.metadata.user_id:
        user, session = identity(req.metadata.user_id)
        if caps.prompt_cache_key:
            # OpenAI's own fields: `user` is deprecated there in favour of these two.
            body["safety_identifier"] = _hashed(user)
            if session:
                body["prompt_cache_key"] = session
        else:
            body["user"] = user
    if req.stream:
        body["stream"] = True
    for key in caps.rejects.intersection(body):
        del body[key]
        log.debug("dropped %r: the provider refuses it", key)
    return body


# --- request-level settings -------------------------------------------------------------------


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
        wanted = next((e for limit, e in _BUDGET_EFFORTS if thinking.budget_tokens < limit), "high")
        return caps.effort(wanted)
    return caps.effort("medium")


def _hashed(user: str) -> str:
    """`safety_identifier` must not identify the user: a sha256 hex digest (64 chars)."""
    if len(user) == 64 and all(c in "0123456789abcdef" for c in user):
        return user  # already identity()'s hash
    return hashlib.sha256(user.encode()).hexdigest()


def _tools(req: MessagesRequest, target: Target) -> list[dict[str, Any]]:
    tools = []
    for tool in client_tools(req):
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
    return tools


def call_id(tool_id: str, target: Target) -> str:
    """A `call_id` of at most 64 characters (ids from other providers may be longer, e.g.
    ones that carry a Gemini thought signature), recorded in `target.tool_ids`."""
    if len(tool_id) <= _MAX_CALL_ID:
        return tool_id
    short = "call_" + hashlib.sha256(tool_id.encode()).hexdigest()[: _MAX_CALL_ID - 5]
    target.tool_ids[short] = tool_id
    return short


# --- input items ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Input:
    """Builds the `input` list, keeping the pairing rules of the Responses API."""

    target: Target
    #: Replay vdm's reasoning items (only when this request reasons).
    replay: bool
    items: list[dict[str, Any]] = field(default_factory=list)
    #: call_ids of function calls still waiting for their output.
    open_calls: list[str] = field(default_factory=list)
    #: Developer items held back so they never sit between a call and its output.
    held: list[dict[str, Any]] = field(default_factory=list)

    def build(self, req: MessagesRequest) -> list[dict[str, Any]]:
        for message in req.messages:
            content = message.content
            if message.role == "system":
                text = content if isinstance(content, str) else _joined_text(content)
                item = _message("developer", [_input_text(text)])
                (self.held if self.open_calls else self.items).append(item)
            elif message.role == "user":
                self._user(content)
            else:
                self._close_calls()
                self._assistant(content)
        self._close_calls()
        return self.items

    def _close_calls(self) -> None:
        """Outputs for the calls the client answered nothing to, then held developer items."""
        for pending in self.open_calls:
            log.debug("function call %s had no tool_result: marked interrupted", pending)
            self.items.append(_call_output(pending, INTERRUPTED))
        self.open_calls.clear()
        self.items.extend(self.held)
        self.held.clear()

    # -- user turns ----------------------------------------------------------------------------

    def _user(self, content: str | list[Any]) -> None:
        if isinstance(content, str):
            self._close_calls()
            if content:
                self.items.append(_message("user", [_input_text(content)]))
            return
        parts: list[dict[str, Any]] = []
        for block in content:
            if isinstance(block, ToolResultBlock):
                upstream = call_id(block.tool_use_id, self.target)
                if upstream in self.open_calls:
                    self.open_calls.remove(upstream)
                    self.items.append(_call_output(upstream, _tool_output(block, self.target)))
                else:
                    # An output without its call is a 400: keep what it says as user text.
                    log.debug("tool_result for unknown call %s sent as text", block.tool_use_id)
                    parts.append(_input_text(_orphan_result_text(block, self.target)))
            elif isinstance(block, TextBlock):
                if block.text:
                    parts.append(_input_text(block.text))
            elif isinstance(block, ImageBlock):
                parts.append(_image(block))
            elif isinstance(block, DocumentBlock):
                parts.extend(_document(block))
            else:
                log.debug("dropped a %s block from a user turn", getattr(block, "type", "?"))
        self._close_calls()
        if parts:
            self.items.append(_message("user", parts))

    # -- assistant turns -----------------------------------------------------------------------

    def _assistant(self, content: str | list[Any]) -> None:
        if isinstance(content, str):
            if content:
                self.items.append(_message("assistant", [_output_text(content)]))
            return
        turn: list[dict[str, Any]] = []
        texts: list[dict[str, Any]] = []
        for block in content:
            if isinstance(block, TextBlock):
                if block.text:
                    texts.append(_output_text(block.text))
                continue
            if texts:
                turn.append(_message("assistant", texts))
                texts = []
            if isinstance(block, ToolUseBlock):
                upstream = call_id(block.id, self.target)
                turn.append(
                    {
                        "type": "function_call",
                        "call_id": upstream,
                        "name": tool_name(block.name, self.target),
                        "arguments": json.dumps(block.input, ensure_ascii=False),
                    }
                )
                self.open_calls.append(upstream)
            elif isinstance(block, ThinkingBlock):
                item = self._reasoning(block)
                if item is not None:
                    turn.append(item)
            else:
                # redacted_thinking and server tool blocks mean nothing to OpenAI.
                log.debug("dropped a %s block from an assistant turn", block.type)
        if texts:
            turn.append(_message("assistant", texts))
        # A reasoning item must be followed by an output item of its turn.
        for i, item in enumerate(turn):
            if item["type"] != "reasoning":
                self.items.append(item)
            elif i + 1 < len(turn) and turn[i + 1]["type"] != "reasoning":
                self.items.append(item)
            else:
                log.debug("dropped reasoning item %s: no output item follows it", item["id"])

    def _reasoning(self, block: ThinkingBlock) -> dict[str, Any] | None:
        """The reasoning item a vdm-rs1 signature carries; anything else (Anthropic's own
        signatures, other vdm carriers) is not OpenAI's to verify and is dropped."""
        unpacked = unpack_reasoning(block.signature)
        if unpacked is None or not self.replay:
            return None
        item_id, encrypted = unpacked
        if not encrypted:
            # With store:false an item the provider cannot decrypt is a 404.
            return None
        summary = [{"type": "summary_text", "text": block.thinking}] if block.thinking else []
        return {
            "type": "reasoning",
            "id": item_id,
            "summary": summary,
            "encrypted_content": encrypted,
        }


# --- parts ------------------------------------------------------------------------------------


def _message(role: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": content}


def _input_text(text: str) -> dict[str, Any]:
    return {"type": "input_text", "text": text}


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text}


def _call_output(upstream_id: str, output: str | list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": upstream_id, "output": output}


def _joined_text(blocks: list[Any]) -> str:
    return "\n\n".join(b.text for b in blocks if isinstance(b, TextBlock))


def _tool_output(block: ToolResultBlock, target: Target) -> str | list[dict[str, Any]]:
    """A string when the result is text only; input parts when it carries images or files."""
    content = result_content(block, lambda name: tool_name(name, target))
    parts: list[dict[str, Any]] = []
    if isinstance(content, str):
        parts.append(_input_text(content))
    elif content is not None:
        for item in content:
            if isinstance(item, TextBlock):
                parts.append(_input_text(item.text))
            elif isinstance(item, ImageBlock):
                parts.append(_image(item))
            elif isinstance(item, DocumentBlock):
                parts.extend(_document(item))
            else:
                log.debug("dropped a %s block from a tool result", item.type)
    prefix = TOOL_ERROR_PREFIX if block.is_error else ""
    if all(p["type"] == "input_text" for p in parts):
        return prefix + "\n".join(p["text"] for p in parts)
    if prefix:
        parts.insert(0, _input_text(prefix.rstrip()))
    return parts


def _orphan_result_text(block: ToolResultBlock, target: Target) -> str:
    output = _tool_output(block, target)
    text = output if isinstance(output, str) else "\n".join(p.get("text", "") for p in output)
    return f"[result of tool call {block.tool_use_id}]\n{text}"


def _image(block: ImageBlock) -> dict[str, Any]:
    return {"type": "input_image", "image_url": image_url(block), "detail": "auto"}


def _document(block: DocumentBlock) -> list[dict[str, Any]]:
    source = block.source
    label = f"{block.title}\n\n" if block.title else ""
    if isinstance(source, PlainTextSource):
        return [_input_text(label + source.data)]
    if isinstance(source, ContentSource):
        if isinstance(source.content, str):
            return [_input_text(label + source.content)]
        return [
            _input_text(item.text) if isinstance(item, TextBlock) else _image(item)
            for item in source.content
        ]
    filename = block.title or "document.pdf"
    if isinstance(source, Base64Source):
        data = f"data:{source.media_type};base64,{source.data}"
        return [{"type": "input_file", "filename": filename, "file_data": data}]
    if isinstance(source, UrlSource):
        return [{"type": "input_file", "file_url": source.url}]
    assert isinstance(source, FileSource)
    raise VdmError(
        400, "document.source: file sources are not supported by OpenAI-format providers"
    )
