"""OpenAI Chat Completions request -> Anthropic Messages request (the Chat frontend's decoder;
dialects.md C1, D). Each structural rule exists because Anthropic refuses what Chat allows:

- Tool results: Chat sends one `tool` message per call; Anthropic wants all results of a turn
  in the next user message, results first, so tool messages and the user message right after
  them merge. A call never answered gets an `is_error` result instead of a provider 400.
- System text: leading system/developer messages become `system` blocks; later ones stay in
  place as `role: "system"` messages, but never between a call and its results (forbidden):
  they wait until the results' turn is closed.
- Thinking needs 1024 <= budget < `max_tokens`, no forced tool choice, no custom sampling, and
  the signed thinking of the last tool-calling turn. Where these conflict, thinking gives way:
  the client asked for an answer first and a reasoning style second.

What Anthropic lacks is dropped with a DEBUG line (logprobs, seed, penalties, unknown fields);
what cannot be honoured without a different answer (`n > 1`, audio, `file_id`, `custom` tools)
is a 400 naming the field.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from vdm.protocol.errors import VdmError
from vdm.protocol.signatures import echoed_tool_id

log = logging.getLogger(__name__)

#: Anthropic requires `max_tokens`; Chat does not. Used when the client gave none.
DEFAULT_MAX_TOKENS = 4096
#: `reasoning_effort` -> `thinking.budget_tokens` (dialects.md C1 **Rec**; 31999 is Claude
#: Code's own top budget). `none` turns thinking off.
THINKING_BUDGETS = dict(minimal=1024, low=2048, medium=8192, high=16384, xhigh=31999, max=31999)
#: Anthropic's floor for `budget_tokens` (`thinking_config_enabled_param.py`).
MIN_THINKING_BUDGET = 1024
#: Room left for the answer above the budget when the client set no maximum.
ANSWER_ROOM = 8192
#: What stands for `response_format: json_object`, which has no Anthropic switch.
JSON_OBJECT_INSTRUCTION = "Reply with a single JSON object."
#: The result of a tool call the client never answered (Anthropic 400s on a call without one).
INTERRUPTED = "tool call was interrupted"

#: Chat fields translated here; anything else is logged and dropped.
_HANDLED = frozenset(
    "model messages max_completion_tokens max_tokens stop temperature top_p tools tool_choice"
    " parallel_tool_calls response_format reasoning_effort stream stream_options user"
    " safety_identifier n".split()
)
#: Chat fields with no Anthropic counterpart that leave the answer's content as it is.
_IGNORED = frozenset(
    "logprobs top_logprobs seed frequency_penalty presence_penalty logit_bias".split()
)
_TOOL_CHOICE = {"auto": "auto", "required": "any", "none": "none"}
_THINKING = ("thinking", "redacted_thinking")
_DATA_URL = re.compile(r"data:(?P<type>[^;,]*)(?P<params>(?:;[^,]*)?),(?P<data>.*)", re.DOTALL)


def wants_usage_chunk(body: dict[str, Any]) -> bool:
    """Whether the client asked for the final usage-only chunk (`stream_options.include_usage`);
    without it a Chat stream carries no usage at all."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def check_choices(body: dict[str, Any]) -> None:
    """VdmError(400) for `n` other than 1: vdm answers one choice, whichever the provider
    (a forwarded request too, so that failing over to another dialect changes nothing)."""
    n = body.get("n")
    if n is not None and n != 1:
        raise _bad("n", f"only n=1 is supported (got {n!r})")


def messages_request_from_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The Anthropic Messages body for a Chat Completions request body."""
    check_choices(body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model", "a model name is required")
    system, messages = _Conversation().convert(body.get("messages"))
    out: dict[str, Any] = {"model": model, "messages": messages}

    asked = body.get("max_completion_tokens")
    asked = body.get("max_tokens") if asked is None else asked
    if asked is not None and (isinstance(asked, bool) or not isinstance(asked, int) or asked < 1):
        raise _bad("max_tokens", f"{asked!r} is not a positive integer")
    out["max_tokens"] = DEFAULT_MAX_TOKENS if asked is None else asked

    stops = body.get("stop")
    stops = [stops] if isinstance(stops, str) else stops if isinstance(stops, list) else []
    # Anthropic refuses whitespace-only stop sequences; they could never end a useful answer.
    if kept := [s for s in stops if isinstance(s, str) and s.strip()]:
        out["stop_sequences"] = kept

    if (temperature := _float(body.get("temperature"))) is not None:
        # OpenAI's range goes to 2, Anthropic's to 1; recent Claude models refuse both at once.
        out["temperature"] = min(max(temperature, 0.0), 1.0)
    elif (top_p := _float(body.get("top_p"))) is not None:
        out["top_p"] = top_p

    _tools(body, out)
    _response_format(body.get("response_format"), system, out)
    if system:
        out["system"] = system
    apply_thinking(body.get("reasoning_effort"), out, asked)
    if body.get("stream") is True:
        out["stream"] = True
    user = body.get("safety_identifier") or body.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    for key in sorted(body.keys() - _HANDLED):
        why = "has no Anthropic counterpart" if key in _IGNORED else "is unknown"
        log.debug("chat request field %r %s: dropped", key, why)
    return out


def _bad(param: str, why: str) -> VdmError:
    return VdmError(400, f"{param}: {why}", param=param)


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _get(obj: Any, key: str) -> Any:
    """`obj[key]` for a dict, None for anything else (a malformed part reads as absent)."""
    return obj.get(key) if isinstance(obj, dict) else None


class _Conversation:
    """Chat messages -> (system blocks, Anthropic messages), in one pass.

    Tool results (and the user message after them) gather in `_open` until something else
    comes; system text arriving while a call awaits its results waits in `_deferred`."""

    def __init__(self) -> None:
        self.system: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self._open: list[dict[str, Any]] = []
        self._deferred: list[dict[str, Any]] = []
        #: Ids of the last assistant turn's tool calls not answered yet, in call order.
        self._awaiting: list[str] = []

    def convert(self, raw: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        if not isinstance(raw, list) or not raw:
            raise _bad("messages", "a non-empty list is required")
        for i, message in enumerate(raw):
            role = _get(message, "role")
            if not isinstance(message, dict):
                raise _bad(f"messages[{i}]", "not an object")
            if role in ("system", "developer"):
                self._system(message, i)
            elif role == "user":
                self._answer_missing()
                self._open.extend(_blocks(message.get("content"), f"messages[{i}].content"))
                self._close()
            elif role == "tool":
                self._result(message, i)
            elif role == "assistant":
                self._close()
                self._assistant(message, i)
            else:
                log.debug("messages[%d] with role %r is unknown: dropped", i, role)
        self._close()
        if not any(m["role"] != "system" for m in self.messages):
            raise _bad("messages", "at least one user or assistant message is required")
        return self.system, self.messages

    def _system(self, message: dict[str, Any], i: int) -> None:
        texts = [t for t in _texts(message.get("content"), f"messages[{i}].content") if t]
        if not self.messages and not self._open:
            self.system.extend({"type": "text", "text": t} for t in texts)
        elif texts:
            entry = {"role": "system", "content": "\n\n".join(texts)}
            held = self._open or self._awaiting
            (self._deferred if held else self.messages).append(entry)

    def _result(self, message: dict[str, Any], i: int) -> None:
        call_id, content = message.get("tool_call_id"), message.get("content")
        if not isinstance(call_id, str) or not call_id:
            raise _bad(f"messages[{i}].tool_call_id", "required in a tool message")
        blocks = _blocks(content, f"messages[{i}].content")
        call_id = echoed_tool_id(call_id)
        if call_id not in self._awaiting:
            # A result without its call: Anthropic would refuse a dangling tool_result.
            log.debug("messages[%d] answers no pending tool call %r: kept as text", i, call_id)
            self._open.extend(blocks or [{"type": "text", "text": "(empty tool result)"}])
            return
        self._awaiting.remove(call_id)
        content = content if isinstance(content, str) else blocks
        self._open.append({"type": "tool_result", "tool_use_id": call_id, "content": content})

    def _assistant(self, message: dict[str, Any], i: int) -> None:
        blocks = _thinking_blocks(message.get("thinking_blocks"))
        texts = _texts(message.get("content"), f"messages[{i}].content")
        blocks.extend({"type": "text", "text": t} for t in texts if t)
        calls = message.get("tool_calls")
        for j, call in enumerate(calls if isinstance(calls, list) else []):
            blocks.append(tool_use_block(call, f"messages[{i}].tool_calls[{j}]"))
        if all(b["type"] in _THINKING for b in blocks):
            log.debug("messages[%d] is an empty assistant turn: dropped", i)
            return
        self.messages.append({"role": "assistant", "content": blocks})
        self._awaiting = [b["id"] for b in blocks if b["type"] == "tool_use"]

    def _answer_missing(self) -> None:
        for call_id in self._awaiting:
            result = {"type": "tool_result", "tool_use_id": call_id, "content": INTERRUPTED}
            self._open.append(result | {"is_error": True})
        self._awaiting = []

    def _close(self) -> None:
        """End the open user turn (answering unanswered calls), then release held system text."""
        self._answer_missing()
        if self._open:
            self.messages.append({"role": "user", "content": self._open})
            self._open = []
        self.messages.extend(self._deferred)
        self._deferred = []


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    """A message's content (a string or parts) as Anthropic blocks, empty text left out."""
    if content is None or isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise _bad(where, "must be a string or a list of parts")
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind, at = _get(part, "type"), f"{where}[{j}]"
        if kind in ("text", "refusal") and isinstance(text := part.get(kind), str):
            blocks.extend([{"type": "text", "text": text}] if text else [])
        elif kind == "image_url":
            image = part.get("image_url")
            url = image if isinstance(image, str) else _get(image, "url")
            blocks.append({"type": "image", "source": media_source(url, f"{at}.image_url.url")})
        elif kind == "file":
            blocks.append(document_block(part.get("file"), f"{at}.file"))
        elif kind == "input_audio":
            raise _bad(f"{at}.input_audio", "audio input is not supported")
        else:
            log.debug("%s of type %r is unknown: dropped", at, kind)
    return blocks


def _texts(content: Any, where: str) -> list[str]:
    """The text of a message's content; other parts are dropped (system, assistant turns)."""
    return [b["text"] for b in _blocks(content, where) if b["type"] == "text"]


def media_source(url: Any, where: str) -> dict[str, Any]:
    """The Anthropic source of an http(s) URL or a base64 data URL."""
    if not isinstance(url, str) or not url:
        raise _bad(where, "required")
    if url.startswith(("http://", "https://")):
        return {"type": "url", "url": url}
    match = _DATA_URL.fullmatch(url)
    if match is None or ";base64" not in match["params"]:
        raise _bad(where, "expected an http(s) URL or a base64 data URL")
    return {"type": "base64", "media_type": match["type"] or "image/png", "data": match["data"]}


def document_block(file: Any, where: str) -> dict[str, Any]:
    """A `file` part (a PDF sent inline) as a document block."""
    if _get(file, "file_id"):
        raise _bad(f"{where}.file_id", "uploaded files are not supported; send file_data")
    raw = _get(file, "file_data")
    if isinstance(raw, str) and raw and not raw.startswith("data:"):
        raw = f"data:application/pdf;base64,{raw}"  # the SDK documents bare base64 too (a PDF)
    block = {"type": "document", "source": media_source(raw, f"{where}.file_data")}
    if isinstance(title := _get(file, "filename"), str):
        block["title"] = title
    return block


def _thinking_blocks(raw: Any) -> list[dict[str, Any]]:
    """LiteLLM-style `thinking_blocks` sent back by the client (what vdm's Chat encoder emits);
    unsigned ones are useless to Anthropic, which refuses them, and are dropped."""
    blocks: list[dict[str, Any]] = []
    for block in raw if isinstance(raw, list) else []:
        kind, signature, data = _get(block, "type"), _get(block, "signature"), _get(block, "data")
        if kind == "thinking" and isinstance(signature, str):
            text = t if isinstance(t := _get(block, "thinking"), str) else ""
            blocks.append({"type": "thinking", "thinking": text, "signature": signature})
        elif kind == "redacted_thinking" and isinstance(data, str):
            blocks.append({"type": "redacted_thinking", "data": data})
        else:
            log.debug("thinking block of type %r without signature: dropped", kind)
    return blocks


def tool_use_block(call: Any, where: str) -> dict[str, Any]:
    """A tool call as a tool_use block. Arguments that are not a JSON object stay visible as
    `{"_raw_arguments": s}`: the client's schema check then fails loudly, where `{}` would run
    the tool silently without them."""
    function, call_id = _get(call, "function") or _get(call, "custom"), _get(call, "id")
    name = _get(function, "name")
    if not (isinstance(call_id, str) and call_id and isinstance(name, str) and name):
        raise _bad(where, "a tool call needs an id and a function name")
    raw = function.get("arguments", function.get("input"))
    try:
        arguments = json.loads(raw) if isinstance(raw, str) and raw.strip() else raw or {}
    except ValueError:
        arguments = raw
    if not isinstance(arguments, dict):
        arguments = {"_raw_arguments": raw}
    return {"type": "tool_use", "id": echoed_tool_id(call_id), "name": name, "input": arguments}


def _tools(body: dict[str, Any], out: dict[str, Any]) -> None:
    tools: list[dict[str, Any]] = []
    raw = body.get("tools")
    for j, tool in enumerate(raw if isinstance(raw, list) else []):
        kind, function = _get(tool, "type"), _get(tool, "function")
        if kind == "custom":
            raise _bad(f"tools[{j}]", "custom (freeform) tools are not supported")
        if kind != "function" or not isinstance(function, dict):
            log.debug("tools[%d] of type %r is unknown: dropped", j, kind)
            continue
        if not isinstance(name := function.get("name"), str) or not name:
            raise _bad(f"tools[{j}].function.name", "required")
        # Anthropic requires a schema; a fresh one, as later stages may rewrite it in place.
        params = function.get("parameters")
        schema = params if isinstance(params, dict) else {"type": "object", "properties": {}}
        entry: dict[str, Any] = {"name": name, "input_schema": schema}
        if isinstance(description := function.get("description"), str):
            entry["description"] = description
        if isinstance(strict := function.get("strict"), bool):
            entry["strict"] = strict
        tools.append(entry)

    choice = _tool_choice(body.get("tool_choice"), tools)
    if not tools:
        return  # Anthropic refuses a tool_choice without tools; without tools it means nothing.
    if body.get("parallel_tool_calls") is False and _get(choice, "type") != "none":
        choice = (choice or {"type": "auto"}) | {"disable_parallel_tool_use": True}
    out["tools"] = tools
    if choice is not None:
        out["tool_choice"] = choice


def _tool_choice(raw: Any, tools: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Anthropic's `tool_choice`; `allowed_tools` narrows `tools` in place."""
    if raw is None:
        return None
    if isinstance(raw, str) and raw in _TOOL_CHOICE:
        return {"type": _TOOL_CHOICE[raw]}
    kind = _get(raw, "type")
    if kind == "function":
        if not isinstance(name := _get(_get(raw, "function"), "name"), str) or not name:
            raise _bad("tool_choice.function.name", "required")
        return {"type": "tool", "name": name}
    if kind == "allowed_tools":
        allowed = _get(raw, "allowed_tools")
        names = {_get(_get(t, "function"), "name") for t in _get(allowed, "tools") or []}
        tools[:] = [t for t in tools if t["name"] in names]
        return {"type": "any" if _get(allowed, "mode") == "required" else "auto"}
    log.debug("tool_choice %r is unknown: the model decides", raw)
    return None


def _response_format(raw: Any, system: list[dict[str, Any]], out: dict[str, Any]) -> None:
    """Structured output: a JSON schema is enforced (`output_config.format`); `json_object` has
    no Anthropic switch, so it becomes an instruction appended to `system` (in place)."""
    kind = _get(raw, "type")
    if kind == "json_object":
        system.append({"type": "text", "text": JSON_OBJECT_INSTRUCTION})
    elif kind == "json_schema":
        schema = _get(_get(raw, "json_schema"), "schema")
        if not isinstance(schema, dict):
            raise _bad("response_format.json_schema.schema", "required")
        out["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    elif kind not in (None, "text"):
        log.debug("response_format of type %r is unknown: dropped", kind)


def apply_thinking(effort: Any, out: dict[str, Any], asked: int | None) -> None:
    """`reasoning_effort` as a thinking budget within Anthropic's bounds, giving way where it
    conflicts with the rest of the request (see the module docstring)."""
    if effort is None or effort == "none":
        return
    budget = THINKING_BUDGETS.get(effort) if isinstance(effort, str) else None
    if budget is None:
        log.debug("reasoning_effort %r is unknown: read as medium", effort)
        budget = THINKING_BUDGETS["medium"]
    if asked is None:
        out["max_tokens"] = budget + ANSWER_ROOM
    budget = min(budget, out["max_tokens"] - 1)
    if budget < MIN_THINKING_BUDGET:
        log.debug("max_tokens %s leaves no room for thinking: thinking off", asked)
        return
    if _get(out.get("tool_choice"), "type") in ("any", "tool"):
        log.debug("a forced tool_choice excludes thinking: thinking off")
        return
    turns = [m["content"] for m in out["messages"] if m["role"] == "assistant"]
    last: list[dict[str, Any]] = turns[-1] if turns else []
    if any(b["type"] == "tool_use" for b in last) and last[0]["type"] not in _THINKING:
        log.debug("the last tool call turn carries no signed thinking: thinking off")
        return
    for key in ("temperature", "top_p"):
        if out.pop(key, None) is not None:
            log.debug("%s is not allowed with thinking: dropped", key)
    out["thinking"] = {"type": "enabled", "budget_tokens": budget}
