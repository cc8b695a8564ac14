"""A forwarded OpenAI body, cleaned of what its provider would refuse (pure).

A Chat Completions or Responses client calling a provider of its own dialect has its body
forwarded with only `model` renamed (vdm/server/relay.py). But a session may have changed
provider on the way (a `/model` switch, a failover): earlier turns then came from a provider
of another dialect, translated by vdm, and the client echoes back the state vdm handed it
(vdm/protocol/signatures.py). The provider it now reaches refuses that state:

- Responses: a reasoning item whose `encrypted_content` is vdm's own (`vdm-th1:` + a whole
  Anthropic thinking block) is a 400 `invalid_encrypted_content`; a `call_id` over 64
  characters (a Gemini id carrying its thought signature, `<base>_vdmg1_<signature>`) is a
  400 `string_above_max_length`.
- Chat: `thinking_blocks` (LiteLLM-style Anthropic thinking, vdm/protocol/chat_from_events.py)
  carry signatures no Chat provider verifies; OpenAI and Mistral refuse any message property
  they do not know (`reasoning_content` from a translated turn); tool call ids over 40
  characters are refused by OpenAI ("Invalid 'messages[2].tool_calls[0].id': string too long.
  Expected a string with maximum length 40", reported on OpenAI, Azure and OpenRouter);
  Mistral wants exactly nine letters or digits (`ModelCaps.tool_id`); fields in
  `ModelCaps.rejects` are refused (Groq: `reasoning_content`).

So vdm's own reasoning is left out (the provider could not read it anyway), and a tool call
id the provider would refuse is renamed deterministically, the same in the call and in its
answer, so they still pair and every later turn renames them identically (the provider's
prompt cache sees the same prefix). Nothing needs mapping back: the ids in the provider's
answer are new ones it made itself, not the renamed ones.

The client's body is never changed in place (a failover may still translate it): only what
changes is copied.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from typing import Any

from vdm.protocol.capabilities import EFFORT_ORDER, ModelCaps
from vdm.protocol.codec import Target
from vdm.protocol.openai_from_anthropic import alnum9
from vdm.protocol.rejected_fields import drop_rejected
from vdm.protocol.signatures import VDM_PREFIX, restore_tool_id, split_thought_id

log = logging.getLogger(__name__)

#: OpenAI Responses `call_id`: "string too long. Expected a string with maximum length 64".
RESPONSES_CALL_ID_MAX = 64
#: OpenAI Chat tool call ids (also enforced by Azure, and by OpenAI behind OpenRouter); other
#: Chat providers take ids this short too, so it is the limit for every family.
CHAT_TOOL_ID_MAX = 40
#: vdm's own message property on Chat answers (Anthropic thinking blocks, LiteLLM style):
#: no Chat provider can verify their Anthropic signatures.
_VDM_FIELDS = frozenset({"thinking_blocks"})
_OPENAI_MESSAGE: dict[str, frozenset[str]] = {
    "developer": frozenset({"role", "content", "name"}),
    "system": frozenset({"role", "content", "name"}),
    "user": frozenset({"role", "content", "name"}),
    "assistant": frozenset(
        {"role", "content", "name", "tool_calls", "function_call", "refusal", "audio"}
    ),
    "tool": frozenset({"role", "content", "tool_call_id"}),
    "function": frozenset({"role", "content", "name"}),
}
#: Families that refuse any message property they do not know, and what each role takes:
#: OpenAI (the SDK's `*_message_param.py`; "Unknown parameter: 'messages[1].…'"), so a
#: `reasoning_content` from a DeepSeek or translated turn goes; Mistral (422
#: `extra_forbidden`, docs.mistral.ai chat completion messages). Groq's are `caps.rejects`.
MESSAGE_FIELDS: dict[str, dict[str, frozenset[str]]] = {
    "openai": _OPENAI_MESSAGE,
    "azure": _OPENAI_MESSAGE,
    "mistral": {
        "system": frozenset({"role", "content"}),
        "user": frozenset({"role", "content"}),
        "assistant": frozenset({"role", "content", "tool_calls", "prefix"}),
        "tool": frozenset({"role", "content", "tool_call_id", "name"}),
    },
}
_ALNUM9 = re.compile(r"[A-Za-z0-9]{9}")
#: Chat's output limits: the current name and the one older models and providers read.
_CHAT_LIMITS = ("max_completion_tokens", "max_tokens")


def clean_forwarded(data: Mapping[str, Any], dialect: str, target: Target) -> dict[str, Any]:
    """`data` (a Chat body when `dialect` is `openai`, else a Responses one) as the provider
    and model of `target` take it; a new top-level dict, `data` itself untouched."""
    body = dict(data)
    caps = target.caps
    if dialect == "responses":
        _clean_input(body)
    else:
        _clean_messages(body, target.family, caps)
    _fit_output(body, dialect, target)
    _fit_effort(body, dialect, caps)
    drop_rejected(body, caps.rejects, messages=dialect != "responses")
    return body


# --- output limit and effort ----------------------------------------------------------------


def _fit_output(body: dict[str, Any], dialect: str, target: Target) -> None:
    """The client's output limit within the model's ceiling and `MAX_TOKENS_LIMIT` (OpenAI:
    "max_tokens is too large: 100000. This model supports at most 16384 completion
    tokens"); where the client set none, `MAX_TOKENS_LIMIT` when it is set, else nothing
    (the provider's default is the model's maximum). The model the client named may not be
    the one it reaches (an alias), so its limit may not fit."""
    ceiling = target.max_tokens_ceiling
    if ceiling is None:
        return
    names = ("max_output_tokens",) if dialect == "responses" else _CHAT_LIMITS
    given = [name for name in names if name in body]
    for name in given:
        value = body[name]
        if isinstance(value, int) and not isinstance(value, bool) and value > ceiling:
            log.debug("forwarded request: %s %d lowered to %d", name, value, ceiling)
            body[name] = ceiling
    if not given and target.max_tokens_limit is not None:
        name = names[0] if dialect == "responses" else target.caps.max_tokens_field
        body[name] = ceiling


def _fit_effort(body: dict[str, Any], dialect: str, caps: ModelCaps) -> None:
    """The client's reasoning effort as the model takes it: the nearest effort it accepts
    (gpt-5 has `minimal`, not `none`), and none at all for a model that does not reason
    (gpt-4o: "Unrecognized request argument supplied: reasoning_effort"). A value vdm does
    not know goes as it came: the provider may know it."""
    if dialect == "responses":
        reasoning = body.get("reasoning")
        effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    else:
        reasoning, effort = None, body.get("reasoning_effort")
    if not isinstance(effort, str):
        return
    if not caps.reasoning:
        log.debug("forwarded request: the model does not reason: effort %r dropped", effort)
        if isinstance(reasoning, dict):
            # Reasoning settings mean nothing to it ("reasoning.effort is not supported").
            del body["reasoning"]
        else:
            del body["reasoning_effort"]
        return
    if effort not in EFFORT_ORDER and effort != "none":
        return
    accepted = caps.effort(effort)
    if accepted is None or accepted == effort:
        return
    log.debug("forwarded request: effort %r sent as %r", effort, accepted)
    if isinstance(reasoning, dict):
        body["reasoning"] = {**reasoning, "effort": accepted}
    else:
        body["reasoning_effort"] = accepted


def short_call_id(call_id: str) -> str:
    """A stable `call_` id of 29 characters standing for `call_id` (96 bits of its SHA-256:
    two ids of one conversation colliding is negligible)."""
    return "call_" + hashlib.sha256(call_id.encode()).hexdigest()[:24]


def chat_tool_id(tool_id: str, caps: ModelCaps) -> tuple[str, str | None]:
    """(the id a Chat provider with `caps` takes for the client's `tool_id`, the Gemini thought
    signature the id carried). Mistral gets the same nine characters the translating encoder
    gives it (vdm/protocol/openai_from_anthropic.py `alnum9`), so a session that goes from
    translated to forwarded on Mistral keeps its ids; other providers get the id without
    vdm's signature, shortened if too long."""
    base, signature = split_thought_id(tool_id)
    if caps.tool_id == "alnum9":
        if _ALNUM9.fullmatch(tool_id):
            return tool_id, None
        base = restore_tool_id(base)
        return (base if _ALNUM9.fullmatch(base) else alnum9(base)), signature
    if len(base) > CHAT_TOOL_ID_MAX:
        base = short_call_id(base)
    return base, signature


# --- Responses --------------------------------------------------------------------------------


def _is_vdm_reasoning(item: Mapping[str, Any]) -> bool:
    encrypted = item.get("encrypted_content")
    return (
        item.get("type") == "reasoning"
        and isinstance(encrypted, str)
        and (encrypted.startswith(VDM_PREFIX))
    )


def _clean_input(body: dict[str, Any]) -> None:
    items = body.get("input")
    if not isinstance(items, list):
        return
    kept: list[Any] = []
    dropped = renamed = 0
    for item in items:
        if isinstance(item, dict):
            if _is_vdm_reasoning(item):
                dropped += 1
                continue
            call_id = item.get("call_id")
            if isinstance(call_id, str) and len(call_id) > RESPONSES_CALL_ID_MAX:
                item = {**item, "call_id": short_call_id(call_id)}
                renamed += 1
        kept.append(item)
    if dropped:
        log.debug("forwarded request: %d reasoning item(s) made by vdm left out", dropped)
    if renamed:
        log.debug(
            "forwarded request: %d call_id(s) over %d chars renamed",
            renamed,
            RESPONSES_CALL_ID_MAX,
        )
    if dropped or renamed:
        body["input"] = kept


# --- Chat Completions -------------------------------------------------------------------------


def _refused(message: dict[str, Any], family: str) -> set[str]:
    """The message's properties its provider's family refuses (those of `ModelCaps.rejects`
    go last, in `drop_rejected`)."""
    refused = set(_VDM_FIELDS.intersection(message))
    allowed = MESSAGE_FIELDS.get(family, {}).get(str(message.get("role")))
    if allowed is not None:
        refused.update(k for k in message if k not in allowed)
    return refused


def _clean_messages(body: dict[str, Any], family: str, caps: ModelCaps) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return
    dropped: set[str] = set()
    renamed = 0
    cleaned: list[Any] = []
    for message in messages:
        if not isinstance(message, dict):
            cleaned.append(message)
            continue
        new = message
        gone = _refused(message, family)
        if gone:
            dropped |= gone
            new = {k: v for k, v in message.items() if k not in gone}
        tool_calls = message.get("tool_calls")
        if isinstance(tool_calls, list):
            calls = [_tool_call(call, caps) for call in tool_calls]
            changed = sum(a is not b for a, b in zip(calls, tool_calls, strict=True))
            if changed:
                renamed += changed
                new = {**new, "tool_calls": calls}
        answered = message.get("tool_call_id")
        if message.get("role") == "tool" and isinstance(answered, str):
            wire, _ = chat_tool_id(answered, caps)
            if wire != answered:
                renamed += 1
                new = {**new, "tool_call_id": wire}
        cleaned.append(new)
    for key in sorted(dropped):
        log.debug("forwarded request: message property %r dropped: %s refuses it", key, family)
    if renamed:
        log.debug("forwarded request: %d tool call id(s) renamed for %s", renamed, family)
    if dropped or renamed:
        body["messages"] = cleaned


def _tool_call(call: Any, caps: ModelCaps) -> Any:
    """The call with the id its provider takes; the very same object when nothing changes.
    A Gemini thought signature the id carried goes where Gemini's OpenAI-compatible endpoint
    reads it (`extra_content.google.thought_signature`) when the provider wants it."""
    if not isinstance(call, dict) or not isinstance(call.get("id"), str):
        return call
    wire, signature = chat_tool_id(call["id"], caps)
    if wire == call["id"]:
        return call
    new = {**call, "id": wire}
    if signature and caps.thought_signatures and "extra_content" not in call:
        new["extra_content"] = {"google": {"thought_signature": signature}}
    return new
