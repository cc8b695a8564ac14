"""What each provider's real Chat Completions endpoint rejects, as pure validators.

A lenient fake proves nothing (STYLE.md): these rules make `FakeOpenAI(rules=family)` answer
the way the real API does, with its status, error shape and message, quoted from the
provider's own replies (see docs/backends/chat.md for the sources)::

    check("deepseek", request_json, "/v1/chat/completions")  # -> (400, {...}) or None

Each validator takes the request body and path and returns `(status, error body)` for a
request the provider refuses, else None. Only documented or reported rejections are modelled;
where a provider is known to accept something (DeepSeek and Kimi take an empty
`reasoning_content`), the fake accepts it too.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterator
from typing import Any, TypeAlias

#: (HTTP status, JSON error body)
Rejection: TypeAlias = tuple[int, Any]
Rule: TypeAlias = Callable[[dict[str, Any], str], Rejection | None]


def check(family: str, body: Any, path: str) -> Rejection | None:
    """The rejection `family`'s API gives `body` sent to `path`, or None if it takes it."""
    rule = RULES.get(family)
    if rule is None:
        raise ValueError(f"no rules for provider family {family!r}; known: {sorted(RULES)}")
    if not isinstance(body, dict):
        return None  # a body that is not JSON gets the fake's ordinary treatment
    return rule(body, path)


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []


def _tool_call_turns(body: dict[str, Any]) -> Iterator[tuple[int, dict[str, Any]]]:
    for index, message in enumerate(_messages(body)):
        if message.get("role") == "assistant" and message.get("tool_calls"):
            yield index, message


def _openai_error(message: str, param: str | None = None) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    }


def _openai_missing(param: str) -> dict[str, Any]:
    error = _openai_error(f"Missing required parameter: '{param}'.", param)
    error["error"]["code"] = "missing_required_parameter"
    return error


def _tool_names(body: dict[str, Any]) -> Iterator[tuple[int, Any]]:
    for position, tool in enumerate(body.get("tools") or ()):
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict):
            yield position, function.get("name")


# --- OpenAI -----------------------------------------------------------------------------------

_OPENAI_NAME = re.compile(r"[a-zA-Z0-9_-]+")


def _openai_name(body: dict[str, Any]) -> Rejection | None:
    """Function names: at most 64 characters of `^[a-zA-Z0-9_-]+$` (Anthropic allows 128).
    Quoted from OpenAI's replies (use-novamira/novamira#12, ravitemer/mcphub.nvim#243)."""
    for position, name in _tool_names(body):
        param = f"tools[{position}].function.name"
        if isinstance(name, str) and len(name) > 64:
            message = (
                f"Invalid '{param}': string too long. Expected a string with maximum length 64, "
                f"but got a string with length {len(name)} instead."
            )
            error = _openai_error(message, param)
            error["error"]["code"] = "string_above_max_length"
            return 400, error
        if not isinstance(name, str) or not _OPENAI_NAME.fullmatch(name):
            message = (
                f"Invalid '{param}': string does not match pattern. Expected a string that "
                "matches the pattern '^[a-zA-Z0-9_-]+$'."
            )
            error = _openai_error(message, param)
            error["error"]["code"] = "invalid_value"
            return 400, error
    return None


def strict_schema_problem(schema: Any, context: tuple[str, ...] = ()) -> str | None:
    """Why OpenAI's strict mode refuses `schema` (functions and structured outputs alike):
    every object closed (`additionalProperties: false`), every property required. The text
    follows "Invalid schema for …: " in OpenAI's message."""
    if not isinstance(schema, dict):
        return None
    where = f"In context=({', '.join(map(repr, context))}), "
    if schema.get("type") == "object" or "properties" in schema:
        if schema.get("additionalProperties") is not False:
            return where + "'additionalProperties' is required to be supplied and to be false."
        properties = schema.get("properties") or {}
        missing = [p for p in properties if p not in (schema.get("required") or [])]
        if missing:
            return (
                where + "'required' is required to be supplied and to be an array including "
                f"every key in properties. Missing '{missing[0]}'."
            )
        for key, sub in properties.items():
            problem = strict_schema_problem(sub, (*context, "properties", key))
            if problem:
                return problem
    if isinstance(schema.get("items"), dict):
        return strict_schema_problem(schema["items"], (*context, "items"))
    return None


def _mentions_json(body: dict[str, Any]) -> bool:
    return "json" in json.dumps([m.get("content") for m in _messages(body)]).lower()


def _openai_response_format(body: dict[str, Any]) -> Rejection | None:
    """Structured outputs: `json_schema` needs its `json_schema.name` (OpenAI's names rule)
    and, with `strict: true`, a schema strict mode takes (databricks/databricks-ai-bridge#211,
    dottxt-ai/outlines#844); JSON mode needs the word "json" in the messages."""
    fmt = body.get("response_format")
    if not isinstance(fmt, dict):
        return None
    kind = fmt.get("type")
    if kind == "json_object" and not _mentions_json(body):
        message = (
            "'messages' must contain the word 'json' in some form, to use 'response_format' of "
            "type 'json_object'."
        )
        return 400, _openai_error(message, "messages")
    if kind != "json_schema":
        return None
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict):
        return 400, _openai_missing("response_format.json_schema")
    name = spec.get("name")
    if not isinstance(name, str):
        return 400, _openai_missing("response_format.json_schema.name")
    if len(name) > 64 or not _OPENAI_NAME.fullmatch(name):
        param = "response_format.json_schema.name"
        message = (
            f"Invalid '{param}': string does not match pattern. Expected a string that matches "
            "the pattern '^[a-zA-Z0-9_-]+$'."
        )
        error = _openai_error(message, param)
        error["error"]["code"] = "invalid_value"
        return 400, error
    if spec.get("strict") is True:
        problem = strict_schema_problem(spec.get("schema"))
        if problem:
            message = f"Invalid schema for response_format '{name}': {problem}"
            return 400, _openai_error(message, "response_format")
    return None


#: gpt-5.4+, gpt-6+: reasoning (on by default) and function tools exclude each other on Chat
#: Completions (openai/openai-openapi#541, aaif-goose/goose#11413).
_OPENAI_TOOLS_NEED_RESPONSES = re.compile(r"^gpt-(5\.([4-9]|\d{2,})|[6-9])(?!.*-chat)")


#: What each message role takes (openai-python `types/chat/*_message_param.py`).
_OPENAI_MESSAGE_FIELDS = {
    "developer": frozenset({"role", "content", "name"}),
    "system": frozenset({"role", "content", "name"}),
    "user": frozenset({"role", "content", "name"}),
    "assistant": frozenset(
        {"role", "content", "name", "tool_calls", "function_call", "refusal", "audio"}
    ),
    "tool": frozenset({"role", "content", "tool_call_id"}),
    "function": frozenset({"role", "content", "name"}),
}
#: Tool call ids: "Invalid 'messages[2].tool_calls[0].id': string too long. Expected a string
#: with maximum length 40, but got a string with length 44 instead." (agno-agi/agno#5382,
#: Portkey-AI/gateway#1062 on Azure, openclaw/openclaw#875 through OpenRouter).
_OPENAI_TOOL_ID_MAX = 40


def _openai_too_long(param: str, length: int) -> dict[str, Any]:
    message = (
        f"Invalid '{param}': string too long. Expected a string with maximum length "
        f"{_OPENAI_TOOL_ID_MAX}, but got a string with length {length} instead."
    )
    error = _openai_error(message, param)
    error["error"]["code"] = "string_above_max_length"
    return error


def _openai_messages(body: dict[str, Any]) -> Rejection | None:
    """Unknown message properties ("Unknown parameter: 'messages[1].thinking_blocks'.", as
    for `input[1].metadata` on Responses: microsoft/agent-framework#2203; older replies
    said "Additional properties are not allowed ('id' was unexpected) - 'messages.0'"), and
    tool call ids over 40 characters, in the calls and in the tool messages."""
    for index, message in enumerate(_messages(body)):
        allowed = _OPENAI_MESSAGE_FIELDS.get(str(message.get("role")))
        for key in message:
            if allowed is not None and key not in allowed:
                error = _openai_error(f"Unknown parameter: 'messages[{index}].{key}'.")
                error["error"].update(param=f"messages[{index}].{key}", code="unknown_parameter")
                return 400, error
        ids = [
            (f"messages[{index}].tool_calls[{n}].id", call.get("id"))
            for n, call in enumerate(message.get("tool_calls") or ())
            if isinstance(call, dict)
        ]
        if message.get("role") == "tool":
            ids.append((f"messages[{index}].tool_call_id", message.get("tool_call_id")))
        for param, tool_id in ids:
            if isinstance(tool_id, str) and len(tool_id) > _OPENAI_TOOL_ID_MAX:
                return 400, _openai_too_long(param, len(tool_id))
    return None


def openai(body: dict[str, Any], path: str) -> Rejection | None:
    model = str(body.get("model") or "")
    if not path.endswith("/chat/completions"):
        return None
    refused = _openai_messages(body) or _openai_response_format(body)
    if refused or not body.get("tools"):
        return refused
    refused = _openai_name(body)
    if refused:
        return refused
    if _OPENAI_TOOLS_NEED_RESPONSES.match(model) and body.get("reasoning_effort") != "none":
        message = (
            f"Function tools with reasoning_effort are not supported for {model} in "
            "/v1/chat/completions. To use function tools, use /v1/responses or set "
            "reasoning_effort to 'none'."
        )
        return 400, _openai_error(message, "reasoning_effort")
    return None


# --- DeepSeek ---------------------------------------------------------------------------------

_DEEPSEEK_SWITCHABLE = re.compile(r"^deepseek-v4")
_DEEPSEEK_ALWAYS = re.compile(r"^deepseek-reasoner")


def _deepseek_error(message: str) -> dict[str, Any]:
    error = _openai_error(message)
    error["error"]["code"] = "invalid_request_error"
    return error


def deepseek(body: dict[str, Any], path: str) -> Rejection | None:
    """Text only: a content part other than `text` is a deserialization error (V4 too;
    rikkahub/rikkahub#1433). JSON mode only: a `json_schema` response format is refused
    (llm-exe/llm-exe#662), and `json_object` needs the word "json" in the prompt. Thinking
    mode (the default on V4): every assistant turn with tool calls must carry its
    `reasoning_content` (a string; the empty string is what DeepSeek itself returns for a call
    made without reasoning) in every later request."""
    fmt = body.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json_schema":
        return 400, _deepseek_error("This response_format type is unavailable now")
    if kind == "json_object" and not _mentions_json(body):
        return 400, _deepseek_error(
            "Prompt must contain the word 'json' in some form to use 'response_format' of type "
            "'json_object'."
        )
    for index, message in enumerate(_messages(body)):
        content = message.get("content")
        for part in content if isinstance(content, list) else ():
            kind = part.get("type") if isinstance(part, dict) else None
            if kind != "text":
                message_text = (
                    "Failed to deserialize the JSON body into the target type: "
                    f"messages[{index}]: unknown variant `{kind}`, expected `text` at line 1 "
                    "column 1"
                )
                return 400, {"error": {"message": message_text, "type": "invalid_request_error"}}
    model = str(body.get("model") or "")
    thinking = body.get("thinking")
    off = isinstance(thinking, dict) and thinking.get("type") == "disabled"
    on = bool(_DEEPSEEK_ALWAYS.match(model)) or (
        bool(_DEEPSEEK_SWITCHABLE.match(model)) and not off
    )
    if not on:
        return None
    for _, message in _tool_call_turns(body):
        if not isinstance(message.get("reasoning_content"), str):
            return 400, _deepseek_error(
                "The `reasoning_content` in the thinking mode must be passed back to the API."
            )
    return None


# --- Kimi (Moonshot) --------------------------------------------------------------------------

#: Always reasoning: kimi-k2-thinking, kimi-k2.7-code (its `thinking` takes only "enabled")
#: and kimi-k3 (sized by `reasoning_effort` low/high/max); kimi-k2.5/k2.6 think unless
#: `thinking: {"type": "disabled"}` (platform.kimi.ai use-thinking-effort guide).
_KIMI_ALWAYS = re.compile(r"^kimi-(k2-thinking|k2\.7|k3)")
_KIMI_SWITCHABLE = re.compile(r"^kimi-k2\.\d")


def moonshot(body: dict[str, Any], path: str) -> Rejection | None:
    model = str(body.get("model") or "")
    thinking = body.get("thinking")
    off = isinstance(thinking, dict) and thinking.get("type") == "disabled"
    if off and _KIMI_ALWAYS.match(model):
        text = f"thinking cannot be disabled for model {model}"
        return 400, {"error": {"message": text, "type": "invalid_request_error"}}
    if not (_KIMI_ALWAYS.match(model) or (_KIMI_SWITCHABLE.match(model) and not off)):
        return None
    for index, message in _tool_call_turns(body):
        if not isinstance(message.get("reasoning_content"), str):
            text = (
                "thinking is enabled but reasoning_content is missing in assistant tool call "
                f"message at index {index}"
            )
            return 400, {"error": {"message": text, "type": "invalid_request_error"}}
    return None


# --- Gemini (OpenAI-compatible endpoint) ------------------------------------------------------

#: Function declaration names (the compat endpoint checks the proto's rule).
_GEMINI_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}")
_GEMINI_SIGNED = re.compile(r"(^|/)gemini-(3|flash-latest|flash-lite-latest|pro-latest)")
SKIP_SIGNATURE = "skip_thought_signature_validator"
#: The fields of Gemini's proto `Schema` (generativelanguage v1beta): anything else in a
#: function's parameters is "Unknown name".
_SCHEMA_FIELDS = frozenset(
    {
        *("type", "format", "title", "description", "nullable", "enum", "items", "properties"),
        *("required", "minItems", "maxItems", "minProperties", "maxProperties", "minLength"),
        *("maxLength", "pattern", "example", "anyOf", "propertyOrdering", "default"),
        *("minimum", "maximum"),
    }
)
_SCHEMA_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object"})


def _google_error(message: str) -> list[dict[str, Any]]:
    # The compat endpoint wraps Google's error object in a list.
    return [{"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}]


def _schema_problem(schema: Any, at: str) -> str | None:
    if not isinstance(schema, dict):
        return None
    for key, value in schema.items():
        if key not in _SCHEMA_FIELDS:
            return (
                f"Invalid JSON payload received. Unknown name \"{key}\" at '{at}': Cannot find "
                "field."
            )
        if key == "type" and isinstance(value, list):
            return (
                f"Invalid JSON payload received. Unknown name \"type\" at '{at}': Proto field "
                "is not repeating, cannot start list."
            )
        if key == "type" and str(value).lower() not in _SCHEMA_TYPES:
            return (
                f"Invalid value at '{at}.type' "
                f'(type.googleapis.com/google.ai.generativelanguage.v1beta.Type), "{value}"'
            )
    if "enum" in schema and str(schema.get("type", "string")).lower() != "string":
        return f"* GenerateContentRequest.{at}.enum: only allowed for STRING type"
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for position, sub in enumerate(properties.values()):
            problem = _schema_problem(sub, f"{at}.properties[{position}].value")
            if problem:
                return problem
    problem = _schema_problem(schema.get("items"), f"{at}.items")
    if problem:
        return problem
    for position, sub in enumerate(schema.get("anyOf") or ()):
        problem = _schema_problem(sub, f"{at}.any_of[{position}]")
        if problem:
            return problem
    return None


def _signature_problem(signature: Any) -> bool:
    """A signature Gemini would not take: not the documented stand-in, not its base64."""
    if signature == SKIP_SIGNATURE:
        return False
    if not isinstance(signature, str) or not signature:
        return True
    try:
        base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return True
    return False


def _signature(call: Any) -> Any:
    extra = call.get("extra_content") if isinstance(call, dict) else None
    google = extra.get("google") if isinstance(extra, dict) else None
    return google.get("thought_signature") if isinstance(google, dict) else None


def gemini(body: dict[str, Any], path: str) -> Rejection | None:
    """Tool schemas must fit the proto `Schema`; on Gemini 3 the first call of every step of
    the current turn (after the last user message that is not a tool result) must carry its
    thought signature back (ai.google.dev/gemini-api/docs/thought-signatures). Function
    names: at most 64 characters, a letter or underscore first (google-gemini/gemini-cli#2966,
    AstrBotDevs/AstrBot#5416)."""
    for position, name in _tool_names(body):
        if not isinstance(name, str) or not _GEMINI_NAME.fullmatch(name):
            return 400, _google_error(
                f"* GenerateContentRequest.tools[0].function_declarations[{position}].name: "
                "Invalid function name. Must start with a letter or an underscore. Must be "
                "alphameric (a-z, A-Z, 0-9), underscores (_), dots (.), colons (:), or dashes "
                "(-), with a maximum length of 64.\n"
            )
    for position, tool in enumerate(body.get("tools") or ()):
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict):
            at = f"tools[0].function_declarations[{position}].parameters"
            problem = _schema_problem(function.get("parameters"), at)
            if problem:
                return 400, _google_error(problem)
    if not _GEMINI_SIGNED.search(str(body.get("model") or "")):
        return None
    contents = [m for m in _messages(body) if m.get("role") not in ("system", "developer")]
    start = 0
    for index, message in enumerate(contents):
        after_tool = index > 0 and contents[index - 1].get("role") == "tool"
        if message.get("role") == "user" and not after_tool:
            start = index + 1
    for index, message in enumerate(contents[start:], start):
        calls = message.get("tool_calls") if message.get("role") == "assistant" else None
        if not calls:
            continue
        signature = _signature(calls[0])
        if signature is None:
            name = (calls[0].get("function") or {}).get("name")
            return 400, _google_error(
                "Function call is missing a thought_signature in functionCall parts. This is "
                "required for tools to work correctly, and missing thought_signature may lead "
                f"to degraded model performance. Additional data, function call "
                f"`default_api:{name}` , position {index + 1}. Please refer to "
                "https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
            )
    for _, message in _tool_call_turns(body):
        for call in message["tool_calls"]:
            signature = _signature(call)
            if signature is not None and _signature_problem(signature):
                return 400, _google_error("Corrupted thought signature.")
    return None


# --- Mistral ----------------------------------------------------------------------------------

_MISTRAL_ID = re.compile(r"[A-Za-z0-9]{9}")
_MISTRAL_FIELDS = frozenset(
    {
        *("model", "messages", "temperature", "top_p", "max_tokens", "stream", "stop"),
        *("random_seed", "metadata", "response_format", "tools", "tool_choice"),
        *("presence_penalty", "frequency_penalty", "n", "prediction", "parallel_tool_calls"),
        *("prompt_mode", "safe_prompt", "reasoning_effort"),
    }
)
_MISTRAL_MESSAGE_FIELDS = {
    "system": frozenset({"role", "content"}),
    "user": frozenset({"role", "content"}),
    "assistant": frozenset({"role", "content", "tool_calls", "prefix"}),
    "tool": frozenset({"role", "content", "tool_call_id", "name"}),
}


def _extra_forbidden(loc: list[Any], value: Any) -> dict[str, Any]:
    return {
        "type": "extra_forbidden",
        "loc": loc,
        "msg": "Extra inputs are not permitted",
        "input": value,
    }


def mistral(body: dict[str, Any], path: str) -> Rejection | None:
    """Unknown fields are a 422 (pydantic `extra_forbidden`); tool call ids must be exactly
    nine letters or digits, in the assistant's calls and in the tool messages."""
    detail = [_extra_forbidden(["body", k], body[k]) for k in body if k not in _MISTRAL_FIELDS]
    for index, message in enumerate(_messages(body)):
        role = str(message.get("role"))
        allowed = _MISTRAL_MESSAGE_FIELDS.get(role, frozenset({"role", "content"}))
        detail += [
            _extra_forbidden(["body", "messages", index, role, key], message[key])
            for key in message
            if key not in allowed
        ]
    if detail:
        error = {"detail": detail}
        return 422, {
            "object": "error",
            "message": error,
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    for message in _messages(body):
        ids = [call.get("id") for call in message.get("tool_calls") or () if isinstance(call, dict)]
        if message.get("role") == "tool":
            ids.append(message.get("tool_call_id"))
        for tool_id in ids:
            if not isinstance(tool_id, str) or not _MISTRAL_ID.fullmatch(tool_id):
                text = f"Tool call id was {tool_id} but must be a-z, A-Z, 0-9, with a length of 9."
                body_ = {"object": "error", "message": text, "type": "invalid_function_call"}
                return 400, {**body_, "param": None, "code": "3280"}
    return None


# --- Groq -------------------------------------------------------------------------------------

_GROQ_FIELDS = frozenset(
    {
        *("model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p"),
        *("n", "stop", "stream", "stream_options", "tools", "tool_choice", "parallel_tool_calls"),
        *("user", "seed", "response_format", "reasoning_effort", "reasoning_format"),
        *("include_reasoning", "frequency_penalty", "presence_penalty", "logprobs"),
        *("top_logprobs", "logit_bias", "service_tier", "metadata", "search_settings"),
        *("documents", "citation_options", "compound_custom", "functions", "function_call"),
    }
)
_GROQ_MESSAGE_FIELDS = {
    "system": frozenset({"role", "content", "name"}),
    "developer": frozenset({"role", "content", "name"}),
    "user": frozenset({"role", "content", "name"}),
    "assistant": frozenset({"role", "content", "name", "tool_calls", "function_call"}),
    "tool": frozenset({"role", "content", "tool_call_id", "name"}),
}


def groq(body: dict[str, Any], path: str) -> Rejection | None:
    """Groq refuses every property it does not know, at the top level and on messages, and
    function names over 64 characters or outside `^[a-zA-Z0-9_-]+$` (its reply's text is
    modelled on its validation messages: no verbatim one is on record)."""
    for key in body:
        if key not in _GROQ_FIELDS:
            return 400, {
                "error": {
                    "message": f"property '{key}' is unsupported",
                    "type": "invalid_request_error",
                }
            }
    for index, message in enumerate(_messages(body)):
        role = str(message.get("role"))
        allowed = _GROQ_MESSAGE_FIELDS.get(role, frozenset({"role", "content"}))
        for key in message:
            if key not in allowed:
                text = (
                    f"'messages.{index}' : for 'role:{role}' the following must be satisfied"
                    f"[('messages.{index}' : property '{key}' is unsupported)]"
                )
                return 400, {"error": {"message": text, "type": "invalid_request_error"}}
    for position, name in _tool_names(body):
        if not isinstance(name, str) or len(name) > 64 or not _OPENAI_NAME.fullmatch(name):
            text = (
                f"'tools.{position}.function.name' : string must match pattern "
                "'^[a-zA-Z0-9_-]{1,64}$'"
            )
            return 400, {"error": {"message": text, "type": "invalid_request_error"}}
    return None


# --- xAI --------------------------------------------------------------------------------------

_XAI_REASONING = re.compile(r"^grok-(3-mini|4|code)")
#: grok-4 reasons but takes no `reasoning_effort` (lobehub/lobehub#8379).
_XAI_NO_EFFORT = re.compile(r"^grok-(4(?![.\d])|code)")
_XAI_NAMES = {
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
    "stop": "stop",
    "reasoning_effort": "reasoningEffort",
}


def xai(body: dict[str, Any], path: str) -> Rejection | None:
    """Reasoning models refuse penalties and stop sequences ("Model grok-4 does not support
    parameter presencePenalty.")."""
    model = str(body.get("model") or "")
    if not _XAI_REASONING.match(model):
        return None
    refused = ["presence_penalty", "frequency_penalty", "stop"]
    if _XAI_NO_EFFORT.match(model):
        refused.append("reasoning_effort")
    for key in refused:
        if key in body:
            message = f"Model {model} does not support parameter {_XAI_NAMES[key]}."
            return 400, {"code": "Client specified an invalid argument", "error": message}
    return None


# --- OpenRouter -------------------------------------------------------------------------------

#: Plugin ids and the `web` plugin's options (openrouter.ai/docs/guides/features/web-search,
#: /plugins): `max_results`, `search_prompt`, `engine` (`native` or `exa`).
_OPENROUTER_PLUGINS = frozenset({"web", "file-parser", "response-healing", "moderation"})
_OPENROUTER_WEB_KEYS = frozenset({"id", "enabled", "max_results", "search_prompt", "engine"})


def openrouter(body: dict[str, Any], path: str) -> Rejection | None:
    """OpenAI's message rules (OpenRouter validates the same shapes) plus `plugins`: a list of
    objects with a known `id`; the `web` plugin takes only its documented options. (The
    messages are the fake's own wording: OpenRouter's are not quoted anywhere we found.)"""
    plugins = body.get("plugins")
    if plugins is not None:
        if not isinstance(plugins, list):
            return 400, _openai_error("plugins: Expected array", "plugins")
        for n, plugin in enumerate(plugins):
            kind = plugin.get("id") if isinstance(plugin, dict) else None
            if kind not in _OPENROUTER_PLUGINS:
                return 400, _openai_error(f"plugins[{n}].id: Invalid plugin id", "plugins")
            unknown = set(plugin) - _OPENROUTER_WEB_KEYS if kind == "web" else set()
            if unknown:
                key = sorted(unknown)[0]
                return 400, _openai_error(f"plugins[{n}]: Unrecognized key '{key}'", "plugins")
    return _openai_messages(body) if path.endswith("/chat/completions") else None


RULES: dict[str, Rule] = {
    "openai": openai,
    "azure": openai,
    "deepseek": deepseek,
    "moonshot": moonshot,
    "gemini": gemini,
    "mistral": mistral,
    "groq": groq,
    "xai": xai,
    "openrouter": openrouter,
}
