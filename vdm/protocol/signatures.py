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
- reasoning item `encrypted_content` `vdm-th1:` + base64url(JSON `{"t", "s"}` or `{"r"}`):
  a whole thinking block, handed to a Responses client (Codex), which sends it back.
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
#: A whole thinking block in a Responses reasoning item's `encrypted_content` (Codex).
THINKING_PREFIX = "vdm-th1:"
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


# --- thinking blocks carried by a Responses client (Codex) ----------------------------------


def pack_thinking(block: dict[str, Any]) -> str:
    """A reasoning item's `encrypted_content` for a Responses client: the canonical thinking
    block, whole (Anthropic needs it byte-exact with its signature; the `summary` a client
    sends back is not guaranteed intact), as `vdm-th1:` + base64url(JSON `{"t", "s"}`), or
    `{"r"}` for a redacted block."""
    if block.get("type") == "redacted_thinking":
        payload: dict[str, Any] = {"r": block.get("data", "")}
    else:
        payload = {"t": block.get("thinking", ""), "s": block.get("signature", "")}
    raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return THINKING_PREFIX + _b64url(raw)


def unpack_thinking(encrypted_content: Any) -> dict[str, Any] | None:
    """The thinking (or redacted_thinking) block a `pack_thinking` value carries; None for
    anything else (another gateway's or OpenAI's own encrypted content)."""
    if not isinstance(encrypted_content, str) or not encrypted_content.startswith(THINKING_PREFIX):
        return None
    raw = _unb64url(encrypted_content[len(THINKING_PREFIX) :])
    if raw is None:
        return None
    try:
        payload: Any = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    if isinstance(payload.get("r"), str):
        return {"type": "redacted_thinking", "data": payload["r"]}
    thinking, signature = payload.get("t"), payload.get("s")
    if not isinstance(thinking, str) or not isinstance(signature, str):
        return None
    return {"type": "thinking", "thinking": thinking, "signature": signature}


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


def echoed_tool_id(tool_id: str) -> str:
    """A tool call id from an OpenAI client's history, as the canonical form holds it.

    The client echoes the ids vdm's answers gave it, and those are canonical ids already
    (`vdmid_…` included: encoding one again would hide the provider's own id from
    `restore_tool_id`); only an id outside Anthropic's alphabet, which the client made up
    itself, is encoded (`safe_tool_id`)."""
    return tool_id if _ANTHROPIC_ID.fullmatch(tool_id) else safe_tool_id(tool_id)


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
