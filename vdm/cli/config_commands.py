"""`vdm config`: setup, show, validate, env."""

from __future__ import annotations

import typer

config_app = typer.Typer(help="Set up, show and check the configuration.", no_args_is_help=True)
