"""The Anthropic Messages backend (`{P}_API_FORMAT=anthropic`): the canonical dialect itself.

It serves two kinds of client:

- An Anthropic client's request is not translated at all: vdm/server/passthrough.py forwards
  the client's body (only `model` renamed, vdm's own thinking blocks dropped) and relays the
  answer byte for byte. That is what `translated = False` means; this backend then only
  gives the addressing.
- A client of another dialect (OpenAI Chat, Responses) reaches an Anthropic-format provider
  like any other backend: its request, already translated into the canonical (Anthropic)
  `MessagesRequest`, is encoded as JSON (`encode`), and the answer decoded back into an
  Anthropic message (`decode`) or canonical events (`stream_decoder`,
  vdm/protocol/anthropic_events.py). Since the canonical form is Anthropic's, encoding keeps
  everything the request holds (unknown fields, `cache_control`, server tools) and only does
  what the pass-through does to a raw body.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from vdm.config.settings import ProviderConfig
from vdm.protocol.anthropic import ANTHROPIC_VERSION, MessagesRequest
from vdm.protocol.anthropic_events import AnthropicEventDecoder
from vdm.protocol.anthropic_observe import usage_of
from vdm.protocol.codec import Target
from vdm.protocol.errors import VdmError
from vdm.protocol.signatures import is_vdm_signature

log = logging.getLogger(__name__)

MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"


class AnthropicBackend:
    name = "anthropic"
    translated = False

    def path(self, provider: ProviderConfig, model: str, stream: bool) -> str:
        return MESSAGES_PATH

    def headers(self, provider: ProviderConfig) -> dict[str, str]:
        # Anthropic refuses requests without it (GET /v1/models too); a passthrough request
        # sends the client's own instead.
        return {"anthropic-version": ANTHROPIC_VERSION}

    def models_path(self, provider: ProviderConfig) -> str:
        return "/v1/models"

    def encode(self, request: MessagesRequest, target: Target) -> bytes:
        """The request as the provider's JSON body: what was set, extra fields included,
        under the upstream `model`, without the thinking blocks Anthropic would refuse, and
        `max_tokens` within `MAX_TOKENS_LIMIT`."""
        body = request.model_dump(mode="json", exclude_unset=True, by_alias=True)
        body["model"] = target.model
        if request.stream:
            body["stream"] = True
        body["messages"] = _without_foreign_thinking(body["messages"])
        limit = target.max_tokens_limit
        if limit is not None and body["max_tokens"] > limit:
            body["max_tokens"] = limit
            _fit_budget(body)
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    def decode(self, answer: Any, request: MessagesRequest, target: Target) -> dict[str, Any]:
        """The provider's message as it came (blocks vdm cannot represent included: each
        frontend's encoder skips what it does not know), echoing the client's model name;
        a 502 when the answer is not an Anthropic message."""
        if not isinstance(answer, dict) or answer.get("type") != "message":
            kind = answer.get("type") if isinstance(answer, dict) else type(answer).__name__
            raise VdmError(502, f"type {kind!r} where a message was expected")
        if not isinstance(answer.get("content"), list):
            raise VdmError(502, "its content is not a list")
        # Flat integer usage, as the pass-through records it (cache write lifetimes kept).
        usage = {"input_tokens": 0, "output_tokens": 0, **usage_of(answer)}
        return {**answer, "model": target.requested, "usage": usage}

    def stream_decoder(self, request: MessagesRequest, target: Target) -> AnthropicEventDecoder:
        return AnthropicEventDecoder()

    def recover(self, error: VdmError, target: Target) -> str | None:
        return None  # an Anthropic request vdm changed nothing in that it could leave out


def _without_foreign_thinking(messages: list[Any]) -> list[Any]:
    """`messages` without thinking blocks Anthropic would refuse: unsigned, or signed by vdm
    (reasoning another provider gave, carried in the history). An assistant message left
    with nothing (a turn cut while thinking) is dropped: Anthropic refuses an empty one."""
    kept: list[Any] = []
    for message in messages:
        if (
            isinstance(message, dict)
            and message.get("role") == "assistant"
            and isinstance(content := message.get("content"), list)
        ):
            blocks = [b for b in content if not _foreign_thinking(b)]
            if len(blocks) != len(content):
                log.debug(
                    "%d thinking blocks Anthropic cannot verify: dropped",
                    len(content) - len(blocks),
                )
                if not blocks:
                    continue
                message = {**message, "content": blocks}
        kept.append(message)
    return kept


def _foreign_thinking(block: Any) -> bool:
    if not isinstance(block, dict) or block.get("type") != "thinking":
        return False
    signature = block.get("signature")
    return signature is None or (isinstance(signature, str) and is_vdm_signature(signature))


#: Anthropic's smallest thinking budget.
_MIN_BUDGET = 1024


def _fit_budget(body: dict[str, Any]) -> None:
    """Lower an enabled thinking budget that the clamped `max_tokens` no longer exceeds
    (Anthropic refuses `budget_tokens >= max_tokens`): the clamp is vdm's, so the refusal
    would be too. Below Anthropic's minimum budget thinking is turned off instead."""
    thinking = body.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or budget < body["max_tokens"]:
        return
    fitted = body["max_tokens"] - 1
    if fitted < _MIN_BUDGET:
        body["thinking"] = {"type": "disabled"}
    else:
        body["thinking"] = {**thinking, "budget_tokens": fitted}


BACKEND = AnthropicBackend()
