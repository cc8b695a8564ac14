"""Which middleware run for a request: built-ins by name, plugins by entry point, enabled
per scope in TOML (docs/middleware.md).

    [middleware]                       # every request
    enabled = ["system-prompt"]
    [middleware.system-prompt]         # its options
    append = "Answer in English."
    [gemini.middleware]                # a provider's requests: replaces the global list
    enabled = ["tool-schema", "system-prompt"]
    [middleware.aliases.fast]          # requests naming alias `fast`: replaces both
    enabled = []

The most specific scope that sets `enabled` decides which middleware run, in its order;
options merge key by key, the alias's over the provider's over the global ones. A name that
is not a built-in is looked up in the `vdm.middleware` entry point group (importlib.metadata):
a plugin package declares `[project.entry-points."vdm.middleware"] my-hook = "pkg.mod:Hook"`.

Everything is checked, every chain made, when the configuration is first used (`of`): an
unknown name, a plugin that does not import, options a middleware refuses, a hook that is not
async, each stops vdm with a `MiddlewareError` naming it and where it is configured.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from vdm.config.names import normalize, provider_key
from vdm.config.settings import ConfigError, Settings
from vdm.config.sources import ALIAS_SCOPE, GLOBAL_SCOPE, PROVIDER_SCOPE
from vdm.middleware.api import HOOKS, defines
from vdm.middleware.chain import Chain
from vdm.protocol.context import without_discovery_prefix
from vdm.protocol.errors import VdmError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

log = logging.getLogger("vdm.middleware")

#: The entry point group third-party middleware register under.
ENTRY_POINT_GROUP = "vdm.middleware"
#: Built-in middleware: name → "module:class" (imported when enabled).
BUILTINS: dict[str, str] = {
    "system-prompt": "vdm.middleware.system_prompt:SystemPrompt",
    "tool-schema": "vdm.middleware.tool_schema:ToolSchema",
}
#: Makes one middleware from its options.
Factory = Callable[[Mapping[str, Any]], object]


class MiddlewareError(ConfigError):
    """A middleware that cannot be used: unknown, broken, or refusing its options."""


def scope_name(scope: str) -> str:
    """A scope key as the TOML spells its table."""
    if scope.startswith(PROVIDER_SCOPE):
        return f"[{scope.removeprefix(PROVIDER_SCOPE)}.middleware]"
    if scope.startswith(ALIAS_SCOPE):
        return f"[middleware.aliases.{scope.removeprefix(ALIAS_SCOPE)}]"
    return "[middleware]"


class Middlewares:
    """The middleware configuration of one `Settings`, checked, with a chain made for every
    provider and alias scope (`chain`)."""

    def __init__(self, settings: Settings) -> None:
        self._providers = frozenset(settings.providers)
        self._aliases = frozenset(a.name for a in (*settings.aliases, *settings.fallbacks))
        self._scopes: dict[str, tuple[dict[str, Any], str]] = {}
        for scope, (table, source) in settings.middleware.items():
            if scope.startswith(PROVIDER_SCOPE):
                scope = PROVIDER_SCOPE + provider_key(scope.removeprefix(PROVIDER_SCOPE))
            self._scopes[scope] = (table, source)
        self._factories: dict[str, Factory] = {}
        self._chains: dict[tuple[str, str | None], Chain | None] = {}
        for scope, (table, source) in self._scopes.items():
            self._check_scope(scope, table, source)
        alias_scopes = [
            s.removeprefix(ALIAS_SCOPE) for s in self._scopes if s.startswith(ALIAS_SCOPE)
        ]
        for provider in self._providers:
            for alias in (None, *alias_scopes):
                self._chains[(provider, alias)] = self._make(provider, alias)

    def chain(self, provider: str, alias: str | None) -> Chain | None:
        """The chain of a request to `provider` naming `alias` (None: no middleware)."""
        if alias is not None and ALIAS_SCOPE + alias not in self._scopes:
            alias = None
        return self._chains.get((provider, alias))

    def scoped(self, alias: str) -> bool:
        """`alias` has a middleware scope of its own (`[middleware.aliases.NAME]`)."""
        return ALIAS_SCOPE + alias in self._scopes

    def alias_of(self, requested: str) -> str | None:
        """The alias a requested model names (`fast`, `openai:fast`, `claude-vdm/fast`),
        normalised, when it is one of the configured aliases."""
        name = requested.strip()
        bare = without_discovery_prefix(name)
        if bare is not None:
            name = bare.strip()
        prefix, sep, rest = name.partition(":")
        if sep and provider_key(prefix) in self._providers:
            name = rest
        alias = normalize(name)
        return alias if alias in self._aliases else None

    # -- checking and making ---------------------------------------------------------------

    def _check_scope(self, scope: str, table: Mapping[str, Any], source: str) -> None:
        where = f"{scope_name(scope)} ({source})"
        enabled = table.get("enabled")
        if enabled is not None:
            if not isinstance(enabled, list) or not all(isinstance(n, str) for n in enabled):
                raise MiddlewareError(f"{where}: `enabled` must be a list of middleware names")
            twice = sorted({n for n in enabled if enabled.count(n) > 1})
            if twice:
                raise MiddlewareError(f"{where}: {', '.join(twice)} listed twice in `enabled`")
            for name in enabled:
                self._factory(name, where)
        for key, value in table.items():
            if key == "enabled":
                continue
            if not isinstance(value, dict):
                raise MiddlewareError(
                    f"{where}: {key!r} is neither `enabled` nor a middleware's options table"
                )
            self._factory(key, where)
        if scope.startswith(PROVIDER_SCOPE) and scope[len(PROVIDER_SCOPE) :] not in self._providers:
            log.warning("%s: provider is not configured, so this is ignored", where)
        if scope.startswith(ALIAS_SCOPE) and scope[len(ALIAS_SCOPE) :] not in self._aliases:
            log.warning("%s: no alias of that name is configured, so this is ignored", where)

    def _factory(self, name: str, where: str) -> Factory:
        found = self._factories.get(name)
        if found is None:
            found = self._factories[name] = _load(name, where)
        return found

    def _make(self, provider: str, alias: str | None) -> Chain | None:
        scopes = [GLOBAL_SCOPE, PROVIDER_SCOPE + provider]
        if alias is not None:
            scopes.append(ALIAS_SCOPE + alias)
        found = [(s, self._scopes[s]) for s in scopes if s in self._scopes]
        deciding = next(((s, t) for s, t in reversed(found) if "enabled" in t[0]), None)
        if deciding is None or not deciding[1][0]["enabled"]:
            return None
        entries: list[tuple[str, object]] = []
        for name in deciding[1][0]["enabled"]:
            options: dict[str, Any] = {}
            for _, (table, _source) in found:
                options.update(table.get(name, {}))
            where = f"{scope_name(deciding[0])} ({deciding[1][1]})"
            entries.append((name, _instance(name, self._factories[name], options, where)))
        return Chain(entries)


def _load(name: str, where: str) -> Factory:
    """The factory registered as `name`: a built-in, else the entry point of that name."""
    target = BUILTINS.get(name)
    if target is not None:
        module, _, attr = target.partition(":")
        factory: Factory = getattr(importlib.import_module(module), attr)
        return factory
    # importlib.metadata (and its scan of every installed package) only for a name that is
    # not a built-in: a gateway without plugins starts without either.
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not found:
        raise MiddlewareError(f"{where}: unknown middleware {name!r}; {_known()}")
    entry = found[0]
    try:
        loaded = entry.load()
    except Exception as exc:
        raise MiddlewareError(
            f"{where}: middleware plugin {name!r} ({_origin(entry)}) cannot be loaded: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    if not callable(loaded):
        raise MiddlewareError(
            f"{where}: middleware plugin {name!r} ({_origin(entry)}) is not a class"
        )
    factory = loaded
    return factory


def _instance(name: str, factory: Factory, options: Mapping[str, Any], where: str) -> object:
    """One middleware made with its options; its hooks checked to be coroutines."""
    try:
        made = factory(options)
    except Exception as exc:
        raise MiddlewareError(
            f"{where}: middleware {name!r} refused its options: {type(exc).__name__}: {exc}"
        ) from None
    hooks = [h for h in HOOKS if defines(made, h)]
    if not hooks:
        raise MiddlewareError(f"{where}: middleware {name!r} defines none of {', '.join(HOOKS)}")
    for hook in hooks:
        if not inspect.iscoroutinefunction(getattr(type(made), hook)):
            raise MiddlewareError(f"{where}: middleware {name!r}: {hook} must be `async def`")
    return made


def _origin(entry: EntryPoint) -> str:
    dist = entry.dist
    package = f" in {dist.name} {dist.version}" if dist is not None else ""
    return f"{entry.value}{package}"


def _known() -> str:
    from importlib.metadata import entry_points

    plugins = sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)} - set(BUILTINS))
    return (
        f"built-ins: {', '.join(BUILTINS)}; installed plugins: {', '.join(plugins) or 'none'} "
        f"(a plugin registers an entry point in the {ENTRY_POINT_GROUP!r} group)"
    )


_last: tuple[Settings, Middlewares] | None = None


def middlewares(settings: Settings) -> Middlewares | None:
    """The checked middleware configuration of `settings` (made once per settings object:
    the last one is kept); None when nothing is configured. Raises `MiddlewareError`."""
    global _last
    if not settings.middleware:
        return None
    last = _last
    if last is not None and last[0] is settings:
        return last[1]
    made = Middlewares(settings)
    _last = (settings, made)
    return made


def chain_for(
    settings: Settings, provider: str, requested: str, followed: str | None = None
) -> tuple[Chain, str | None] | None:
    """The chain of a request for model `requested` routed to `provider`, and the alias it
    names (else `followed`, the alias its route followed: a name containing one, a fallback
    alias such as `sonnet` for `claude-sonnet-4-5`); None when no middleware applies. A
    configuration that cannot be used is a 500 (it is checked at startup: only a server that
    skipped that gets here)."""
    try:
        found = middlewares(settings)
    except MiddlewareError as exc:
        raise VdmError(500, f"vdm's middleware configuration: {exc}") from None
    if found is None:
        return None
    named = found.alias_of(requested)
    scoped = [a for a in (named, followed) if a is not None and found.scoped(a)]
    alias = scoped[0] if scoped else named or followed
    chain = found.chain(provider, alias)
    return None if chain is None else (chain, alias)
