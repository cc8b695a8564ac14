"""What `vdm config setup` writes, and where: the file side of the wizard.

The wizard (vdm/cli/setup_wizard.py) asks the questions and talks to the terminal; everything
else is here. A configuration goes to one of three places (`destinations`): the user TOML file
(keys included), the project TOML file with its keys in `./.env`, or `./.env` alone. Each answer
that changes something is a `Change`; `plan` routes each one to its file (a key to the key file,
the rest to the TOML file, or to `.env` when there is none) and computes every file's new text
with vdm/config/writer.py, so nothing is written until the whole plan is known and confirmed.
`write` then replaces one file atomically, after checking that it reads back as planned, with
mode 0600 when it holds a key.
"""

from __future__ import annotations

import os
import stat
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vdm.config.secrets import mask, safe_url
from vdm.config.settings import PASSTHRU, Settings
from vdm.config.sources import (
    CONFIG_NAME,
    TOP_TABLES,
    ConfigError,
    flatten_toml,
    packaged_toml,
    read_dotenv,
    user_config_path,
)
from vdm.config.writer import TomlPath, WriterError, dotted, set_dotenv, set_toml, variable

__all__ = [
    "SECRET_MODE",
    "Change",
    "Destination",
    "FilePlan",
    "Preset",
    "current_values",
    "describe",
    "destinations",
    "plan",
    "presets",
    "read_vars",
    "shadowed",
    "unignored_dotenv",
    "write",
]

#: Secrets in a file make it private (mode 0600).
SECRET_MODE = 0o600
#: Lines of a .gitignore that keep `./.env` out of git.
_IGNORES_DOTENV = frozenset({".env", "/.env", "*.env", ".env*"})


@dataclass(frozen=True, slots=True)
class Preset:
    """A provider section of the packaged defaults.toml, as the wizard offers it."""

    name: str
    base_url: str
    api_format: str
    key_required: bool
    #: Presets that can switch to their Anthropic-format endpoint.
    anthropic_url: str
    fallbacks: Mapping[str, str]


def presets() -> dict[str, Preset]:
    """The provider presets of defaults.toml, in its order."""
    found: dict[str, Preset] = {}
    for name, section in packaged_toml().items():
        if not isinstance(section, dict) or name in TOP_TABLES:
            continue
        found[name] = Preset(
            name=name,
            base_url=str(section.get("base-url", "")),
            api_format=str(section.get("api-format", "openai")),
            key_required=bool(section.get("key-required", True)),
            anthropic_url=str(section.get("anthropic-base-url", "")),
            fallbacks=dict(section.get("aliases", {})),
        )
    return found


@dataclass(frozen=True, slots=True)
class Destination:
    """Where the answers go: settings to `toml` (or to `keys`, a `.env`, when None), keys to
    `keys`. `scope` names the choice: the user file, a project, or a project's `.env` only."""

    scope: Literal["user", "project", "dotenv"]
    toml: Path | None
    keys: Path


def destinations(env: Mapping[str, str], cwd: Path) -> list[Destination]:
    """The places a configuration can go, in the order offered; the user file only when there
    is a home (or XDG_CONFIG_HOME) to hold it."""
    found: list[Destination] = []
    user = user_config_path(env)
    if user is not None:
        found.append(Destination("user", user, user))
    dotenv = cwd / ".env"
    found.append(Destination("project", cwd / CONFIG_NAME, dotenv))
    found.append(Destination("dotenv", None, dotenv))
    return found


@dataclass(frozen=True, slots=True)
class Change:
    """One setting to write, named by its TOML path; `secret` sends it to the key file."""

    path: TomlPath
    value: str
    secret: bool = False

    @property
    def var(self) -> str:
        """The same setting as a variable (`OPENAI_API_KEY`)."""
        return variable(self.path)


@dataclass(slots=True)
class FilePlan:
    """One file: its new text, and what changed in it."""

    path: Path
    is_toml: bool
    after: str = ""
    changes: list[Change] = field(default_factory=list)
    existed: bool = False


def read_vars(path: Path, *, is_toml: bool) -> dict[str, str]:
    """The variables a file sets (unreadable: none)."""
    if not is_toml:
        return read_dotenv(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return {k: v.value for k, v in flatten_toml(data, str(path)).values.items()}
    except (OSError, tomllib.TOMLDecodeError, ConfigError):
        return {}


def current_values(destination: Destination) -> dict[str, str]:
    """The variables already set in the files of `destination`: the answers' defaults, and
    what an answer must differ from to be a change."""
    current: dict[str, str] = {}
    for path in {destination.toml, destination.keys} - {None}:
        assert path is not None
        current.update(read_vars(path, is_toml=path.suffix == ".toml"))
    return current


def plan(destination: Destination, changes: list[Change]) -> list[FilePlan]:
    """The new text of each file to write; raises WriterError if an edit is not safe."""
    files: dict[Path, FilePlan] = {}
    for change in changes:
        if change.secret or destination.toml is None:
            path = destination.keys
        else:
            path = destination.toml
        if path not in files:
            existed = path.exists()
            before = path.read_text(encoding="utf-8") if existed else ""
            files[path] = FilePlan(path, path.suffix == ".toml", before, existed=existed)
        file = files[path]
        if file.is_toml:
            file.after = set_toml(file.after, change.path, change.value)
        else:
            file.after = set_dotenv(file.after, change.var, change.value)
        file.changes.append(change)
    return list(files.values())


def describe(change: Change, is_toml: bool) -> str:
    """One change as shown to the user, the key masked."""
    value = mask(change.value) if change.secret and change.value != PASSTHRU else change.value
    value = safe_url(value)  # credentials in a base URL
    if is_toml:
        shown = f'"{value}"' if not change.secret else value
        return f"{dotted(change.path)} = {shown}"
    return f"{change.var}={value}"


def write(file: FilePlan) -> int:
    """Replace `file.path` atomically with the new text, after checking that it reads back as
    planned; returns the mode it got (0600 when it holds a key)."""
    path = Path(os.path.realpath(file.path))  # a symlinked dotfile stays a symlink
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(file.after)
            out.flush()
            os.fsync(out.fileno())
        values = read_vars(temp, is_toml=file.is_toml)
        for change in file.changes:
            if values.get(change.var) != change.value:
                raise WriterError(f"{change.var} would not read back as written; edit by hand")
        if any(var.endswith("_API_KEY") and value.strip() for var, value in values.items()):
            mode = SECRET_MODE
        elif file.existed:
            mode = stat.S_IMODE(path.stat().st_mode)
        else:
            mode = 0o666 & ~_umask()
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return mode


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def shadowed(files: list[FilePlan], settings: Settings) -> list[tuple[Change, str, Path]]:
    """Changes just written that a higher layer (the environment, .env) hides: each with the
    source whose value wins and the file it was written to."""
    found: list[tuple[Change, str, Path]] = []
    for file in files:
        for change in file.changes:
            value = settings.values.get(change.var)
            if value is not None and value.source != str(file.path):
                found.append((change, value.source, file.path))
    return found


def unignored_dotenv(files: list[FilePlan], cwd: Path) -> bool:
    """Whether the plan writes `./.env` in a git checkout whose .gitignore does not name it
    (a .gitignore that cannot be read does not name it)."""
    if not any(f.path == cwd / ".env" for f in files) or not (cwd / ".git").exists():
        return False
    try:
        ignored = (cwd / ".gitignore").read_text(encoding="utf-8").splitlines()
    except OSError:
        return True
    return not _IGNORES_DOTENV & {line.strip() for line in ignored}
