"""`GET /v1/models` and `GET /v1/aliases`: what a client can ask for.

Models come from each configured provider's own models endpoint, fetched when first asked for
(never at startup), concurrently, with a short timeout, and cached; a provider that fails is
left out with its error noted in the log and retried after a short while. Every id is the name
that routes to it (`openai:gpt-4o`), and aliases are listed beside the models.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio

from vdm.config.settings import ProviderConfig, Settings, provider_key
from vdm.protocol.errors import VdmError
from vdm.routing.resolve import resolve
from vdm.upstream.backends import models_path
from vdm.upstream.client import UpstreamClient

log = logging.getLogger(__name__)

#: How long a fetched list is used before it is fetched again (seconds).
MODELS_TTL = 600.0
#: How long a failed fetch is remembered before it is tried again.
FAILURE_TTL = 30.0
#: The longest a `/v1/models` request waits for any provider.
FETCH_TIMEOUT = 5.0
_EPOCH = "1970-01-01T00:00:00Z"


def _iso(created: Any) -> str:
    if isinstance(created, str) and created:
        return created
    if isinstance(created, int | float) and created > 0:
        moment = datetime.datetime.fromtimestamp(created, datetime.UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return _EPOCH


def models_from_answer(provider: str, answer: Any) -> list[dict[str, str]]:
    """Anthropic-shaped model entries from an OpenAI (`id`, `created`), Anthropic (`id`,
    `display_name`, `created_at`) or Gemini (`models[].name`, `displayName`) models list; ids
    get the provider prefix."""
    items = (answer.get("data") or answer.get("models")) if isinstance(answer, dict) else answer
    models: list[dict[str, str]] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        raw_id = item.get("id") or item.get("name")
        if not isinstance(raw_id, str):
            continue
        model_id = raw_id.removeprefix("models/")  # Gemini, native and OpenAI-compatible
        display = item.get("display_name") or item.get("displayName") or model_id
        models.append(
            {
                "type": "model",
                "id": f"{provider}:{model_id}",
                "display_name": f"{display} ({provider})",
                "created_at": _iso(item.get("created_at") or item.get("created")),
            }
        )
    return models


def alias_entries(settings: Settings) -> list[dict[str, Any]]:
    """The effective alias table: each alias, what it resolves to, and where it was set."""
    entries: list[dict[str, Any]] = []
    shadowed: set[str] = set()
    for alias in (*settings.aliases, *settings.fallbacks):
        key = f"{alias.kind}:{alias.name}"
        entry: dict[str, Any] = {
            "name": alias.name,
            "kind": alias.kind,
            "provider": alias.provider,
            "target": alias.target,
            "source": alias.source,
        }
        try:
            route = resolve(f"{alias.provider}:{alias.name}", settings)
            entry["resolves_to"] = f"{route.provider.name}:{route.model}"
        except VdmError as exc:
            entry["resolves_to"] = None
            entry["error"] = exc.message
        # A fallback is used only by the first entry with its name (docs/routing.md).
        entry["active"] = alias.kind == "alias" or key not in shadowed
        shadowed.add(key)
        entries.append(entry)
    return entries


def _alias_model(entry: Mapping[str, Any]) -> dict[str, str]:
    """An `alias_entries` entry as a model of the list."""
    target = entry["resolves_to"] or entry["target"]
    return {
        "type": "model",
        "id": entry["name"],
        "display_name": f"{entry['name']} → {target} ({entry['kind']})",
        "created_at": _EPOCH,
    }


class ModelCatalog:
    """Per-provider model lists with expiry; shared by all requests of a gateway."""

    def __init__(
        self,
        settings: Settings,
        client: Callable[[ProviderConfig], UpstreamClient],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.client = client
        self.clock = clock
        self._cache: dict[str, tuple[float, list[dict[str, str]]]] = {}

    async def _fetch(self, provider: str, client_key: str | None) -> list[dict[str, str]]:
        config = self.settings.providers[provider]
        cached = self._cache.get(provider)
        if cached is not None and cached[0] > self.clock() and not config.passthrough:
            return cached[1]
        client = self.client(config)
        if config.uses_deployments:
            return []  # Azure: the deployments are the models; aliases name them
        try:
            with anyio.fail_after(FETCH_TIMEOUT):
                answer = await client.get_json(models_path(config), client_key=client_key)
        except (VdmError, TimeoutError) as exc:
            reason = exc.message if isinstance(exc, VdmError) else "timed out"
            log.warning("models of %s not listed: %s", provider, reason)
            if not config.passthrough:
                self._cache[provider] = (self.clock() + FAILURE_TTL, [])
            return []
        models = models_from_answer(provider, answer)
        if not config.passthrough:
            self._cache[provider] = (self.clock() + MODELS_TTL, models)
        return models

    async def models(self, query: Mapping[str, str], client_key: str | None) -> dict[str, Any]:
        settings = self.settings
        # Spelled as in `provider:model`, where `my-corp` names provider `my_corp`.
        wanted = provider_key(query.get("provider", ""))
        if wanted and wanted not in settings.providers:
            raise VdmError(
                404,
                f"unknown provider {wanted!r}; configured providers: "
                f"{', '.join(settings.providers) or 'none'}",
            )
        names = [wanted] if wanted else list(settings.providers)
        lists: dict[str, list[dict[str, str]]] = {}

        async def one(name: str) -> None:
            lists[name] = await self._fetch(name, client_key)

        async with anyio.create_task_group() as tg:
            for name in names:
                tg.start_soon(one, name)
        data: list[dict[str, str]] = []
        for entry in alias_entries(settings):
            if entry["active"] and (not wanted or entry["provider"] == wanted):
                data.append(_alias_model(entry))
        for name in names:
            data.extend(lists[name])
        return {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
