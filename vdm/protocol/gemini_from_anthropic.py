"""Anthropic Messages request -> Gemini `generateContent` request (pure).

The mapping (docs/backends/gemini.md):

- `system` (minus Claude Code's billing header) -> `systemInstruction`; a `role: "system"`
  entry inside `messages` becomes text in a user content, placed after the function responses
  when it sits between a call and its result (Gemini pairs a model content's calls with the
  very next content).
- Messages -> `contents` with roles `user` / `model`; consecutive messages of one role share a
  content. Parts: text, `inlineData` (images, PDFs), `functionCall {name, args}` (no `id`:
  Gemini pairs by order), `functionResponse {name, response: {"output"|"error": …}}`.
- The N calls of a model content are answered by exactly N function responses, in call
  order, in the next user content; text beside them follows them. A result without its call
  becomes text; a call without its result gets an error response.
- Thought signatures travel back where Gemini put them (vdm/protocol/signatures.py): each
  tool_use id carries its call's signature; a thinking block signed `vdm-g1:` puts its
  signature on the next part (or on a signature-only part). Thinking text is not sent back.
  On models that sign their calls (Gemini 3), the first call of a step in the current turn
  that has no signature (another model's call) gets the documented stand-in. After Gemini
  refused a replayed signature (`target.degraded` has "skip-signatures") none is replayed:
  only the stand-in goes, on those first calls.
- Tools -> one `functionDeclarations` tool with `parametersJsonSchema`
  (vdm/protocol/gemini_native_schema.py); `tool_choice` -> `toolConfig`. Tool search results
  (`tool_reference`) become text naming the loaded tools.
- `generationConfig`: output limit, sampling, stop sequences, structured outputs
  (`output_config.format` -> `responseMimeType: application/json` + `responseJsonSchema`),
  and `thinkingConfig` sized as the model's capabilities say (`thinkingBudget` on 2.5,
  `thinkingLevel` on 3.x, never both).
- What has no Gemini equivalent is dropped or degraded as vdm/protocol/translation.py says.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from vdm.protocol.anthropic import (
    Base64Source,
    ContentSource,
    DocumentBlock,
    ImageBlock,
    MessagesRequest,
    PlainTextSource,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from vdm.protocol.capabilities import ModelCaps
from vdm.protocol.codec import Target
from vdm.protocol.errors import VdmError
from vdm.protocol.gemini_native_schema import native_parameters
from vdm.protocol.openai_from_anthropic import SKIP_SIGNATURE, system_text
from vdm.protocol.signatures import split_thought_id, unpack_thought
from vdm.protocol.translation import check, client_tools, output_schema, result_content

log = logging.getLogger(__name__)

_FUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}")
_NOT_NAME = re.compile(r"[^A-Za-z0-9_.:-]")
_MODES = {"auto": "AUTO", "any": "ANY", "none": "NONE", "tool": "ANY"}
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
#: A client's thinking budget -> the level it asks for (Gemini 3 sizes thinking by level).
_BUDGET_LEVELS = ((4096, "low"), (16384, "medium"))


def gemini_request_from_messages(req: MessagesRequest, target: Target) -> dict[str, Any]:
    """The `generateContent` body for `req` (the model goes in the URL, not the body)."""
    check(req, target)
    body: dict[str, Any] = {}
    system = system_text(req.system)
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    body["contents"] = _Contents(req, target).build()
    tools = client_tools(req)
    if tools:
        declarations = []
        for tool in tools:
            notes: set[str] = set()
            declaration: dict[str, Any] = {"name": function_name(tool.name, target)}
            if tool.description:
                declaration["description"] = tool.description
            declaration["parametersJsonSchema"] = native_parameters(tool.input_schema, notes)
            if notes:
                log.debug("tool %r schema for Gemini: %s", tool.name, ", ".join(sorted(notes)))
            declarations.append(declaration)
        body["tools"] = [{"functionDeclarations": declarations}]
        tool_config = _tool_config(req, target)
        if tool_config is not None:
            body["toolConfig"] = tool_config
    body["generationConfig"] = _generation_config(req, target)
    return body


def function_name(name: str, target: Target) -> str:
    """`name` as Gemini takes it (a letter or `_` first, then letters, digits, `_.:-`, at most
    64): Anthropic allows a leading digit or dash. Other names become `t_<name>_<hash>`,
    recorded so the answers' calls map back to the client's name."""
    if _FUNCTION_NAME.fullmatch(name):
        return name
    digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:8]
    wire = f"t_{_NOT_NAME.sub('_', name)[:53]}_{digest}"
    target.tool_names[wire] = name
    return wire


def _tool_config(req: MessagesRequest, target: Target) -> dict[str, Any] | None:
    choice = req.tool_choice
    if choice is None:
        return None
    config: dict[str, Any] = {"mode": _MODES[choice.type]}
    if choice.type == "tool":
        if not choice.name:
            raise VdmError(400, "tool_choice.name: required when tool_choice.type is tool")
        config["allowedFunctionNames"] = [function_name(choice.name, target)]
    if choice.disable_parallel_tool_use:
        log.debug("disable_parallel_tool_use has no Gemini equivalent: ignored")
    return {"functionCallingConfig": config}


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
            wanted = next((level for limit, level in _BUDGET_LEVELS if budget < limit), "high")
            config["thinkingLevel"] = caps.effort(wanted)
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


# --- contents ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Content:
    role: str
    parts: list[dict[str, Any]] = field(default_factory=list)
    #: Built from a message of the current turn (Gemini checks its calls' signatures).
    current: bool = False
    #: (client tool_use id, name) of each function call, in order.
    calls: list[tuple[str, str]] = field(default_factory=list)


class _Contents:
    """Builds `contents` from the messages, one pass."""

    def __init__(self, req: MessagesRequest, target: Target) -> None:
        self.req = req
        self.target = target
        self.signs = target.caps.thought_signatures
        #: Replay the signatures the history carries; off after Gemini refused one of them
        #: (minted under another key or model): then only the stand-in goes, where required.
        self.replay = "skip-signatures" not in target.degraded
        self.out: list[_Content] = []
        #: The calls of the last model content still waiting for their responses.
        self.waiting: list[tuple[str, str]] = []
        #: User parts (system text) that came between calls and their responses.
        self.deferred: list[dict[str, Any]] = []
        #: Index of the first message of the current turn (after the last user message that
        #: is not only tool results): Gemini validates thought signatures there.
        self.turn_start = 0
        for index, message in enumerate(req.messages):
            if message.role == "user" and not _has_tool_result(message.content):
                self.turn_start = index + 1

    def build(self) -> list[dict[str, Any]]:
        for index, message in enumerate(self.req.messages):
            current = index >= self.turn_start
            if message.role == "assistant":
                self._model(message.content, current)
            elif message.role == "user":
                self._user(message.content, current)
            else:
                system = message.content
                text = system if isinstance(system, str) else _join_text(system)
                if text:
                    self._system([{"text": text}], current)
        if self.deferred:
            self._append("user", self.deferred, False)
        contents = []
        for content in self.out:
            if content.role == "model" and content.current and self.signs:
                _stamp_first_call(content.parts)
            contents.append({"role": content.role, "parts": content.parts})
        if not contents:
            raise VdmError(400, "messages: every message is empty; there is nothing to send")
        return contents

    def _append(self, role: str, parts: list[dict[str, Any]], current: bool) -> _Content:
        last = self.out[-1] if self.out else None
        if last is not None and last.role == role:
            last.parts.extend(parts)
            last.current = last.current or current
            return last
        content = _Content(role, list(parts), current)
        self.out.append(content)
        return content

    def _system(self, parts: list[dict[str, Any]], current: bool) -> None:
        if self.waiting:
            self.deferred.extend(parts)  # never between the calls and their responses
        else:
            self._append("user", parts, current)

    # -- model ------------------------------------------------------------------------------

    def _model(self, content: str | list[Any], current: bool) -> None:
        if self.waiting:
            # The previous calls got no user message with their results: answer them so the
            # contents stay well-formed.
            self._user([], current)
        if isinstance(content, str):
            if content:
                self._append("model", [{"text": content}], current)
            return
        parts: list[dict[str, Any]] = []
        calls: list[tuple[str, str]] = []
        signature: str | None = None  # from a thinking block, for the next part
        # A thought's signature that a call of the step also carries goes back on that call
        # only (the decoder gives a call the signature of the thought before it).
        on_calls = {self._signature(b.id) for b in content if isinstance(b, ToolUseBlock)}
        for block in content:
            if isinstance(block, TextBlock):
                if not block.text:
                    continue
                part: dict[str, Any] = {"text": block.text}
            elif isinstance(block, ToolUseBlock):
                own = self._signature(block.id)
                name = function_name(block.name, self.target)
                part = {"functionCall": {"name": name, "args": block.input}}
                if own:
                    if signature and signature != own:  # keep the thinking's on its own part
                        parts.append({"text": "", "thoughtSignature": signature})
                    signature = own
                calls.append((block.id, name))
            elif isinstance(block, ThinkingBlock):
                # Only vdm's Gemini carrier means anything here; the text is not sent back.
                carried = unpack_thought(block.signature) if self.replay else None
                if carried and carried not in on_calls:
                    if signature:  # two in a row: the first keeps its own (empty) part
                        parts.append({"text": "", "thoughtSignature": signature})
                    signature = carried
                continue
            elif isinstance(block, RedactedThinkingBlock):
                continue
            else:
                log.debug("dropped a %s block from an assistant turn", getattr(block, "type", "?"))
                continue
            if signature:
                part["thoughtSignature"] = signature
                signature = None
            parts.append(part)
        if signature:
            parts.append({"text": "", "thoughtSignature": signature})
        if not parts:
            return
        model = self._append("model", parts, current)
        model.calls.extend(calls)
        self.waiting = model.calls if calls else self.waiting

    def _signature(self, tool_id: str) -> str | None:
        """The thought signature a tool_use id carries, if replayed."""
        return split_thought_id(tool_id)[1] if self.replay else None

    # -- user -------------------------------------------------------------------------------

    def _user(self, content: str | list[Any], current: bool) -> None:
        if isinstance(content, str):
            parts: list[dict[str, Any]] = [{"text": content}] if content else []
            results: list[ToolResultBlock] = []
        else:
            parts, results = _user_parts(content)
        responses: list[dict[str, Any]] = []
        moved: list[dict[str, Any]] = []  # images and PDFs that sat inside tool results
        target = self.target
        by_id = {r.tool_use_id: r for r in results}
        for call_id, name in self.waiting:
            result = by_id.pop(call_id, None)
            if result is None:
                result = next(
                    (
                        r
                        for i, r in by_id.items()
                        if split_thought_id(i)[0] == split_thought_id(call_id)[0]
                    ),
                    None,
                )
                if result is not None:
                    del by_id[result.tool_use_id]
            if result is None:
                log.debug("no tool_result for call %s: answering it with an error", call_id)
                responses.append(_response(name, "no result was given for this call", True))
            else:
                text = _result_text(result, moved, target)
                responses.append(_response(name, text, bool(result.is_error)))
        orphans = [
            {"text": f"[result of tool call {r.tool_use_id}]\n" + _result_text(r, moved, target)}
            for r in by_id.values()
        ]
        if orphans:
            log.debug("%d tool results without their call: sent as text", len(orphans))
        self.waiting = []
        all_parts = responses + self.deferred + moved + orphans + parts
        self.deferred = []
        if all_parts:
            self._append("user", all_parts, current)


def _has_tool_result(content: str | list[Any]) -> bool:
    return not isinstance(content, str) and any(isinstance(b, ToolResultBlock) for b in content)


def _join_text(blocks: list[Any]) -> str:
    return "\n\n".join(b.text for b in blocks if isinstance(b, TextBlock) and b.text)


def _stamp_first_call(parts: list[dict[str, Any]]) -> None:
    """Gemini 3 wants the first call of each step of the current turn signed; a call it did
    not make (another model's, in a session that switched model) gets the documented
    stand-in. Later calls of the step are never stamped."""
    first = next((p for p in parts if "functionCall" in p), None)
    if first is not None and "thoughtSignature" not in first:
        first["thoughtSignature"] = SKIP_SIGNATURE


def _response(name: str, text: str, is_error: bool) -> dict[str, Any]:
    return {
        "functionResponse": {"name": name, "response": {"error" if is_error else "output": text}}
    }


def _user_parts(blocks: list[Any]) -> tuple[list[dict[str, Any]], list[ToolResultBlock]]:
    parts: list[dict[str, Any]] = []
    results: list[ToolResultBlock] = []
    for block in blocks:
        if isinstance(block, ToolResultBlock):
            results.append(block)
        elif isinstance(block, TextBlock):
            if block.text:
                parts.append({"text": block.text})
        elif isinstance(block, ImageBlock):
            parts.append(_image_part(block))
        elif isinstance(block, DocumentBlock):
            parts.extend(_document_parts(block))
        elif isinstance(block, ThinkingBlock | RedactedThinkingBlock):
            continue
        else:
            log.debug("dropped a %s block from a user turn", getattr(block, "type", "?"))
    return parts, results


def _result_text(block: ToolResultBlock, moved: list[dict[str, Any]], target: Target) -> str:
    """A tool result as text; its images and PDFs go to `moved` (parts after the responses)."""
    content = result_content(block, lambda name: function_name(name, target))
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for item in content:
        if isinstance(item, TextBlock):
            texts.append(item.text)
            continue
        if isinstance(item, ImageBlock):
            found = [_image_part(item)]
        elif isinstance(item, DocumentBlock):
            found = _document_parts(item)
        else:
            log.debug("dropped a %s block from a tool result", item.type)
            continue
        texts.extend(p["text"] for p in found if "text" in p)
        media = [p for p in found if "text" not in p]
        if media:
            # A function response carries text only: the media follow the responses.
            moved.append({"text": f"[attachment from tool result {block.tool_use_id}]"})
            moved.extend(media)
            texts.append("[attached below]")
    return "\n".join(texts)


def _image_part(block: ImageBlock) -> dict[str, Any]:
    source = block.source
    if isinstance(source, Base64Source):
        return {"inlineData": {"mimeType": source.media_type, "data": source.data}}
    # Gemini reads URLs and Anthropic file ids neither: say what was there.
    where = getattr(source, "url", None) or getattr(source, "file_id", "")
    log.debug("an image by %s reference cannot be sent to Gemini: sent as text", source.type)
    return {"text": f"[image: {where}]"}


def _document_parts(block: DocumentBlock) -> list[dict[str, Any]]:
    source = block.source
    label = f"{block.title}\n\n" if block.title else ""
    if isinstance(source, PlainTextSource):
        return [{"text": label + source.data}]
    if isinstance(source, ContentSource):
        if isinstance(source.content, str):
            return [{"text": label + source.content}]
        return [
            {"text": item.text} if isinstance(item, TextBlock) else _image_part(item)
            for item in source.content
        ]
    if isinstance(source, Base64Source):
        return [{"inlineData": {"mimeType": source.media_type, "data": source.data}}]
    where = getattr(source, "url", None) or getattr(source, "file_id", "")
    log.debug("a document by %s reference cannot be sent to Gemini: sent as text", source.type)
    name = f" {block.title}" if block.title else ""
    return [{"text": f"[document{name}: {where}]"}]


def encode(req: MessagesRequest, target: Target) -> bytes:
    """The request body as compact JSON bytes."""
    payload = gemini_request_from_messages(req, target)
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
