"""Which provider and model a requested model name goes to.

In order (docs/routing.md):

1. `provider:model` with a configured provider → that provider; `model` may be one of that
   provider's aliases (`openai:fast`). An unknown prefix is a 400 naming it.
2. Your aliases, compared case-insensitively with `-` and `_` equal: an exact match, else the
   longest alias contained in the name; ties go to the default provider, then the other
   providers alphabetically, then the alias names alphabetically.
3. The default provider's fallback aliases (`haiku`, `sonnet`, `opus`, …) contained in the
   name, in their order: `[fallback]` / `VDM_FALLBACK_*`, the legacy SMALL/MIDDLE/BIG_MODEL,
   its packaged ones. Another provider's packaged fallbacks need its prefix (`groq:sonnet`):
   adding a provider's key never moves Claude Code's names off the default provider.
4. The default provider, with the name unchanged.

An alias target is `model` (on the alias's provider) or `provider:model`; a target that is
itself an alias of that provider is followed, and a cycle is a 400 that shows it.

Failover (docs/routing.md): the route also carries the targets to try when its provider fails
before answering, resolved here once: a list alias's other targets (`fast = ["groq:a",
"openai:b"]`), then the `[failover]` entries of each alias followed and of the final
`provider:model`; and the long-context target for a prompt the model cannot take. A failover
target is resolved like a requested name, but its own failovers are not followed; one that
cannot be resolved (a provider not configured) is skipped, with a step saying why.

Request-aware rules (`[[routing.rules]]`, vdm/routing/rules.py) come before all of this:
given the request's `Facts`, the first matching rule's `use` is resolved instead of the
requested name, and the route names the rule (`Route.rule`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from vdm.config.settings import (
    NO_PROVIDER,
    Alias,
    ProviderConfig,
    Settings,
    failover_key,
    looks_like_provider,
    normalize,
    provider_key,
)
from vdm.protocol.bedrock_from_anthropic import claude_name
from vdm.protocol.capabilities import caps_for
from vdm.protocol.context import without_discovery_prefix
from vdm.protocol.errors import VdmError
from vdm.routing.cloud_ids import for_provider, is_model_id, keeps_id
from vdm.routing.rules import Facts, first_match

#: Alias chains longer than this are certainly a mistake.
MAX_CHAIN = 16


@dataclass(frozen=True, slots=True)
class Route:
    provider: ProviderConfig
    model: str
    #: How the name was resolved, one line per step (for `vdm config show --resolve`).
    steps: tuple[str, ...] = field(default=(), compare=False)
    #: The routes tried in order when this one fails before answering (resolved, distinct).
    failover: tuple[Route, ...] = field(default=(), compare=False)
    #: Where a prompt too long for this model's context window goes, if configured.
    long_context: Route | None = field(default=None, compare=False)
    #: The first alias followed (the one the name matched or contained, or a fallback
    #: alias), None for a `provider:model` or an unchanged name.
    alias: str | None = field(default=None, compare=False)
    #: The `[[routing.rules]]` entry that chose this route (its label), None when none did.
    rule: str | None = field(default=None, compare=False)

    @property
    def label(self) -> str:
        """`provider:model`, as the `x-vdm-served-by` header and the log line show it."""
        return f"{self.provider.name}:{self.model}"


def resolve(requested: str, settings: Settings, facts: Facts | None = None) -> Route:
    """The route for `requested`; raises VdmError(400) with the fix when there is none.
    With the request's `facts`, the routing rules are tried first."""
    if facts is not None and settings.rules and settings.providers:
        hit = first_match(settings.rules, requested, facts, lambda: _vision(requested, settings))
        if hit is None:
            route = resolve(requested, settings)
            return replace(route, steps=("no routing rule matched", *route.steps))
        rule = hit.rule
        step = (
            f"routing rule #{rule.number} ({rule.source}), when = {rule.when!r}: {hit.why}; "
            f"using {rule.use!r} instead of {requested!r}"
        )
        route = resolve(rule.use, settings)
        return replace(route, steps=(step, *route.steps), rule=rule.label)
    if not settings.providers:
        detail = "; ".join(settings.problems)
        raise VdmError(400, NO_PROVIDER + ", then restart vdm" + (f" ({detail})" if detail else ""))
    resolver = _Resolver(settings)
    route = resolver.resolve(requested)
    if not (
        settings.failover or settings.long_context or any(a.failover for a in resolver.followed)
    ):
        return route  # the common case: no chain configured, nothing more to do
    return _with_failover(route, resolver.followed, settings)


def _with_failover(route: Route, followed: list[Alias], settings: Settings) -> Route:
    """`route` with its failover routes and long-context route (see the module docstring)."""
    keys = [failover_key(f"{route.provider.name}:{route.model}")]
    for alias in followed:
        keys += [failover_key(alias.name), failover_key(f"{alias.provider}:{alias.name}")]
    wanted = [_qualified(t, a.provider, settings) for a in followed for t in a.failover]
    wanted += [t for key in keys for t in settings.failover.get(key, ())]
    steps = list(route.steps)
    seen = {route.label}
    chain: list[Route] = []
    for target in wanted:
        found = _target(target, settings, steps, "failover")
        if found is not None and found.label not in seen:
            seen.add(found.label)
            chain.append(found)
    if chain:
        steps.append(f"failover, in order: {', '.join(r.label for r in chain)}")
    long_target = next(
        (settings.long_context[k] for k in (*keys, "") if k in settings.long_context), None
    )
    long_context = None
    if long_target is not None:
        long_context = _target(long_target, settings, steps, "long-context")
        if long_context is not None and long_context.label == route.label:
            long_context = None  # the long-context model itself: nowhere longer to go
        elif long_context is not None:
            steps.append(f"a prompt too long for its context window goes to {long_context.label}")
    return Route(route.provider, route.model, tuple(steps), tuple(chain), long_context, route.alias)


def _vision(requested: str, settings: Settings) -> bool | None:
    """Whether the model `requested` resolves to takes images (capability table); None when
    it cannot be resolved (its own 400 comes later)."""
    try:
        route = resolve(requested, settings)
    except VdmError:
        return None
    return caps_for(route.provider.family, claude_name(route.model)).images


def _target(target: str, settings: Settings, steps: list[str], kind: str) -> Route | None:
    """A failover or long-context target resolved (its own failovers not followed); None,
    with a step saying why, when it cannot be."""
    try:
        return _Resolver(settings).resolve(target)
    except VdmError as exc:
        steps.append(f"{kind} target {target!r} skipped: {exc.message}")
        return None


def _qualified(target: str, provider: str, settings: Settings) -> str:
    """A list alias's failover target as a requested name: `model` is on the alias's
    provider, `provider:model` as written."""
    prefix, sep, _ = target.partition(":")
    if sep and (provider_key(prefix) in settings.providers or looks_like_provider(prefix)):
        return target
    return f"{provider}:{target}"


class _Resolver:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.steps: list[str] = []
        self.seen: list[str] = []
        #: The aliases followed, in order (their failovers and `[failover]` entries apply).
        self.followed: list[Alias] = []

    def resolve(self, requested: str) -> Route:
        name = requested.strip()
        bare = without_discovery_prefix(name)
        if bare is not None:
            # Claude Code's model discovery keeps only ids containing `claude`: /v1/models
            # lists `fast` also as `claude-vdm/fast` (docs/models.md).
            self.steps.append(f"{name!r} is the discoverable id of {bare!r}")
            name = bare.strip()
        if not name:
            raise VdmError(400, "model: must not be empty")
        prefix, sep, rest = name.partition(":")
        if sep and not is_model_id(name, prefix, self.settings):
            provider = self._provider(prefix, requested)
            return self._on_provider(provider, rest, requested)
        wanted = normalize(name)
        alias = _best(self.settings.aliases, wanted, self.settings.default_provider)
        if alias is not None:
            how = "matches alias" if alias.name == wanted else "contains alias"
            self.steps.append(f"{name!r} {how} {alias.name!r} ({alias.source})")
            return self._follow(alias)
        default = self.settings.default_provider
        assert default is not None
        # Settings.bare_fallbacks, without building the tuple on every request.
        fallback = next(
            (a for a in self.settings.fallbacks if a.provider == default and a.name in wanted),
            None,
        )
        if fallback is not None and keeps_id(name, self.settings.providers[default]):
            self.steps.append(f"{name!r} is a Bedrock id: its fallback alias does not apply")
        elif fallback is not None:
            self.steps.append(
                f"{name!r} contains {fallback.name!r}: fallback alias ({fallback.source})"
            )
            return self._follow(fallback)
        step = f"{name!r} is no alias: default provider {default!r}, name unchanged"
        other = next((a for a in self.settings.fallbacks if a.name in wanted), None)
        if other is not None:
            # Not used on purpose (adding a key must not move Claude Code's names): say so.
            step += (
                f" ({other.provider}'s fallback {other.name!r} applies only to "
                f"`{other.provider}:{other.name}`)"
            )
        self.steps.append(step)
        provider = self.settings.providers[default]
        model = for_provider(name, provider)
        if model != name:
            self.steps.append(f"a Bedrock id: {provider.name!r} gets its Claude model {model!r}")
        return self._route(provider, model)

    def _provider(self, prefix: str, requested: str) -> ProviderConfig:
        provider = self.settings.providers.get(provider_key(prefix))
        if provider is None:
            raise VdmError(
                400,
                f"unknown provider {prefix!r} in model {requested!r}; configured providers: "
                f"{', '.join(self.settings.providers)}",
            )
        return provider

    def _on_provider(self, provider: ProviderConfig, model: str, requested: str) -> Route:
        if not model:
            raise VdmError(
                400, f"model {requested!r} names provider {provider.name!r} but no model"
            )
        wanted = normalize(model)
        own = [a for a in self.settings.aliases if a.provider == provider.name]
        own += [a for a in self.settings.fallbacks if a.provider == provider.name]
        alias = next((a for a in own if a.name == wanted), None)
        if alias is not None and self.seen and self.seen[-1] == f"{alias.provider}:{alias.name}":
            alias = None  # `gpt-4o = "gpt-4o"`: the alias names the model itself
        if alias is not None:
            self.steps.append(
                f"{provider.name}:{model} is alias {alias.name!r} of {provider.name!r} "
                f"({alias.source})"
            )
            return self._follow(alias)
        self.steps.append(f"provider {provider.name!r}, model {model!r}")
        return self._route(provider, model)

    def _follow(self, alias: Alias) -> Route:
        key = f"{alias.provider}:{alias.name}"
        if key in self.seen:
            chain = " → ".join([*self.seen, key])
            raise VdmError(400, f"alias cycle: {chain}; fix one of these aliases")
        self.seen.append(key)
        self.followed.append(alias)
        if len(self.seen) > MAX_CHAIN:
            raise VdmError(400, f"alias chain longer than {MAX_CHAIN}: {' → '.join(self.seen)}")
        prefix, sep, rest = alias.target.partition(":")
        provider = self.settings.providers.get(provider_key(prefix)) if sep else None
        if provider is not None:
            return self._on_provider(provider, rest, alias.target)
        if sep and alias.target.count(":") == 1 and prefix.isalpha() and prefix.islower():
            # `groq:llama…` where groq is not configured: say so rather than send it anywhere.
            raise VdmError(
                400,
                f"alias {alias.name!r} ({alias.source}) points to {alias.target!r}, but "
                f"provider {prefix!r} is not configured; configured providers: "
                f"{', '.join(self.settings.providers)}",
            )
        owner = self.settings.providers.get(alias.provider)
        if owner is None:
            raise VdmError(400, f"alias {alias.name!r} points to unconfigured {alias.provider!r}")
        return self._on_provider(owner, alias.target, alias.target)

    def _route(self, provider: ProviderConfig, model: str) -> Route:
        alias = self.followed[0].name if self.followed else None
        return Route(provider, model, tuple(self.steps), alias=alias)


def _best(aliases: Iterable[Alias], wanted: str, default: str | None) -> Alias | None:
    """Exact match first, then the longest contained; ties: default provider, provider name,
    alias name."""

    def rank(alias: Alias) -> tuple[int, int, str, str]:
        return (-len(alias.name), alias.provider != default, alias.provider, alias.name)

    exact = [a for a in aliases if a.name == wanted]
    if exact:
        return min(exact, key=rank)
    contained = [a for a in aliases if a.name in wanted]
    return min(contained, key=rank) if contained else None
