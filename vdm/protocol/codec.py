"""What a backend's codecs know of one request's destination, and the state its request
encoder leaves for its response decoder.

A backend encodes the canonical (Anthropic) request for its provider's dialect, then decodes
the answer back into canonical form. Both halves of one request share a `Target`: the model
and its capabilities, the client's model name to echo, and the renames the encoder made
(tool ids a provider needs in another format, tool names too long for it) so the decoder can
undo them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from vdm.protocol.capabilities import ModelCaps
from vdm.protocol.signatures import restore_tool_id, split_thought_id

#: What an encoder can leave out when the provider rejects it, and whether the gateway keeps
#: it for the provider's later requests: a missing entitlement (summaries need a verified
#: OpenAI organization) stays; replayed state that one provider could not verify (a key from
#: another organization, a session moved between models) is about that history only.
DEGRADATIONS: dict[str, bool] = {
    # Responses: no `reasoning.summary` (thinking stays hidden).
    "no-summary": True,
    # Responses: no reasoning items replayed from the history.
    "no-replay": False,
    # Gemini: no thought signatures replayed; the documented stand-in where one is required.
    "skip-signatures": False,
}
#: Degradations that last for the model that needed them (its provider's other models may
#: take what it refused): Bedrock's and Vertex's betas and fields, which differ by model.
MODEL_DEGRADATIONS = ("bedrock-", "vertex-")


class ReasoningCache:
    """A bounded in-process memory of reasoning text by tool call, for clients that drop
    thinking blocks from their history: it may help, it is never required (DESIGN.md).

    One cache serves every user of a gateway, so an entry must only be found by the history
    that holds the call it was made for. It is keyed by a hash of the call's id, name and
    input, and only calls whose id the provider drew at random are remembered: some ids are
    predictable (Kimi numbers them, `functions.Bash:0`), and another user's history holding
    the same id, name and input would otherwise be handed the first user's reasoning.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._items: OrderedDict[str, str] = OrderedDict()

    def put(self, tool_id: str, name: str, tool_input: Any, reasoning: str) -> None:
        if not reasoning or not unpredictable(tool_id, name):
            return
        key = _key(tool_id, name, tool_input)
        self._items[key] = reasoning
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def get(self, tool_id: str, name: str, tool_input: Any) -> str | None:
        if not unpredictable(tool_id, name):
            return None
        return self._items.get(_key(tool_id, name, tool_input))

    def __len__(self) -> int:
        return len(self._items)


#: The shortest run of letters and digits that counts as drawn at random: 16 base-62
#: characters are ~95 bits (OpenAI's `call_` + 24, DeepSeek's, Anthropic's `toolu_` + 24;
#: Gemini's 19-digit `function-call-…` ~63 bits) - out of another user's reach.
MIN_RANDOM_RUN = 16
_RUNS = re.compile(r"[A-Za-z0-9]+")


def unpredictable(tool_id: str, name: str) -> bool:
    """Whether `tool_id` (as the client holds it) carries a random part: a run of at least
    MIN_RANDOM_RUN letters and digits once the tool's name is taken out (an id built from
    the name and a counter is predictable however long the name)."""
    base = restore_tool_id(split_thought_id(tool_id)[0])
    if name:
        base = base.replace(name, " ")
    # A run taken from the name (the name shortened to fit a provider) is not random either.
    return any(len(run) >= MIN_RANDOM_RUN and run not in name for run in _RUNS.findall(base))


def _key(tool_id: str, name: str, tool_input: Any) -> str:
    payload = json.dumps(
        [tool_id, name, tool_input], sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(slots=True)
class Target:
    """One request's destination, as the codecs see it."""

    #: The provider family (`vdm.protocol.capabilities.family_of`).
    family: str
    #: The upstream model name (no provider prefix).
    model: str
    caps: ModelCaps
    #: The model name the client asked for, echoed in the answer.
    requested: str
    #: `MAX_TOKENS_LIMIT`: clamp `max_tokens` to it when set.
    max_tokens_limit: int | None = None
    #: The client set no output limit (OpenAI clients may omit it; Codex always does): the
    #: canonical request's `max_tokens` is only the decoder's stand-in, which Anthropic's
    #: schema requires. Translating encoders then send the provider's own default
    #: (`output_limit`), the Anthropic backend a default within the model's ceiling.
    max_tokens_default: bool = False
    #: Upstream tool call id -> the client's, where the encoder had to rename ids.
    tool_ids: dict[str, str] = field(default_factory=dict)
    #: Upstream tool name -> the client's, where a name did not fit the provider's rules.
    tool_names: dict[str, str] = field(default_factory=dict)
    #: Shared by a gateway's requests (see ReasoningCache); None in pure tests.
    reasoning_cache: ReasoningCache | None = None
    #: Degradations the encoder honours after the provider rejected what it would send
    #: otherwise (`Backend.recover`; the names are in DEGRADATIONS).
    degraded: set[str] = field(default_factory=set)
    #: The betas an Anthropic client asked for in its `anthropic-beta` header, for a
    #: provider that takes them in the body (Bedrock's `anthropic_beta`).
    betas: tuple[str, ...] = ()
    #: What the provider's request-wide web search looks for (OpenRouter's `web` plugin
    #: searches the prompt): the query of the `server_tool_use` block the decoder reports.
    web_search_query: str | None = None
    #: The provider cannot search: the client's web search went as a function tool, whose
    #: calls the decoder answers with an error result (vdm/protocol/web_search.py).
    web_search_stub: bool = False

    @property
    def max_tokens_ceiling(self) -> int | None:
        """The most output tokens this destination takes: the model's ceiling
        (`ModelCaps.max_output_tokens`) and `MAX_TOKENS_LIMIT`, whichever is lower."""
        known = [n for n in (self.caps.max_output_tokens, self.max_tokens_limit) if n]
        return min(known) if known else None

    def output_limit(self, max_tokens: int) -> int | None:
        """The output limit to send a provider of another dialect for a request whose
        `max_tokens` is `max_tokens`: None (leave it out: the provider's default, which for
        OpenAI and Gemini is the model's maximum) when the client set none and no
        `MAX_TOKENS_LIMIT` applies, else the limit within the model's ceiling (a larger one is
        the provider's 400)."""
        if self.max_tokens_default:
            return None if self.max_tokens_limit is None else self.max_tokens_ceiling
        ceiling = self.max_tokens_ceiling
        return max_tokens if ceiling is None else min(max_tokens, ceiling)

    def client_tool_id(self, upstream_id: str) -> str:
        return self.tool_ids.get(upstream_id, upstream_id)

    def client_tool_name(self, upstream_name: str) -> str:
        return self.tool_names.get(upstream_name, upstream_name)
