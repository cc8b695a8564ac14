"""`vdm config setup`: ask for providers, keys, aliases and the default provider, then write
them into `vandamme-config.toml` and/or `.env` without losing anything already there.

Nothing is written until every question is answered and the plan is confirmed: Ctrl-C at any
prompt leaves every file as it was. Files are replaced atomically (a temporary file, then
`os.replace`), and a file that holds a key gets mode 0600. Keys are read without echo and only
ever shown masked.

This module is the terminal side only: what goes into which file, and writing it, is planned
in vdm/config/setup_plan.py.
"""

from __future__ import annotations

import getpass
import os
import signal
import textwrap
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import typer

from vdm.cli.common import EXIT_INTERRUPTED, short_paths
from vdm.config.secrets import mask, safe_url
from vdm.config.settings import (
    API_FORMATS,
    NOT_PROVIDERS,
    PASSTHRU,
    ConfigError,
    Settings,
    provider_key,
)
from vdm.config.setup_plan import (
    Change,
    Destination,
    FilePlan,
    Preset,
    current_values,
    describe,
    destinations,
    plan,
    presets,
    shadowed,
    unignored_dotenv,
    write,
)
from vdm.config.sources import CONFIG_NAME, TOP_TABLES, var_name
from vdm.config.writer import WriterError, variable

CUSTOM = "custom"
#: How each destination is offered; `{user}` is the user file's path.
PLACES = {
    "user": "{user}: for every project",
    "project": f"./{CONFIG_NAME}, keys in ./.env: this project (keep .env out of git)",
    "dotenv": "./.env only: this project, as variables",
}

#: The dialects a provider can speak, as the format question lists them.
_FORMATS = ", ".join(API_FORMATS[:-1]) + " or " + API_FORMATS[-1]


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


def _ok(answer: str) -> str | None:
    return None


def _needed(answer: str) -> str | None:
    return None if answer.strip() else "an answer is needed"


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

    def destination(self) -> Destination:
        choices = destinations(self.env, self.cwd)
        self.console.say("Where should vdm keep this configuration?")
        for number, choice in enumerate(choices, 1):
            user = _short(choice.keys, self.env, self.cwd)
            self.console.say(f"  {number}. {PLACES[choice.scope].format(user=user)}")
        answer = self.ask(
            "Choice", "1", lambda a: None if a in _numbers(choices) else _pick(len(choices))
        )
        destination = choices[int(answer) - 1]
        self.current.update(current_values(destination))
        return destination

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
        if fmt in ("bedrock", "vertex"):
            # A cloud: its region or project makes the URL, and its own credentials may
            # stand in for a key (docs/backends/bedrock.md, vertex.md).
            changes += self._bedrock(name) if fmt == "bedrock" else self._vertex(name)
            return changes + self._aliases(name)
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

    def _setting(self, name: str, key: str, prompt: str, default: str = "") -> list[Change]:
        """One required setting of provider `name` (`key` a TOML key), asked with its current
        value (or `default`) offered."""
        current = self.current.get(variable((name, key)), "")
        answer = self.ask(prompt, current or default, _needed).strip()
        return [] if answer == current else [Change((name, key), answer)]

    def _auth(self, name: str, own: str, what: str) -> list[Change]:
        """`own` (the cloud's credentials: `sigv4`, `google`) or a key, as the user picks."""
        current = self.current.get(variable((name, "auth")), "").lower()
        choice = self.ask(
            f"Credentials: {own} ({what}) or key",
            current or own,
            lambda a: None if a.lower() in (own, "key") else f"answer {own} or key",
        ).lower()
        if choice == own:
            return [] if current == own else [Change((name, "auth"), own)]
        changes = [Change((name, "auth"), "bearer")] if current == own else []
        return changes + self._key(name, required=True)

    def _bedrock(self, name: str) -> list[Change]:
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or ""
        changes = self._setting(name, "region", "AWS region, e.g. us-east-1", region)
        changes += self._auth(
            name, "sigv4", "your AWS keys, profile or SSO; key: a Bedrock API key"
        )
        return changes

    def _vertex(self, name: str) -> list[Change]:
        project = os.environ.get("GOOGLE_CLOUD_PROJECT", "")
        changes = self._setting(name, "project", "Google Cloud project", project)
        changes += self._setting(name, "location", "Location (global or a region)", "global")
        what = "Application Default Credentials; key: an access token"
        return changes + self._auth(name, "google", what)

    def _custom(self, name: str) -> list[Change]:
        self.console.say(f"Custom provider {name!r}")
        fmt, changes = self._format(name, "openai", always=True)
        changes += self._base_url(name, fmt)
        return changes + self._key(name, required=True) + self._aliases(name)

    def _format(self, name: str, usual: str, *, always: bool = False) -> tuple[str, list[Change]]:
        current = self.current.get(variable((name, "api-format")), "").lower()
        fmt = self.ask(
            f"API format ({_FORMATS})",
            current or usual,
            lambda a: None if a.lower() in API_FORMATS else f"answer {_FORMATS}",
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
        destination = self.destination()
        changes: list[Change] = []
        added: list[str] = []
        while True:
            name, provided = self.provider(set(added))
            added.append(name)
            changes += provided
            if not self.yes("Add another provider?", False):
                break
        changes += self.default_provider(added)
        return plan(destination, changes)


# -- writing --------------------------------------------------------------------------------------


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


def _short(path: Path | str, env: Mapping[str, str], cwd: Path) -> str:
    return short_paths(str(path), env, cwd)


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
    if unignored_dotenv(files, cwd):
        console.say("warning: ./.env holds keys and is not in ./.gitignore: add it there")
    console.say("")
    console.say("Next:")
    console.say("  vdm config validate      check the configuration")
    console.say("  vdm wrap -- claude       run Claude Code through vdm")
    return 0


def _shadowed(console: Console, files: list[FilePlan], env: Mapping[str, str], cwd: Path) -> None:
    """Warn when a value just written is hidden by a higher layer (the environment, .env)."""
    try:
        settings = Settings.load(env, cwd)
    except ConfigError as exc:
        console.say(f"warning: the configuration does not load: {exc}")
        return
    for change, source, path in shadowed(files, settings):
        console.say(
            f"warning: {change.var} is also set in {_short(source, env, cwd)}, "
            f"which wins over {_short(path, env, cwd)}"
        )
