"""The configuration layers merged into one view of values: what the settings are read from.

Kept apart from the readers (vdm/config/provider_discovery.py, vdm/config/alias_discovery.py)
so that each can ask the same questions ("was this set by the user?") of one merged state.
"""

from __future__ import annotations

from typing import Any

from vdm.config.sources import Layer, Value, merge_middleware


class MergedLayers:
    """The layers merged, lowest first: values, the packaged presets alone, prices,
    middleware tables and routing rules, with the warnings and problems found so far."""

    def __init__(self, layers: list[Layer]) -> None:
        self.values: dict[str, Value] = {}
        #: The packaged layer alone (presets), whatever overrides it.
        self.defaults: dict[str, Value] = {}
        self.user_sections: set[str] = set()
        self.warnings: list[str] = []
        self.problems: list[str] = []
        self.prices: dict[str, tuple[Any, str]] = {}
        self.middleware: dict[str, tuple[dict[str, Any], str]] = {}
        #: The highest layer's `[[routing.rules]]` (tables, file), unchecked.
        self.rules: tuple[list[Any], str] | None = None
        #: Where PROXY_API_KEY was set blank (it would turn authentication off), if it was.
        self.blank_proxy_key: str | None = None
        for layer in layers:
            self.prices.update(layer.prices)
            merge_middleware(self.middleware, layer.middleware)
            if layer.rules is not None:
                self.rules = layer.rules
            proxy_key = layer.values.get("PROXY_API_KEY")
            if proxy_key is not None:
                self.blank_proxy_key = None if proxy_key.value.strip() else proxy_key.source
            # An empty value (`OPENAI_BASE_URL=` in a .env) means unset, not "empty".
            self.values.update((k, v) for k, v in layer.values.items() if v.value.strip())
            self.warnings.extend(layer.warnings)
            # The packaged layer; an empty one (a TOML file with only `[ollama]`) is the user's.
            if layer.values and all(v.is_default for v in layer.values.values()):
                self.defaults.update(layer.values)
            else:
                self.user_sections |= layer.sections

    def get(self, var: str, default: str = "") -> str:
        found = self.values.get(var)
        return found.value.strip() if found is not None else default

    def user_set(self, var: str) -> bool:
        found = self.values.get(var)
        return found is not None and not found.is_default and bool(found.value.strip())

    def _source(self, var: str) -> str:
        found = self.values.get(var)
        return found.source if found is not None else "unset"
