"""Settings with middleware configured from TOML text, as a user would write it."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from vdm.config.settings import Settings
from vdm.config.sources import flatten_toml, merge_middleware


def middleware_tables(*tomls: str) -> dict[str, tuple[dict[str, Any], str]]:
    """`Settings.middleware` of TOML layers (lowest first)."""
    merged: dict[str, tuple[dict[str, Any], str]] = {}
    for i, text in enumerate(tomls):
        merge_middleware(merged, flatten_toml(tomllib.loads(text), f"layer{i}.toml").middleware)
    return merged


def settings_with(env: Mapping[str, str], *tomls: str) -> Settings:
    return replace(Settings.from_mapping(env), middleware=middleware_tables(*tomls))
