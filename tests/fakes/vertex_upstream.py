"""A fake Google Vertex AI (Claude's rawPredict) and a fake OAuth token endpoint: real HTTP/1.1
servers on loopback, strict like the real ones::

    with FakeVertex() as fake:
        fake.enqueue(anthropic_error(429))  # or google_error(429, "RESOURCE_EXHAUSTED", ...)
        ...  # point vdm at fake.base_url with VERTEX_API_KEY=TOKEN, VERTEX_PROJECT=PROJECT
        assert fake.last.path.endswith("/models/claude-sonnet-4-5@20250929:rawPredict")

Routes (under ``/v1``): ``POST /projects/{p}/locations/{l}/publishers/anthropic/models/
{id}:rawPredict`` (an Anthropic message), ``…:streamRawPredict`` (Anthropic SSE), ``…/models/
count-tokens:rawPredict`` (``{"input_tokens"}``), and ``GET /v1beta1/publishers/anthropic/
models``. Answers are the Anthropic fake's (tests/fakes/anthropic_upstream.py), behind these
refusals, in the real wording where sources quote it (providers.md §3, the issues cited in
vdm/protocol/vertex_from_anthropic.py):

* auth: ``Authorization: Bearer`` with a token of :attr:`FakeVertex.tokens`, else Google's 401
  (an array around ``{"error": {code, message, status}}``);
* another project or location than the fake's: Google's 403 PERMISSION_DENIED;
* a model id with a ``-YYYYMMDD`` date (Vertex's ids take ``@``): Google's 404 NOT_FOUND;
* ``model`` in a rawPredict body, a missing or wrong ``anthropic_version``, ``output_config``
  ("Extra inputs are not permitted"), ``stream`` not matching the method;
* a beta outside :attr:`FakeVertex.betas` in ``anthropic-beta`` ("Unexpected value(s) …"), and
  any beta on count-tokens (:attr:`FakeVertex.count_betas`);
* whatever Anthropic itself refuses (tests/fakes/anthropic_rules.py).

:class:`FakeTokenServer` is Google's OAuth token endpoint for a service account: it checks
the JWT assertion's RS256 signature against the key it generated (:meth:`FakeTokenServer.
key_file` writes the matching service-account JSON) and hands out tokens the Vertex fake
accepts.
"""

from __future__ import annotations

import base64
import itertools
import json as _json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.fakes.anthropic_upstream import FakeAnthropic, anthropic_error
from tests.fakes.openai_upstream import FakeOpenAI, JsonReply, Recorded, Reply

TOKEN = "ya29.fake-vertex-access-token-0001"
PROJECT = "vdm-test-project"
LOCATION = "us-east5"
VERSION = "vertex-2023-10-16"
#: Betas the fake's models take (a subset of vdm's allowlist: a model that lags behind).
BETAS = frozenset(
    {
        "interleaved-thinking-2025-05-14",
        "context-1m-2025-08-07",
        "context-management-2025-06-27",
        "fine-grained-tool-streaming-2025-05-14",
    }
)
_PATH = re.compile(
    r"^/v1/projects/([^/]+)/locations/([^/]+)/publishers/anthropic/models/([^/:]+)"
    r":(rawPredict|streamRawPredict)$"
)
_DATED = re.compile(r"-\d{8}$")
_BAD_BETA = (
    "Unexpected value(s) {} for the `anthropic-beta` header. Please consult our documentation "
    "at docs.anthropic.com or try again without the header."
)


def google_error(status: int, kind: str, message: str) -> JsonReply:
    """An error as Vertex's front end sends it: Google's error object, in an array."""
    return JsonReply(
        [{"error": {"code": status, "message": message, "status": kind}}], status=status
    )


def claude_of(model_id: str) -> str:
    """The Claude name a Vertex id stands for (`claude-x@20250929` -> `claude-x-20250929`)."""
    name, _, version = model_id.partition("@")
    return f"{name}-{version}" if version.isdigit() else name


class FakeVertex(FakeAnthropic):
    """A fake Vertex AI on ``127.0.0.1``; :attr:`base_url` is its ``…/v1``. :attr:`tokens`
    are the bearer tokens it accepts (a token server adds those it issues); :attr:`rejected`
    holds every refusal's message."""

    _thread_name = "fake-vertex"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        project: str = PROJECT,
        location: str = LOCATION,
    ) -> None:
        super().__init__(host, port)
        self.project = project
        self.location = location
        self.tokens: set[str] = {TOKEN}
        self.betas = BETAS
        self.count_betas: frozenset[str] = frozenset()
        self.rejected: list[str] = []

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def _reject(self, message: str) -> JsonReply:
        self.rejected.append(message)
        return anthropic_error(400, "invalid_request_error", message)

    def _route(self, request: Recorded) -> Reply:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in self.tokens:
            self.rejected.append("unauthenticated")
            return google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential.",
            )
        if request.method == "GET" and request.path == "/v1beta1/publishers/anthropic/models":
            return JsonReply({"publisherModels": [{"name": "publishers/anthropic/models/x"}]})
        match = _PATH.match(request.path)
        if request.method != "POST" or match is None:
            return google_error(404, "NOT_FOUND", f"The URL {request.path} was not found.")
        project, location, model_id, method = match.groups()
        resource = f"projects/{project}/locations/{location}/publishers/anthropic/models/{model_id}"
        if (project, location) != (self.project, self.location):
            self.rejected.append("permission")
            return google_error(
                403,
                "PERMISSION_DENIED",
                f"Permission 'aiplatform.endpoints.predict' denied on resource "
                f"'//aiplatform.googleapis.com/{resource}' (or it may not exist).",
            )
        body = request.json
        if not isinstance(body, dict):
            return self._reject("Input should be a valid dictionary")
        if body.get("anthropic_version") != VERSION:
            return self._reject("anthropic_version: Field required or invalid")
        betas = [b.strip() for b in request.headers.get("anthropic-beta", "").split(",")]
        if model_id == "count-tokens":
            return self._count(body, [b for b in betas if b])
        if _DATED.search(model_id):
            self.rejected.append("not found")
            return google_error(404, "NOT_FOUND", f"Publisher Model `{resource}` not found.")
        refused = [f"`{b}`" for b in betas if b and b not in self.betas]
        if refused:
            return self._reject(_BAD_BETA.format(", ".join(refused)))
        for key in ("model", "output_config"):
            if key in body:
                return self._reject(f"{key}: Extra inputs are not permitted")
        if (body.get("stream") is True) != (method == "streamRawPredict"):
            return self._reject(f"stream: {body.get('stream')!r} does not match {method}")
        inner = {k: v for k, v in body.items() if k != "anthropic_version"}
        inner["model"] = claude_of(model_id)
        data = _json.dumps(inner).encode()
        return super()._route(
            Recorded("POST", "/v1/messages", request.query, request.headers, data)
        )

    def _count(self, body: dict[str, Any], betas: list[str]) -> Reply:
        refused = [f"`{b}`" for b in betas if b not in self.count_betas]
        if refused:
            return self._reject(_BAD_BETA.format(", ".join(refused)))
        model = body.get("model")
        if not isinstance(model, str) or _DATED.search(model):
            return self._reject(f"model: {model!r} is not a Vertex model id")
        if "messages" not in body:
            return self._reject("messages: Field required")
        return JsonReply({"input_tokens": self.count_tokens_result})


# -- the OAuth token endpoint ---------------------------------------------------------------------


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class FakeTokenServer(FakeOpenAI):
    """Google's OAuth token endpoint (``POST /token``) for one generated service account: a
    JWT-bearer grant whose assertion is signed with its key gets a new token, which
    ``vertex`` then accepts. :attr:`issued` counts the tokens given; :attr:`expires_in` is
    their lifetime (below 225 s google-auth holds a token stale at once)."""

    _thread_name = "fake-google-token"

    def __init__(self, vertex: FakeVertex, *, expires_in: int = 3600, delay: float = 0.0) -> None:
        super().__init__("127.0.0.1", 0)
        self.vertex = vertex
        self.expires_in = expires_in
        self.delay = delay
        self.issued = 0
        self.refuse = False
        self._serial = itertools.count(1)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def key_file(self, directory: Path, project: str | None = PROJECT) -> Path:
        """A service-account key file whose `token_uri` is this server."""
        pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        info: dict[str, Any] = {
            "type": "service_account",
            "private_key_id": "fake-key-1",
            "private_key": pem,
            "client_email": "vdm-test@vdm-test-project.iam.gserviceaccount.com",
            "client_id": "100000000000000000001",
            "token_uri": f"{self.url}/token",
        }
        if project is not None:
            info["project_id"] = project
        path = directory / "service-account.json"
        path.write_text(_json.dumps(info))
        return path

    def _route(self, request: Recorded) -> Reply:
        if request.method != "POST" or request.path != "/token":
            return JsonReply({"error": "not_found"}, status=404)
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return JsonReply({"error": "unsupported_grant_type"}, status=400)
        problem = self._assertion_problem(form.get("assertion", ""))
        if problem is not None or self.refuse:
            return JsonReply(
                {
                    "error": "invalid_grant",
                    "error_description": problem or "Invalid JWT Signature.",
                },
                status=400,
            )
        if self.delay:
            time.sleep(self.delay)
        token = f"ya29.issued-{next(self._serial)}"
        self.vertex.tokens.add(token)
        self.issued += 1
        return JsonReply(
            {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}
        )

    def _assertion_problem(self, assertion: str) -> str | None:
        try:
            head, claims, signature = assertion.split(".")
            header = _json.loads(_b64decode(head))
            payload = _json.loads(_b64decode(claims))
        except ValueError:
            return "Invalid JWT: malformed"
        if header.get("alg") != "RS256":
            return "Invalid JWT: alg"
        try:
            self.key.public_key().verify(
                _b64decode(signature),
                f"{head}.{claims}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except Exception:
            return "Invalid JWT Signature."
        # google-auth always names Google's endpoint as the audience, whatever `token_uri`.
        if payload.get("aud") != "https://oauth2.googleapis.com/token":
            return "Invalid JWT: aud"
        if "cloud-platform" not in str(payload.get("scope", "")):
            return "Invalid JWT: scope"
        if abs(int(payload.get("iat", 0)) - time.time()) > 300:
            return "Invalid JWT: Token must be a short-lived token"
        return None
