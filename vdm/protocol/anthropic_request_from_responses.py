"""OpenAI Responses request -> Anthropic Messages request (the Responses frontend's decoder;
dialects.md B1, B2, D). Shaped by Codex CLI, the client that sends it most:

- Items, not messages: a run of reasoning / assistant message / function_call /
  custom_tool_call items is one assistant turn, in order, and a run of call outputs plus the
  user message right after them is one user turn, results first, as Anthropic wants. System
  text, unanswered calls, orphan outputs and thinking follow the rules both OpenAI dialects
  share (`openai_turns`, `openai_tools_in`, `openai_request_in`).
- Reasoning comes back only as vdm packed it (`signatures.pack_thinking`): the signed
  Anthropic block, whole. OpenAI's own encrypted reasoning means nothing elsewhere: dropped.
- Stateless: vdm stores no responses, so a request pointing at stored state
  (`previous_response_id`, `conversation`, a stored `prompt`, `item_reference`,
  `background`) is a 400 that says so, not an answer missing the context the client meant.
- Tools Anthropic lacks: a `namespace` member becomes `{namespace}__{name}`, a `custom`
  (freeform) tool takes one string `input`; `ToolRoutes` maps both back for the encoder.
  Hosted tools are dropped: Codex sends `web_search` every turn and a 400 would stop it.
- Codex resends the whole conversation every turn without `max_output_tokens`: the request
  gets prompt-cache breakpoints and room for a long answer (`DEFAULT_MAX_OUTPUT_TOKENS`).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from vdm.protocol.openai_request_in import (
    THINKING,
    bad,
    check_limit,
    document_block,
    dropped_fields,
    finish_request,
    get,
    media_source,
    model_of,
    output_format,
    sampling,
)
from vdm.protocol.openai_tools_in import (
    RESPONSES,
    anthropic_tool,
    attach_tools,
    flat_tool_name,
    tool_choice,
)
from vdm.protocol.openai_turns import Turns, tool_use_block
from vdm.protocol.responses_tools import ToolRoutes
from vdm.protocol.signatures import echoed_tool_id, unpack_thinking

log = logging.getLogger(__name__)

#: `max_tokens` when the client sets no `max_output_tokens` (Codex never does). A Codex turn
#: may write a whole file or patch in one tool call, which the Chat decoder's 4096 would cut
#: mid-argument. 32000 is what every current Claude model takes (Opus 4.x's ceiling; others
#: allow more) and stays above the largest thinking budget (31999); a provider with a lower
#: ceiling is served by setting `MAX_TOKENS_LIMIT`, which every translating backend applies.
DEFAULT_MAX_OUTPUT_TOKENS = 32000
#: `reasoning` without an `effort`, as Codex sends it, means OpenAI's default effort.
DEFAULT_EFFORT = "medium"
#: Anthropic's prompt-cache breakpoint (at most 4 per request; vdm sets up to 3).
CACHE_CONTROL = {"type": "ephemeral"}
STATELESS = (
    "vdm is a stateless gateway and stores no responses or conversations: send the whole "
    "history in `input`, with `store: false`"
)

#: Fields that point at state a stateful server would hold; any value but null is a 400.
_STATEFUL = ("previous_response_id", "conversation", "prompt")
#: Responses fields translated here; anything else is logged and dropped.
_HANDLED = frozenset(
    "model input instructions max_output_tokens temperature top_p tools tool_choice"
    " parallel_tool_calls reasoning text stream user safety_identifier background"
    " previous_response_id conversation prompt".split()
)
#: Responses fields with no Anthropic counterpart that leave the answer's content as it is.
_IGNORED = frozenset(
    "store include client_metadata prompt_cache_key prompt_cache_retention service_tier"
    " truncation metadata stream_options top_logprobs max_tool_calls".split()
)
_ASSISTANT_ITEMS = frozenset({"reasoning", "function_call", "custom_tool_call"})
_OUTPUT_ITEMS = frozenset({"function_call_output", "custom_tool_call_output"})


def refuse_stateful(body: dict[str, Any]) -> None:
    """VdmError(400) naming the field for a request that relies on stored state; checked for
    every provider, a forwarded request too, so failing over never changes the answer."""
    for key in _STATEFUL:
        if body.get(key) is not None:
            raise bad(key, STATELESS)
    if body.get("background") is True:
        raise bad("background", f"background responses are not supported; {STATELESS}")
    items = body.get("input")
    for i, item in enumerate(items if isinstance(items, list) else []):
        if get(item, "type") == "item_reference":
            raise bad(f"input[{i}]", f"item_reference is not supported; {STATELESS}")


def messages_request_from_responses(body: dict[str, Any]) -> tuple[dict[str, Any], ToolRoutes]:
    """The Anthropic Messages body for a Responses request body, and the client's names of
    the tools it sends upstream."""
    refuse_stateful(body)
    model = model_of(body)
    tools, routes = _tools(body.get("tools"))
    system, messages = _Items().convert(body.get("input"), body.get("instructions"))
    out: dict[str, Any] = {"model": model, "messages": messages}

    asked = body.get("max_output_tokens")
    check_limit(asked, "max_output_tokens")
    out["max_tokens"] = DEFAULT_MAX_OUTPUT_TOKENS if asked is None else asked
    sampling(body, out)

    choice = tool_choice(body.get("tool_choice"), tools, RESPONSES)
    attach_tools(out, tools, choice, body.get("parallel_tool_calls") is False)
    _text_format(body.get("text"), system, out)
    # Always a budget within `max_tokens` (the default included): unlike Chat's decoder,
    # the default is already large enough for thinking and an answer.
    finish_request(body, out, system, _effort(body.get("reasoning")), out["max_tokens"])
    _mark_cache(out)
    for key, why in dropped_fields(body, _HANDLED, _IGNORED):
        log.debug("responses request field %r %s: dropped", key, why)
    return out, routes


def gave_no_limit(body: dict[str, Any]) -> bool:
    """Whether the client left the output limit to the provider (no `max_output_tokens`, as
    Codex sends it): the canonical `max_tokens` is then only a stand-in
    (`Target.max_tokens_default`)."""
    return body.get("max_output_tokens") is None


def _effort(reasoning: Any) -> Any:
    """The `reasoning_effort` that `apply_thinking` reads: None (no thinking) without
    `reasoning`, OpenAI's default when it names no effort."""
    if not isinstance(reasoning, dict):
        return None
    effort = reasoning.get("effort")
    return DEFAULT_EFFORT if effort is None else effort


class _Items:
    """Responses input items -> (system blocks, Anthropic messages), in one pass.

    An assistant turn gathers in `_turn` while its items come (from `input[_at]` on); the
    rest is `Turns`'."""

    def __init__(self) -> None:
        self.turns = Turns()
        self._turn: list[dict[str, Any]] | None = None
        self._at = 0

    def convert(
        self, raw: Any, instructions: Any
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        if isinstance(instructions, str) and instructions:
            self.turns.system.append({"type": "text", "text": instructions})
        elif instructions is not None:
            log.debug("instructions of type %s are not text: dropped", type(instructions))
        if isinstance(raw, str):
            raw = [{"role": "user", "content": raw}]
        if not isinstance(raw, list) or not raw:
            raise bad("input", "a non-empty string or list of items is required")
        for i, item in enumerate(raw):
            if not isinstance(item, dict):
                raise bad(f"input[{i}]", "not an object")
            # The SDK's EasyInputMessage has no `type`: role + content is a message.
            kind = item.get("type", "message" if "role" in item else None)
            if kind is not None and not isinstance(kind, str):
                raise bad(f"input[{i}].type", "must be a string")
            if kind == "message":
                self._message(item, i)
            elif kind in _ASSISTANT_ITEMS:
                self._assistant_item(item, i, kind)
            elif kind in _OUTPUT_ITEMS:
                self._end_turn()
                self._result(item, i)
            else:
                log.debug("input[%d] of type %r has no Anthropic counterpart: dropped", i, kind)
        self._end_turn()
        return self.turns.done("input")

    def _message(self, item: dict[str, Any], i: int) -> None:
        role, content, where = item.get("role"), item.get("content"), f"input[{i}].content"
        if role in ("system", "developer"):
            self._end_turn()
            self.turns.system_text([t for t in _texts(content, where) if t])
        elif role == "user":
            self._end_turn()
            self.turns.user(_blocks(content, where))
        elif role == "assistant":
            texts = _texts(content, where)
            self._start_turn(i).extend({"type": "text", "text": t} for t in texts if t)
        else:
            log.debug("input[%d] with role %r is unknown: dropped", i, role)

    def _assistant_item(self, item: dict[str, Any], i: int, kind: str) -> None:
        turn = self._start_turn(i)
        call_id, name, namespace = item.get("call_id"), item.get("name"), item.get("namespace")
        if isinstance(namespace, str) and namespace and isinstance(name, str):
            name = flat_tool_name(namespace, name)
        if kind == "reasoning":
            block = unpack_thinking(item.get("encrypted_content"))
            if block is None:
                log.debug("input[%d] is reasoning vdm did not pack: dropped", i)
            else:
                turn.append(block)
        elif kind == "function_call":
            call = {"id": call_id, "function": {"name": name, "arguments": item.get("arguments")}}
            turn.append(tool_use_block(call, f"input[{i}]"))
        else:
            if not (isinstance(call_id, str) and call_id and isinstance(name, str) and name):
                raise bad(f"input[{i}]", "a custom tool call needs a call_id and a name")
            text = t if isinstance(t := item.get("input"), str) else ""
            use = {"type": "tool_use", "id": echoed_tool_id(call_id), "name": name}
            turn.append(use | {"input": {"input": text}})

    def _start_turn(self, i: int) -> list[dict[str, Any]]:
        """The open assistant turn, opened at `input[i]` when none is."""
        if self._turn is None:
            self._turn, self._at = [], i
        return self._turn

    def _end_turn(self) -> None:
        blocks, self._turn = self._turn, None
        if blocks is not None:
            self.turns.assistant(blocks, f"input[{self._at}]")

    def _result(self, item: dict[str, Any], i: int) -> None:
        call_id = item.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise bad(f"input[{i}].call_id", "required in a tool call output")
        self.turns.result(call_id, _output(item.get("output"), f"input[{i}].output"), f"input[{i}]")


def _text_format(text: Any, system: list[dict[str, Any]], out: dict[str, Any]) -> None:
    """`text.format` as structured output (`output_format`); the rest of `text` (verbosity)
    has no Anthropic counterpart."""
    for key in sorted(text.keys() - {"format"} if isinstance(text, dict) else ()):
        log.debug("text.%s has no Anthropic counterpart: dropped", key)
    fmt = get(text, "format")
    where, schema_at = "text.format", "text.format.schema"
    output_format(fmt, get(fmt, "schema"), system, out, where=where, schema_at=schema_at)


def _output(output: Any, where: str) -> str | list[dict[str, Any]]:
    """A call output as tool_result content: a string as it is, parts as blocks."""
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return _blocks(output, where)
    return "" if output is None else json.dumps(output)


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    """Message content or call output (a string or parts) as Anthropic blocks, empty text
    left out."""
    if content is None or isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise bad(where, "must be a string or a list of parts")
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind, at = get(part, "type"), f"{where}[{j}]"
        key = "refusal" if kind == "refusal" else "text"
        if kind in ("input_text", "output_text", "text", "refusal"):
            text = part.get(key)
            blocks.extend(
                [{"type": "text", "text": text}] if isinstance(text, str) and text else []
            )
        elif kind == "input_image":
            if part.get("file_id"):
                raise bad(f"{at}.file_id", "uploaded files are not supported; send image_url")
            source = media_source(part.get("image_url"), f"{at}.image_url")
            blocks.append({"type": "image", "source": source})
        elif kind == "input_file":
            blocks.append(_file(part, at))
        else:
            log.debug("%s of type %r is unknown: dropped", at, kind)
    return blocks


def _file(part: dict[str, Any], where: str) -> dict[str, Any]:
    """An `input_file` part as a document: inline data (or an uploaded file's 400) as Chat's
    `file` part reads (`document_block`), a `file_url` as a URL source."""
    url = part.get("file_url")
    if part.get("file_id") or part.get("file_data") or not isinstance(url, str):
        return document_block(part, where)
    block = {"type": "document", "source": media_source(url, f"{where}.file_url")}
    if isinstance(title := part.get("filename"), str):
        block["title"] = title
    return block


def _texts(content: Any, where: str) -> list[str]:
    """The text of a message's content; other parts are dropped (system, assistant turns)."""
    return [b["text"] for b in _blocks(content, where) if b["type"] == "text"]


def _tools(raw: Any) -> tuple[list[dict[str, Any]], ToolRoutes]:
    """Anthropic tools for the client's, namespaces flattened, and the way back."""
    tools: list[dict[str, Any]] = []
    namespaced: dict[str, tuple[str, str]] = {}
    custom: set[str] = set()
    for j, tool in enumerate(raw if isinstance(raw, list) else []):
        if get(tool, "type") != "namespace":
            if (entry := _tool(tool, f"tools[{j}]", custom)) is not None:
                tools.append(entry)
            continue
        namespace, about = tool.get("name"), tool.get("description")
        if not isinstance(namespace, str) or not namespace:
            raise bad(f"tools[{j}].name", "required")
        members = tool.get("tools")
        for k, member in enumerate(members if isinstance(members, list) else []):
            entry = _tool(member, f"tools[{j}].tools[{k}]", set())
            if entry is None:
                continue
            name = entry["name"] = flat_tool_name(namespace, own := entry["name"])
            namespaced[name] = (namespace, own)
            if get(member, "type") == "custom":
                custom.add(name)
            parts = [d for d in (about, entry.get("description")) if isinstance(d, str) and d]
            if parts:
                entry["description"] = "\n\n".join(parts)
            tools.append(entry)
    return tools, ToolRoutes(namespaced=namespaced, custom=frozenset(custom))


def _tool(tool: Any, where: str, custom: set[str]) -> dict[str, Any] | None:
    """One function or custom tool; a hosted tool is dropped (None)."""
    kind = get(tool, "type")
    if kind not in ("function", "custom"):
        # web_search is in every Codex request: dropping it quietly keeps Codex working.
        log.debug("%s of type %r is a hosted tool vdm does not serve: dropped", where, kind)
        return None
    schema = None
    if kind == "custom":
        schema = {"type": "object", "properties": {"input": _freeform(tool.get("format"))}}
        schema["required"] = ["input"]
    entry = anthropic_tool(tool, where, omit_defaults=True, schema=schema)
    if kind == "custom":
        custom.add(entry["name"])
    return entry


def _freeform(fmt: Any) -> dict[str, Any]:
    """The schema of a custom tool's `input`: the grammar it must follow, where there is one,
    told to the model, which no provider can enforce on a JSON string."""
    prop: dict[str, Any] = {"type": "string"}
    if get(fmt, "type") == "grammar" and isinstance(definition := fmt.get("definition"), str):
        syntax = s if isinstance(s := fmt.get("syntax"), str) else "lark"
        prop["description"] = f"Raw text in this {syntax} grammar:\n{definition}"
    return prop


def _mark_cache(out: dict[str, Any]) -> None:
    """Prompt-cache breakpoints on the last system block, the last tool and the last block of
    the conversation: Codex resends all of it every turn. Thinking blocks cannot carry one;
    other providers' encoders drop the field."""
    if system := out.get("system"):
        system[-1]["cache_control"] = dict(CACHE_CONTROL)
    if tools := out.get("tools"):
        tools[-1]["cache_control"] = dict(CACHE_CONTROL)
    for message in reversed(out["messages"]):
        if isinstance(message["content"], list):
            marked = [b for b in message["content"] if b["type"] not in THINKING]
            if marked:
                marked[-1]["cache_control"] = dict(CACHE_CONTROL)
            return
