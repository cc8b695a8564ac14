"""`vdm health` and `vdm test`: check a running proxy and the configured providers for real.

    vdm health server [--url URL]      a running vdm's GET /health
    vdm health upstream                each provider's models list, with each of its keys
    vdm test connection [--model M]    a one-token request per provider, through vdm (the
                                       default provider: Claude Code's haiku route)
    vdm test models                    a one-token request per alias, through vdm

Exit 0 when everything checked is fine, 1 when anything failed, 2 on a usage error, 130 on
Ctrl-C. The probing itself lives in vdm/cli/probes.py, imported inside the commands so that
`vdm --help` stays fast.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

if TYPE_CHECKING:
    from vdm.config.settings import ProviderConfig, Settings

health_app = typer.Typer(
    help="Check a running proxy or the upstream providers.", no_args_is_help=True
)
test_app = typer.Typer(
    help="Send tiny real requests through the configuration.", no_args_is_help=True
)

T = TypeVar("T")

Timeout = Annotated[
    float, typer.Option(min=0.1, help="Seconds to wait for each answer before giving up.")
]
Concurrency = Annotated[int, typer.Option(min=1, help="Requests in flight at most at once.")]
Providers = Annotated[
    list[str] | None,
    typer.Option("--provider", "-p", help="Only this provider (repeat for several)."),
]


def _run(main: Callable[[], Awaitable[T]]) -> T:
    """Run `main` on an asyncio loop; Ctrl-C exits 130."""
    import anyio

    from vdm.cli.common import EXIT_INTERRUPTED

    try:
        return anyio.run(main, backend="asyncio")
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _selected(settings: Settings, names: Sequence[str] | None) -> list[ProviderConfig]:
    """The providers named by --provider (all when none is), or a usage error naming them."""
    from vdm.cli.common import EXIT_USAGE, fail, require_provider
    from vdm.config.settings import provider_key

    require_provider(settings)
    if not names:
        return list(settings.providers.values())
    unknown = [n for n in names if provider_key(n) not in settings.providers]
    if unknown:
        fail(
            f"unknown provider {', '.join(map(repr, unknown))}; configured providers: "
            f"{', '.join(settings.providers)}",
            EXIT_USAGE,
        )
    wanted = {provider_key(n) for n in names}
    return [p for name, p in settings.providers.items() if name in wanted]


def _echo(text: str, settings: Settings) -> None:
    from vdm.cli.probes import masked

    typer.echo(masked(text, settings))


@health_app.command("server")
def health_server(
    url: Annotated[
        str | None,
        typer.Option(help="The vdm to check (default: http://HOST:PORT of this directory)."),
    ] = None,
    timeout: Timeout = 5.0,
) -> None:
    """Ask a running vdm for its /health: status and providers. Exit 1 if none answers."""
    from vdm.cli.common import fail, load_settings
    from vdm.cli.probes import ProbeError, check_server, server_report, server_url

    settings = load_settings()
    target = server_url(settings, url)
    try:
        health = _run(lambda: check_server(target, settings.proxy_api_key, timeout))
    except ProbeError as exc:
        fail(str(exc))
    _echo(server_report(health), settings)
    if not health.healthy:
        raise typer.Exit(1)


@health_app.command("upstream")
def health_upstream(
    provider: Providers = None,
    timeout: Timeout = 10.0,
) -> None:
    """List each provider's models with each of its keys: reachable, key accepted, latency."""
    from vdm.cli.common import load_settings
    from vdm.cli.probes import exit_code, probe_upstreams, upstream_report

    settings = load_settings()
    providers = _selected(settings, provider)
    probes = _run(lambda: probe_upstreams(providers, timeout))
    _echo(upstream_report(probes, providers), settings)
    raise typer.Exit(exit_code(probes))


@test_app.command("connection")
def test_connection(
    model: Annotated[
        str | None,
        typer.Option(help="Model for providers that nothing maps Claude Code's haiku to."),
    ] = None,
    provider: Providers = None,
    timeout: Timeout = 30.0,
    concurrency: Concurrency = 8,
) -> None:
    """Send a one-token request to each provider through vdm.

    The default provider gets what Claude Code's haiku resolves to (its name unchanged when
    nothing maps it); another provider its `haiku` alias, else --model.
    """
    from vdm.cli.common import load_settings
    from vdm.cli.probes import connection_report, exit_code, test_connections

    settings = load_settings()
    providers = _selected(settings, provider)
    probes = _run(lambda: test_connections(settings, providers, model, timeout, concurrency))
    _echo(connection_report(probes), settings)
    raise typer.Exit(exit_code(probes))


@test_app.command("models")
def test_models(
    timeout: Timeout = 30.0,
    concurrency: Concurrency = 4,
) -> None:
    """Resolve every alias and active fallback and send a one-token request through each."""
    from vdm.cli.common import fail, load_settings, require_provider
    from vdm.cli.probes import alias_report, exit_code, test_aliases

    settings = load_settings()
    require_provider(settings)
    probes = _run(lambda: test_aliases(settings, timeout, concurrency))
    if not probes:
        fail("no alias to test: define one (e.g. OPENAI_ALIAS_FAST=gpt-4o-mini)")
    _echo(alias_report(probes), settings)
    raise typer.Exit(exit_code(probes))
