"""`vdm health` and `vdm test`: check a running proxy and the configured providers for real."""

from __future__ import annotations

import typer

health_app = typer.Typer(
    help="Check a running proxy or the upstream providers.", no_args_is_help=True
)
test_app = typer.Typer(
    help="Send tiny real requests through the configuration.", no_args_is_help=True
)
