"""`vdm config setup`: ask for providers, keys, aliases and the default provider, then write
them into `vandamme-config.toml` and/or `.env` without losing anything already there.

Nothing is written until every question is answered and the plan is confirmed: Ctrl-C at any
prompt leaves every file as it was. Files are replaced atomically (a temporary file, then
`os.replace`), and a file that holds a key gets mode 0600. Keys are read without echo and only
ever shown masked.
"""

from __future__ import annotations

import getpass
import os
import signal
import stat
import tempfile
import textwrap
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import typer

from vdm.cli.common import EXIT_INTERRUPTED
from vdm.cli.config_commands import short_paths
from vdm.config.secrets import mask, safe_url
from vdm.config.settings import (
    API_FORMATS,
    NOT_PROVIDERS,
    PASSTHRU,
    ConfigError,
    Settings,
    provider_key,
)
from vdm.config.sources import (
    CONFIG_NAME,
    TOP_TABLES,
    flatten_toml,
    read_dotenv,
    user_config_path,
    var_name,
)
from vdm.config.writer import TomlPath, WriterError, dotted, set_dotenv, set_toml, variable

CUSTOM = "custom"
#: Secrets in a file make it private (mode 0600).
SECRET_MODE = 0o600


class Console(Protocol):
    """The terminal the wizard talks to (a scripted one in tests)."""

    def say(self, text: str = "") -> None: ...

    def ask(self, prompt: str) -> str: ...

    def secret(self, prompt: str) -> str: ...


class Terminal:
    """The real terminal: input() for answers, getpass (no echo) for keys."""

    def say(self, text: str = "") -> None:
        typer.echo(text)

    def ask(self, prompt: str) -> str:
        return input(prompt)

    def secret(self, prompt: str) -> str:
        return getpass.getpass(prompt)


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    base_url: str
    api_format: str
    key_required: bool
    #: Presets that can switch to their Anthropic-format endpoint.
    anthropic_url: str
    fallbacks: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Target:
    """Where the answers go: settings to `toml` (or `.env` when None), keys to `keys`."""

    toml: Path | None
    keys: Path


@dataclass(frozen=True, slots=True)
class Change:
    path: TomlPath
    value: str
    secret: bool = False

    @property
    def var(self) -> str:
        return variable(self.path)


@dataclass(slots=True)
class FilePlan:
    """One file: its new text, and what changed in it."""

    path: Path
    is_toml: bool
    after: str = ""
    changes: list[Change] = field(default_factory=list)
    existed: bool = False


def presets() -> dict[str, Preset]:
    """The provider presets of defaults.toml, in its order."""
    from vdm.config.sources import packaged_toml

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


def _ok(answer: str) -> str | None:
    return None


def _pick(count: int) -> str:
    return f"answer a number from 1 to {count}"


def _numbers(choices: list[Any]) -> set[str]:
    return {str(n) for n in range(1, len(choices) + 1)}


def _check_url(answer: str) -> str | None:
    if not answer.startswith(("http://", "https://")) or len(answer) < 10:
        return "enter a URL starting with https:// (or http:// for a local server)"
    return None


def _check_alias(answer: str) -> str | None:
    if not answer:
        return None
    alias, sep, model = answer.partition("=")
    if not sep or not alias.strip() or not model.strip():
        return "write it as name=model, e.g. fast=gpt-4o-mini"
    if not var_name(alias).replace("_", "").isalnum():
        return "an alias name uses letters, digits, - or _"
    return None


# -- the questions --------------------------------------------------------------------------------


class Wizard:
    """The questions, then the plan. Answers are checked as they come; a wrong one is asked
    again with the reason."""

    def __init__(self, console: Console, env: Mapping[str, str], cwd: Path) -> None:
        self.console = console
        self.env = env
        self.cwd = cwd
        self.presets = presets()
        self.current: dict[str, str] = {}  # variables already in the target files
        try:
            self.settings: Settings | None = Settings.load(env, cwd)
        except ConfigError:
            self.settings = None

    def ask(self, prompt: str, default: str = "", check: Callable[[str], str | None] = _ok) -> str:
        """An answer; Enter gives `default`, which is shown with any URL credentials masked."""
        shown = f"{prompt} [{safe_url(default)}]: " if default else f"{prompt}: "
        while True:
            answer = self.console.ask(shown).strip() or default
            problem = check(answer)
            if problem is None:
                return answer
            self.console.say(f"  {problem}")

    def yes(self, prompt: str, default: bool) -> bool:
        hint = "Y/n" if default else "y/N"
        while True:
            answer = self.console.ask(f"{prompt} [{hint}]: ").strip().lower()
            if not answer:
                return default
            if answer in ("y", "yes", "n", "no"):
                return answer.startswith("y")
            self.console.say("  answer y or n")

    # -- where -----------------------------------------------------------------------------

    def target(self) -> Target:
        user = user_config_path(self.env)
        choices: list[tuple[str, Target]] = []
        if user is not None:
            choices.append(
                (
                    f"{_short(user, self.env, self.cwd)}: for every project",
                    Target(user, user),
                )
            )
        project = self.cwd / CONFIG_NAME
        dotenv = self.cwd / ".env"
        choices.append(
            (
                f"./{CONFIG_NAME}, keys in ./.env: this project (keep .env out of git)",
                Target(project, dotenv),
            )
        )
        choices.append(("./.env only: this project, as variables", Target(None, dotenv)))
        self.console.say("Where should vdm keep this configuration?")
        for number, (text, _) in enumerate(choices, 1):
            self.console.say(f"  {number}. {text}")
        answer = self.ask(
            "Choice", "1", lambda a: None if a in _numbers(choices) else _pick(len(choices))
        )
        target = choices[int(answer) - 1][1]
        for path in {target.toml, target.keys} - {None}:
            assert path is not None
            self.current.update(_read_vars(path, is_toml=path.suffix == ".toml"))
        return target

    # -- providers --------------------------------------------------------------------------

    def provider(self, taken: set[str]) -> tuple[str, list[Change]]:
        names = list(self.presets)
        self.console.say("")
        if not taken:  # the list once; later rounds refer to it
            self.console.say("Providers:")
            for number, preset in enumerate(self.presets.values(), 1):
                where = preset.base_url or "your own endpoint"
                fmt = "" if preset.api_format == "openai" else f" ({preset.api_format} format)"
                self.console.say(f"  {number:>2}. {preset.name:<11} {where}{fmt}")
            self.console.say(
                f"  {len(names) + 1:>2}. {CUSTOM:<11} any OpenAI- or Anthropic-compatible API"
            )
        default = names[0] if not taken else ""
        answer = self.ask("Provider (number or name)", default, self._check_provider(taken))
        name = self._provider_name(answer)
        if name in self.presets:
            return name, self._preset(self.presets[name])
        if name == CUSTOM:
            name = provider_key(
                self.ask("Name for this provider (e.g. mycorp)", check=self._check_name(taken))
            )
        return name, self._custom(name)

    def _provider_name(self, answer: str) -> str:
        """`3` or `Gemini` → `gemini`."""
        if answer.isdigit():
            return [*self.presets, CUSTOM][int(answer) - 1]
        return provider_key(answer)

    def _check_provider(self, taken: set[str]) -> Callable[[str], str | None]:
        count = len(self.presets) + 1

        def check(answer: str) -> str | None:
            if not answer:
                return "answer a number or a name from the list above"
            if answer.isdigit() and not 1 <= int(answer) <= count:
                return _pick(count)
            name = self._provider_name(answer)
            return None if name == CUSTOM else self._check_name(taken)(name)

        return check

    def _check_name(self, taken: set[str]) -> Callable[[str], str | None]:
        def check(answer: str) -> str | None:
            prefix = var_name(answer)
            if not prefix or not prefix[0].isalpha() or not prefix.replace("_", "").isalnum():
                return "use letters, digits, - or _, starting with a letter"
            reserved = {var_name(t) for t in TOP_TABLES} | NOT_PROVIDERS | {var_name(CUSTOM)}
            if prefix in reserved or prefix.startswith(("VDM_", "CUSTOM_HEADER")):
                return f"{answer!r} is reserved; pick another name"
            if provider_key(answer) in taken:
                return f"{answer!r} is already set up in this session"
            return None

        return check

    def _preset(self, preset: Preset) -> list[Change]:
        name = preset.name
        changes: list[Change] = []
        fmt = preset.api_format
        if preset.anthropic_url:
            fmt, changes = self._format(name, preset.api_format)
        if not preset.base_url:
            changes += self._base_url(name, fmt)
        elif not preset.key_required:  # a local server: its URL is what configures it
            changes += self._base_url(name, fmt, default=preset.base_url)
        changes += self._key(name, required=preset.key_required)
        if preset.fallbacks:
            families = ", ".join(f"{k} → {v}" for k, v in preset.fallbacks.items())
            text = f"Claude Code's model families already go to: {families}"
            for line in textwrap.wrap(text, 78, initial_indent="  ", subsequent_indent="    "):
                self.console.say(line)
        return changes + self._aliases(name)

    def _custom(self, name: str) -> list[Change]:
        self.console.say(f"Custom provider {name!r}")
        fmt, changes = self._format(name, "openai", always=True)
        changes += self._base_url(name, fmt)
        return changes + self._key(name, required=True) + self._aliases(name)

    def _format(self, name: str, usual: str, *, always: bool = False) -> tuple[str, list[Change]]:
        current = self.current.get(variable((name, "api-format")), "").lower()
        fmt = self.ask(
            "API format (openai or anthropic)",
            current or usual,
            lambda a: None if a.lower() in API_FORMATS else "answer openai or anthropic",
        ).lower()
        if fmt == current or (fmt == usual and not current and not always):
            return fmt, []
        return fmt, [Change((name, "api-format"), fmt)]

    def _base_url(self, name: str, fmt: str, *, default: str = "") -> list[Change]:
        example = "https://host/v1" if fmt == "openai" else "https://host (without /v1)"
        if name == "azure":
            example = "https://RESOURCE.openai.azure.com"
        current = self.current.get(variable((name, "base-url")), "")
        url = self.ask(f"Base URL, e.g. {example}", current or default, _check_url).rstrip("/")
        return [] if url == current else [Change((name, "base-url"), url)]

    def _key(self, name: str, *, required: bool) -> list[Change]:
        var = variable((name, "api-key"))
        current = self.current.get(var, "")
        hint = f"Enter keeps {mask(current)}" if current else ""
        if not hint and not required:
            hint = "Enter: none needed"
        prompt = f"API key for {name} (hidden; {PASSTHRU} uses the client's key"
        prompt += f"; {hint}): " if hint else "): "
        while True:
            key = self.console.secret(prompt).strip()
            if key or current or not required:
                break
            self.console.say(f"  {var} is needed (or {PASSTHRU} to use the client's own key)")
        return [Change((name, "api-key"), key, secret=True)] if key and key != current else []

    def _aliases(self, name: str) -> list[Change]:
        changes: list[Change] = []
        while True:
            answer = self.ask(
                f"Alias for {name}, as name=model (Enter when done)", check=_check_alias
            )
            if not answer:
                return changes
            alias, _, model = answer.partition("=")
            changes.append(Change((name, "aliases", alias.strip().lower()), model.strip()))

    def default_provider(self, added: list[str]) -> list[Change]:
        known = list(self.settings.providers) if self.settings is not None else []
        candidates = added + [p for p in known if p not in added]
        if len(candidates) < 2:
            return []
        var = variable(("default-provider",))
        current = provider_key(self.current.get(var, ""))
        suggested = current if current in candidates else candidates[0]
        answer = self.ask(
            f"Default provider, for model names without a prefix ({', '.join(candidates)})",
            suggested,
            lambda a: (
                None if provider_key(a) in candidates else f"pick one of {', '.join(candidates)}"
            ),
        )
        chosen = provider_key(answer)
        return [] if chosen == current else [Change(("default-provider",), chosen)]

    # -- the plan ---------------------------------------------------------------------------

    def run(self) -> list[FilePlan]:
        """Every question, then the plan; nothing is written here."""
        target = self.target()
        changes: list[Change] = []
        added: list[str] = []
        while True:
            name, provided = self.provider(set(added))
            added.append(name)
            changes += provided
            if not self.yes("Add another provider?", False):
                break
        changes += self.default_provider(added)
        return plan(target, changes)


# -- files ----------------------------------------------------------------------------------------


def plan(target: Target, changes: list[Change]) -> list[FilePlan]:
    """The new text of each file to write; raises WriterError if an edit is not safe."""
    files: dict[Path, FilePlan] = {}
    for change in changes:
        path = target.keys if change.secret or target.toml is None else target.toml
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
        values = _read_vars(temp, is_toml=file.is_toml)
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


@contextmanager
def deferred_interrupt() -> Iterator[list[int]]:
    """Ctrl-C while files are being replaced is held until they all are; the list it yields
    says whether it came."""
    caught: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        caught.append(signum)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield caught
    finally:
        signal.signal(signal.SIGINT, previous)


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def _read_vars(path: Path, *, is_toml: bool) -> dict[str, str]:
    """The variables a file sets (unreadable: none)."""
    if not is_toml:
        return read_dotenv(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return {k: v.value for k, v in flatten_toml(data, str(path)).values.items()}
    except (OSError, tomllib.TOMLDecodeError, ConfigError):
        return {}


def _short(path: Path | str, env: Mapping[str, str], cwd: Path) -> str:
    return short_paths(str(path), env, cwd)


def describe(change: Change, is_toml: bool) -> str:
    """One change as shown to the user, the key masked."""
    value = mask(change.value) if change.secret and change.value != PASSTHRU else change.value
    value = safe_url(value)  # credentials in a base URL
    if is_toml:
        shown = f'"{value}"' if not change.secret else value
        return f"{dotted(change.path)} = {shown}"
    return f"{change.var}={value}"


def setup(console: Console, env: Mapping[str, str], cwd: Path) -> int:
    """The whole interaction; returns the exit code. KeyboardInterrupt propagates (130)."""
    console.say("vdm config setup: answer a few questions; nothing is written until you confirm.")
    console.say("")
    wizard = Wizard(console, env, cwd)
    try:
        files = wizard.run()
    except WriterError as exc:
        console.say(f"vdm config setup: cannot edit the file safely: {exc}")
        return 1
    if not any(f.changes for f in files):
        console.say("Nothing to change.")
        return 0
    console.say("")
    for file in files:
        console.say(
            f"{'Changes to' if file.existed else 'New file'} {_short(file.path, env, cwd)}:"
        )
        for change in file.changes:
            console.say(f"  {describe(change, file.is_toml)}")
    if not wizard.yes("Write these changes?", True):
        console.say("Nothing was written.")
        return 0
    written: list[tuple[FilePlan, int]] = []
    try:
        with deferred_interrupt() as interrupted:
            for file in files:
                written.append((file, write(file)))
    except (OSError, WriterError) as exc:
        console.say(f"vdm config setup: cannot write: {exc}")
        return 1
    finally:
        for file, mode in written:
            console.say(f"Wrote {_short(file.path, env, cwd)} (mode {mode:04o})")
    if interrupted:
        return EXIT_INTERRUPTED
    _shadowed(console, files, env, cwd)
    if any(f.path == cwd / ".env" for f in files) and _unignored_in_git(cwd):
        console.say("warning: ./.env holds keys and is not in ./.gitignore: add it there")
    console.say("")
    console.say("Next:")
    console.say("  vdm config validate      check the configuration")
    console.say("  vdm wrap -- claude       run Claude Code through vdm")
    return 0


def _unignored_in_git(cwd: Path) -> bool:
    """Whether `cwd` is a git checkout whose .gitignore does not name `.env`."""
    if not (cwd / ".git").exists():
        return False
    try:
        ignored = (cwd / ".gitignore").read_text(encoding="utf-8").splitlines()
    except OSError:
        return True
    return not {".env", "/.env", "*.env", ".env*"} & {line.strip() for line in ignored}


def _shadowed(console: Console, files: list[FilePlan], env: Mapping[str, str], cwd: Path) -> None:
    """Warn when a value just written is hidden by a higher layer (the environment, .env)."""
    try:
        settings = Settings.load(env, cwd)
    except ConfigError as exc:
        console.say(f"warning: the configuration does not load: {exc}")
        return
    for file in files:
        for change in file.changes:
            found = settings.values.get(change.var)
            if found is not None and found.source != str(file.path):
                console.say(
                    f"warning: {change.var} is also set in {_short(found.source, env, cwd)}, "
                    f"which wins over {_short(file.path, env, cwd)}"
                )
