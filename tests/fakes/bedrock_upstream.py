"""A fake Amazon Bedrock runtime (InvokeModel for Claude): a real HTTP/1.1 server on loopback,
strict like the real one. It inherits :class:`~tests.fakes.openai_upstream.FakeOpenAI`'s
server, recording and scripting::

    with FakeBedrock(auth="sigv4") as fake:
        fake.enqueue(event_stream(anthropic_stream_events("Hi", pieces=2)))
        ...  # point vdm at fake.url with BEDROCK_AUTH=sigv4 and the fake's keys
        assert fake.last.path == "/model/us.anthropic.claude-sonnet-4-5-20250929-v1:0/invoke"

Routes (the raw path: an ARN's `/` must come as `%2F`): ``POST /model/{id}/invoke`` (an
Anthropic message), ``…/invoke-with-response-stream`` (AWS event-stream ``chunk`` frames,
each one Anthropic event in base64, ``message_stop`` with ``amazon-bedrock-invocationMetrics``),
``…/count-tokens`` (``{"inputTokens"}``, bare foundation ids only) and
``GET /foundation-models``. Errors are Bedrock's: ``{"message"}`` with ``x-amzn-ErrorType``.

Refused, with the real wording where sources quote it (providers.md §2, LiteLLM and Claude
Code issues cited in vdm/protocol/bedrock_from_anthropic.py):

* auth: SigV4 recomputed with the fake's secret (vdm/upstream/sigv4.py, itself checked against
  the AWS test suite), scope (region, service, date), clock skew, session token; or the
  Bedrock API key as ``Authorization: Bearer``;
* a model id that is neither a Claude id nor an inference-profile ARN;
* ``model`` or ``stream`` in the body ("extraneous key [stream] is not permitted"), a missing
  ``anthropic_version``;
* betas outside :attr:`FakeBedrock.betas` ("invalid beta flag"), top-level fields outside
  :attr:`FakeBedrock.fields` ("{field}: Extra inputs are not permitted"),
  ``context_management`` edits other than compaction;
* Claude Code's ``x-anthropic-billing-header`` system block (wording approximated);
* whatever Anthropic itself refuses (tests/fakes/anthropic_rules.py), for the model the id
  names.
"""

from __future__ import annotations

import base64
import binascii
import json as _json
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from tests.fakes.anthropic_rules import check as anthropic_check
from tests.fakes.anthropic_upstream import FakeAnthropic, anthropic_message, anthropic_stream_events
from tests.fakes.openai_upstream import FakeOpenAI, JsonReply, Recorded, Reply, SseReply
from vdm.protocol.aws_eventstream import chunk_event, exception_event
from vdm.upstream.sigv4 import signature

ACCESS_KEY = "AKIAFAKEBEDROCK00001"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYFAKEBEDROCK"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEFAKE-session-token-0001"
API_KEY = "ABSKQmVkcm9ja0FQSUtleS1mYWtlLTAwMDE="
REGION = "us-east-1"
#: The betas live probes found Bedrock taking (envoyproxy/ai-gateway PR#2512), and Claude
#: Code's own, which Bedrock took up to Opus 4.6 (anthropics/claude-code#49648).
BETAS = frozenset(
    {
        "claude-code-20250219",
        "context-1m-2025-08-07",
        "context-management-2025-06-27",
        "interleaved-thinking-2025-05-14",
        "dev-full-thinking-2025-05-14",
        "fine-grained-tool-streaming-2025-05-14",
        "token-efficient-tools-2025-02-19",
        "token-counting-2024-11-01",
        "tool-search-tool-2025-10-19",
        "computer-use-2024-10-22",
        "computer-use-2025-01-24",
        "mcp-client-2025-04-04",
        "mcp-client-2025-11-20",
        "web-search-2025-03-05",
        "search-results-2025-06-09",
        "output-128k-2025-02-19",
    }
)
#: Top-level body fields: the AWS request reference, plus `thinking`, `metadata`,
#: `output_config` and compaction's `context_management` (LiteLLM's typed allowlist).
FIELDS = frozenset(
    {
        "anthropic_version",
        "anthropic_beta",
        "max_tokens",
        "messages",
        "system",
        "stop_sequences",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "thinking",
        "metadata",
        "output_config",
        "context_management",
    }
)
_PATH = re.compile(r"^/model/([^/]+)/(invoke|invoke-with-response-stream|count-tokens)$")
_CLAUDE_ID = re.compile(
    r"^(?:(us|eu|apac|global|jp|au|us-gov)\.)?anthropic\.(claude-[a-z0-9-]+?)(-v\d+(:\d+)?)?$"
)
_ARN = re.compile(
    r"^arn:aws:bedrock:[a-z0-9-]+:\d{12}:(application-inference-profile|inference-profile)/"
    r"[A-Za-z0-9.:-]+$"
)
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
    r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$"
)
_MALFORMED = "Malformed input request: {}, please reformat your input and try again."
_MODEL_ERRORS = "The model returned the following errors: {}"
_ARN_MODEL = "claude-sonnet-4-5-20250929"  # what the fake's inference-profile ARNs route to


# -- builders -------------------------------------------------------------------------------------


def bedrock_error(status: int, kind: str, message: str) -> JsonReply:
    """An error as Bedrock sends it: `{"message"}`, the type in `x-amzn-ErrorType`."""
    headers = {
        "x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/",
        "x-amzn-RequestId": str(uuid.uuid4()),
    }
    return JsonReply({"message": message}, status=status, headers=headers)


def _event_json(event: Mapping[str, Any] | bytes) -> bytes:
    """One Anthropic event's JSON: a dict, or an SSE event's `data:` line."""
    if isinstance(event, bytes):
        data = next(line for line in event.split(b"\n") if line.startswith(b"data: "))
        event = _json.loads(data.removeprefix(b"data: "))
    assert isinstance(event, Mapping)
    if event.get("type") == "message_stop":
        metrics = {
            "inputTokenCount": 12,
            "outputTokenCount": 6,
            "invocationLatency": 480,
            "firstByteLatency": 210,
        }
        event = {**event, "amazon-bedrock-invocationMetrics": metrics}
    return _json.dumps(event, separators=(",", ":")).encode()


def chunk_frames(events: Sequence[Mapping[str, Any] | bytes]) -> list[bytes]:
    """Anthropic events (dicts, or SSE events as the Anthropic fake builds them) as Bedrock
    `chunk` frames; pings are left out, as Bedrock does."""
    frames = []
    for event in events:
        data = _event_json(event)
        if _json.loads(data).get("type") != "ping":
            frames.append(chunk_event(data))
    return frames


def exception_frame(kind: str, message: str, **fields: object) -> bytes:
    """A stream exception (`throttlingException`, `modelStreamErrorException`, ...)."""
    return exception_event(kind, message, **fields)


def event_stream(
    events: Sequence[Mapping[str, Any] | bytes],
    *,
    then: Sequence[bytes] = (),
    cut_after: int | None = None,
) -> SseReply:
    """An InvokeModelWithResponseStream answer: `events` as chunk frames, then the raw frames
    of `then` (an exception); `cut_after` frames and the connection drops."""
    headers = {
        "content-type": "application/vnd.amazon.eventstream",
        "x-amzn-bedrock-content-type": "application/json",
        "x-amzn-RequestId": str(uuid.uuid4()),
    }
    frames = [*chunk_frames(events), *then]
    return SseReply(frames, done=False, headers=headers, cut_after=cut_after)


def claude_of(model_id: str) -> str:
    """The Claude model an id names, as Anthropic's rules know it."""
    match = _CLAUDE_ID.match(model_id)
    return match.group(2) if match else _ARN_MODEL


def auto_reply(request: Recorded) -> Reply:
    """ "Hello from fake Bedrock" from the model the path names, streamed iff the operation
    streams; usage also in Bedrock's token-count headers."""
    match = _PATH.match(request.path)
    model = claude_of(unquote(match.group(1))) if match else _ARN_MODEL
    if request.path.endswith("/invoke-with-response-stream"):
        return event_stream(anthropic_stream_events("Hello from fake Bedrock", model=model))
    message = anthropic_message("Hello from fake Bedrock", model=model)
    usage = message["usage"]
    headers = {
        "x-amzn-bedrock-input-token-count": str(usage["input_tokens"]),
        "x-amzn-bedrock-output-token-count": str(usage["output_tokens"]),
        "x-amzn-RequestId": str(uuid.uuid4()),
    }
    return JsonReply(message, headers=headers)


# -- SigV4 ----------------------------------------------------------------------------------------


def sigv4_problem(
    request: Recorded,
    *,
    access_key: str,
    secret_key: str,
    session_token: str | None,
    region: str,
    service: str,
) -> JsonReply | None:
    """The 403 AWS gives a request whose signature does not check out, else None."""
    auth = request.headers.get("authorization", "")
    if not auth:
        return bedrock_error(
            403, "MissingAuthenticationTokenException", "Missing Authentication Token"
        )
    match = _AUTH.match(auth)
    if match is None:
        return bedrock_error(
            403,
            "IncompleteSignatureException",
            f"Authorization header requires 'Credential', "
            f"'Signature' and 'SignedHeaders' parameters. Authorization={auth[:20]}",
        )
    key, day, scope_region, scope_service, names, _ = match.groups()
    if key != access_key:
        return bedrock_error(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    if scope_region != region:
        return bedrock_error(
            403,
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region, not '{scope_region}'.",
        )
    if scope_service != service:
        return bedrock_error(
            403,
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{service}'.",
        )
    stamp = request.headers.get("x-amz-date", "")
    try:
        when = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return bedrock_error(403, "IncompleteSignatureException", "Missing X-Amz-Date")
    if abs((datetime.now(UTC) - when).total_seconds()) > 300:
        return bedrock_error(
            403,
            "InvalidSignatureException",
            f"Signature expired: {stamp} is now earlier than the allowed skew.",
        )
    if day != stamp[:8]:
        return bedrock_error(
            403,
            "InvalidSignatureException",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            "from HTTP",
        )
    token = request.headers.get("x-amz-security-token")
    if token != session_token:
        return bedrock_error(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    signed = names.split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        return bedrock_error(
            403, "InvalidSignatureException", "'Host' and 'X-Amz-Date' must be signed."
        )
    pairs = [(n, request.headers[n]) for n in signed if n in request.headers]
    url = f"http://{request.headers.get('host', '')}{request.path}"
    if request.query:
        url += f"?{request.query}"
    expected = signature(
        request.method,
        url,
        pairs,
        request.body,
        access_key=access_key,
        secret_key=secret_key,
        session_token=token,
        region=region,
        service=service,
        now=when,
    )
    if expected.authorization != auth or len(pairs) != len(signed):
        return bedrock_error(
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. Consult the service "
            "documentation for details.",
        )
    return None


# -- the rules ------------------------------------------------------------------------------------


def check_invoke(
    body: Any, model_id: str, betas: frozenset[str], fields: frozenset[str]
) -> str | None:
    """The message of Bedrock's 400 for an InvokeModel body, else None."""
    if not isinstance(body, dict):
        return _MALFORMED.format(f"expected type: JSONObject, found: {type(body).__name__}")
    for key in ("model", "stream"):
        if key in body:
            return _MALFORMED.format(f"#: extraneous key [{key}] is not permitted")
    version = body.get("anthropic_version")
    if version is None:
        return _MALFORMED.format("#: required key [anthropic_version] not found")
    if version != "bedrock-2023-05-31":
        return _MALFORMED.format(f"#/anthropic_version: {version} is not a valid enum value")
    beta = body.get("anthropic_beta", [])
    if not isinstance(beta, list) or any(b not in betas for b in beta):
        return _MODEL_ERRORS.format("invalid beta flag")
    for key in body:
        if key not in fields:
            return _MODEL_ERRORS.format(f"{key}: Extra inputs are not permitted")
    management = body.get("context_management")
    if management is not None:
        edits = management.get("edits") if isinstance(management, dict) else None
        if not isinstance(edits, list) or any(
            not str(e.get("type", "")).startswith("compact_") for e in edits if isinstance(e, dict)
        ):
            return _MODEL_ERRORS.format("context_management: Extra inputs are not permitted")
    system = body.get("system")
    texts = (
        [system]
        if isinstance(system, str)
        else [b.get("text", "") for b in system or [] if isinstance(b, dict)]
    )
    if any(isinstance(t, str) and "x-anthropic-billing-header" in t for t in texts):
        return _MODEL_ERRORS.format(
            "system: x-anthropic-billing-header is a reserved keyword and may not be used in "
            "the system prompt"
        )
    rejected = anthropic_check({**body, "model": claude_of(model_id)})
    if rejected is not None:
        return _MODEL_ERRORS.format(rejected[1]["error"]["message"])
    return None


# -- the servers ----------------------------------------------------------------------------------


class FakeBedrock(FakeOpenAI):
    """A fake Bedrock runtime on ``127.0.0.1`` (OS-picked port); :attr:`url` is its base URL.

    ``auth`` is ``"sigv4"`` (:data:`ACCESS_KEY` / :data:`SECRET_KEY`, with ``session_token``
    when given) or ``"bearer"`` (:data:`API_KEY`). :attr:`betas` and :attr:`fields` are what it
    takes (narrow them to play a newer model); :attr:`rejected` holds every refusal."""

    _thread_name = "fake-bedrock"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        auth: str = "sigv4",
        session_token: str | None = None,
        region: str = REGION,
    ) -> None:
        super().__init__(host, port)
        self.auth = auth
        self.session_token = session_token
        self.region = region
        self.betas = BETAS
        self.fields = FIELDS
        self.count_tokens_result = 42
        self._default = auto_reply
        self.rejected: list[tuple[Recorded, str]] = []

    @property
    def base_url(self) -> str:
        return self.url

    def _error_reply(self, status: int, message: str) -> JsonReply:
        kind = "InternalServerException" if status >= 500 else "ValidationException"
        return bedrock_error(status, kind, message)

    def _auth_problem(self, request: Recorded) -> JsonReply | None:
        if self.auth == "bearer":
            if request.headers.get("authorization") != f"Bearer {API_KEY}":
                return bedrock_error(
                    403,
                    "UnrecognizedClientException",
                    "The security token included in the request is invalid.",
                )
            return None
        return sigv4_problem(
            request,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            session_token=self.session_token,
            region=self.region,
            service="bedrock",
        )

    def _reject(self, request: Recorded, message: str) -> JsonReply:
        self.rejected.append((request, message))
        return bedrock_error(400, "ValidationException", message)

    def _route(self, request: Recorded) -> Reply:
        problem = self._auth_problem(request)
        if problem is not None:
            return problem
        if request.method == "GET" and request.path == "/foundation-models":
            models = [
                {"modelId": f"anthropic.{m}-v1:0", "modelName": m, "providerName": "Anthropic"}
                for m in ("claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001")
            ]
            return JsonReply({"modelSummaries": models})
        match = _PATH.match(request.path)
        if request.method != "POST" or match is None:
            return bedrock_error(404, "UnknownOperationException", "Unknown operation")
        model_id, operation = unquote(match.group(1)), match.group(2)
        if not (_CLAUDE_ID.match(model_id) or _ARN.match(model_id)):
            return self._reject(request, "The provided model identifier is invalid.")
        body = request.json
        if operation == "count-tokens":
            return self._count(request, model_id, body)
        message = check_invoke(body, model_id, self.betas, self.fields)
        if message is not None:
            return self._reject(request, message)
        return self._next_reply(request)

    def _count(self, request: Recorded, model_id: str, body: Any) -> Reply:
        match = _CLAUDE_ID.match(model_id)
        if match is None or match.group(1):
            return self._reject(request, "The provided model doesn't support counting tokens.")
        try:
            raw = base64.b64decode(body["input"]["invokeModel"]["body"], validate=True)
            invoke = _json.loads(raw)
        except (KeyError, TypeError, ValueError, binascii.Error):
            return self._reject(
                request, _MALFORMED.format("#/input: expected invokeModel or converse")
            )
        message = check_invoke(invoke, model_id, self.betas, self.fields)
        if message is not None:
            return self._reject(request, message)
        return JsonReply({"inputTokens": self.count_tokens_result})


class FakeMantle(FakeAnthropic):
    """The Anthropic Messages API on Bedrock's mantle endpoint: the Anthropic fake, behind
    SigV4 with the signing name `bedrock-mantle`."""

    _thread_name = "fake-mantle"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, region: str = REGION) -> None:
        super().__init__(host, port)
        self.region = region

    def _route(self, request: Recorded) -> Reply:
        problem = sigv4_problem(
            request,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            session_token=None,
            region=self.region,
            service="bedrock-mantle",
        )
        if problem is not None:
            return problem
        if not request.path.startswith("/anthropic/"):
            return bedrock_error(404, "UnknownOperationException", "Unknown operation")
        path = request.path.removeprefix("/anthropic")
        inner = Recorded(request.method, path, request.query, request.headers, request.body)
        return super()._route(inner)

    @property
    def base_url(self) -> str:
        return f"{self.url}/anthropic"
