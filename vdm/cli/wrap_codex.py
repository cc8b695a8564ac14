"""`vdm wrap -- codex …`: what the Codex CLI child gets (docs/wrap.md, "Codex").

Codex 0.169 ignores `OPENAI_BASE_URL` for its built-in `openai` provider (it goes to
api.openai.com, and over a WebSocket first), so vdm defines a provider of its own with `-c`
overrides placed right after the program name, where they are global options that every
subcommand (`exec`, `resume`, the TUI) honours and that a later `-c` of the user's overrides:

    codex -c model_provider="vdm" -c model_providers.vdm.base_url="http://127.0.0.1:PORT/v1"
          -c model_providers.vdm.wire_api="responses" -c model_providers.vdm.env_key=…
          -c model_providers.vdm.env_http_headers={"x-vdm-session"="VDM_SESSION_SECRET"} …

A custom provider speaks HTTP only (no WebSocket attempt) and never uses a ChatGPT login. Its
key comes from the `env_key` variable, sent as `Authorization: Bearer` (a placeholder when the
user has no OPENAI_API_KEY: Codex refuses to start when the variable is missing). The session
secret travels the same way: the command line names only the variable that holds it, so it
never shows in `ps`.

Pure: builds argv and environment, starts nothing. vdm/cli/wrap.py calls it with its session
header's name and placeholder key (this module imports nothing of it: no import cycle).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path

from vdm.cli.proxy_env import bypass_proxy

#: The id of vdm's provider in Codex's `model_providers` table (shown as "provider: vdm").
PROVIDER_ID = "vdm"
#: The variable Codex reads its key from; vdm gives a placeholder when it is not set.
KEY_ENV = "OPENAI_API_KEY"
#: The variable that holds the session secret, sent by Codex as the SESSION_HEADER header.
SECRET_ENV = "VDM_SESSION_SECRET"
#: The model Codex 0.169 (the Makefile's pin) asks for when nothing chooses one: the model the
#: pre-flight checks then.
CODEX_DEFAULT_MODEL = "gpt-6.1-sol"


def is_codex(command: Sequence[str]) -> bool:
    """The child is the Codex CLI: its program's file name is `codex` (any directory)."""
    return bool(command) and Path(command[0]).name.lower() in ("codex", "codex.exe")


def _toml_string(value: str) -> str:
    """A TOML basic string (JSON's escapes are a subset of TOML's)."""
    return json.dumps(value)


def provider_overrides(url: str, header: str) -> list[str]:
    """The `-c key=value` arguments that point Codex at the session proxy at `url`, with the
    session secret sent as the `header` header."""
    prefix = f"model_providers.{PROVIDER_ID}"
    headers = "{" + f"{_toml_string(header)}={_toml_string(SECRET_ENV)}" + "}"
    pairs = [
        f"model_provider={_toml_string(PROVIDER_ID)}",
        f"{prefix}.name={_toml_string('vdm')}",
        f"{prefix}.base_url={_toml_string(url + '/v1')}",
        f"{prefix}.wire_api={_toml_string('responses')}",
        f"{prefix}.env_key={_toml_string(KEY_ENV)}",
        f"{prefix}.env_http_headers={headers}",
    ]
    return [arg for pair in pairs for arg in ("-c", pair)]


def child_argv(command: Sequence[str], url: str, header: str) -> list[str]:
    """`command` with vdm's provider overrides right after the program name."""
    return [command[0], *provider_overrides(url, header), *command[1:]]


def child_env(
    environ: Mapping[str, str], url: str, secret: str, placeholder: str
) -> dict[str, str]:
    """The user's environment plus the session secret, a key for Codex to send (the user's
    OPENAI_API_KEY, else `placeholder`) and OPENAI_BASE_URL, for the tools Codex runs and
    for Codex versions that read it (0.169 does not: the `-c` overrides carry the URL)."""
    env = dict(environ)
    env["OPENAI_BASE_URL"] = url + "/v1"
    bypass_proxy(env)
    if not env.get(KEY_ENV):
        env[KEY_ENV] = placeholder
    env[SECRET_ENV] = secret
    return env


def command_model(command: Sequence[str]) -> str | None:
    """The model Codex will ask for by its command line: the last `-m X`, `--model X` or
    `--model=X` (which win over configuration), else the last `-c model=X`."""
    flag: str | None = None
    config: str | None = None
    args = list(command[1:])
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            break
        following = args[index + 1] if index + 1 < len(args) else None
        if arg in ("-m", "--model") and following is not None:
            flag = following
            index += 2
            continue
        if arg.startswith("--model="):
            flag = arg.partition("=")[2]
        elif arg in ("-c", "--config") and following is not None:
            config = _config_model(following) or config
            index += 2
            continue
        elif arg.startswith("--config="):
            config = _config_model(arg.partition("=")[2]) or config
        index += 1
    return flag or config


def _config_model(override: str) -> str | None:
    """X from a `model=X` override (parsed as TOML, else taken raw, as Codex does)."""
    key, sep, raw = override.partition("=")
    if not sep or key.strip() != "model":
        return None
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return value if isinstance(value, str) and value else None


def _config_file_model(environ: Mapping[str, str]) -> str | None:
    """The top-level `model` of `$CODEX_HOME/config.toml` (default `~/.codex`)."""
    home = environ.get("CODEX_HOME") or (
        os.path.join(environ["HOME"], ".codex") if environ.get("HOME") else ""
    )
    if not home:
        return None
    try:
        with open(os.path.join(home, "config.toml"), "rb") as file:
            model = tomllib.load(file).get("model")
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return model if isinstance(model, str) and model.strip() else None


def wanted_models(command: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """The model the Codex child will send, for the pre-flight: its command line's, else its
    config file's, else Codex's default."""
    return [command_model(command) or _config_file_model(environ) or CODEX_DEFAULT_MODEL]
