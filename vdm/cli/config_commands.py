"""`vdm config`: setup, show, validate, env.

Only typer is imported at module level: everything else is imported inside the commands, so
`vdm --help` and `vdm wrap` start fast. Output is plain aligned text for an 80-column terminal.
Secrets are only ever shown masked (vdm/config/secrets.py); as a last guard, every line is
passed through `redact` with the configured secrets before it is printed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path  # typer reads `--request`'s annotation at run time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vdm.cli.config_text import bullets, is_secret, masked, notes, table
from vdm.cli.request_facts import Flags, request_facts, stated

if TYPE_CHECKING:
    from vdm.config.routing_rules import Rule
    from vdm.config.settings import Alias, ProviderConfig, Settings
    from vdm.routing.rules import Facts

config_app = typer.Typer(help="Set up, show and check the configuration.", no_args_is_help=True)

#: Where a value comes from when no layer sets it.
BUILT_IN = "built-in"


# -- setup ----------------------------------------------------------------------------------------


@config_app.command()
def setup() -> None:
    """Ask for providers, keys, aliases and the default provider, and save them.

    Into vandamme-config.toml and/or .env, keeping what is there; keys are typed hidden.
    """
    import os
    from pathlib import Path

    from vdm.cli.common import EXIT_INTERRUPTED, fail
    from vdm.cli.setup_wizard import Terminal
    from vdm.cli.setup_wizard import setup as run_setup

    try:
        code = run_setup(Terminal(), dict(os.environ), Path.cwd())
    except KeyboardInterrupt:
        typer.echo("\nvdm config setup: interrupted; no file was changed", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except EOFError:
        fail("input ended before setup was done; no file was changed", prefix="vdm config setup")
    raise typer.Exit(code)


# -- show -----------------------------------------------------------------------------------------


@config_app.command()
def show(
    resolve: str | None = typer.Option(
        None, "--resolve", metavar="MODEL", help="Explain where a model name is routed."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
    request: Annotated[
        Path | None,
        typer.Option(
            "--request",
            metavar="FILE",
            help="With --resolve: take the routing rules' facts from this request body (JSON, "
            "Anthropic Messages, Chat Completions or Responses).",
        ),
    ] = None,
    background: bool = typer.Option(
        False, "--background", help="With --resolve: as a background (small-model) request."
    ),
    subagent: bool = typer.Option(
        False, "--subagent", help="With --resolve: as a subagent's request."
    ),
    thinking: bool = typer.Option(
        False, "--thinking", help="With --resolve: as a request with thinking on."
    ),
    images: bool = typer.Option(
        False, "--images", help="With --resolve: as a request with images."
    ),
    web_search: bool = typer.Option(
        False, "--web-search", help="With --resolve: as a request carrying the web_search tool."
    ),
    tokens: int | None = typer.Option(
        None, "--tokens", metavar="N", min=0, help="With --resolve: as a request of N input tokens."
    ),
) -> None:
    """The effective configuration and where each value comes from."""
    from vdm.cli.common import load_settings

    settings = load_settings()
    view = _View(settings)
    if resolve is not None:
        flags = Flags(background, subagent, thinking, images, web_search, tokens)
        lines = _explain(view, resolve, as_json, request_facts(resolve, request, flags))
    elif as_json:
        lines = [_json(view.as_dict())]
    else:
        lines = list(_show(view))
    view.echo(lines)


class _View:
    """Settings as shown: sources with short paths, values masked."""

    def __init__(self, settings: Settings) -> None:
        import os
        from pathlib import Path

        self.settings = settings
        self.cwd = Path.cwd()
        self.env: Mapping[str, str] = os.environ

    def source(self, *names: str) -> str:
        """Where the first of `names` that is set comes from."""
        for name in names:
            found = self.settings.values.get(name)
            if found is not None:
                return self.short(found.source)
        return BUILT_IN

    def short(self, text: str) -> str:
        from vdm.cli.common import short_paths

        return short_paths(text, self.env, self.cwd)

    def echo(self, lines: Iterable[str], *, err: bool = False) -> None:
        from vdm.config.secrets import redact
        from vdm.config.settings import PASSTHRU

        secrets = [*self.settings.secrets]
        for var, found in self.settings.values.items():
            if is_secret(var):  # several keys, or `Bearer <token>`: each part too
                secrets += [found.value, *(w for w in found.value.split() if len(w) >= 8)]
        secrets = [s for s in secrets if s.upper() != PASSTHRU]
        for line in lines:
            typer.echo(redact(line, secrets), err=err)

    def layers(self) -> list[tuple[str, str, bool]]:
        """(layer, path, exists), highest first."""
        from pathlib import Path

        from vdm.config.sources import CONFIG_NAME, DEFAULTS_SOURCE, user_config_path

        user = user_config_path(self.env)
        found = [("environment", "env", True)]
        for label, path in (
            (".env", self.cwd / ".env"),
            ("project TOML", self.cwd / CONFIG_NAME),
            ("user TOML", user),
        ):
            if isinstance(path, Path):
                found.append((label, self.short(str(path)), path.is_file()))
        found.append(("packaged", DEFAULTS_SOURCE, True))
        return found

    def provider_rows(self, provider: ProviderConfig) -> list[tuple[str, str, str]]:
        from vdm.config.secrets import safe_url
        from vdm.config.sources import TABLES, var_name

        p = var_name(provider.name)
        keys = ", ".join(provider.masked_keys) or "none"
        if provider.passthrough:
            keys += " (the client's key)"
        elif len(provider.api_keys) > 1:
            keys += f" ({len(provider.api_keys)}, round robin)"
        base = next(
            (
                var
                for var in (f"{p}_BASE_URL", f"{p}_ANTHROPIC_BASE_URL", f"{p}_OPENAI_BASE_URL")
                if self._value(var).rstrip("/") == provider.base_url
            ),
            f"{p}_BASE_URL",
        )
        rows = [
            ("format", provider.api_format, self.source(f"{p}_API_FORMAT")),
            ("base URL", safe_url(provider.base_url), self.source(base)),
            ("keys", keys, self.source(f"{p}_API_KEY")),
            ("auth", provider.auth, self.source(f"{p}_AUTH")),
        ]
        if provider.api_version:
            rows.append(("api version", provider.api_version, self.source(f"{p}_API_VERSION")))
        rows.extend(self.provider_timeout_rows(provider))
        retries = self.source(f"{p}_MAX_RETRIES", "MAX_RETRIES")
        rows.append(("max retries", str(provider.max_retries), retries))
        cap = self.source(f"{p}_RETRY_AFTER_CAP", "RETRY_AFTER_CAP")
        rows.append(("retry-after cap", f"{provider.retry_after_cap:g} s", cap))
        size = self.source(f"{p}_MAX_RESPONSE_BYTES", "MAX_RESPONSE_BYTES")
        rows.append(("max response", f"{provider.max_response_bytes} bytes", size))
        for header, value in provider.custom_headers.items():
            own, every = (f"{s}CUSTOM_HEADER_{var_name(header)}" for s in (f"{p}_", ""))
            var = own if own in self.settings.values else every
            rows.append(("header", f"{header}: {masked(var, value)}", self.source(var)))
        for alias in self.settings.aliases:
            if alias.provider == provider.name:
                var = f"{p}_{TABLES['aliases']}{var_name(alias.name)}"
                rows.append(("alias", f"{alias.name} → {alias.target}", self.source(var)))
        return rows

    def server_rows(self) -> list[tuple[str, str, str]]:
        """The top-level settings that are Settings fields, named as in TOML."""
        from vdm.config.sources import TOP_LEVEL

        rows = []
        for key, var in TOP_LEVEL.items():
            field = key.replace("-", "_")
            if field == "default_provider" or not hasattr(self.settings, field):
                continue  # shown on its own; small/middle/big-model are fallbacks
            value = getattr(self.settings, field)
            if value is None:
                shown = "unset"
            elif isinstance(value, float):
                shown = f"{value:g} s"
            else:
                shown = masked(var, str(value))
            rows.append((key, shown, self.source(var)))
        return rows + self.timeout_rows()

    def timeout_rows(self) -> list[tuple[str, str, str]]:
        """The global upstream timeouts, each with where it is set (an older name included)."""
        from vdm.config.timeouts import FIELDS, show, variables

        timeouts = self.settings.timeouts
        return [
            (
                f"{which.replace('_', '-')}-timeout",
                show(getattr(timeouts, which)),
                self.source(*variables(which)),
            )
            for which in FIELDS
        ]

    def provider_timeout_rows(self, provider: ProviderConfig) -> list[tuple[str, str, str]]:
        """A provider's effective upstream timeouts: its own, else the global ones."""
        from vdm.config.sources import var_name
        from vdm.config.timeouts import FIELDS, show, variables

        p = var_name(provider.name)
        return [
            (
                f"{which.replace('_', '-')} timeout",
                show(getattr(provider.timeouts, which)),
                self.source(*variables(which, p)),
            )
            for which in FIELDS
        ]

    def fallback_rows(self) -> list[tuple[str, str, str]]:
        """Fallbacks in the order they are tried. One of another provider than the default,
        or shadowed by an earlier one of the same name, is reached only with its provider's
        prefix, and is named so (`groq:haiku`)."""
        seen: set[str] = set()
        rows = []
        bare = self.settings.bare_fallbacks
        for alias in self.settings.fallbacks:
            used = alias in bare and alias.name not in seen
            name = alias.name if used else f"{alias.provider}:{alias.name}"
            seen.update([alias.name] if used else [])
            rows.append((name, f"→ {self.target(alias)}", self.short(alias.source)))
        return rows

    def target(self, alias: Alias) -> str:
        """`provider:model`, as one would ask for it."""
        from vdm.config.settings import provider_key

        prefix, sep, _ = alias.target.partition(":")
        if sep and provider_key(prefix) in self.settings.providers:
            return alias.target
        return f"{alias.provider}:{alias.target}"

    def problems(self) -> list[str]:
        from vdm.cli.common import NO_PROVIDER

        found = [self.short(p) for p in self.settings.problems]
        return found if self.settings.providers else [*found, NO_PROVIDER]

    def as_dict(self) -> dict[str, Any]:
        settings = self.settings
        return {
            "sources": [{"layer": a, "path": b, "exists": c} for a, b, c in self.layers()],
            "default_provider": settings.default_provider,
            "providers": [
                {
                    "name": p.name,
                    "settings": [
                        {"name": n, "value": v, "source": s} for n, v, s in self.provider_rows(p)
                    ],
                }
                for p in settings.providers.values()
            ],
            "fallbacks": [
                {
                    "name": a.name,
                    "provider": a.provider,
                    "target": a.target,
                    "source": self.short(a.source),
                }
                for a in settings.fallbacks
            ],
            "server": [{"name": n, "value": v, "source": s} for n, v, s in self.server_rows()],
            "rules": [
                {"when": r.when, "use": r.use, "model": list(r.models), "above": r.above}
                for r in settings.rules
            ],
            "problems": self.problems(),
            "warnings": [self.short(w) for w in settings.warnings],
        }

    def _value(self, var: str) -> str:
        found = self.settings.values.get(var)
        return found.value.strip() if found is not None else ""


def _show(view: _View) -> Iterator[str]:
    settings = view.settings
    yield "Sources, highest first:"
    yield from table([(a, b, "" if c else "(not found)") for a, b, c in view.layers()], 2)
    yield ""
    default = settings.default_provider
    how = view.source("VDM_DEFAULT_PROVIDER")
    how = "the only provider" if how == BUILT_IN and len(settings.providers) == 1 else how
    yield f"Default provider: {default or 'none'}" + (f"  ({how})" if default else "")
    yield ""
    yield "Providers, default first:" if settings.providers else "Providers: none"
    for provider in settings.providers.values():
        yield f"  {provider.name}"
        yield from table(view.provider_rows(provider), 4)
    if settings.fallbacks:
        yield ""
        yield "Fallback aliases, for names that contain them (the first match wins):"
        rows = view.fallback_rows()
        yield from table(rows, 2)
        if any(":" in name for name, _, _ in rows):
            yield "  (provider:name: not the default provider's, or shadowed by an earlier one,"
            yield "  so only that name reaches it)"
    if settings.rules:
        yield ""
        yield f"Routing rules, the first match wins ({view.short(settings.rules[0].source)}):"
        yield from table(
            [(f"#{r.number} {r.label}", r.use, _rule_note(r)) for r in settings.rules], 2
        )
    yield ""
    yield "Server:"
    yield from table(view.server_rows(), 2)
    yield from notes(view.problems(), [view.short(w) for w in settings.warnings])


def _rule_note(rule: Rule) -> str:
    return f"above {rule.above:,} input tokens" if rule.above is not None else ""


def _explain(view: _View, model: str, as_json: bool, facts: Facts | None = None) -> list[str]:
    from vdm.cli.common import NO_PROVIDER, fail
    from vdm.protocol.errors import VdmError
    from vdm.routing.resolve import resolve

    if not view.settings.providers:
        fail(NO_PROVIDER)
    try:
        route = resolve(model, view.settings, facts)
    except VdmError as exc:
        fail(f"cannot resolve {model!r}: {view.short(exc.message)}")
    steps = [view.short(step) for step in route.steps]
    target = f"{route.provider.name}:{route.model}"
    if as_json:
        found = {"model": model, "provider": route.provider.name, "upstream_model": route.model}
        chain: dict[str, Any] = {"rule": route.rule, "failover": [r.label for r in route.failover]}
        if route.long_context is not None:
            chain["long_context"] = [route.long_context.label]
        return [_json({**found, "steps": steps, **chain})]
    from vdm.config.secrets import safe_url

    lines = [f"Resolving {model!r}:"]
    lines += [f"  {n}. {step}" for n, step in enumerate(steps, 1)]
    if facts is not None and view.settings.rules:
        lines.insert(1, f"  request: {stated(facts)}")
    where = f"{route.provider.api_format} format, {safe_url(route.provider.base_url)}"
    lines.append(f"{model} → {target}  ({where})")
    if route.failover:
        lines.append(f"  failover: {' → '.join(r.label for r in route.failover)}")
    if route.long_context is not None:
        lines.append(f"  long context: {route.long_context.label}")
    return lines


def _json(data: Any) -> str:
    import json

    return json.dumps(data, indent=2, ensure_ascii=False)


# -- validate -------------------------------------------------------------------------------------


@config_app.command()
def validate() -> None:
    """Check the configuration; list every problem (exit 1) or say ok (exit 0)."""
    import os
    from pathlib import Path

    from vdm.cli.common import EXIT_ERROR, NO_PROVIDER
    from vdm.usage.prices import user_prices

    settings, problems = _load_all(os.environ, Path.cwd())
    if settings is not None:
        problems += settings.problems
        if not settings.providers:
            problems.append(NO_PROVIDER)
        problems += _alias_problems(settings)
        problems += _rule_problems(settings)
        problems += user_prices(settings.prices)[1]
    warnings = list(settings.warnings) if settings is not None else []
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        typer.echo(f"vdm config validate: {count}", err=True)
        for line in (*bullets(problems), *notes([], warnings)):
            typer.echo(line, err=True)
        raise typer.Exit(EXIT_ERROR)
    assert settings is not None
    names = ", ".join(settings.providers)
    count = f"{len(settings.providers)} provider{'s' if len(settings.providers) > 1 else ''}"
    typer.echo(f"ok: {count} ({names}); default provider: {settings.default_provider}")
    for line in notes([], warnings):
        typer.echo(line)


def _load_all(env: Mapping[str, str], cwd: Path) -> tuple[Settings | None, list[str]]:
    """Settings, collecting every error instead of stopping at the first: a malformed file
    is reported and left out; a bad value (PORT=abc) is reported and the variable left out,
    then the rest is loaded again."""
    from vdm.config.settings import ConfigError, Settings
    from vdm.config.sources import load_layers
    from vdm.middleware.registry import MiddlewareError, middlewares

    errors: list[str] = []
    layers = load_layers(env, cwd, errors)
    while True:
        try:
            settings = Settings.from_layers(layers)
        except ConfigError as exc:
            errors.append(str(exc))
            if exc.var is None or not any(exc.var in layer.values for layer in layers):
                return None, errors
            for layer in layers:
                layer.values.pop(exc.var, None)
            continue
        try:
            middlewares(settings)
        except MiddlewareError as exc:
            errors.append(str(exc))
        return settings, errors


def _alias_problems(settings: Settings) -> list[str]:
    """Your aliases and fallbacks that cannot be followed (a cycle, an unknown provider)."""
    from vdm.config.sources import DEFAULTS_SOURCE
    from vdm.protocol.errors import VdmError
    from vdm.routing.resolve import resolve

    found: list[str] = []
    own = [*settings.aliases, *(a for a in settings.fallbacks if a.source != DEFAULTS_SOURCE)]
    for alias in own:
        name = f"{alias.provider}:{alias.name}"
        if any(f"{name} " in problem for problem in found):
            continue  # a cycle through it is already listed
        try:
            resolve(name, settings)
        except VdmError as exc:
            found.append(exc.message)
    return found


def _rule_problems(settings: Settings) -> list[str]:
    """Routing rules whose `use` cannot be resolved (an alias cycle, an unknown provider)."""
    from vdm.protocol.errors import VdmError
    from vdm.routing.resolve import resolve

    found: list[str] = []
    for rule in settings.rules:
        try:
            resolve(rule.use, settings)
        except VdmError as exc:
            found.append(f"{rule.source}: [[routing.rules]] #{rule.number}: {exc.message}")
    return found


# -- env ------------------------------------------------------------------------------------------


@config_app.command()
def env(
    providers: Annotated[
        list[str] | None,
        typer.Argument(metavar="[PROVIDER]...", help="Only these providers (default: all)."),
    ] = None,
) -> None:
    """The variables vdm reads: each one's value (keys masked) and source, or unset."""
    from vdm.cli.common import EXIT_USAGE, fail, load_settings
    from vdm.config.settings import provider_key
    from vdm.config.sources import var_name

    wanted = [provider_key(p) for p in providers or []]
    for name in wanted:
        if not var_name(name).replace("_", "").isalnum():
            fail(f"{name!r} is not a provider name (letters, digits, -, _)", EXIT_USAGE)
    view = _View(load_settings())
    lines: list[str] = []
    if not wanted:
        lines += ["Server and routing:", *table(list(_top_rows(view)), 2)]
    known = dict(_env_providers(view))
    for name in wanted or list(known):
        state = known.get(name, f"not configured (set {var_name(name)}_API_KEY)")
        lines += ["", f"{name}: {state}", *table(list(_provider_env_rows(view, name)), 2)]
    view.echo(lines[1:] if wanted else lines)


def _top_rows(view: _View) -> Iterator[tuple[str, str, str]]:
    from vdm.config.sources import TOP_LEVEL, TOP_TABLES

    for var in TOP_LEVEL.values():
        yield _env_row(view, var)
    for prefix in TOP_TABLES.values():
        yield from _table_rows(view, prefix)


def _provider_env_rows(view: _View, name: str) -> Iterator[tuple[str, str, str]]:
    from vdm.config.sources import PROVIDER_KEYS, TABLES, var_name

    p = var_name(name)
    for suffix in PROVIDER_KEYS.values():
        yield _env_row(view, f"{p}_{suffix}")
    for prefix in TABLES.values():
        yield from _table_rows(view, f"{p}_{prefix}")


def _env_row(view: _View, var: str) -> tuple[str, str, str]:
    found = view.settings.values.get(var)
    if found is None:
        return (var, "unset", "")
    return (var, masked(var, found.value), view.short(found.source))


def _table_rows(view: _View, prefix: str) -> Iterator[tuple[str, str, str]]:
    """`PREFIX{NAME}` variables that are set, or the pattern as unset."""
    found = sorted(v for v in view.settings.values if v.startswith(prefix) and v != prefix)
    if not found:
        yield (f"{prefix}{{NAME}}", "unset", "")
    for var in found:
        yield _env_row(view, var)


def _env_providers(view: _View) -> Iterator[tuple[str, str]]:
    """Configured providers, then providers with a key that are not usable, then the presets."""
    from vdm.config.settings import NOT_PROVIDERS, provider_key
    from vdm.config.sources import TABLES, TOP_TABLES, packaged_defaults

    settings = view.settings
    for name in settings.providers:
        yield name, "configured" + (" (default)" if name == settings.default_provider else "")
    tables = tuple(f"_{t}" for t in TABLES.values())
    unusable = sorted(
        var.removesuffix("_API_KEY").lower()
        for var, value in settings.values.items()
        if var.endswith("_API_KEY")
        and not value.is_default
        and var.removesuffix("_API_KEY") not in NOT_PROVIDERS
        and not any(t in var for t in tables)
        and not var.startswith(tuple(TOP_TABLES.values()))
        and var.removesuffix("_API_KEY").lower() not in settings.providers
    )
    for name in unusable:
        yield name, "has a key but is not usable (see `vdm config validate`)"
    presets = {provider_key(section) for section in packaged_defaults().sections}
    for name in sorted(presets - set(settings.providers) - set(unusable)):
        yield name, f"preset, not configured (set {name.upper()}_API_KEY)"


# -- text helpers ---------------------------------------------------------------------------------
