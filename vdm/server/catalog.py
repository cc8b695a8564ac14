"""`GET /v1/models` and `GET /v1/aliases`: what a client can ask for (docs/models.md).

The answer is built at once from configuration (your aliases, the fallback aliases and the
models they route to) plus each provider's own models list, kept per provider. A list is
fetched the first time /v1/models is asked for (never at start-up), all providers at once;
that first fetch is waited for at most FIRST_WAIT seconds, well under the 3 s Claude Code's
model discovery waits, and what has not arrived by then is left out of that answer and kept
for the next one. A list older than MODELS_TTL is answered as it is and refreshed in the
background; a provider that failed is asked again after FAILURE_TTL, its last list kept.

Claude Code's gateway model discovery keeps only ids containing `claude` or `anthropic`, so
each alias and each model an alias routes to is also listed under a discoverable id
(`claude-vdm/fast`, `claude-vdm/openai:gpt-5.6-terra`) that vdm routes back to the same
place. Every entry has a `display_name` and a `description` (what it routes to, and the
context window where known, which is also given as Anthropic's `max_input_tokens`).

`vdm wrap` imports this module before its child starts (`claude_code_env`): its imports stay
light (asyncio, anyio and the backends are imported where they are used).
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vdm.config.settings import ProviderConfig, Settings, provider_key
from vdm.protocol import context
from vdm.protocol.context import context_window, describe, discoverable_id
from vdm.protocol.errors import VdmError
from vdm.routing.resolve import resolve

if TYPE_CHECKING:
    import asyncio

    from vdm.upstream.client import UpstreamClient

log = logging.getLogger(__name__)

#: How long a fetched list is answered before it is refreshed in the background (seconds).
MODELS_TTL = 600.0
#: How long after a failed fetch the provider is asked again.
FAILURE_TTL = 30.0
#: The longest one fetch may take (it runs on after the answer that started it).
FETCH_TIMEOUT = 10.0
#: The longest an answer waits for first-ever fetches (Claude Code gives up after 3 s).
FIRST_WAIT = 1.5
#: Lists kept for `!PASSTHRU` providers, one per client key (the oldest go first).
MAX_PASSTHROUGH_LISTS = 64
#: Anthropic's bounds for `limit`.
MAX_LIMIT = 1000
_EPOCH = "1970-01-01T00:00:00Z"
#: Where providers declare a model's window: Anthropic, Gemini, OpenRouter/Together, Groq,
#: Mistral.
_WINDOW_FIELDS = (
    "max_input_tokens",
    "inputTokenLimit",
    "context_length",
    "context_window",
    "max_context_length",
)

Entry = dict[str, Any]


def _iso(created: Any) -> str:
    if isinstance(created, str) and created:
        return created
    if isinstance(created, int | float) and created > 0:
        moment = datetime.datetime.fromtimestamp(created, datetime.UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return _EPOCH


def openai_list(answer: Mapping[str, Any]) -> dict[str, Any]:
    """A `GET /v1/models` answer in OpenAI's list shape (`object: list`, entries with
    `object: model`, `created` in unix seconds, `owned_by`: the provider of a
    `provider:model` id, its picker prefix `claude-vdm/` aside, else `vdm`), for OpenAI SDK
    clients; the descriptions ride along."""
    data = []
    for entry in answer.get("data", []):
        model_id = entry["id"]
        head, sep, _ = model_id.partition(":")
        provider = head.rsplit("/", 1)[-1]  # `claude-vdm/openai:gpt-4o` is openai's
        try:
            created = int(
                datetime.datetime.strptime(entry.get("created_at", _EPOCH), "%Y-%m-%dT%H:%M:%SZ")
                .replace(tzinfo=datetime.UTC)
                .timestamp()
            )
        except ValueError:
            created = 0
        data.append(
            {
                "id": model_id,
                "object": "model",
                "created": created,
                "owned_by": provider if sep else "vdm",
                "description": entry.get("description", ""),
            }
        )
    return {"object": "list", "data": data}


def _entry(
    model_id: str, display: str, text: str, window: int | None, created: str = _EPOCH
) -> Entry:
    entry: Entry = {
        "type": "model",
        "id": model_id,
        "display_name": display,
        "created_at": created,
        "description": describe(text, window),
    }
    if window:
        entry["max_input_tokens"] = window
    return entry


def _declared_window(item: Mapping[str, Any]) -> int | None:
    for name in _WINDOW_FIELDS:
        value = item.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def models_from_answer(provider: str, answer: Any, family: str = "") -> list[Entry]:
    """Anthropic-shaped model entries from an OpenAI (`id`, `created`), Anthropic (`id`,
    `display_name`, `created_at`) or Gemini (`models[].name`, `displayName`) models list; ids
    get the provider prefix. The window is the one the provider declares, else the table's
    for `family`."""
    items = (answer.get("data") or answer.get("models")) if isinstance(answer, dict) else answer
    models: list[Entry] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        raw_id = item.get("id") or item.get("name")
        if not isinstance(raw_id, str):
            continue
        model_id = raw_id.removeprefix("models/")  # Gemini, native and OpenAI-compatible
        display = item.get("display_name") or item.get("displayName") or model_id
        window = _declared_window(item) or context_window(family or provider, model_id)
        target = f"{provider}:{model_id}"
        created = _iso(item.get("created_at") or item.get("created"))
        models.append(_entry(target, f"{display} ({provider})", target, window, created))
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
        # A fallback is used only by the first entry with its name, and only the default
        # provider's are used without a prefix (docs/routing.md).
        bare = alias in settings.bare_fallbacks
        entry["active"] = alias.kind == "alias" or (bare and key not in shadowed)
        shadowed.add(key)
        entries.append(entry)
    return entries


def _window_of(settings: Settings, target: str | None) -> int | None:
    """The window of a resolved `provider:model`."""
    if target is None:
        return None
    name, _, model = target.partition(":")
    provider = settings.providers.get(name)
    return context_window(provider.family if provider else name, model)


def configured_models(settings: Settings, provider: str = "") -> list[Entry]:
    """The entries that need no upstream: the discoverable ids of your aliases and of every
    model an alias or fallback routes to, then the active aliases and fallbacks by name;
    with `provider`, only those of aliases of that provider."""
    picker: list[Entry] = []
    named: list[Entry] = []
    targets: dict[str, int | None] = {}
    for entry in alias_entries(settings):
        if provider and entry["provider"] != provider:
            continue
        resolved = entry["resolves_to"]
        window = _window_of(settings, resolved)
        goes_to = resolved or entry["target"]
        if entry["active"]:
            name, kind = entry["name"], entry["kind"]
            text = f"{kind} → {goes_to}"
            named.append(_entry(name, f"{name} → {goes_to} ({kind})", text, window))
            # Claude Code's own tier names (haiku, sonnet, opus) are in its picker already.
            if kind == "alias":
                picker.append(_entry(discoverable_id(name), name, text, window))
        if resolved is not None:
            targets.setdefault(resolved, window)
    for target, window in targets.items():
        name, _, model = target.partition(":")
        picker.append(_entry(discoverable_id(target), f"{model} ({name})", target, window))
    return picker + named


def claude_code_env(settings: Settings, sent: str, environ: Mapping[str, str]) -> dict[str, str]:
    """What `vdm wrap` adds to its child's environment so that Claude Code knows the model it
    will send as `sent` (vdm/protocol/context.py `claude_code_env`); nothing when `sent` does
    not resolve (the pre-flight says why)."""
    try:
        route = resolve(sent, settings)
    except VdmError:
        return {}
    window = context_window(route.provider.family, route.model)
    target = f"{route.provider.name}:{route.model}"
    return context.claude_code_env(sent, target, window, environ)


def _limit(query: Mapping[str, str]) -> int | None:
    raw = query.get("limit")
    if raw is None or raw == "":
        return None  # not Anthropic's default of 20: vdm's own clients expect every model
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise VdmError(400, f"limit: must be an integer from 1 to {MAX_LIMIT}, got {raw!r}")
    return limit


def page(data: list[Entry], query: Mapping[str, str]) -> dict[str, Any]:
    """One page of `data` as Anthropic's models list answers it (`limit`, `after_id`,
    `before_id`, `has_more`, `first_id`, `last_id`); a cursor not in the list gives an empty
    page."""
    limit = _limit(query)
    ids = [m["id"] for m in data]
    before, after = query.get("before_id"), query.get("after_id")
    if before:
        end = ids.index(before) if before in ids else 0
        start = max(0, end - limit) if limit else 0
        more = start > 0
    else:
        start = (ids.index(after) + 1 if after in ids else len(ids)) if after else 0
        end = min(len(ids), start + limit) if limit else len(ids)
        more = end < len(ids)
    chosen = data[start:end]
    return {
        "data": chosen,
        "has_more": more,
        "first_id": chosen[0]["id"] if chosen else None,
        "last_id": chosen[-1]["id"] if chosen else None,
    }


@dataclass(slots=True)
class _Listing:
    models: list[Entry]
    #: When (by the catalog's clock) the list is refreshed on the next answer.
    fresh_until: float


class ModelCatalog:
    """Per-provider model lists, refreshed in the background; shared by all requests of a
    gateway. Refreshes are asyncio tasks (vdm serves on asyncio): they outlive the request
    that started them, and `aclose` ends them."""

    def __init__(
        self,
        settings: Settings,
        client: Callable[[ProviderConfig], UpstreamClient],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.client = client
        self.clock = clock
        #: (provider, client key digest for `!PASSTHRU`, else "") -> its list.
        self._listings: dict[tuple[str, str], _Listing] = {}
        self._fetches: dict[tuple[str, str], asyncio.Task[None]] = {}

    @staticmethod
    def _key(config: ProviderConfig, client_key: str | None) -> tuple[str, str]:
        if not config.passthrough:
            return (config.name, "")
        # The models a passthrough key may list are that key's: never kept as the key itself.
        return (config.name, hashlib.sha256((client_key or "").encode()).hexdigest())

    async def models(self, query: Mapping[str, str], client_key: str | None) -> dict[str, Any]:
        """The `GET /v1/models` answer for `query` (`provider`, `limit`, `after_id`,
        `before_id`)."""
        import asyncio

        settings = self.settings
        # Spelled as in `provider:model`, where `my-corp` names provider `my_corp`.
        wanted = provider_key(query.get("provider", ""))
        if wanted and wanted not in settings.providers:
            raise VdmError(
                404,
                f"unknown provider {wanted!r}; configured providers: "
                f"{', '.join(settings.providers) or 'none'}",
            )
        _limit(query)  # a bad limit is refused before any provider is asked
        configs = [settings.providers[n] for n in ([wanted] if wanted else settings.providers)]
        # Azure deployments are the models (aliases name them): nothing to list.
        keys = [(c, self._key(c, client_key)) for c in configs if not c.uses_deployments]
        first: list[asyncio.Task[None]] = []
        now = self.clock()
        for config, key in keys:
            listing = self._listings.get(key)
            if (listing is None or listing.fresh_until <= now) and key not in self._fetches:
                task = self._refresh(config, key, client_key)
                if listing is None:  # only the answer that starts a first fetch waits for it
                    first.append(task)
        if first:
            await asyncio.wait(first, timeout=FIRST_WAIT)
        data = configured_models(settings, wanted)
        for _, key in keys:
            listing = self._listings.get(key)
            data.extend(listing.models if listing else [])
        unique: dict[str, Entry] = {}
        for model in data:
            unique.setdefault(model["id"], model)  # the first entry of an id
        return page(list(unique.values()), query)

    def _refresh(
        self, config: ProviderConfig, key: tuple[str, str], client_key: str | None
    ) -> asyncio.Task[None]:
        """Start fetching `key`'s list."""
        import asyncio

        task = asyncio.get_running_loop().create_task(self._fetch(config, key, client_key))
        self._fetches[key] = task
        task.add_done_callback(lambda _: self._fetches.pop(key, None))
        return task

    async def _fetch(
        self, config: ProviderConfig, key: tuple[str, str], client_key: str | None
    ) -> None:
        import anyio

        from vdm.upstream.backends import models_path

        try:
            with anyio.fail_after(FETCH_TIMEOUT):
                answer = await self.client(config).get_json(
                    models_path(config), client_key=client_key
                )
        except (VdmError, TimeoutError) as exc:
            reason = exc.message if isinstance(exc, VdmError) else "timed out"
            log.warning("models of %s not listed: %s", config.name, reason)
            self._store(key, None, FAILURE_TTL)
            return
        except Exception:  # a task's error would otherwise only reach the loop's handler
            log.exception("models of %s not listed", config.name)
            self._store(key, None, FAILURE_TTL)
            return
        self._store(key, models_from_answer(config.name, answer, config.family), MODELS_TTL)

    def _store(self, key: tuple[str, str], models: list[Entry] | None, ttl: float) -> None:
        """Keep `models` (None: a failure, which keeps the last list) until `ttl` from now."""
        old = self._listings.pop(key, None)
        kept = models if models is not None else (old.models if old else [])
        self._listings[key] = _Listing(kept, self.clock() + ttl)
        passthrough = [k for k in self._listings if k[1]]
        for stale in passthrough[: max(0, len(passthrough) - MAX_PASSTHROUGH_LISTS)]:
            del self._listings[stale]

    async def aclose(self) -> None:
        """Stop the fetches still running (at shutdown)."""
        import asyncio

        tasks = list(self._fetches.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
