"""The Anthropic Messages backend (`{P}_API_FORMAT=anthropic`): the canonical dialect itself.

It serves two kinds of client:

- An Anthropic client's request is not translated at all: vdm/server/passthrough.py forwards
  the client's body (only `model` renamed, vdm's own thinking blocks dropped) and relays the
  answer byte for byte. That is what `native_anthropic` means; this backend then only
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

import logging
from typing import Any

from vdm.config.settings import ProviderConfig
from vdm.protocol import jsonio
from vdm.protocol.anthropic import ANTHROPIC_VERSION, MessagesRequest
from vdm.protocol.anthropic_events import AnthropicEventDecoder
from vdm.protocol.anthropic_observe import usage_of
from vdm.protocol.capabilities import ModelCaps
from vdm.protocol.codec import Target
from vdm.protocol.errors import VdmError
from vdm.protocol.signatures import is_vdm_signature
from vdm.protocol.thinking_budget import THINKING_BUDGETS, fit_budget

log = logging.getLogger(__name__)

MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
_THINKING = ("thinking", "redacted_thinking")


class AnthropicBackend:
    name = "anthropic"
    native_anthropic = True

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
        under the upstream `model`, without the thinking blocks Anthropic would refuse,
        `max_tokens` within the model's ceiling and `MAX_TOKENS_LIMIT` (a default when the
        client set none), and thinking and effort as the target model takes them."""
        body = request.model_dump(mode="json", exclude_unset=True, by_alias=True)
        body["model"] = target.model
        if request.stream:
            body["stream"] = True
        fit_body(body, target)
        return jsonio.dumps(body)

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


def fit_body(body: dict[str, Any], target: Target | None) -> None:
    """An Anthropic request body (vdm's encoding, or a client's own on the pass-through) made
    fit for the provider, in place: thinking blocks it would refuse dropped, and for a
    `target` (the model vdm chose, which the client may not know it is talking to)
    `max_tokens`, thinking and effort as that model takes them. Without one, only what the
    dropped blocks require: thinking off when the last tool call turn lost its thinking."""
    messages = body.get("messages")
    if isinstance(messages, list):
        body["messages"] = without_foreign_thinking(messages)
    if target is None:
        thinking_within_history(body)
        return
    if isinstance(body.get("max_tokens"), int):
        fit_output(body, target)
    _fit_thinking(body, target.caps)


def without_foreign_thinking(messages: list[Any]) -> list[Any]:
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
    """A thinking block Anthropic would refuse: unsigned, or signed by vdm (`vdm-…`)."""
    if not isinstance(block, dict) or block.get("type") != "thinking":
        return False
    signature = block.get("signature")
    return signature is None or (isinstance(signature, str) and is_vdm_signature(signature))


#: `max_tokens` for a client that set no limit (`Target.max_tokens_default`), within the
#: model's ceiling where the table knows it: room for a whole file in one tool call (Codex)
#: above the largest thinking budget vdm asks for (31999 for `xhigh`/`max`).
DEFAULT_MAX_TOKENS = 32000


def fit_output(body: dict[str, Any], target: Target) -> None:
    """`max_tokens` as the provider takes it: vdm's default where the client set none, never
    above the model's ceiling or `MAX_TOKENS_LIMIT`; a thinking budget the new limit no longer
    leaves room above is lowered (the limit is vdm's, so the refusal would be too)."""
    ceiling = target.max_tokens_ceiling
    wanted = body["max_tokens"]
    if target.max_tokens_default:
        wanted = DEFAULT_MAX_TOKENS
    fitted = wanted if ceiling is None else min(wanted, ceiling)
    if fitted == body["max_tokens"]:
        return
    body["max_tokens"] = fitted
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if isinstance(budget, int):
            kept = fit_budget(budget, fitted)
            if kept is None:
                log.debug("max_tokens %d leaves no room for thinking: thinking off", fitted)
                _thinking_off(body)
            elif kept != budget:
                body["thinking"] = {**thinking, "budget_tokens": kept}


def _fit_thinking(body: dict[str, Any], caps: ModelCaps) -> None:
    """Thinking and effort as the target model takes them (`ModelCaps.claude_*`), and off
    when the history breaks Anthropic's rule for it.

    - `output_config.effort` only where the model takes one (Opus 4.5+), at the nearest
      effort it accepts (`minimal` -> `low`, `xhigh` -> `max` or `high`).
    - A budget becomes adaptive thinking where budgets are refused (Opus 4.7+) or deprecated
      and the client named an effort (Opus/Sonnet 4.6); `disabled` is left out where refused.
    - Adaptive thinking becomes the budget its effort stands for where only budgets are
      taken (before 4.6): a client that believes it talks to a newer model sends it.
    - With thinking on, the last assistant turn, when it calls tools, must open with a
      thinking block: "Expected `thinking` or `redacted_thinking`, but found `tool_use`."
      Reasoning another provider gave was dropped (`without_foreign_thinking`), and a
      client may drop it too, so thinking goes off for this request instead (dialects.md D).
    """
    config = body.get("output_config")
    effort = config.get("effort") if isinstance(config, dict) else None
    if isinstance(config, dict) and effort is not None:
        accepted = caps.effort(effort) if caps.claude_effort and isinstance(effort, str) else None
        if accepted is None:
            log.debug("output_config.effort %r: the model takes no effort, dropped", effort)
            rest = {k: v for k, v in config.items() if k != "effort"}
            if rest:
                body["output_config"] = rest
            else:
                del body["output_config"]
        elif accepted != effort:
            body["output_config"] = {**config, "effort": accepted}
    thinking = body.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    named = isinstance(config := body.get("output_config"), dict) and "effort" in config
    adaptive = caps.claude_thinking == "adaptive_only" or (
        caps.claude_thinking == "adaptive" and named
    )
    if kind == "enabled" and adaptive and isinstance(thinking, dict):
        kept = {k: v for k, v in thinking.items() if k not in ("type", "budget_tokens")}
        body["thinking"] = {"type": "adaptive", **kept}
        kind = "adaptive"
    elif kind == "adaptive" and caps.claude_thinking == "budget" and isinstance(thinking, dict):
        # Adaptive thinking is refused before the 4.6 models ("adaptive thinking is not
        # supported on this model"): a budget the effort asked for (high by default).
        wanted = THINKING_BUDGETS.get(effort if isinstance(effort, str) else "high", 16384)
        limit = body.get("max_tokens")
        fitted = fit_budget(wanted, limit) if isinstance(limit, int) else None
        if fitted is None:
            log.debug("adaptive thinking on a model that takes only budgets: no room, off")
            _thinking_off(body)
            kind = None
        else:
            log.debug("adaptive thinking on a model that takes only budgets: %d tokens", fitted)
            kept = {k: v for k, v in thinking.items() if k != "type"}
            body["thinking"] = {"type": "enabled", "budget_tokens": fitted, **kept}
            kind = "enabled"
    elif kind == "disabled" and caps.claude_thinking == "adaptive_only":
        del body["thinking"]  # "disabled" is a 400 there; left out, the model does not think
        kind = None
    if kind in ("enabled", "adaptive"):
        thinking_within_history(body)


def thinking_within_history(body: dict[str, Any]) -> None:
    """Thinking off (and what needs it) when the last assistant turn calls tools without
    opening with a thinking block: Anthropic refuses that with thinking on ("a final
    `assistant` message must start with a thinking block"). It happens once vdm dropped the
    thinking it cannot pass on (reasoning from another provider), and for clients that drop
    thinking blocks themselves. For raw bodies too (the pass-through)."""
    thinking = body.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "adaptive"):
        return
    messages = body.get("messages")
    if isinstance(messages, list) and not _opens_with_thinking(messages):
        log.debug("the last tool call turn carries no thinking Anthropic can verify: thinking off")
        _thinking_off(body)


def _opens_with_thinking(messages: list[Any]) -> bool:
    """False when the last assistant message calls tools without opening with a thinking
    block (what Anthropic refuses with thinking on); True otherwise."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "assistant":
            content = message.get("content")
            if not isinstance(content, list) or not content:
                return True
            if not any(isinstance(b, dict) and b.get("type") == "tool_use" for b in content):
                return True
            first = content[0]
            return isinstance(first, dict) and first.get("type") in _THINKING
    return True


def _thinking_off(body: dict[str, Any]) -> None:
    """No thinking for this request, nor what only makes sense with it: a context edit that
    clears thinking blocks (`clear_thinking_*`) is a 400 without thinking, and so is effort
    `max` ("output_config.effort 'max' is not supported when thinking is disabled on this
    model. Use effort 'high' or below", anthropics/claude-code#76997)."""
    body.pop("thinking", None)
    config = body.get("output_config")
    if isinstance(config, dict) and config.get("effort") in ("max", "xhigh"):
        log.debug("effort %r needs thinking: high", config["effort"])
        body["output_config"] = {**config, "effort": "high"}
    management = body.get("context_management")
    if isinstance(management, dict) and isinstance(edits := management.get("edits"), list):
        kept = [
            e
            for e in edits
            if not (isinstance(e, dict) and str(e.get("type", "")).startswith("clear_thinking"))
        ]
        if len(kept) != len(edits):
            log.debug("context edits that clear thinking need thinking: dropped")
            if kept:
                body["context_management"] = {**management, "edits": kept}
            else:
                del body["context_management"]


BACKEND = AnthropicBackend()
