"""State that must survive a turn, carried through the client statelessly and reversibly.

Claude Code sends every assistant turn back verbatim, thinking blocks with their `signature`
and `tool_use` blocks with their `id` (shared/reference/providers.md §1c). vdm puts the
provider state it needs on the next turn there, marked as its own so it is never mistaken for
an Anthropic signature:

- thinking `signature` `vdm-rc1`: reasoning from a Chat Completions provider
  (`reasoning_content`); the text itself is the block's `thinking`.
- thinking `signature` `vdm-rs1:` + base64url(JSON `{"id", "ec"}`): an OpenAI Responses
  reasoning item (its id and encrypted content).
- thinking `signature` `vdm-g1:` + base64url(signature): a Gemini thought signature that sat
  on a thought or text part.
- `tool_use.id` `<base>_vdmg1_` + base64url(signature): the Gemini thought signature of that
  function call.
- `tool_use.id` `vdmid_` + base64url(id): a provider's tool call id that Anthropic would refuse
  (Kimi's `functions.Bash:0`), so a session that switches to Claude keeps working; the Chat
  encoder sends the provider its own id back.

Anthropic validates tool ids against `^[a-zA-Z0-9_-]+$`: base64url without padding fits.
Thinking blocks whose signature starts with `vdm-` are dropped before an Anthropic-format hop.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

#: Every vdm signature starts with this; nothing Anthropic signs does.
VDM_PREFIX = "vdm-"
#: Reasoning text from a Chat Completions provider.
CHAT_REASONING = "vdm-rc1"
RESPONSES_PREFIX = "vdm-rs1:"
GEMINI_PREFIX = "vdm-g1:"
#: Separates a tool id's base from the Gemini thought signature it carries.
GEMINI_ID_MARK = "_vdmg1_"
#: Starts a tool id that carries a provider's id outside Anthropic's alphabet.
TOOL_ID_PREFIX = "vdmid_"
_ANTHROPIC_ID = re.compile(r"[a-zA-Z0-9_-]+")


def is_vdm_signature(signature: str | None) -> bool:
    """Whether a thinking block's signature is vdm's own (or missing: also never Anthropic's)."""
    return not signature or signature.startswith(VDM_PREFIX)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


# --- OpenAI Responses reasoning items ------------------------------------------------------


def pack_reasoning(item_id: str, encrypted_content: str | None) -> str:
    """The thinking signature that carries a Responses reasoning item."""
    payload = {"id": item_id, "ec": encrypted_content}
    return RESPONSES_PREFIX + _b64url(json.dumps(payload, separators=(",", ":")).encode())


def unpack_reasoning(signature: str | None) -> tuple[str, str | None] | None:
    """(item id, encrypted content) from a `vdm-rs1:` signature; None for any other."""
    if not signature or not signature.startswith(RESPONSES_PREFIX):
        return None
    raw = _unb64url(signature[len(RESPONSES_PREFIX) :])
    if raw is None:
        return None
    try:
        payload: Any = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("id"), str):
        return None
    ec = payload.get("ec")
    return payload["id"], ec if isinstance(ec, str) else None


# --- Gemini thought signatures ---------------------------------------------------------------


def _sig_to_url(signature: str) -> str:
    """A Gemini thought signature (standard base64) as base64url without padding."""
    return signature.replace("+", "-").replace("/", "_").rstrip("=")


def _sig_from_url(text: str) -> str:
    return text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4)


def pack_thought(signature: str) -> str:
    """The thinking signature that carries a Gemini thought signature."""
    return GEMINI_PREFIX + _sig_to_url(signature)


def unpack_thought(signature: str | None) -> str | None:
    """The Gemini thought signature inside a `vdm-g1:` thinking signature, else None."""
    if not signature or not signature.startswith(GEMINI_PREFIX):
        return None
    return _sig_from_url(signature[len(GEMINI_PREFIX) :]) or None


def id_with_thought(base: str, signature: str | None) -> str:
    """A tool_use id that carries `signature` (the id unchanged when there is none)."""
    if not signature:
        return base
    return f"{base}{GEMINI_ID_MARK}{_sig_to_url(signature)}"


def split_thought_id(tool_id: str) -> tuple[str, str | None]:
    """(base id, Gemini thought signature or None) of a tool_use id."""
    base, mark, rest = tool_id.partition(GEMINI_ID_MARK)
    if not mark or not rest:
        return tool_id, None
    return base, _sig_from_url(rest)


# --- tool ids outside Anthropic's alphabet ---------------------------------------------------


def safe_tool_id(tool_id: str) -> str:
    """`tool_id` if Anthropic takes it (`^[a-zA-Z0-9_-]+$`), else `vdmid_` + base64url of it.

    An id that already starts with the prefix is encoded too, so `restore_tool_id` never
    mistakes a provider's own id for one of vdm's.
    """
    if _ANTHROPIC_ID.fullmatch(tool_id) and not tool_id.startswith(TOOL_ID_PREFIX):
        return tool_id
    return TOOL_ID_PREFIX + _b64url(tool_id.encode())


def restore_tool_id(tool_id: str) -> str:
    """The provider's id inside a `vdmid_` tool id; any other id unchanged."""
    if not tool_id.startswith(TOOL_ID_PREFIX):
        return tool_id
    raw = _unb64url(tool_id[len(TOOL_ID_PREFIX) :])
    if raw is None:
        return tool_id
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return tool_id
