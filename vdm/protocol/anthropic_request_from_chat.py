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

- Deprecated function calling (`functions`, `function_call`, `role: "function"`), which
  older SDK users still send, is read as tools: an id-less call gets an id from its place in
  the conversation (the same every turn), and its `function` answer pairs with it by name.

What Anthropic lacks is dropped with a DEBUG line (logprobs, seed, penalties, unknown fields);
what cannot be honoured without a different answer (`n > 1`, audio, `file_id`, `custom` tools)
is a 400 naming the field.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

from vdm.protocol.errors import VdmError
from vdm.protocol.signatures import echoed_tool_id
from vdm.protocol.thinking_budget import THINKING_BUDGETS, fit_budget

log = logging.getLogger(__name__)

#: Anthropic requires `max_tokens`; Chat does not. Used when the client gave none.
DEFAULT_MAX_TOKENS = 4096
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
    " safety_identifier n functions function_call modalities audio".split()
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


def check_modalities(body: dict[str, Any]) -> None:
    """VdmError(400) for an answer in audio (`modalities: ["audio"]`, `audio`): a translated
    answer is text, and a text answer to a client that asked for speech is not one."""
    raw = body.get("modalities")
    modalities = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    if any(m == "audio" for m in modalities):
        raise _bad("modalities", 'audio output is not supported; ask for ["text"]')
    if body.get("audio") is not None:
        raise _bad("audio", "audio output is not supported")


def messages_request_from_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The Anthropic Messages body for a Chat Completions request body."""
    check_choices(body)
    check_modalities(body)
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
        #: The function each id of `_awaiting` calls (a `function` message names only that).
        self._names: dict[str, str] = {}

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
            elif role == "function":
                self._function_result(message, i)
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
        if calls is not None and not isinstance(calls, list):
            raise _bad(f"messages[{i}].tool_calls", "must be a list")
        for j, call in enumerate(calls or []):
            blocks.append(tool_use_block(call, f"messages[{i}].tool_calls[{j}]"))
        if (legacy := message.get("function_call")) is not None:
            # The deprecated form has no id: one made from the message's place is the same
            # every turn (the client resends the history), and pairs the `function` answer.
            call = {"id": f"call_{i}", "function": legacy}
            blocks.append(tool_use_block(call, f"messages[{i}].function_call"))
        if all(b["type"] in _THINKING for b in blocks):
            log.debug("messages[%d] is an empty assistant turn: dropped", i)
            return
        self.messages.append({"role": "assistant", "content": blocks})
        uses = [b for b in blocks if b["type"] == "tool_use"]
        self._awaiting = [b["id"] for b in uses]
        self._names = {b["id"]: b["name"] for b in uses}

    def _function_result(self, message: dict[str, Any], i: int) -> None:
        """A deprecated `function` message: the result of the first call awaiting an answer
        from the function it names (it carries no call id)."""
        name = message.get("name")
        if not isinstance(name, str) or not name:
            raise _bad(f"messages[{i}].name", "required in a function message")
        call_id = next((c for c in self._awaiting if self._names.get(c) == name), name)
        self._result({"tool_call_id": call_id, "content": message.get("content")}, i)

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
        tools.append(_tool(function, f"tools[{j}].function"))
    # The deprecated `functions` (older SDK users still send it): the same functions.
    legacy = body.get("functions")
    for j, function in enumerate(legacy if isinstance(legacy, list) else []):
        if not isinstance(function, dict):
            raise _bad(f"functions[{j}]", "not an object")
        tools.append(_tool(function, f"functions[{j}]"))

    raw_choice = body.get("tool_choice")
    if raw_choice is None and body.get("function_call") is not None:
        raw_choice = _legacy_choice(body.get("function_call"))
    choice = _tool_choice(raw_choice, tools)
    if not tools:
        return  # Anthropic refuses a tool_choice without tools; without tools it means nothing.
    # The deprecated form answers one `function_call` per turn, never parallel calls.
    serial = body.get("parallel_tool_calls") is False or (isinstance(legacy, list) and not raw)
    if serial and _get(choice, "type") != "none":
        choice = (choice or {"type": "auto"}) | {"disable_parallel_tool_use": True}
    out["tools"] = tools
    if choice is not None:
        out["tool_choice"] = choice


def _tool(function: dict[str, Any], where: str) -> dict[str, Any]:
    """One function (of `tools` or `functions`) as an Anthropic tool."""
    if not isinstance(name := function.get("name"), str) or not name:
        raise _bad(f"{where}.name", "required")
    # Anthropic requires a schema; a fresh one, as later stages may rewrite it in place.
    params = function.get("parameters")
    schema = params if isinstance(params, dict) else {"type": "object", "properties": {}}
    entry: dict[str, Any] = {"name": name, "input_schema": schema}
    if isinstance(description := function.get("description"), str):
        entry["description"] = description
    if isinstance(strict := function.get("strict"), bool):
        entry["strict"] = strict
    return entry


def _legacy_choice(raw: Any) -> Any:
    """The deprecated `function_call` ("none", "auto" or `{"name"}`) as a `tool_choice`."""
    if isinstance(raw, dict):
        return {"type": "function", "function": raw}
    return raw


def _tool_choice(raw: Any, tools: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Anthropic's `tool_choice`; `allowed_tools` narrows `tools` in place. A choice naming
    a function the request does not define is a 400, as OpenAI answers it."""
    if raw is None:
        return None
    if isinstance(raw, str) and raw in _TOOL_CHOICE:
        return {"type": _TOOL_CHOICE[raw]}
    kind = _get(raw, "type")
    if kind == "function":
        name = _get(_get(raw, "function"), "name")
        if not isinstance(name, str) or not name:
            raise _bad("tool_choice.function.name", "required")
        if tools and name not in {t["name"] for t in tools}:
            raise _bad("tool_choice.function.name", f"no function named {name!r} in tools")
        return {"type": "tool", "name": name}
    if kind == "allowed_tools":
        allowed = _get(raw, "allowed_tools")
        if not isinstance(allowed, dict):
            raise _bad("tool_choice.allowed_tools", "an object with `mode` and `tools` required")
        names = allowed_names(allowed.get("tools"), "tool_choice.allowed_tools.tools", _chat_name)
        _narrow(tools, names, "tool_choice.allowed_tools.tools")
        return {"type": allowed_mode(allowed.get("mode"))}
    log.debug("tool_choice %r is unknown: the model decides", raw)
    return None


def _chat_name(entry: dict[str, Any], where: str) -> str | None:
    """The function an `allowed_tools` entry names (None for another kind of tool)."""
    if entry.get("type") != "function":
        log.debug("%s of type %r is unknown: left out", where, entry.get("type"))
        return None
    name = _get(entry.get("function"), "name")
    if not isinstance(name, str) or not name:
        raise _bad(f"{where}.function.name", "required")
    return name


def allowed_names(
    raw: Any, where: str, name_of: Callable[[dict[str, Any], str], str | None]
) -> set[str]:
    """The names of the tools an `allowed_tools` list allows (`name_of` reads one entry)."""
    if not isinstance(raw, list):
        raise _bad(where, "a list of tools is required")
    names: set[str] = set()
    for k, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise _bad(f"{where}[{k}]", "not an object")
        if (name := name_of(entry, f"{where}[{k}]")) is not None:
            names.add(name)
    return names


def _narrow(tools: list[dict[str, Any]], names: set[str], where: str) -> None:
    """Keep only the allowed `tools` (in place); naming a function not defined is a 400."""
    if unknown := names - {t["name"] for t in tools}:
        raise _bad(where, f"no function named {sorted(unknown)[0]!r} in tools")
    tools[:] = [t for t in tools if t["name"] in names]


def allowed_mode(mode: Any) -> str:
    """Anthropic's `tool_choice.type` for an `allowed_tools` mode (`auto` when unknown)."""
    if mode not in (None, "auto", "required"):
        log.debug("allowed_tools mode %r is unknown: read as auto", mode)
    return "any" if mode == "required" else "auto"


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


def gave_no_limit(body: dict[str, Any]) -> bool:
    """Whether the client left the output limit to the provider (no `max_completion_tokens`
    nor `max_tokens`): the canonical `max_tokens` is then only a stand-in
    (`Target.max_tokens_default`)."""
    return body.get("max_completion_tokens") is None and body.get("max_tokens") is None


def apply_thinking(effort: Any, out: dict[str, Any], asked: int | None) -> None:
    """`reasoning_effort` as a thinking budget within Anthropic's bounds, giving way where it
    conflicts with the rest of the request (see the module docstring). The effort itself goes
    to `output_config.effort` too: a budget cannot say `minimal`, `xhigh` or `max`, and
    providers that take an effort (OpenAI, Gemini, Claude 4.5+) read it from there. `none`
    switches thinking off (`thinking: disabled`), which providers that think by default
    must hear."""
    if effort is None:
        return
    if effort == "none":
        out["thinking"] = {"type": "disabled"}
        return
    budget = THINKING_BUDGETS.get(effort) if isinstance(effort, str) else None
    if budget is None:
        log.debug("reasoning_effort %r is unknown: read as medium", effort)
        effort, budget = "medium", THINKING_BUDGETS["medium"]
    out["output_config"] = {**out.get("output_config", {}), "effort": effort}
    if asked is None:
        out["max_tokens"] = budget + ANSWER_ROOM
    fitted = fit_budget(budget, out["max_tokens"])
    if fitted is None:
        log.debug("max_tokens %s leaves no room for thinking: thinking off", asked)
        return
    budget = fitted
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
