"""Scripting the fake upstreams, one adapter per dialect: read what a request carried, answer
in kind.

Every adapter has the same methods, so a scenario (the end-to-end tests with the real Claude
Code, the compatibility matrix) is written once and runs against each provider's fake::

    script = Chat("deepseek")              # or Responses(), Gemini()
    with script.server() as fake:          # FakeOpenAI(rules="deepseek"), a real HTTP server
        fake.default = lambda request: (
            script.reply(request, tool_calls=[("Bash", '{"command": "ls"}', script.call_id("1"))],
                         reasoning="I should list the files")
            if not script.tool_results(request)
            else script.reply(request, text="Done")
        )
        ...
        assert script.issued[0] in script.reasoning_state(fake.requests[-1])

* `Chat(family)` (`FakeOpenAI(rules=family)`): `reasoning_content` (DeepSeek, Kimi, most
  OpenAI-compatible servers); on Gemini's compat endpoint, the
  `extra_content.google.thought_signature` of the first tool call; none on OpenAI, Azure and
  Mistral (their Chat Completions show no reasoning).
* `Responses()` (`FakeResponses`): a `reasoning` item with `encrypted_content` (only when the
  request's `include` asks for it, as on OpenAI).
* `Gemini()` (`FakeGemini`): thought parts, and a `thoughtSignature` on the first function call.

Reading (all take the `Recorded` request): `model`, `is_stream`, `tool_names`,
`tool_parameters`, `system_text`, `user_texts`, `tool_calls` (the calls the history carries back),
`tool_results`, `has_image`, `reasoning_state`.

Answering: `reply(request, text=…, tool_calls=[(name, arguments_json, call_id)], reasoning=…,
usage=Usage(prompt, cached, output))` (streamed iff the request asked for a stream),
`error(status, message)` in the dialect's error shape, `cut(request, text)`: a reply that dies
midway (a stream cut after its first events; for a non-streaming request, a connection closed
before any byte). `call_id(seed)` is an id of the
form the provider itself issues (Mistral: nine letters or digits). `issued` lists the reasoning
states the adapter handed out, oldest first.

The builders are the fakes' own (`completion`, `stream_chunks`, `responses_reply`, …): an
adapter only picks them per dialect and adds what a provider puts on top (Gemini's signatures).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol
from urllib.parse import parse_qs, unquote

from tests.fakes.gemini_upstream import (
    FakeGemini,
    GeminiReply,
    call_part,
    gemini_error,
    signature_part,
    text_part,
    thought_part,
    usage_metadata,
)
from tests.fakes.gemini_upstream import thought_signature as gemini_signature
from tests.fakes.openai_upstream import (
    FakeOpenAI,
    HangReply,
    JsonReply,
    Recorded,
    Reply,
    SseReply,
    ToolCallSpec,
    completion,
    stream_chunks,
)
from tests.fakes.responses_upstream import (
    FakeResponses,
    ResponsesSseReply,
    message_item,
    response_events,
    responses_error,
    responses_reply,
    responses_usage,
)

__all__ = [
    "Chat",
    "Gemini",
    "bash_arguments",
    "Responses",
    "Script",
    "ToolCall",
    "ToolResult",
    "Usage",
    "messages_of",
    "reply_to",
    "text_of",
    "tool_names",
]


class ToolCall(NamedTuple):
    """A tool call as a request's history carries it back."""

    id: str
    name: str
    arguments: str


class ToolResult(NamedTuple):
    """A tool result as a request carries it, its content flattened to text (`name`: the
    function's, where the dialect names it)."""

    call_id: str
    text: str
    name: str = ""


class Usage(NamedTuple):
    """The token counts a reply reports: `prompt` includes the `cached` tokens, as OpenAI,
    the Responses API and Gemini count them."""

    prompt: int
    cached: int
    output: int


class Script(Protocol):
    """What every dialect adapter offers (see the module docstring)."""

    #: `chat`, `responses` or `gemini`.
    dialect: str
    #: The reasoning states handed out by `reply`, oldest first.
    issued: list[str]

    def server(self) -> FakeOpenAI: ...
    def model(self, request: Recorded) -> str: ...
    def is_stream(self, request: Recorded) -> bool: ...
    def tool_names(self, request: Recorded) -> list[str]: ...
    def tool_parameters(self, request: Recorded, name: str) -> dict[str, Any] | None: ...
    def system_text(self, request: Recorded) -> str: ...
    def user_texts(self, request: Recorded) -> list[str]: ...
    def tool_calls(self, request: Recorded) -> list[ToolCall]: ...
    def tool_results(self, request: Recorded) -> list[ToolResult]: ...
    def has_image(self, request: Recorded) -> bool: ...
    def reasoning_state(self, request: Recorded) -> list[str]: ...
    def call_id(self, seed: str) -> str: ...

    def reply(
        self,
        request: Recorded,
        text: str | None = None,
        tool_calls: Sequence[ToolCallSpec] = (),
        reasoning: str | None = None,
        usage: Usage | None = None,
    ) -> Reply: ...

    def error(self, status: int, message: str) -> Reply: ...
    def cut(self, request: Recorded, text: str = "Partial text that never ends") -> Reply: ...


def _body(request: Recorded) -> dict[str, Any]:
    data = request.json
    return data if isinstance(data, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _hex(seed: str, n: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:n]


# --- Chat Completions bodies (also used directly by the OpenAI e2e tests) ----------------------


def tool_names(body: Any) -> list[str]:
    """The names of the tools a Chat Completions request body offers."""
    if not isinstance(body, dict):
        return []
    return [
        str(tool["function"].get("name"))
        for tool in _dicts(body.get("tools"))
        if isinstance(tool.get("function"), dict)
    ]


def text_of(content: Any) -> str:
    """The text of an OpenAI message content (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def messages_of(request: Recorded) -> list[dict[str, Any]]:
    """The `messages` of a recorded Chat Completions request."""
    return _dicts(_body(request).get("messages"))


def reply_to(body: Any, text: str = "", tool_calls: Sequence[ToolCallSpec] | None = None) -> Reply:
    """A Chat Completions reply in the shape the request asked for (streamed or not)."""
    if isinstance(body, dict) and body.get("stream"):
        return SseReply(stream_chunks(text, tool_calls=tool_calls))
    return JsonReply(completion(text or None, tool_calls=tool_calls))


_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#: How each family's Chat Completions endpoint hands out reasoning state; any other family
#: answers with `reasoning_content` (DeepSeek, Kimi, and most OpenAI-compatible servers).
_CHAT_REASONING: dict[str, str | None] = {
    "gemini": "signature",
    # OpenAI's Chat Completions shows no reasoning; Devstral does not reason, and Magistral's
    # thinking chunks are a content shape of their own.
    "openai": None,
    "azure": None,
    "mistral": None,
}
#: Google's status names for the HTTP statuses its APIs answer with.
GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def thought_signature(reasoning: str) -> str:
    """A Gemini-looking thought signature (standard base64, as Google sends them) that stands
    for `reasoning`."""
    return base64.b64encode(hashlib.sha256(reasoning.encode()).digest() * 2).decode()


def _signed(extra: dict[str, Any], signature: str) -> None:
    extra["extra_content"] = {"google": {"thought_signature": signature}}


class Chat:
    """A Chat Completions provider of `family` (None: a lenient OpenAI-compatible server;
    else the strict rules of `tests.fakes.chat_rules`)."""

    dialect = "chat"

    def __init__(self, family: str | None = None) -> None:
        self.family = family
        self.style = _CHAT_REASONING.get(family or "", "reasoning_content")
        self.issued: list[str] = []

    def server(self) -> FakeOpenAI:
        return FakeOpenAI(rules=self.family)

    # -- reading ---------------------------------------------------------------------------------

    def model(self, request: Recorded) -> str:
        return str(_body(request).get("model") or "")

    def is_stream(self, request: Recorded) -> bool:
        return _body(request).get("stream") is True

    def tool_names(self, request: Recorded) -> list[str]:
        return tool_names(request.json)

    def tool_parameters(self, request: Recorded, name: str) -> dict[str, Any] | None:
        for tool in _dicts(_body(request).get("tools")):
            function = tool.get("function")
            if isinstance(function, dict) and function.get("name") == name:
                parameters = function.get("parameters")
                return parameters if isinstance(parameters, dict) else None
        return None

    def system_text(self, request: Recorded) -> str:
        return "\n\n".join(
            text_of(m.get("content"))
            for m in messages_of(request)
            if m.get("role") in ("system", "developer")
        )

    def user_texts(self, request: Recorded) -> list[str]:
        return [text_of(m.get("content")) for m in messages_of(request) if m.get("role") == "user"]

    def tool_calls(self, request: Recorded) -> list[ToolCall]:
        calls: list[ToolCall] = []
        for message in messages_of(request):
            if message.get("role") != "assistant":
                continue
            for call in _dicts(message.get("tool_calls")):
                function = call.get("function")
                if not isinstance(function, dict):
                    function = {}
                calls.append(
                    ToolCall(
                        str(call.get("id")),
                        str(function.get("name")),
                        str(function.get("arguments")),
                    )
                )
        return calls

    def tool_results(self, request: Recorded) -> list[ToolResult]:
        return [
            ToolResult(str(m.get("tool_call_id")), text_of(m.get("content")))
            for m in messages_of(request)
            if m.get("role") == "tool"
        ]

    def has_image(self, request: Recorded) -> bool:
        return any(
            part.get("type") == "image_url"
            for m in messages_of(request)
            for part in _dicts(m.get("content"))
        )

    def reasoning_state(self, request: Recorded) -> list[str]:
        """The reasoning the history carries back: `reasoning_content` of the assistant turns
        with tool calls, or (Gemini) the thought signatures on tool calls, in order."""
        states: list[str] = []
        for message in messages_of(request):
            if message.get("role") != "assistant" or not message.get("tool_calls"):
                continue
            if self.style == "reasoning_content":
                reasoning = message.get("reasoning_content")
                if isinstance(reasoning, str) and reasoning:
                    states.append(reasoning)
            elif self.style == "signature":
                for call in _dicts(message.get("tool_calls")):
                    extra = call.get("extra_content") or {}
                    signature = (extra.get("google") or {}).get("thought_signature")
                    if isinstance(signature, str):
                        states.append(signature)
        return states

    def call_id(self, seed: str) -> str:
        if self.family == "mistral":  # nine letters or digits, like Mistral's own
            number = int(_hex(seed, 16), 16)
            return "".join(_ALNUM[(number >> (6 * i)) % 62] for i in range(9))
        return f"call_{_hex(seed, 24)}"

    # -- answering -------------------------------------------------------------------------------

    def reply(
        self,
        request: Recorded,
        text: str | None = None,
        tool_calls: Sequence[ToolCallSpec] = (),
        reasoning: str | None = None,
        usage: Usage | None = None,
    ) -> Reply:
        model = self.model(request) or "gpt-4o"
        reasoning_content = signature = None
        # Magistral answers in typed content chunks, its thinking among them.
        typed = self.family == "mistral" and model.startswith("magistral")
        if reasoning and typed:
            reasoning_content = reasoning
        elif reasoning and self.style == "reasoning_content":
            reasoning_content = reasoning
            self.issued.append(reasoning)
        elif reasoning and self.style == "signature" and tool_calls:
            # Gemini 3 signs the first function call of each step (and only that one).
            signature = thought_signature(reasoning)
            self.issued.append(signature)
        calls = list(tool_calls) or None
        counts: dict[str, Any] = {}
        if usage is not None:
            counts = {"prompt_tokens": usage.prompt, "completion_tokens": usage.output}
            counts["cached_tokens"] = usage.cached
        if self.is_stream(request):
            chunks = stream_chunks(
                text or "",
                model=model,
                tool_calls=calls,
                reasoning_content=reasoning_content,
                typed_content=typed,
                # Gemini's compat endpoint: each call whole, all at index 0.
                whole_calls=self.family == "gemini",
                **counts,
            )
            if signature is not None:
                first = next(c for c in chunks if c["choices"] and "tool_calls" in _delta(c))
                _signed(_delta(first)["tool_calls"][0], signature)
            return SseReply(chunks)
        answer = completion(
            text or None,
            model=model,
            tool_calls=calls,
            reasoning_content=reasoning_content,
            typed_content=typed,
            **counts,
        )
        if signature is not None:
            _signed(answer["choices"][0]["message"]["tool_calls"][0], signature)
        return JsonReply(answer)

    def error(self, status: int, message: str) -> Reply:
        """An error in the shape `family` answers with."""
        if self.family == "gemini":  # the compat endpoint wraps Google's error in a list
            google = {"code": status, "message": message, "status": GOOGLE_STATUS.get(status)}
            return JsonReply([{"error": google}], status=status)
        kind = "server_error" if status >= 500 else "invalid_request_error"
        if self.family == "mistral":
            body = {"object": "error", "message": message, "type": kind, "param": None}
            return JsonReply({**body, "code": None}, status=status)
        return JsonReply({"error": {"message": message, "type": kind, "code": None}}, status=status)

    def cut(self, request: Recorded, text: str = "Partial text that never ends") -> Reply:
        if self.is_stream(request):
            # The role chunk and one text delta, then the connection drops mid-body.
            chunks = stream_chunks(text, model=self.model(request) or "gpt-4o", pieces=4)
            return SseReply(chunks, cut_after=2)
        return HangReply(0.0)


def _delta(chunk: dict[str, Any]) -> dict[str, Any]:
    delta: dict[str, Any] = chunk["choices"][0]["delta"]
    return delta


# --- OpenAI Responses ---------------------------------------------------------------------------


def _input_text(content: Any) -> str:
    """The text of a Responses message content or function output (a string or parts)."""
    if isinstance(content, str):
        return content
    return "".join(
        str(p.get("text", "")) for p in _dicts(content) if p.get("type") in ("input_text", "text")
    )


class Responses:
    """The OpenAI Responses API (`FakeResponses`, strict like the real one)."""

    dialect = "responses"

    def __init__(self) -> None:
        self.issued: list[str] = []

    def server(self) -> FakeResponses:
        return FakeResponses()

    # -- reading ---------------------------------------------------------------------------------

    def _input(self, request: Recorded) -> list[dict[str, Any]]:
        return _dicts(_body(request).get("input"))

    def _messages(self, request: Recorded, *roles: str) -> list[dict[str, Any]]:
        return [
            item
            for item in self._input(request)
            if item.get("type", "message") == "message" and item.get("role") in roles
        ]

    def model(self, request: Recorded) -> str:
        return str(_body(request).get("model") or "")

    def is_stream(self, request: Recorded) -> bool:
        return _body(request).get("stream") is True

    def tool_names(self, request: Recorded) -> list[str]:
        return [
            str(tool.get("name"))
            for tool in _dicts(_body(request).get("tools"))
            if tool.get("type") == "function"
        ]

    def tool_parameters(self, request: Recorded, name: str) -> dict[str, Any] | None:
        for tool in _dicts(_body(request).get("tools")):
            if tool.get("type") == "function" and tool.get("name") == name:
                parameters = tool.get("parameters")
                return parameters if isinstance(parameters, dict) else None
        return None

    def system_text(self, request: Recorded) -> str:
        instructions = _body(request).get("instructions")
        parts = [instructions] if isinstance(instructions, str) else []
        parts += [
            _input_text(m.get("content")) for m in self._messages(request, "system", "developer")
        ]
        return "\n\n".join(parts)

    def user_texts(self, request: Recorded) -> list[str]:
        return [_input_text(m.get("content")) for m in self._messages(request, "user")]

    def tool_calls(self, request: Recorded) -> list[ToolCall]:
        return [
            ToolCall(str(item.get("call_id")), str(item.get("name")), str(item.get("arguments")))
            for item in self._input(request)
            if item.get("type") == "function_call"
        ]

    def tool_results(self, request: Recorded) -> list[ToolResult]:
        return [
            ToolResult(str(item.get("call_id")), _input_text(item.get("output")))
            for item in self._input(request)
            if item.get("type") == "function_call_output"
        ]

    def has_image(self, request: Recorded) -> bool:
        for item in self._input(request):
            parts = _dicts(item.get("content")) + _dicts(item.get("output"))
            if any(part.get("type") == "input_image" for part in parts):
                return True
        return False

    def reasoning_state(self, request: Recorded) -> list[str]:
        """The `encrypted_content` of the reasoning items the input replays, in order."""
        return [
            str(item.get("encrypted_content"))
            for item in self._input(request)
            if item.get("type") == "reasoning" and item.get("encrypted_content")
        ]

    def call_id(self, seed: str) -> str:
        return f"call_{_hex(seed, 24)}"

    # -- answering -------------------------------------------------------------------------------

    def reply(
        self,
        request: Recorded,
        text: str | None = None,
        tool_calls: Sequence[ToolCallSpec] = (),
        reasoning: str | None = None,
        usage: Usage | None = None,
    ) -> Reply:
        """The fake's own `responses_reply`: the reasoning item carries its encrypted content
        and summary only when the request asked for them, as on OpenAI."""
        counts = None
        if usage is not None:
            counts = responses_usage(usage.prompt, usage.output, cached_tokens=usage.cached)
        answer = responses_reply(
            text, reasoning=[reasoning] if reasoning else None, tool_calls=tool_calls, usage=counts
        )(request)
        for item in _output(answer):
            if item.get("type") == "reasoning" and item.get("encrypted_content"):
                self.issued.append(str(item["encrypted_content"]))
        return answer

    def error(self, status: int, message: str) -> Reply:
        return responses_error(status, message)

    def cut(self, request: Recorded, text: str = "Partial text that never ends") -> Reply:
        if self.is_stream(request):
            events = response_events(
                [message_item(text)], model=self.model(request) or "gpt-5.6-terra", pieces=4
            )
            # created, in_progress, the item's added, its part's added and one delta: then cut.
            return ResponsesSseReply(events, cut_after=5)
        return HangReply(0.0)


def _output(reply: Reply) -> list[dict[str, Any]]:
    """The output items of a Responses reply (the whole response, or a stream's terminal
    event)."""
    if isinstance(reply, JsonReply) and isinstance(reply.body, dict):
        return _dicts(reply.body.get("output"))
    if isinstance(reply, SseReply):
        for event in reversed(reply.events):
            if isinstance(event, dict) and isinstance(event.get("response"), dict):
                return _dicts(event["response"].get("output"))
    return []


def bash_arguments(command: str, description: str = "Run a command") -> str:
    """Bash tool arguments as JSON."""
    return json.dumps({"command": command, "description": description})


# --- Gemini (native generateContent) ------------------------------------------------------------

_GEMINI_PATH = re.compile(r"/models/([^/:]+):(generateContent|streamGenerateContent)$")


def _response_text(response: Any) -> str:
    """A `functionResponse.response` as text: its `output` / `error` / `content` string, else
    the object as JSON."""
    if isinstance(response, dict):
        for key in ("output", "error", "content", "result"):
            if isinstance(response.get(key), str):
                return str(response[key])
    return json.dumps(response)


class Gemini:
    """The native Gemini API (`FakeGemini`, strict like the real one).

    Gemini issues no function call ids: `call_id` is empty, the ids of `reply`'s tool calls
    are ignored, and `tool_calls` / `tool_results` carry whatever id the request sent (the
    pairing is by order and name)."""

    dialect = "gemini"

    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.issued: list[str] = []

    def server(self) -> FakeGemini:
        return FakeGemini(api_key=self.api_key)

    # -- reading ---------------------------------------------------------------------------------

    def _contents(self, request: Recorded, role: str) -> list[dict[str, Any]]:
        return [c for c in _dicts(_body(request).get("contents")) if c.get("role") == role]

    def _parts(self, request: Recorded, role: str) -> list[dict[str, Any]]:
        return [p for c in self._contents(request, role) for p in _dicts(c.get("parts"))]

    def _declarations(self, request: Recorded) -> list[dict[str, Any]]:
        return [
            d
            for tool in _dicts(_body(request).get("tools"))
            for d in _dicts(tool.get("functionDeclarations"))
        ]

    def model(self, request: Recorded) -> str:
        match = _GEMINI_PATH.search(unquote(request.path))
        return match[1] if match else ""

    def is_stream(self, request: Recorded) -> bool:
        return request.path.endswith(":streamGenerateContent")

    def tool_names(self, request: Recorded) -> list[str]:
        return [str(d.get("name")) for d in self._declarations(request)]

    def tool_parameters(self, request: Recorded, name: str) -> dict[str, Any] | None:
        for declaration in self._declarations(request):
            if declaration.get("name") == name:
                schema = declaration.get("parametersJsonSchema") or declaration.get("parameters")
                return schema if isinstance(schema, dict) else None
        return None

    def system_text(self, request: Recorded) -> str:
        system = _body(request).get("systemInstruction")
        parts = _dicts(system.get("parts")) if isinstance(system, dict) else []
        return "".join(str(p.get("text", "")) for p in parts)

    def user_texts(self, request: Recorded) -> list[str]:
        return [
            str(p["text"]) for p in self._parts(request, "user") if isinstance(p.get("text"), str)
        ]

    def tool_calls(self, request: Recorded) -> list[ToolCall]:
        calls = [p["functionCall"] for p in self._parts(request, "model") if "functionCall" in p]
        return [
            ToolCall(str(c.get("id") or ""), str(c.get("name")), json.dumps(c.get("args") or {}))
            for c in calls
        ]

    def tool_results(self, request: Recorded) -> list[ToolResult]:
        responses = [
            p["functionResponse"] for p in self._parts(request, "user") if "functionResponse" in p
        ]
        return [
            ToolResult(str(r.get("id") or ""), _response_text(r.get("response")), str(r["name"]))
            for r in responses
        ]

    def has_image(self, request: Recorded) -> bool:
        return any(
            str((p.get("inlineData") or {}).get("mimeType", "")).startswith("image/")
            for p in self._parts(request, "user")
        )

    def reasoning_state(self, request: Recorded) -> list[str]:
        """The thought signatures on the model's parts, in order (the documented stand-in
        `skip_thought_signature_validator` included, as sent)."""
        return [
            str(p["thoughtSignature"])
            for p in self._parts(request, "model")
            if "thoughtSignature" in p
        ]

    def call_id(self, seed: str) -> str:
        return ""

    # -- answering -------------------------------------------------------------------------------

    def _render(self, request: Recorded, reply: GeminiReply) -> Reply:
        sse = "sse" in parse_qs(request.query).get("alt", [])
        return reply.render(self.is_stream(request), sse)

    def reply(
        self,
        request: Recorded,
        text: str | None = None,
        tool_calls: Sequence[ToolCallSpec] = (),
        reasoning: str | None = None,
        usage: Usage | None = None,
    ) -> Reply:
        """The thought summary (`reasoning`, only if the request's `thinkingConfig` asks for
        `includeThoughts`, as on Gemini), then text, then the calls. As Gemini 3 does, the
        signature goes on the first function call, or for an answer without calls on an
        empty-text part at its end."""
        signature = gemini_signature(reasoning) if reasoning else None
        config = _body(request).get("generationConfig") or {}
        thoughts = (config.get("thinkingConfig") or {}).get("includeThoughts") is True
        parts: list[dict[str, Any]] = [thought_part(reasoning)] if reasoning and thoughts else []
        if text:
            parts.append(text_part(text))
        for n, spec in enumerate(tool_calls):
            args = json.loads(spec[1]) if spec[1] else {}
            parts.append(call_part(spec[0], args, signature if n == 0 else None))
        if signature is not None:
            if not tool_calls:
                parts.append(signature_part(signature))
            self.issued.append(signature)
        counts = None
        if usage is not None:
            counts = usage_metadata(usage.prompt, usage.output, cached=usage.cached)
        return self._render(request, GeminiReply(parts, model=self.model(request), usage=counts))

    def error(self, status: int, message: str) -> Reply:
        return gemini_error(status, message)

    def cut(self, request: Recorded, text: str = "Partial text that never ends") -> Reply:
        if self.is_stream(request):
            model = self.model(request)
            return self._render(
                request, GeminiReply([text_part(text)], model=model, pieces=4, cut_after=2)
            )
        return HangReply(0.0)
