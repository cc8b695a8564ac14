"""A fake Gemini API upstream (native `generateContent`): a real HTTP/1.1 server on loopback,
strict like the real one.

It inherits the loopback server, request recording and scripting of
:class:`~tests.fakes.openai_upstream.FakeOpenAI`::

    with FakeGemini(api_key="AIza-test") as fake:
        fake.enqueue(GeminiReply([thought_part("Plan", signature=thought_signature("a")),
                                  call_part("Bash", {"command": "ls"})]))
        ...  # point vdm at fake.base_url (…/v1beta)
        assert fake.last.path == "/v1beta/models/gemini-3-pro-preview:streamGenerateContent"

Routes: ``POST /v1beta/models/{model}:generateContent`` (one JSON response),
``…:streamGenerateContent?alt=sse`` (SSE: one partial ``GenerateContentResponse`` per
``data:`` line, CRLF framing, no ``[DONE]``; without ``alt=sse`` a JSON array, as Google does)
and ``GET /v1beta/models``. A :class:`GeminiReply` renders as whichever the request asked for.

A request is answered only if :func:`check_request` finds nothing the real API rejects;
otherwise with the real status and Google's error shape (``{"error": {"code", "message",
"status"}}``), recorded in :attr:`FakeGemini.rejected`. The rules and their messages (quoted
from the real API; the sources are in docs/backends/gemini.md):

* the key: none (403 ``Method doesn't allow unregistered callers…``), a Bearer token instead
  of ``x-goog-api-key`` (401 ``Request had invalid authentication credentials…``), a wrong one
  (400 ``API key not valid. Please pass a valid API key.``); an unknown model (404);
* any field the request proto does not have, anywhere in the body: ``Invalid JSON payload
  received. Unknown name "x" at 'generation_config': Cannot find field.``; in a legacy
  ``parameters`` schema, the keywords the proto ``Schema`` lacks (tests/fakes/chat_rules.py);
* contents: no contents, a role other than user/model (``Please use a valid role: user,
  model.``), empty ``parts`` (``contents.parts must not be empty``), a part with no data
  (``required oneof field 'data' must have one initialized field``);
* function turns: a call turn not right after a user or response turn, a response turn not
  right after a call turn, and ``Please ensure that the number of function response parts is
  equal to the number of function call parts of the function call turn.``;
* thought signatures, on Gemini 3 (and the ``-latest`` aliases): the first call of every step
  of the current turn (after the last user content without function responses) must carry
  one (``Function call is missing a thought_signature in functionCall parts. …``); anywhere,
  a signature this fake never issued is ``Corrupted thought signature.`` (the documented
  ``skip_thought_signature_validator`` passes);
* ``parametersJsonSchema`` and ``responseJsonSchema`` (structured outputs): a ``$ref`` that
  does not resolve in the document (``reference to undefined schema at …``), a ``$ref``
  beside other keywords, ``required`` names that are not properties (``property is not
  defined``); invalid function names;
* ``googleSearch`` beside ``functionDeclarations``: ``Tool use with function calling is
  unsupported`` (grounded replies, :func:`grounded_reply`, only for requests with
  ``googleSearch``);
* ``thinkingConfig``: budget and level together (``You can only set only one of thinking
  budget and thinking level.``), a level on a 2.5 model, a level the model does not take
  (``Thinking level MEDIUM is not supported for this model. …``), a budget outside the 2.5
  model's range (``The thinking budget (N) is invalid.``).

Signatures are issued by the builders (:func:`thought_signature`): standard base64 with ``+``,
``/`` and ``=`` in it, sealed with an HMAC the fake checks, so a signature that vdm mangled or
invented is caught.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json as _json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from tests.fakes.chat_rules import _schema_problem as proto_schema_problem
from tests.fakes.openai_upstream import (
    FakeOpenAI,
    JsonReply,
    Recorded,
    Reply,
    SseReply,
    _dumps,
    _estimate_tokens,
    _split_text,
)

__all__ = [
    "DEFAULT_MODEL",
    "FakeGemini",
    "GeminiReply",
    "blocked_response",
    "call_part",
    "check_request",
    "gemini_chunks",
    "gemini_error",
    "gemini_response",
    "grounded_reply",
    "grounding_metadata",
    "signature_part",
    "text_part",
    "thought_part",
    "thought_signature",
    "usage_metadata",
]

DEFAULT_MODEL = "gemini-3-pro-preview"
SKIP_SIGNATURE = "skip_thought_signature_validator"
_DEFAULT_TEXT = "Hello from fake Gemini"
_RESPONSE_ID = "F4keGem1n1RespAAAAAAAAAAA"
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_MODELS = JsonReply(
    {
        "models": [
            {
                "name": f"models/{name}",
                "version": version,
                "displayName": display,
                "inputTokenLimit": 1048576,
                "outputTokenLimit": 65536,
                "supportedGenerationMethods": ["generateContent", "countTokens"],
                "thinking": True,
            }
            for name, version, display in (
                ("gemini-3-pro-preview", "3.0", "Gemini 3 Pro Preview"),
                ("gemini-3.1-pro-preview", "3.1", "Gemini 3.1 Pro Preview"),
                ("gemini-flash-latest", "3.8", "Gemini Flash Latest"),
                ("gemini-2.5-flash", "2.5", "Gemini 2.5 Flash"),
            )
        ],
        "nextPageToken": "",
    }
)

# --------------------------------------------------------------------------------------------
# Thought signatures: issued by the builders, checked by the fake
# --------------------------------------------------------------------------------------------

_SIGNING_KEY = b"fake-gemini-thought-signatures"
#: Encodes to `++++////` in standard base64: a signature that is not carried as base64url
#: and restored exactly comes back changed.
_SIGNATURE_MAGIC = b"\xfb\xef\xbe\xff\xff\xff"


def thought_signature(seed: str = "0") -> str:
    """A thought signature as Gemini issues them (opaque standard base64; this one ends in
    `=` and holds `+` and `/`), deterministic for `seed`, accepted by :class:`FakeGemini`."""
    nonce = hashlib.sha256(seed.encode()).digest()[:12]
    mac = hmac.new(_SIGNING_KEY, nonce, hashlib.sha256).digest()[:16]
    return base64.b64encode(_SIGNATURE_MAGIC + nonce + mac + b"\x01").decode()


def issued(signature: str) -> bool:
    """Whether `signature` is one the builders issued, unchanged."""
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    if base64.b64encode(raw).decode() != signature or not raw.startswith(_SIGNATURE_MAGIC):
        return False
    nonce, mac = raw[6:18], raw[18:34]
    expected = hmac.new(_SIGNING_KEY, nonce, hashlib.sha256).digest()[:16]
    return hmac.compare_digest(mac, expected) and raw[34:] == b"\x01"


# --------------------------------------------------------------------------------------------
# Builders: pure functions producing realistic Gemini objects
# --------------------------------------------------------------------------------------------


def _signed(part: dict[str, Any], signature: str | None) -> dict[str, Any]:
    if signature is not None:
        part["thoughtSignature"] = signature
    return part


def text_part(text: str, signature: str | None = None) -> dict[str, Any]:
    return _signed({"text": text}, signature)


def thought_part(text: str, signature: str | None = None) -> dict[str, Any]:
    """A thought summary part (`includeThoughts`)."""
    return _signed({"text": text, "thought": True}, signature)


def signature_part(signature: str) -> dict[str, Any]:
    """The empty-text part Gemini 3 ends a text answer with, carrying its signature."""
    return {"text": "", "thoughtSignature": signature}


def call_part(name: str, args: Mapping[str, Any], signature: str | None = None) -> dict[str, Any]:
    """A function call (Gemini sends it whole, without an id on the Gemini API)."""
    return _signed({"functionCall": {"name": name, "args": dict(args)}}, signature)


def usage_metadata(
    prompt: int = 12,
    candidates: int | None = 6,
    thoughts: int | None = None,
    cached: int | None = None,
) -> dict[str, Any]:
    """`usageMetadata`: `promptTokenCount` includes the cached tokens, the total counts
    thoughts; `None` leaves a count out (as Gemini does for zero)."""
    usage: dict[str, Any] = {"promptTokenCount": prompt}
    total = prompt
    if candidates is not None:
        usage["candidatesTokenCount"] = candidates
        total += candidates
    if cached is not None:
        usage["cachedContentTokenCount"] = cached
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached}]
    if thoughts is not None:
        usage["thoughtsTokenCount"] = thoughts
        total += thoughts
    usage["totalTokenCount"] = total
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    return usage


def _candidate_tokens(parts: Sequence[Mapping[str, Any]]) -> int:
    texts = [str(p.get("text") or "") for p in parts if not p.get("thought")]
    texts += [_json.dumps(p["functionCall"]) for p in parts if "functionCall" in p]
    return _estimate_tokens(*texts)


def gemini_response(
    parts: Sequence[Mapping[str, Any]],
    *,
    finish_reason: str | None = "STOP",
    finish_message: str | None = None,
    model: str = DEFAULT_MODEL,
    usage: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A whole `GenerateContentResponse` (what `:generateContent` answers)."""
    candidate: dict[str, Any] = {
        "content": {"parts": [dict(p) for p in parts], "role": "model"},
        "index": 0,
    }
    if finish_reason is not None:
        candidate["finishReason"] = finish_reason
    if finish_message is not None:
        candidate["finishMessage"] = finish_message
    return {
        "candidates": [candidate],
        "usageMetadata": dict(usage or usage_metadata(candidates=_candidate_tokens(parts))),
        "modelVersion": model,
        "responseId": _RESPONSE_ID,
    }


def gemini_chunks(
    parts: Sequence[Mapping[str, Any]],
    *,
    finish_reason: str | None = "STOP",
    finish_message: str | None = None,
    model: str = DEFAULT_MODEL,
    usage: Mapping[str, Any] | None = None,
    pieces: int | None = None,
) -> list[dict[str, Any]]:
    """The partial responses `:streamGenerateContent` sends for `parts`: text and thoughts in
    word-ish pieces (or `pieces` slices), a text part's signature on its first piece, a
    thought's on its last, each call whole in a chunk of its own. Every chunk carries the
    prompt's usage; the last one the finish reason and the whole usage."""
    final = dict(usage or usage_metadata(candidates=_candidate_tokens(parts)))
    running = {k: v for k, v in final.items() if k.startswith("prompt")}
    running["totalTokenCount"] = final["promptTokenCount"]
    pieces_out: list[dict[str, Any]] = []
    for part in parts:
        text = part.get("text")
        if "functionCall" in part or not text:
            pieces_out.append(dict(part))
            continue
        split = _split_text(str(text), pieces)
        for number, piece in enumerate(split):
            out: dict[str, Any] = {"text": piece}
            if part.get("thought"):
                out["thought"] = True
            sign_here = number == len(split) - 1 if part.get("thought") else number == 0
            if sign_here and "thoughtSignature" in part:
                out["thoughtSignature"] = part["thoughtSignature"]
            pieces_out.append(out)
    if not pieces_out:
        pieces_out.append({"text": ""})
    chunks = []
    for number, piece in enumerate(pieces_out):
        last = number == len(pieces_out) - 1
        candidate: dict[str, Any] = {"content": {"parts": [piece], "role": "model"}, "index": 0}
        if last and finish_reason is not None:
            candidate["finishReason"] = finish_reason
            if finish_message is not None:
                candidate["finishMessage"] = finish_message
        chunk = {
            "candidates": [candidate],
            "usageMetadata": dict(final if last and finish_reason is not None else running),
            "modelVersion": model,
            "responseId": _RESPONSE_ID,
        }
        chunks.append(chunk)
    return chunks


def blocked_response(reason: str = "SAFETY", model: str = DEFAULT_MODEL) -> dict[str, Any]:
    """The answer to a prompt Gemini refuses to process: no candidates, a block reason."""
    return {
        "promptFeedback": {
            "blockReason": reason,
            "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}
            ],
        },
        "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
        "modelVersion": model,
        "responseId": _RESPONSE_ID,
    }


def gemini_error(
    status: int, message: str, *, headers: Mapping[str, str] | None = None
) -> JsonReply:
    """Google's error response: `{"error": {"code", "message", "status"}}`."""
    body = {"error": {"code": status, "message": message, "status": _STATUS_NAMES[status]}}
    return JsonReply(body, status=status, headers=headers)


def sse_events(chunks: Sequence[Mapping[str, Any]]) -> list[bytes]:
    """`data: …` events as Google frames them (CRLF line ends)."""
    return [b"data: " + _dumps(chunk) + b"\r\n\r\n" for chunk in chunks]


@dataclass(frozen=True)
class GeminiReply:
    """A scripted answer, rendered as the request asks: JSON for `:generateContent`, SSE for
    `:streamGenerateContent?alt=sse` (JSON array without `alt=sse`). `raw` replaces the
    response (e.g. :func:`blocked_response`); `cut_after` drops the stream after that many
    events; `extra` events are appended to the stream (e.g. an in-band error)."""

    parts: Sequence[Mapping[str, Any]] = ()
    finish_reason: str | None = "STOP"
    finish_message: str | None = None
    usage: Mapping[str, Any] | None = None
    model: str = DEFAULT_MODEL
    pieces: int | None = None
    raw: Mapping[str, Any] | None = None
    cut_after: int | None = None
    extra: Sequence[Mapping[str, Any]] = field(default_factory=tuple)
    #: `groundingMetadata` (:func:`grounding_metadata`): on the last chunk, as Google sends it.
    grounding: Mapping[str, Any] | None = None

    def chunks(self) -> list[dict[str, Any]]:
        if self.raw is not None:
            return [dict(self.raw)]
        chunks = gemini_chunks(
            self.parts,
            finish_reason=self.finish_reason,
            finish_message=self.finish_message,
            model=self.model,
            usage=self.usage,
            pieces=self.pieces,
        )
        if self.grounding is not None:
            chunks[-1]["candidates"][0]["groundingMetadata"] = dict(self.grounding)
        return chunks

    def render(self, stream: bool, sse: bool) -> Reply:
        if not stream:
            if self.raw is not None:
                return JsonReply(dict(self.raw))
            response = gemini_response(
                self.parts,
                finish_reason=self.finish_reason,
                finish_message=self.finish_message,
                model=self.model,
                usage=self.usage,
            )
            if self.grounding is not None:
                response["candidates"][0]["groundingMetadata"] = dict(self.grounding)
            return JsonReply(response)
        chunks = [*self.chunks(), *map(dict, self.extra)]
        if not sse:
            return JsonReply(chunks)
        return SseReply(sse_events(chunks), done=False, cut_after=self.cut_after)


# --------------------------------------------------------------------------------------------
# The rules of the real API
# --------------------------------------------------------------------------------------------

Rejection = tuple[int, str]

#: The request proto, by JSON name: `None` is a value the fake does not look into, a dict a
#: message, a one-item list a repeated message, "schema" a proto `Schema`.
_PART: dict[str, Any] = {
    "text": None,
    "thought": None,
    "thoughtSignature": None,
    "inlineData": {"mimeType": None, "data": None},
    "fileData": {"mimeType": None, "fileUri": None, "displayName": None},
    "functionCall": {"id": None, "name": None, "args": None},
    "functionResponse": {
        "id": None,
        "name": None,
        "response": None,
        "parts": None,
        "willContinue": None,
        "scheduling": None,
    },
    "executableCode": {"language": None, "code": None},
    "codeExecutionResult": {"outcome": None, "output": None},
    "videoMetadata": None,
    "partMetadata": None,
    "mediaResolution": None,
}
_DATA_FIELDS = (
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
)
_CONTENT = {"role": None, "parts": [_PART]}
_DECLARATION = {
    "name": None,
    "description": None,
    "behavior": None,
    "parameters": "schema",
    "parametersJsonSchema": None,
    "response": "schema",
    "responseJsonSchema": None,
}
_REQUEST: dict[str, Any] = {
    "model": None,
    "contents": [_CONTENT],
    "systemInstruction": _CONTENT,
    "tools": [
        {
            "functionDeclarations": [_DECLARATION],
            "googleSearch": None,
            "googleSearchRetrieval": None,
            "codeExecution": None,
            "urlContext": None,
            "fileSearch": None,
            "googleMaps": None,
            "computerUse": None,
        }
    ],
    "toolConfig": {
        "functionCallingConfig": {"mode": None, "allowedFunctionNames": None},
        "retrievalConfig": None,
    },
    "safetySettings": None,
    "cachedContent": None,
    "generationConfig": {
        **dict.fromkeys(
            (
                "stopSequences",
                "responseMimeType",
                "responseJsonSchema",
                "responseModalities",
                "candidateCount",
                "maxOutputTokens",
                "temperature",
                "topP",
                "topK",
                "seed",
                "presencePenalty",
                "frequencyPenalty",
                "responseLogprobs",
                "logprobs",
                "enableEnhancedCivicAnswers",
                "speechConfig",
                "imageConfig",
                "mediaResolution",
            )
        ),
        "responseSchema": "schema",
        "thinkingConfig": {"includeThoughts": None, "thinkingBudget": None, "thinkingLevel": None},
    },
}
_MODES = frozenset({"MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"})
_LEVELS = frozenset({"MINIMAL", "LOW", "MEDIUM", "HIGH"})
_FUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}")
#: Models that sign their calls and take a thinking level (Gemini 3, the -latest aliases).
_GEMINI_3 = re.compile(r"^gemini-(3|flash-latest|flash-lite-latest|pro-latest)")
#: Levels per Gemini 3 model where they are not all four (ai.google.dev Gemini 3 guide).
_MODEL_LEVELS = (
    (re.compile(r"^gemini-3-pro"), frozenset({"LOW", "HIGH"})),
    (re.compile(r"^gemini-3\.1-pro|^gemini-pro-latest"), frozenset({"LOW", "MEDIUM", "HIGH"})),
)
#: Gemini 2.5 thinking budgets: (model pattern, lowest, highest, 0 allowed).
_BUDGETS = (
    (re.compile(r"^gemini-2\.5-pro"), 128, 32768, False),
    (re.compile(r"^gemini-2\.5-flash-lite"), 512, 24576, True),
    (re.compile(r"^gemini-2\.5-flash"), 1, 24576, True),
)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def _unknown_field(value: Any, spec: Any, at: str) -> str | None:
    """The proto parser's complaint about a field it has not, anywhere below `value`."""
    if spec == "schema":
        return proto_schema_problem(value, at)
    if isinstance(spec, list):
        if isinstance(value, list):
            for position, item in enumerate(value):
                problem = _unknown_field(item, spec[0], f"{at}[{position}]")
                if problem:
                    return problem
        return None
    if not isinstance(spec, dict) or not isinstance(value, dict):
        return None
    for key, item in value.items():
        name = _camel(key) if "_" in key else key
        if name not in spec:
            where = f" at '{at}'" if at else ""
            return f'Invalid JSON payload received. Unknown name "{key}"{where}: Cannot find field.'
        path = f"{at}.{_snake(name)}" if at else _snake(name)
        problem = _unknown_field(item, spec[name], path)
        if problem:
            return problem
    return None


def _get(message: Mapping[str, Any], name: str) -> Any:
    """A field by its JSON name, as camelCase or snake_case (the parser takes both)."""
    if name in message:
        return message[name]
    return message.get(_snake(name))


def _parts(content: Any) -> list[dict[str, Any]]:
    parts = _get(content, "parts") if isinstance(content, dict) else None
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def _count(content: Any, kind: str) -> int:
    return sum(1 for p in _parts(content) if kind in p or _snake(kind) in p)


def _contents_problem(contents: Any) -> str | None:
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified\n"
    for index, content in enumerate(contents):
        role = _get(content, "role") if isinstance(content, dict) else None
        if role not in (None, "user", "model"):
            return "Please use a valid role: user, model."
        parts = _get(content, "parts") if isinstance(content, dict) else None
        if not parts:
            return (
                f"* GenerateContentRequest.contents[{index}].parts: contents.parts must not be "
                "empty.\n"
            )
        for position, part in enumerate(_parts(content)):
            if sum(1 for f in _DATA_FIELDS if f in part or _snake(f) in part) != 1:
                return (
                    f"* GenerateContentRequest.contents[{index}].parts[{position}].data: "
                    "required oneof field 'data' must have one initialized field\n"
                )
    return None


def _turns_problem(contents: list[Any]) -> str | None:
    """Each call turn follows a user or response turn and is answered, in the very next
    content, by as many function responses as it has calls."""
    for index, content in enumerate(contents):
        calls = _count(content, "functionCall")
        responses = _count(content, "functionResponse")
        previous = contents[index - 1] if index else None
        if calls:
            if previous is not None and _get(previous, "role") == "model":
                return (
                    "Please ensure that function call turn comes immediately after a user "
                    "turn or after a function response turn."
                )
            following = contents[index + 1] if index + 1 < len(contents) else None
            answered = _count(following, "functionResponse") if following is not None else 0
            if following is not None and answered != calls:
                return (
                    "Please ensure that the number of function response parts is equal to the "
                    "number of function call parts of the function call turn."
                )
        if responses and (previous is None or not _count(previous, "functionCall")):
            return (
                "Please ensure that function response turn comes immediately after a function "
                "call turn."
            )
    return None


def _signature_problem(contents: list[Any], model: str) -> str | None:
    for content in contents:
        for part in _parts(content):
            signature = _get(part, "thoughtSignature")
            if signature is not None and signature != SKIP_SIGNATURE:
                if not isinstance(signature, str) or not issued(signature):
                    return "Corrupted thought signature."
    if not _GEMINI_3.search(model):
        return None
    start = 0
    for index, content in enumerate(contents):
        if _get(content, "role") == "user" and not _count(content, "functionResponse"):
            start = index + 1
    for index in range(start, len(contents)):
        content = contents[index]
        if _get(content, "role") != "model":
            continue
        first = next((p for p in _parts(content) if "functionCall" in p), None)
        if first is not None and _get(first, "thoughtSignature") is None:
            name = first["functionCall"].get("name")
            return (
                "Function call is missing a thought_signature in functionCall parts. This is "
                "required for tools to work correctly, and missing thought_signature may lead "
                f"to degraded model performance. Additional data, function call "
                f"`default_api:{name}` , position {index + 1}. Please refer to "
                "https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
            )
    return None


def _json_schema_problem(schema: Any, root: Any, at: str, path: str) -> str | None:
    """`parametersJsonSchema`: references must resolve in the document and stand alone;
    `required` names must be properties."""
    if not isinstance(schema, dict):
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str):
        extra = sorted(k for k in schema if k not in ("$ref", "description", "default"))
        if extra:
            name = ref.rsplit("/", 1)[-1]
            return (
                f"$ref '{name}' was set alongside unsupported fields. If a schema node has $ref "
                "set, then only description and default can be set alongside it."
            )
        node: Any = root
        for key in ref.removeprefix("#").strip("/").split("/") if ref != "#" else ():
            node = node.get(key) if isinstance(node, dict) else None
        if not ref.startswith("#") or node is None:
            return f"reference to undefined schema at {path or '(root)'}"
    required = schema.get("required")
    if isinstance(required, list):
        properties = schema.get("properties")
        names = properties if isinstance(properties, dict) else {}
        for position, name in enumerate(required):
            if name not in names:
                return (
                    f"* GenerateContentRequest.{at}.required[{position}]: property is not defined\n"
                )
    for key, value in schema.items():
        if key in ("properties", "patternProperties", "$defs", "definitions"):
            if isinstance(value, dict):
                for name, sub in value.items():
                    sub_path = f"{path}.{key}.{name}".lstrip(".")
                    problem = _json_schema_problem(sub, root, f"{at}.{key}[{name}]", sub_path)
                    if problem:
                        return problem
        elif key in ("anyOf", "oneOf", "allOf", "prefixItems") and isinstance(value, list):
            for position, sub in enumerate(value):
                sub_path = f"{path}.{key}.{position}".lstrip(".")
                problem = _json_schema_problem(sub, root, f"{at}.{key}[{position}]", sub_path)
                if problem:
                    return problem
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            sub_path = f"{path}.{key}".lstrip(".")
            problem = _json_schema_problem(value, root, f"{at}.{key}", sub_path)
            if problem:
                return problem
    return None


def _tools_problem(tools: Any) -> str | None:
    listed = [t for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []
    if any(_get(t, "googleSearch") is not None for t in listed) and any(
        _get(t, "functionDeclarations") for t in listed
    ):
        # googleapis/go-genai#323, googleapis/js-genai#435 (Live API only, per the docs).
        return "Tool use with function calling is unsupported"
    for tool_index, tool in enumerate(tools if isinstance(tools, list) else ()):
        declarations = _get(tool, "functionDeclarations") if isinstance(tool, dict) else None
        for position, declaration in enumerate(declarations or ()):
            at = f"tools[{tool_index}].function_declarations[{position}]"
            name = declaration.get("name")
            if not isinstance(name, str) or not _FUNCTION_NAME.fullmatch(name):
                return (
                    f"* GenerateContentRequest.{at}.name: Invalid function name. Must start "
                    "with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), "
                    "underscores (_), dots (.), colons (:) or dashes (-), with a maximum length "
                    "of 64.\n"
                )
            schema = _get(declaration, "parametersJsonSchema")
            problem = _json_schema_problem(schema, schema, f"{at}.parameters_json_schema", "")
            if problem:
                return problem
    return None


def _response_schema_problem(config: Any) -> str | None:
    schema = _get(config, "responseJsonSchema") if isinstance(config, dict) else None
    return _json_schema_problem(schema, schema, "generation_config.response_json_schema", "")


def _thinking_problem(config: Any, model: str) -> str | None:
    thinking = _get(config, "thinkingConfig") if isinstance(config, dict) else None
    if not isinstance(thinking, dict):
        return None
    level = _get(thinking, "thinkingLevel")
    budget = _get(thinking, "thinkingBudget")
    if level is not None and budget is not None:
        return "You can only set only one of thinking budget and thinking level."
    if level is not None:
        upper = str(level).upper()
        if upper not in _LEVELS:
            return (
                "Invalid value at 'generation_config.thinking_config.thinking_level' "
                "(type.googleapis.com/google.ai.generativelanguage.v1beta.ThinkingConfig."
                f'ThinkingLevel), "{level}"'
            )
        if not _GEMINI_3.search(model):
            return "thinking_level is not supported by this model"
        for pattern, levels in _MODEL_LEVELS:
            if pattern.search(model) and upper not in levels:
                return (
                    f"Thinking level {upper} is not supported for this model. Please retry "
                    "with other thinking level."
                )
    if isinstance(budget, int) and budget != -1:
        for pattern, low, high, zero in _BUDGETS:
            if pattern.search(model):
                if not (low <= budget <= high or (zero and budget == 0)):
                    return f"The thinking budget ({budget}) is invalid."
                break
    return None


def check_request(body: Any, model: str) -> Rejection | None:
    """(status, message) of the real API's refusal of a `generateContent` body for `model`,
    or None when it would be served."""
    if not isinstance(body, dict):
        return 400, "Invalid JSON payload received. Expected an object."
    problem = _unknown_field(body, _REQUEST, "")
    if problem:
        return 400, problem
    contents = _get(body, "contents")
    problem = _contents_problem(contents)
    if problem:
        return 400, problem
    system = _get(body, "systemInstruction")
    if system is not None and not _parts(system):
        return (
            400,
            "* GenerateContentRequest.system_instruction.parts: contents.parts must not be "
            "empty.\n",
        )
    problem = (
        _turns_problem(contents)
        or _signature_problem(contents, model)
        or _tools_problem(_get(body, "tools"))
        or _response_schema_problem(_get(body, "generationConfig"))
        or _thinking_problem(_get(body, "generationConfig"), model)
    )
    if problem:
        return 400, problem
    calling = _get(_get(body, "toolConfig") or {}, "functionCallingConfig") or {}
    mode = _get(calling, "mode")
    if mode is not None and mode not in _MODES:
        return 400, (
            "Invalid value at 'tool_config.function_calling_config.mode' "
            "(type.googleapis.com/google.ai.generativelanguage.v1beta.FunctionCallingConfig."
            f'Mode), "{mode}"'
        )
    return None


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------

_PATH = re.compile(r"^/v1beta/models/([^/:]+):(generateContent|streamGenerateContent)$")


def grounding_metadata(
    queries: Sequence[str],
    sources: Sequence[tuple[str, str]],
    supports: Sequence[tuple[str, int, int, Sequence[int]]] = (),
) -> dict[str, Any]:
    """Google Search grounding as the API reports it (ai.google.dev/gemini-api/docs/
    google-search): the queries run, the sources (`(uri, title)`: the uri a
    vertexaisearch redirect, the title the site's domain), and which text segments
    (`(text, start, end, chunk indices)`, UTF-8 byte offsets) each source supports."""
    return {
        "webSearchQueries": list(queries),
        "searchEntryPoint": {"renderedContent": "<style>…</style><div>…</div>"},
        "groundingChunks": [{"web": {"uri": uri, "title": title}} for uri, title in sources],
        "groundingSupports": [
            {
                "segment": {"startIndex": start, "endIndex": end, "text": text},
                "groundingChunkIndices": list(indices),
            }
            for text, start, end, indices in supports
        ],
    }


def grounded_reply(text: str, grounding: Mapping[str, Any]) -> Any:
    """A reply that is grounded only if the request has the `googleSearch` tool (the model
    cannot search otherwise)."""

    def reply(request: Recorded) -> GeminiReply:
        tools = _get(request.json or {}, "tools") or []
        searches = any(_get(t, "googleSearch") is not None for t in tools)
        return GeminiReply([text_part(text)], grounding=grounding if searches else None)

    return reply


def auto_reply(request: Recorded) -> GeminiReply:
    """The default reply: one text part, "Hello from fake Gemini"."""
    return GeminiReply([text_part(_DEFAULT_TEXT)])


class FakeGemini(FakeOpenAI):
    """A fake Gemini API on ``127.0.0.1`` (OS-picked port) in its own thread.

    ``api_key`` is the only key accepted (any non-empty key when None). Replies come from
    :meth:`enqueue` (FIFO) and then :attr:`default` (:func:`auto_reply`); a reply source may
    be a :class:`GeminiReply`, any fake reply, or a callable ``(Recorded) -> reply``.
    """

    _thread_name = "fake-gemini"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, api_key: str | None = None):
        super().__init__(host, port)
        self.api_key = api_key
        self._default = auto_reply  # type: ignore[assignment]
        #: Requests refused by a rule, with the message.
        self.rejected: list[tuple[Recorded, str]] = []

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1beta``, what a Gemini client takes as its base URL."""
        return f"{self.url}/v1beta"

    def _error_reply(self, status: int, message: str) -> JsonReply:
        status_name = _STATUS_NAMES.get(status, "INTERNAL" if status >= 500 else "UNKNOWN")
        body = {"error": {"code": status, "message": message, "status": status_name}}
        return JsonReply(body, status=status)

    def _auth_problem(self, request: Recorded) -> JsonReply | None:
        key = (
            request.headers.get("x-goog-api-key") or (parse_qs(request.query).get("key") or [""])[0]
        )
        if not key:
            if request.headers.get("authorization", "").lower().startswith("bearer "):
                return self._error_reply(
                    401,
                    "Request had invalid authentication credentials. Expected OAuth 2 access "
                    "token, login cookie or other valid authentication credential. See "
                    "https://developers.google.com/identity/sign-in/web/devconsole-project.",
                )
            return self._error_reply(
                403,
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call "
                "this API.",
            )
        if self.api_key is not None and key != self.api_key:
            return self._error_reply(400, "API key not valid. Please pass a valid API key.")
        return None

    def _reject(self, request: Recorded, status: int, message: str) -> JsonReply:
        self.rejected.append((request, message))
        return self._error_reply(status, message)

    def _route(self, request: Recorded) -> Reply:
        method, path = request.method, unquote(request.path)
        if method == "GET" and path == "/v1beta/models":
            return self._auth_problem(request) or _MODELS
        match = _PATH.match(path)
        if method != "POST" or match is None:
            return self._error_reply(404, f"Unknown request URL: {method} {path}.")
        problem = self._auth_problem(request)
        if problem is not None:
            return problem
        model, action = match.groups()
        if not model.startswith("gemini-"):
            return self._error_reply(
                404,
                f"models/{model} is not found for API version v1beta, or is not supported for "
                f"{action}. Call ListModels to see the list of available models and their "
                "supported methods.",
            )
        if request.json is None:
            return self._reject(request, 400, "Invalid JSON payload received.")
        rejection = check_request(request.json, model)
        if rejection is not None:
            return self._reject(request, *rejection)
        reply: Any = self._next_reply(request)
        if isinstance(reply, GeminiReply):
            sse = "sse" in parse_qs(request.query).get("alt", [])
            return reply.render(action == "streamGenerateContent", sse)
        return reply  # type: ignore[no-any-return]

    def served(self) -> list[dict[str, Any]]:
        """The bodies of the requests that were answered (not refused), oldest first."""
        refused = {id(r) for r, _ in self.rejected}
        return [r.json for r in self.requests if r.method == "POST" and id(r) not in refused]
