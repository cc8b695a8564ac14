"""Request fields the Chat and Responses encoders write alike from an Anthropic request:
sampling, the structured-output schema, and who is asking (`user`, `prompt_cache_key`,
`safety_identifier`). The decoders' counterpart is `openai_request_in`.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from typing import Any

from vdm.protocol.anthropic import MessagesRequest
from vdm.protocol.capabilities import ModelCaps
from vdm.protocol.translation import FORMAT_NAME

_SESSION_RE = re.compile(r"_session_([0-9A-Za-z-]+)")


def sampling(req: MessagesRequest, caps: ModelCaps) -> dict[str, Any]:
    """`temperature` and `top_p` as the client set them, where the model takes them
    (reasoning models refuse them)."""
    fields: dict[str, Any] = {}
    if caps.sampling:
        if req.temperature is not None:
            fields["temperature"] = req.temperature
        if req.top_p is not None:
            fields["top_p"] = req.top_p
    return fields


def json_schema_format(schema: dict[str, Any], *, strict: bool) -> dict[str, Any]:
    """The named schema of OpenAI's structured outputs (Chat `response_format.json_schema`,
    Responses `text.format`)."""
    return {"name": FORMAT_NAME, "schema": schema, "strict": strict}


@lru_cache(maxsize=256)  # one per client session: a JSON parse and a hash each request
def identity(user_id: str) -> tuple[str, str | None]:
    """A stable `user` (<= 64 chars) and the session id for `prompt_cache_key`.

    Claude Code sends a JSON string with device_id/account_uuid/session_id; the user is the
    hash of the stable parts so it does not change from one session to the next.
    """
    session: str | None = None
    stable = user_id
    if user_id.startswith("{"):
        try:
            parsed = json.loads(user_id)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            session = parsed.get("session_id") or None
            stable = str(parsed.get("account_uuid") or parsed.get("device_id") or user_id)
    elif match := _SESSION_RE.search(user_id):
        session = match.group(1)
        stable = user_id[: match.start()]
    if len(stable) > 64 or stable != user_id:
        stable = hashlib.sha256(stable.encode()).hexdigest()
    return stable, session


@lru_cache(maxsize=256)
def safety_identifier(user: str) -> str:
    """`safety_identifier` must not identify the user: a sha256 hex digest (64 chars)."""
    if len(user) == 64 and all(c in "0123456789abcdef" for c in user):
        return user  # already identity()'s hash
    return hashlib.sha256(user.encode()).hexdigest()
