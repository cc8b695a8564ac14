"""Alias discovery: the user's `{P}_ALIAS_{NAME}` aliases, the fallbacks (`VDM_FALLBACK_*`,
the legacy SMALL/MIDDLE/BIG_MODEL, the packaged ones) and the failover and long-context chains.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from vdm.config.merged_layers import MergedLayers
from vdm.config.names import env_prefix, failover_key, normalize, split_targets
from vdm.config.provider import LEGACY_FAMILIES, Alias, ProviderConfig
from vdm.config.sources import DEFAULTS_SOURCE, FAILOVER_VAR, LONG_CONTEXT_VAR, Value

_ALIAS_VAR = re.compile(r"^([A-Z][A-Z0-9_]*?)_ALIAS_([A-Z0-9_]+)$")


class AliasDiscovery(MergedLayers):
    """Reads the aliases, fallbacks and failover chains out of the merged layers."""

    def _aliases(self, provider: str) -> list[Alias]:
        """`{P}_ALIAS_{NAME}` set by the user for one provider, by name."""
        prefix = env_prefix(provider)
        found: list[Alias] = []
        for var, value in self.values.items():
            match = _ALIAS_VAR.match(var)
            if match and match.group(1) == prefix and not value.is_default and value.value.strip():
                name = normalize(match.group(2))
                targets = split_targets(value.value)
                if targets:
                    label = _label(var, value)
                    found.append(Alias(name, provider, targets[0], label, failover=targets[1:]))
        return sorted(found, key=lambda a: a.name)

    def _fallbacks(self, order: list[str], default: str | None) -> list[Alias]:
        found: list[Alias] = []
        for var, value in sorted(self.values.items()):
            targets = split_targets(value.value)
            if var.startswith("VDM_FALLBACK_") and targets and default is not None:
                name = normalize(var.removeprefix("VDM_FALLBACK_"))
                found.append(
                    Alias(name, default, targets[0], _label(var, value), "fallback", targets[1:])
                )
        for var, family in LEGACY_FAMILIES.items():
            legacy = self.values.get(var)
            if legacy is not None and legacy.value.strip() and default is not None:
                found.append(
                    Alias(family, default, legacy.value.strip(), _label(var, legacy), "fallback")
                )
        for provider in order:
            prefix = env_prefix(provider)
            for var, value in sorted(self.values.items()):
                match = _ALIAS_VAR.match(var)
                if match and match.group(1) == prefix and value.is_default:
                    # A packaged alias the user redefined is theirs, not a fallback.
                    name = normalize(match.group(2))
                    found.append(Alias(name, provider, value.value, DEFAULTS_SOURCE, "fallback"))
        return found

    def _failover(self) -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
        """`VDM_FAILOVER_{KEY}` chains and `VDM_LONG_CONTEXT[_{KEY}]` targets, by
        `failover_key`."""
        chains: dict[str, tuple[str, ...]] = {}
        long_context: dict[str, str] = {}
        for var, value in sorted(self.values.items()):
            targets = split_targets(value.value)
            if var.startswith(FAILOVER_VAR) and targets:
                chains[failover_key(var.removeprefix(FAILOVER_VAR))] = targets
            elif var == LONG_CONTEXT_VAR and targets:
                long_context[""] = targets[0]
            elif var.startswith(f"{LONG_CONTEXT_VAR}_") and targets:
                long_context[failover_key(var.removeprefix(f"{LONG_CONTEXT_VAR}_"))] = targets[0]
        return chains, long_context

    def _unknown_aliases(self, providers: Mapping[str, ProviderConfig]) -> list[str]:
        """Aliases set for providers that are not configured: almost always a mistake."""
        unknown: list[str] = []
        configured = {env_prefix(p) for p in providers}
        for var, value in self.values.items():
            match = _ALIAS_VAR.match(var)
            if match and not value.is_default and match.group(1) not in configured:
                unknown.append(
                    f"{var} ({value.source}): provider {match.group(1).lower()!r} is not "
                    f"configured, so this alias is ignored"
                )
        return unknown


def _label(var: str, value: Value) -> str:
    return f"{value.source}: {var}" if value.source in ("env",) else f"{value.source} ({var})"
