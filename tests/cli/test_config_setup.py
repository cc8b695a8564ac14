"""`vdm config setup` through a real terminal (pexpect): the files it writes, what survives in
them, the key never shown, mode 0600, and Ctrl-C leaving every file untouched."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.harness import clean_env
from vdm.cli.setup_wizard import Console, setup
from vdm.config.secrets import mask
from vdm.config.sources import read_dotenv

KEY = "sk-test-abcdefghijklmnop1234"
CORP_KEY = "mc-secret-9876543210zz"
TIMEOUT = 20


class Session:
    """One `vdm config setup` in a pseudo-terminal, its output kept."""

    def __init__(self, home: Path, cwd: Path, **env: str) -> None:
        self.log = io.StringIO()
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "vdm.cli", "config", "setup"],
            env=clean_env(HOME=str(home), PYTHONUTF8="1", TERM="dumb", **env),
            cwd=str(cwd),
            encoding="utf-8",
            timeout=TIMEOUT,
            dimensions=(50, 80),
        )
        self.child.logfile_read = self.log

    def answer(self, prompt: str, text: str) -> None:
        self.child.expect_exact(prompt)
        self.child.sendline(text)

    def secret(self, prompt: str, text: str) -> None:
        self.child.expect_exact(prompt)
        assert self.child.waitnoecho(TIMEOUT), "the key prompt must turn echo off"
        self.child.sendline(text)

    def finish(self) -> int:
        self.child.expect(pexpect.EOF)
        self.child.close()
        assert self.child.exitstatus is not None, self.output
        return self.child.exitstatus

    @property
    def output(self) -> str:
        return self.log.getvalue()


@pytest.fixture
def dirs(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    home, cwd = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    cwd.mkdir()
    yield home, cwd


USER_TOML = """\
# my settings, by hand
log-level = "DEBUG"

[openai]
api-key = "sk-old-key-000000000"  # personal account
timeout = 60

[groq]
api-key = "gsk_keepme"
[groq.aliases]
code = "openai/gpt-oss-120b"
"""


def test_setup_into_the_user_file_keeps_what_was_there(dirs: tuple[Path, Path]) -> None:
    home, cwd = dirs
    user = home / ".config" / "vandamme-proxy" / "vandamme-config.toml"
    user.parent.mkdir(parents=True)
    user.write_text(USER_TOML)
    user.chmod(0o644)
    s = Session(home, cwd)
    s.answer("Choice [1]: ", "1")
    s.answer("Provider (number or name) [openai]: ", "")
    s.secret(f"Enter keeps {mask('sk-old-key-000000000')}): ", KEY)
    s.answer("Alias for openai, as name=model (Enter when done): ", "fast=gpt-4o-mini")
    s.answer("Alias for openai, as name=model (Enter when done): ", "")
    s.answer("Add another provider? [y/N]: ", "n")
    s.answer("Default provider, for model names without a prefix (openai, groq) [openai]: ", "")
    s.answer("Write these changes? [Y/n]: ", "y")
    assert s.finish() == 0, s.output

    data = tomllib.loads(user.read_text())
    assert data["openai"] == {"api-key": KEY, "timeout": 60, "aliases": {"fast": "gpt-4o-mini"}}
    assert data["groq"] == {"api-key": "gsk_keepme", "aliases": {"code": "openai/gpt-oss-120b"}}
    assert data["log-level"] == "DEBUG"
    text = user.read_text()
    assert "# my settings, by hand" in text and "# personal account" in text
    assert stat.S_IMODE(user.stat().st_mode) == 0o600
    assert KEY not in s.output
    assert f"openai.api-key = {mask(KEY)}" in s.output
    assert "Wrote ~/.config/vandamme-proxy/vandamme-config.toml (mode 0600)" in s.output
    assert "vdm config validate" in s.output and "vdm wrap -- claude" in s.output
    assert not list(user.parent.glob(".*.tmp")), "no temporary file left behind"


def test_setup_for_a_project_puts_keys_in_dotenv_and_the_rest_in_toml(
    dirs: tuple[Path, Path],
) -> None:
    home, cwd = dirs
    dotenv = cwd / ".env"
    dotenv.write_text(
        "# app settings\nDATABASE_URL=postgres://db\nMYCORP_API_KEY=mc-old-key-0000000\n"
    )
    s = Session(home, cwd)
    s.answer("Choice [1]: ", "2")
    s.answer("Provider (number or name) [openai]: ", "custom")
    s.answer("Name for this provider (e.g. mycorp): ", "proxy")  # PROXY_API_KEY: reserved
    s.answer("Name for this provider (e.g. mycorp): ", "MyCorp")
    s.answer(
        "API format (openai, responses, gemini, anthropic, bedrock or vertex) [openai]: ",
        "anthropic",
    )
    s.answer("Base URL, e.g. https://host (without /v1): ", "llm.mycorp.example")  # no scheme
    s.answer("Base URL, e.g. https://host (without /v1): ", "https://llm.mycorp.example/")
    s.secret(f"Enter keeps {mask('mc-old-key-0000000')}): ", CORP_KEY)
    s.answer("(Enter when done): ", "fast=claude-haiku")
    s.answer("(Enter when done): ", "")
    s.answer("Add another provider? [y/N]: ", "")
    s.answer("Write these changes? [Y/n]: ", "")
    assert s.finish() == 0, s.output

    assert "'proxy' is reserved" in s.output
    assert "enter a URL starting with https://" in s.output
    project = tomllib.loads((cwd / "vandamme-config.toml").read_text())
    assert project == {
        "mycorp": {
            "api-format": "anthropic",
            "base-url": "https://llm.mycorp.example",
            "aliases": {"fast": "claude-haiku"},
        }
    }
    assert read_dotenv(dotenv) == {"DATABASE_URL": "postgres://db", "MYCORP_API_KEY": CORP_KEY}
    assert dotenv.read_text().startswith("# app settings\nDATABASE_URL=postgres://db\n")
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o600
    assert CORP_KEY not in s.output
    # what it wrote is a configuration vdm accepts
    check = subprocess.run(
        [sys.executable, "-m", "vdm.cli", "config", "validate"],
        env=clean_env(HOME=str(home)),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.startswith("ok: 1 provider (mycorp)")


def test_setup_warns_when_the_environment_hides_what_it_wrote(dirs: tuple[Path, Path]) -> None:
    home, cwd = dirs
    s = Session(home, cwd, OPENAI_API_KEY="sk-from-the-shell-123")
    s.answer("Choice [1]: ", "3")
    s.answer("Provider (number or name) [openai]: ", "1")
    s.secret("uses the client's key): ", KEY)
    s.answer("(Enter when done): ", "")
    s.answer("Add another provider? [y/N]: ", "")
    s.answer("Write these changes? [Y/n]: ", "")
    assert s.finish() == 0, s.output
    assert read_dotenv(cwd / ".env") == {"OPENAI_API_KEY": KEY}
    flat = " ".join(s.output.split())
    assert "warning: OPENAI_API_KEY is also set in env, which wins over ./.env" in flat


@pytest.mark.parametrize("at", ["key", "confirm"])
def test_ctrl_c_exits_130_and_changes_no_file(dirs: tuple[Path, Path], at: str) -> None:
    home, cwd = dirs
    dotenv = cwd / ".env"
    dotenv.write_text("OPENAI_API_KEY=sk-untouched\n")
    dotenv.chmod(0o640)
    s = Session(home, cwd)
    s.answer("Choice [1]: ", "3")
    s.answer("Provider (number or name) [openai]: ", "openai")
    if at == "key":
        s.child.expect_exact("Enter keeps")
        assert s.child.waitnoecho(TIMEOUT)
    else:
        s.secret("Enter keeps", KEY)
        s.answer("(Enter when done): ", "")
        s.answer("Add another provider? [y/N]: ", "")
        s.child.expect_exact("Write these changes? [Y/n]: ")
    s.child.sendintr()
    assert s.finish() == 130, s.output
    assert "interrupted; no file was changed" in s.output
    assert dotenv.read_text() == "OPENAI_API_KEY=sk-untouched\n"
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o640
    assert sorted(p.name for p in cwd.iterdir()) == [".env"]
    assert KEY not in s.output


# -- the same questions, scripted: answers that are checked ---------------------------------------


class Script(Console):
    """Answers from a list; what the wizard said, kept."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.said: list[str] = []

    def say(self, text: str = "") -> None:
        self.said.append(text)

    def ask(self, prompt: str) -> str:
        self.said.append(prompt)
        return self.answers.pop(0)

    def secret(self, prompt: str) -> str:
        self.said.append(prompt)
        return self.answers.pop(0)


def test_a_dotenv_with_keys_in_a_git_checkout_must_be_ignored(dirs: tuple[Path, Path]) -> None:
    home, cwd = dirs
    (cwd / ".git").mkdir()
    script = Script("3", "groq", "gsk_1234567890", "", "n", "y")
    assert setup(script, {"HOME": str(home)}, cwd) == 0
    assert "warning: ./.env holds keys and is not in ./.gitignore: add it there" in script.said
    (cwd / ".gitignore").write_text("node_modules\n.env\n")
    script = Script("3", "groq", "gsk_0987654321", "", "n", "y")
    assert setup(script, {"HOME": str(home)}, cwd) == 0
    assert not any(".gitignore" in line for line in script.said)


def test_keeping_every_current_value_writes_nothing(dirs: tuple[Path, Path]) -> None:
    home, cwd = dirs
    (cwd / ".env").write_text("OPENAI_API_KEY=sk-1\n")
    before = (cwd / ".env").stat()
    script = Script("3", "openai", "", "", "n")
    assert setup(script, {"HOME": str(home)}, cwd) == 0
    assert "Nothing to change." in script.said
    assert (cwd / ".env").stat().st_mtime_ns == before.st_mtime_ns


def test_wrong_answers_are_asked_again_with_the_reason(dirs: tuple[Path, Path]) -> None:
    home, cwd = dirs
    script = Script(
        "7",  # no such place
        "3",
        "99",  # no such provider
        "azure",
        "not a url",
        "https://res.openai.azure.com",
        "",  # a key is needed
        "az-key-1234567890",
        "fast",  # not name=model
        "fast=my-deployment",
        "",
        "y",
        "azure",  # already set up in this session
        "ollama",
        "",  # the OpenAI format
        "",  # the local default URL
        "",  # no key needed
        "",
        "n",
        "maybe",  # default provider: not a candidate
        "ollama",
        "no",  # do not write
    )
    assert setup(script, {"HOME": str(home)}, cwd) == 0
    said = "\n".join(script.said)
    for reason in (
        "answer a number from 1 to 3",
        "answer a number from 1 to 18",
        "enter a URL starting with https://",
        "AZURE_API_KEY is needed",
        "write it as name=model",
        "'azure' is already set up in this session",
        "pick one of azure, ollama",
    ):
        assert reason in said
    assert "Nothing was written." in said
    assert not (cwd / ".env").exists()


def test_a_file_that_cannot_be_edited_safely_is_left_alone(dirs: tuple[Path, Path]) -> None:
    home, cwd = dirs
    user = home / ".config" / "vandamme-proxy" / "vandamme-config.toml"
    user.parent.mkdir(parents=True)
    user.write_text("openai = { api-key = 'sk-inline' }\n")
    script = Script("1", "openai", "sk-new-key-123456", "", "n")
    assert setup(script, {"HOME": str(home)}, cwd) == 1
    assert any("edit it by hand" in line for line in script.said)
    assert user.read_text() == "openai = { api-key = 'sk-inline' }\n"


def test_a_symlinked_file_stays_a_symlink(dirs: tuple[Path, Path]) -> None:
    home, cwd = dirs
    real = home / "dotfiles" / "vdm.env"
    real.parent.mkdir()
    real.write_text("A=1\n")
    os.symlink(real, cwd / ".env")
    script = Script("3", "groq", "gsk_1234567890", "", "n", "y")
    assert setup(script, {"HOME": str(home)}, cwd) == 0
    assert (cwd / ".env").is_symlink()
    assert read_dotenv(real) == {"A": "1", "GROQ_API_KEY": "gsk_1234567890"}
    assert stat.S_IMODE(real.stat().st_mode) == 0o600


def test_credentials_in_a_current_base_url_are_masked_and_kept(dirs: tuple[Path, Path]) -> None:
    home, cwd = dirs
    url = "https://bob:s3cretTOKENvalue99@llm.corp.example/v1"
    (cwd / "vandamme-config.toml").write_text(f'[mycorp]\nbase-url = "{url}"\n')
    script = Script("2", "custom", "mycorp", "", "", "k-1234567890", "", "n", "")
    assert setup(script, {"HOME": str(home)}, cwd) == 0
    said = "\n".join(script.said)
    assert "s3cretTOKENvalue99" not in said
    assert "[https://bob…ue99@llm.corp.example/v1]" in said
    assert tomllib.loads((cwd / "vandamme-config.toml").read_text())["mycorp"]["base-url"] == url


def test_bedrock_and_vertex_ask_for_their_region_project_and_credentials(
    dirs: tuple[Path, Path],
) -> None:
    """A cloud's region or project makes its URL, and its own credentials stand in for a key:
    no base URL or key is asked unless the user picks a key."""
    home, cwd = dirs
    s = Session(home, cwd, AWS_REGION="eu-west-3")
    s.answer("Choice [1]: ", "1")
    s.answer("Provider (number or name) [openai]: ", "bedrock")
    s.answer("AWS region, e.g. us-east-1 [eu-west-3]: ", "")
    s.answer("or key [sigv4]: ", "")
    s.answer("(Enter when done): ", "")
    s.answer("Add another provider? [y/N]: ", "y")
    s.answer("Provider (number or name): ", "vertex")
    s.answer("Google Cloud project: ", "")  # needed: asked again
    s.answer("Google Cloud project: ", "my-proj")
    s.answer("Location (global or a region) [global]: ", "")
    s.answer("or key [google]: ", "key")
    s.secret("): ", "ya29.access-token")
    s.answer("(Enter when done): ", "")
    s.answer("Add another provider? [y/N]: ", "")
    s.answer("[bedrock]: ", "")
    s.answer("Write these changes? [Y/n]: ", "y")
    assert s.finish() == 0, s.output
    assert "an answer is needed" in s.output
    data = tomllib.loads((home / ".config" / "vandamme-proxy" / "vandamme-config.toml").read_text())
    assert data["bedrock"] == {"region": "eu-west-3", "auth": "sigv4"}
    assert data["vertex"]["project"] == "my-proj" and data["vertex"]["location"] == "global"
    assert "Base URL" not in s.output
