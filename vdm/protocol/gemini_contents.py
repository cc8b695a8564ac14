"""The history of an Anthropic request as Gemini `contents` (pure).

- Messages -> `contents` with roles `user` / `model`; consecutive messages of one role share a
  content. Parts: text, `inlineData` (images, PDFs), `functionCall {name, args}` (no `id`:
  Gemini pairs by order), `functionResponse {name, response: {"output"|"error": …}}`.
- A `role: "system"` entry becomes text in a user content, placed after the function
  responses when it sits between a call and its result (Gemini pairs a model content's calls
  with the very next content).
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
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from vdm.protocol.anthropic import (
    ImageBlock,
    MessagesRequest,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from vdm.protocol.codec import Target
from vdm.protocol.current_turn import SKIP_SIGNATURE, turn_start
from vdm.protocol.errors import VdmError
from vdm.protocol.signatures import split_thought_id, unpack_thought
from vdm.protocol.system_prompt import joined_text
from vdm.protocol.tools_out import function_name
from vdm.protocol.user_parts import (
    GEMINI_PARTS,
    block_parts,
    document_parts,
    orphan_text,
    result_items,
)

log = logging.getLogger(__name__)


def gemini_contents(req: MessagesRequest, target: Target) -> list[dict[str, Any]]:
    """The `contents` for `req`; a 400 when every message is empty."""
    return _Contents(req, target).build()


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
        #: Index of the first message of the current turn: Gemini validates thought
        #: signatures there.
        self.turn_start = turn_start(req.messages)

    def build(self) -> list[dict[str, Any]]:
        for index, message in enumerate(self.req.messages):
            current = index >= self.turn_start
            if message.role == "assistant":
                self._model(message.content, current)
            elif message.role == "user":
                self._user(message.content, current)
            else:
                system = message.content
                text = system if isinstance(system, str) else joined_text(system, skip_empty=True)
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
        parts: list[dict[str, Any]] = []
        results: list[ToolResultBlock] = []
        if isinstance(content, str):
            parts = [{"text": content}] if content else []
        else:
            for block in content:
                if isinstance(block, ToolResultBlock):
                    results.append(block)
                else:
                    parts.extend(block_parts(block, GEMINI_PARTS))
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
            {"text": orphan_text(r.tool_use_id, _result_text(r, moved, target))}
            for r in by_id.values()
        ]
        if orphans:
            log.debug("%d tool results without their call: sent as text", len(orphans))
        self.waiting = []
        all_parts = responses + self.deferred + moved + orphans + parts
        self.deferred = []
        if all_parts:
            self._append("user", all_parts, current)


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


def _result_text(block: ToolResultBlock, moved: list[dict[str, Any]], target: Target) -> str:
    """A tool result as text; its images and PDFs go to `moved` (parts after the responses)."""
    texts: list[str] = []
    for item in result_items(block, lambda name: function_name(name, target)):
        if isinstance(item, TextBlock):
            texts.append(item.text)
            continue
        if isinstance(item, ImageBlock):
            found = [GEMINI_PARTS.image(item)]
        else:
            found = document_parts(item, GEMINI_PARTS)
        texts.extend(p["text"] for p in found if "text" in p)
        media = [p for p in found if "text" not in p]
        if media:
            # A function response carries text only: the media follow the responses.
            moved.append({"text": f"[attachment from tool result {block.tool_use_id}]"})
            moved.extend(media)
            texts.append("[attached below]")
    return "\n".join(texts)
