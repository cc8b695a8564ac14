"""Anthropic Messages request -> the body of Bedrock's InvokeModel for a Claude model, pure.

Bedrock takes the Anthropic Messages JSON with its own differences (providers.md 2a, the AWS
"Request and Response" page of the Claude Messages API on Bedrock):

- no `model` (it is in the URL) and no `stream` (the operation says it): "Malformed input
  request: #: extraneous key [stream] is not permitted";
- `anthropic_version: "bedrock-2023-05-31"`, and the betas in the body, `anthropic_beta`, only
  those Bedrock knows: any other is "invalid beta flag" for the whole request (`BETAS`);
- top-level fields from an allowlist: Claude Code sends first-party fields Bedrock refuses
  with "context_management: Extra inputs are not permitted" (`BODY_FIELDS`);
- no `x-anthropic-billing-header:` system block (Claude Code's; "reserved keyword" on
  Bedrock, anthropics/claude-code-action#928).

What the allowlists miss, Bedrock names in its 400, and `degradation_for` turns that into a
degradation (`Backend.recover`): the request is encoded again without it and retried once, as
Claude Code itself does (providers.md 2a). Model ids are parsed here too: the Claude model a
Bedrock id stands for (`claude_name`, for the capability table) and the bare foundation id
that count-tokens requires (`foundation_id`).
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Collection, Sequence
from typing import Any

log = logging.getLogger(__name__)

ANTHROPIC_VERSION = "bedrock-2023-05-31"
#: Top-level fields of InvokeModel's body for Claude: the AWS request reference
#: (anthropic_version … stop_sequences) plus `thinking`, `metadata` and `output_config`, as
#: LiteLLM's typed allowlist has them (BerriAI/litellm PR#26148, `BedrockInvokeAnthropic
#: MessagesRequest`), and `context_management` for compaction only (`CONTEXT_EDITS`).
#: Left out: `mcp_servers`, `speed`, `container`, `service_tier`, `inference_geo`,
#: `output_format` (LiteLLM PR#19712), and whatever Anthropic adds next.
BODY_FIELDS = frozenset(
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
#: Betas Bedrock takes in `anthropic_beta`: the 17 envoyproxy/ai-gateway PR#2512 found
#: accepted by live probes (the first 15 below), `effort-2025-11-24` and
#: `tool-examples-2025-10-29` from LiteLLM PR#19877 (citing the AWS docs), `compact-2026-01-12`
#: for compaction (LiteLLM's allowlist), `claude-code-20250219` (anthropics/claude-code#49648:
#: accepted up to Opus 4.6). Newer models take fewer (Opus 4.7 only interleaved thinking,
#: claude-code#49370): that refusal is recovered from by sending none.
BETAS = frozenset(
    {
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
        "effort-2025-11-24",
        "tool-examples-2025-10-29",
        "compact-2026-01-12",
        "claude-code-20250219",
    }
)
#: `context_management.edits` Bedrock's InvokeModel takes: compaction only; Claude Code's
#: `clear_thinking_20251015` is refused (LiteLLM's allowlist comment).
CONTEXT_EDITS = ("compact_",)
#: The system block Claude Code opens with, refused by Bedrock.
BILLING_PREFIX = "x-anthropic-billing-header:"

#: Degradations (`Backend.recover`, `Target.degraded`): send no beta at all; drop the body
#: member at a dotted path (`context_management`, `tools.0.defer_loading`).
NO_BETAS = "bedrock-no-betas"
DROP = "bedrock-drop:"

#: "The model returned the following errors: guardrails: Extra inputs are not permitted"
#: (BerriAI/litellm#13825), the path in Anthropic's spelling (`tools.0.custom.defer_loading`).
_EXTRA = re.compile(r"([A-Za-z_][\w.]*): Extra inputs are not permitted")
#: "Malformed input request: #: extraneous key [stream] is not permitted" (providers.md 2a;
#: a nested one reads `#/tools/0: extraneous key [x]`, as Bedrock's JSON-schema errors do).
_EXTRANEOUS = re.compile(r"#(/[^:\s]*)?: extraneous key \[([^\]]+)\] is not permitted")
_BAD_BETA = "invalid beta flag"

#: A Bedrock Claude id: an optional geo prefix of a cross-region inference profile (`us.`,
#: `eu.`, `apac.`, `global.`, `jp.`, `au.`, `us-gov.`), `anthropic.`, the model, a version.
_CLAUDE_ID = re.compile(
    r"^(?:([a-z]+(?:-[a-z]+)?)\.)?(anthropic\.(claude-.+?)(?:-v\d+(?::\d+)?)?)$"
)


def invoke_body(
    body: dict[str, Any], degraded: Collection[str] = (), header_betas: Sequence[str] = ()
) -> dict[str, Any]:
    """The InvokeModel body for an Anthropic Messages body (already fitted to the model):
    Bedrock's version, its betas (the body's and the client's `anthropic-beta` header's),
    its fields, no billing block, minus what `degraded` drops."""
    out: dict[str, Any] = {"anthropic_version": ANTHROPIC_VERSION}
    if NO_BETAS not in degraded:
        betas = bedrock_betas([*bedrock_betas(body.get("anthropic_beta")), *header_betas])
        if betas:
            out["anthropic_beta"] = betas
    dropped = [k for k in body if k not in BODY_FIELDS]
    if dropped:
        log.debug("Bedrock takes no %s: left out", ", ".join(sorted(dropped)))
    own = ("anthropic_version", "anthropic_beta")  # Bedrock's, set above
    out.update((k, v) for k, v in body.items() if k in BODY_FIELDS and k not in own)
    if "system" in out:
        system = without_billing(out["system"])
        if system:
            out["system"] = system
        else:
            del out["system"]
    if "context_management" in out:
        management = _context_management(out["context_management"])
        if management is None:
            del out["context_management"]
        else:
            out["context_management"] = management
    for name in degraded:
        if name.startswith(DROP):
            drop_path(out, name.removeprefix(DROP).split("."))
    return out


def bedrock_betas(value: Any) -> list[str]:
    """The betas of `anthropic_beta` (a list, or a comma-separated string as in the header)
    that Bedrock takes, in order, once each."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        return []
    wanted = [b.strip() for b in items if isinstance(b, str) and b.strip()]
    kept = list(dict.fromkeys(b for b in wanted if b in BETAS))
    if len(kept) < len(set(wanted)):
        log.debug("betas Bedrock does not take: %s", sorted(set(wanted) - BETAS))
    return kept


def without_billing(system: Any) -> Any:
    """`system` without Claude Code's `x-anthropic-billing-header:` block (or first line)."""
    if isinstance(system, str):
        if system.lstrip().startswith(BILLING_PREFIX):
            return system.lstrip().partition("\n")[2]
        return system
    if isinstance(system, list):
        return [b for b in system if not _billing_block(b)]
    return system


def _billing_block(block: Any) -> bool:
    text = block.get("text") if isinstance(block, dict) else None
    return isinstance(text, str) and text.lstrip().startswith(BILLING_PREFIX)


def _context_management(value: Any) -> Any:
    """`context_management` with only the edits Bedrock takes; None when none is left."""
    if not isinstance(value, dict):
        return None
    edits = value.get("edits")
    if not isinstance(edits, list):
        return None
    kept = [
        e for e in edits if isinstance(e, dict) and str(e.get("type", "")).startswith(CONTEXT_EDITS)
    ]
    if not kept:
        log.debug("context edits Bedrock does not take: context_management left out")
        return None
    return {**value, "edits": kept}


def drop_path(body: dict[str, Any], path: list[str]) -> None:
    """Remove the member at `path` (keys and list indexes) from `body`, in place. A segment
    that names no member is skipped when more follow: Anthropic's error paths carry the tag
    of a union member (`tools.0.custom.defer_loading`, `content.1.tool_use.id`)."""
    node: Any = body
    for i, segment in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, list) and segment.isdigit() and int(segment) < len(node):
            if last:
                return  # never drop a whole message or tool by its index
            node = node[int(segment)]
        elif isinstance(node, dict) and segment in node:
            if last:
                log.debug("Bedrock refused %s: left out", ".".join(path))
                del node[segment]
                return
            node = node[segment]
        elif last or not isinstance(node, dict):
            return


def degradation_for(message: str) -> str | None:
    """The degradation that answers a 400 of Bedrock naming what it refused: every beta for
    "invalid beta flag" (it does not say which), a field for "Extra inputs are not
    permitted" or "extraneous key"; None for any other refusal."""
    if _BAD_BETA in message.lower():
        return NO_BETAS
    extra = _EXTRA.search(message)
    if extra:
        return DROP + extra.group(1)
    extraneous = _EXTRANEOUS.search(message)
    if extraneous:
        parent = [p for p in (extraneous.group(1) or "").split("/") if p]
        return DROP + ".".join([*parent, extraneous.group(2)])
    return None


def claude_name(model_id: str) -> str:
    """The Claude model a Bedrock id stands for, as the capability table names it
    (`us.anthropic.claude-sonnet-4-5-20250929-v1:0` -> `claude-sonnet-4-5-20250929`); any
    other name unchanged (an inference-profile ARN says nothing of its model)."""
    match = _CLAUDE_ID.match(model_id)
    return match.group(3) if match else model_id


def foundation_id(model_id: str) -> str | None:
    """The bare foundation-model id count-tokens requires (`anthropic.claude-…`, without a
    cross-region prefix: "The provided model doesn't support counting tokens", providers.md
    2e); None for an id it cannot be read from (an ARN)."""
    match = _CLAUDE_ID.match(model_id)
    return match.group(2) if match else None


def count_tokens_body(invoke: dict[str, Any]) -> bytes:
    """CountTokens' body: the InvokeModel body, base64, under `input.invokeModel.body`."""
    raw = json.dumps(invoke, ensure_ascii=False, separators=(",", ":")).encode()
    wrapped = {"input": {"invokeModel": {"body": base64.b64encode(raw).decode("ascii")}}}
    return json.dumps(wrapped, separators=(",", ":")).encode()
