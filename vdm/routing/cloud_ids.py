"""Bedrock model ids as requested names.

Claude Code in Bedrock mode names its model by a Bedrock id (vdm/server/bedrock_frontend.py):
`us.anthropic.claude-sonnet-4-5-20250929-v1:0`, `global.anthropic.claude-opus-4-6-v1`, or
an application inference profile's ARN. Such a name is routed like any other (aliases, the
fallback aliases its `sonnet`/`opus`/`haiku` hits, the default provider), with two
exceptions:

- its `:` is part of the id, not a `provider:model` prefix (`is_model_id`);
- on a default provider that speaks Bedrock's API, the fallback aliases do not apply
  (`keeps_id`): the id names one Bedrock model already, and the Bedrock preset's `sonnet`
  would send `…claude-sonnet-4-5…` to another one;
- reaching a provider that does not speak Bedrock's API unchanged, a Claude id becomes the
  Claude model it stands for (`for_provider`): Anthropic's API (which has no fallback
  aliases) knows `claude-sonnet-4-5-20250929`, not the Bedrock id.
"""

from __future__ import annotations

import re

from vdm.config.settings import ProviderConfig, Settings, provider_key
from vdm.protocol.bedrock_from_anthropic import claude_name

#: An ARN of Bedrock's (an application inference profile, a provisioned model, ...), in any
#: AWS partition (`aws`, `aws-us-gov`, `aws-cn`).
_ARN = re.compile(r"^arn:aws[a-z-]*:bedrock:")


def is_model_id(name: str, prefix: str, settings: Settings) -> bool:
    """Whether `name`, which has a `:` after `prefix`, is a Bedrock id rather than
    `provider:model` (a configured provider's prefix always wins)."""
    if provider_key(prefix) in settings.providers:
        return False
    return claude_name(name) != name or _ARN.match(name) is not None


def keeps_id(name: str, provider: ProviderConfig) -> bool:
    """Whether `provider` takes the Bedrock id `name` as it is (no fallback alias)."""
    return provider.api_format == "bedrock" and (
        claude_name(name) != name or _ARN.match(name) is not None
    )


def for_provider(name: str, provider: ProviderConfig) -> str:
    """The model `provider` gets for the requested `name` sent unchanged: a Bedrock Claude
    id's Claude model unless `provider` speaks Bedrock's API; any other name as it is."""
    if provider.api_format == "bedrock":
        return name
    return claude_name(name)
