"""Anthropic Messages request -> the body and betas of Vertex AI's rawPredict for Claude, pure.

Vertex takes the Anthropic Messages JSON with these differences (providers.md 3a and 3c;
Anthropic's "Claude on Vertex AI" page):

- no `model` (it is in the URL), and `anthropic_version: "vertex-2023-10-16"` in the body
  instead of a header; `stream` stays in the body. count-tokens keeps `model` in the body.
- Model ids carry `@` before the date: `claude-sonnet-4-5@20250929` (`vertex_id`); the answer
  names the model with `-` again.
- Betas travel in the `anthropic-beta` header, as the anthropic SDK's Vertex client sends them
  (in the body only, Vertex ignores them: BerriAI/litellm PR#22321), and any beta Vertex has
  not rolled out for the model is a 400 for the whole request: "Unexpected value(s) `X`,
  `Y` for the `anthropic-beta` header" (anthropics/claude-code#12429, #21625; Wei-Shaw/sub2api
  #3358). Only `BETAS` are sent, and the betas a 400 still names are left out on a retry
  (`degradation_for`).
- `output_config` is refused: "output_config: Extra inputs are not permitted"
  (anthropics/claude-code#37746, still so for claude-code#52312 in 2026-04 on Haiku 4.5;
  LiteLLM drops it for every Vertex request, BerriAI/litellm PR#22884). It is left out; any
  other field refused so is left out on a retry, as on Bedrock.
- Claude Code's `x-anthropic-billing-header:` system block is first-party only: left out.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Sequence
from typing import Any

from vdm.protocol.bedrock_from_anthropic import DROP, drop_path, without_billing
from vdm.protocol.bedrock_from_anthropic import degradation_for as field_degradation

log = logging.getLogger(__name__)

ANTHROPIC_VERSION = "vertex-2023-10-16"
#: Betas sent to Vertex. Sources: Claude Code sends `interleaved-thinking-2025-05-14` and
#: `context-1m-2025-08-07` to Vertex since 1.0.83 (its changelog); `context-management-
#: 2025-06-27` and `compact-2026-01-12` work there with the header (BerriAI/litellm PR#22321);
#: the tool betas Vertex documents for Claude (computer use, token-efficient and fine-grained
#: tool streaming, tool search, web search) and `output-128k-2025-02-19`. Known refused, so
#: never sent: `prompt-caching-*` (caching needs no beta: `cache_control` works without one,
#: vercel/ai PR#4431), `effort-2025-11-24`, `adaptive-thinking-2026-01-28`, `oauth-2025-04-20`,
#: `structured-outputs-*`, `redact-thinking-*`, `advisor-tool-*` (claude-code#12429, #21625,
#: sub2api#3358, bifrost#1749). A model that lags behind names what it refuses: retried without.
BETAS = frozenset(
    {
        "interleaved-thinking-2025-05-14",
        "context-1m-2025-08-07",
        "context-management-2025-06-27",
        "compact-2026-01-12",
        "fine-grained-tool-streaming-2025-05-14",
        "token-efficient-tools-2025-02-19",
        "output-128k-2025-02-19",
        "computer-use-2024-10-22",
        "computer-use-2025-01-24",
        "tool-search-tool-2025-10-19",
        "web-search-2025-03-05",
    }
)
#: Fields left out of every request (see the module docstring).
REFUSED_FIELDS = ("output_config",)
#: Degradation (`Backend.recover`, `Target.degraded`): leave betas out (`vertex-no-beta:X,Y`).
NO_BETA = "vertex-no-beta:"

#: "Unexpected value(s) `a`, `b` for the `anthropic-beta` header."
_BAD_BETAS = re.compile(r"Unexpected value\(s\) (.+?) for the `anthropic-beta` header")
_QUOTED = re.compile(r"`([^`]+)`")
#: A Claude model id ending in its date: `claude-sonnet-4-5-20250929`.
_DATED = re.compile(r"^(claude-.+)-(\d{8})$")


def vertex_id(model: str) -> str:
    """The Vertex id of a Claude model name: a trailing `-YYYYMMDD` becomes `@YYYYMMDD`
    (`claude-haiku-4-5-20251001` -> `claude-haiku-4-5@20251001`); an id with `@`, or without
    a date (`claude-opus-4-6`), unchanged."""
    if "@" in model:
        return model
    match = _DATED.match(model)
    return f"{match.group(1)}@{match.group(2)}" if match else model


def claude_name(model: str) -> str:
    """The Claude model a Vertex id stands for, as the capability table names it
    (`claude-sonnet-4-5@20250929` -> `claude-sonnet-4-5-20250929`, `claude-opus-4-6@default`
    -> `claude-opus-4-6`); any other name unchanged."""
    name, at, version = model.partition("@")
    if not at or not name.startswith("claude-"):
        return model
    return f"{name}-{version}" if version.isdigit() else name


def raw_predict_body(body: dict[str, Any], degraded: Collection[str] = ()) -> dict[str, Any]:
    """rawPredict's body for an Anthropic Messages body (already fitted to the model), in
    place: no `model`, Vertex's version, no refused field, no billing block, minus what
    `degraded` drops."""
    body.pop("model", None)
    body.pop("anthropic_beta", None)  # the header carries them (`vertex_betas`)
    body["anthropic_version"] = ANTHROPIC_VERSION
    for name in REFUSED_FIELDS:
        if body.pop(name, None) is not None:
            log.debug("Vertex takes no %s: left out", name)
    if "system" in body:
        system = without_billing(body["system"])
        if system:
            body["system"] = system
        else:
            del body["system"]
    for name in degraded:
        if name.startswith(DROP):
            drop_path(body, name.removeprefix(DROP).split("."))
    return body


def vertex_betas(betas: Sequence[str], degraded: Collection[str] = ()) -> list[str]:
    """The betas of the client's `anthropic-beta` header Vertex takes, in order, once each,
    without those a refusal named (`degraded`)."""
    refused = {b for d in degraded if d.startswith(NO_BETA) for b in d[len(NO_BETA) :].split(",")}
    kept = [b for b in dict.fromkeys(betas) if b in BETAS and b not in refused]
    if len(kept) < len(set(betas)):
        log.debug("betas Vertex does not take: %s", sorted(set(betas) - set(kept)))
    return kept


def degradation_for(message: str) -> str | None:
    """The degradation that answers a 400 of Vertex naming what it refused: the betas it
    names (all of them, one retry), or a field "Extra inputs are not permitted"; None for
    any other refusal."""
    found = _BAD_BETAS.search(message)
    if found:
        named = _QUOTED.findall(found.group(1)) or [found.group(1).strip("` ")]
        return NO_BETA + ",".join(sorted(set(named)))
    return field_degradation(message)
