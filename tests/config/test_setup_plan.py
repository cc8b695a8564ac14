"""The file side of `vdm config setup`: where each answer lands, what a file becomes, how a
change is shown, and writing a file atomically with the right mode."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest

from vdm.config.secrets import mask
from vdm.config.settings import Settings
from vdm.config.setup_plan import (
    SECRET_MODE,
    Change,
    Destination,
    FilePlan,
    current_values,
    describe,
    destinations,
    plan,
    presets,
    shadowed,
    unignored_dotenv,
    write,
)
from vdm.config.sources import read_dotenv
from vdm.config.writer import WriterError

KEY = Change(("openai", "api-key"), "sk-test-abcdefghijklmnop1234", secret=True)
ALIAS = Change(("openai", "aliases", "fast"), "gpt-4o-mini")
DEFAULT = Change(("default-provider",), "openai")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    (tmp_path / "project").mkdir()
    return tmp_path / "project"


def _by_scope(home: Path, cwd: Path) -> dict[str, Destination]:
    return {d.scope: d for d in destinations({"HOME": str(home)}, cwd)}


def test_the_three_destinations_in_order(home: Path, cwd: Path) -> None:
    user = home / ".config" / "vandamme-proxy" / "vandamme-config.toml"
    assert destinations({"HOME": str(home)}, cwd) == [
        Destination("user", user, user),
        Destination("project", cwd / "vandamme-config.toml", cwd / ".env"),
        Destination("dotenv", None, cwd / ".env"),
    ]
    xdg = destinations({"XDG_CONFIG_HOME": str(home / "xdg")}, cwd)[0]
    assert xdg.toml == home / "xdg" / "vandamme-proxy" / "vandamme-config.toml"
    # no home to hold a user file: only the project's places are offered
    assert [d.scope for d in destinations({}, cwd)] == ["project", "dotenv"]


def test_the_user_file_takes_keys_and_settings_alike(home: Path, cwd: Path) -> None:
    user = _by_scope(home, cwd)["user"]
    [file] = plan(user, [KEY, ALIAS, DEFAULT])
    assert (file.path, file.is_toml, file.existed) == (user.toml, True, False)
    assert file.changes == [KEY, ALIAS, DEFAULT]
    assert tomllib.loads(file.after) == {
        "default-provider": "openai",
        "openai": {"api-key": KEY.value, "aliases": {"fast": "gpt-4o-mini"}},
    }
    assert not home.joinpath(".config").exists(), "planning writes nothing"


def test_a_project_keeps_its_keys_in_dotenv(home: Path, cwd: Path) -> None:
    (cwd / ".env").write_text("# app\nDATABASE_URL=postgres://db\n")
    toml, dotenv = plan(_by_scope(home, cwd)["project"], [ALIAS, KEY])
    assert (toml.path, toml.changes, toml.existed) == (cwd / "vandamme-config.toml", [ALIAS], False)
    assert tomllib.loads(toml.after) == {"openai": {"aliases": {"fast": "gpt-4o-mini"}}}
    assert (dotenv.path, dotenv.is_toml, dotenv.changes) == (cwd / ".env", False, [KEY])
    assert dotenv.existed
    assert dotenv.after == f"# app\nDATABASE_URL=postgres://db\nOPENAI_API_KEY={KEY.value}\n"


def test_dotenv_only_takes_everything_as_variables(home: Path, cwd: Path) -> None:
    [file] = plan(_by_scope(home, cwd)["dotenv"], [KEY, ALIAS, DEFAULT])
    assert file.after == (
        f"OPENAI_API_KEY={KEY.value}\nOPENAI_ALIAS_FAST=gpt-4o-mini\nVDM_DEFAULT_PROVIDER=openai\n"
    )


def test_a_file_that_cannot_be_edited_safely_stops_the_plan(home: Path, cwd: Path) -> None:
    user = _by_scope(home, cwd)["user"]
    assert user.toml is not None
    user.toml.parent.mkdir(parents=True)
    user.toml.write_text("openai = { api-key = 'sk-inline' }\n")
    with pytest.raises(WriterError, match="edit it by hand"):
        plan(user, [KEY])
    with pytest.raises(WriterError, match="would break the file"):
        plan(user, [ALIAS])
    assert user.toml.read_text() == "openai = { api-key = 'sk-inline' }\n"


def test_current_values_read_both_files_of_a_destination(home: Path, cwd: Path) -> None:
    (cwd / "vandamme-config.toml").write_text('[groq.aliases]\ncode = "gpt-oss"\n')
    (cwd / ".env").write_text("GROQ_API_KEY=gsk_1\n")
    project = _by_scope(home, cwd)["project"]
    assert current_values(project) == {"GROQ_ALIAS_CODE": "gpt-oss", "GROQ_API_KEY": "gsk_1"}
    assert current_values(_by_scope(home, cwd)["dotenv"]) == {"GROQ_API_KEY": "gsk_1"}
    (cwd / "vandamme-config.toml").write_text("not [ toml")  # unreadable: nothing, no error
    assert current_values(project) == {"GROQ_API_KEY": "gsk_1"}


def test_describe_masks_keys_and_url_credentials() -> None:
    assert describe(KEY, True) == f"openai.api-key = {mask(KEY.value)}"
    assert describe(KEY, False) == f"OPENAI_API_KEY={mask(KEY.value)}"
    passthru = Change(("openai", "api-key"), "!PASSTHRU", secret=True)
    assert describe(passthru, False) == "OPENAI_API_KEY=!PASSTHRU"
    url = Change(("mycorp", "base-url"), "https://bob:s3cretTOKENvalue99@llm.example/v1")
    assert describe(url, True) == 'mycorp.base-url = "https://bob…ue99@llm.example/v1"'
    assert describe(ALIAS, False) == "OPENAI_ALIAS_FAST=gpt-4o-mini"


def test_write_makes_a_file_with_a_key_private(cwd: Path) -> None:
    dotenv = cwd / ".env"
    dotenv.write_text("A=1\n")
    dotenv.chmod(0o644)
    [file] = plan(Destination("dotenv", None, dotenv), [KEY])
    assert write(file) == SECRET_MODE
    assert stat.S_IMODE(dotenv.stat().st_mode) == SECRET_MODE
    assert read_dotenv(dotenv) == {"A": "1", "OPENAI_API_KEY": KEY.value}
    assert sorted(p.name for p in cwd.iterdir()) == [".env"], "no temporary file left"


def test_write_keeps_the_mode_of_a_file_without_keys(cwd: Path) -> None:
    toml = cwd / "vandamme-config.toml"
    toml.write_text("# mine\n")
    toml.chmod(0o640)
    [file] = plan(Destination("project", toml, cwd / ".env"), [ALIAS])
    assert write(file) == 0o640
    assert toml.read_text().startswith("# mine\n")
    # a new file gets the umask's mode
    new = FilePlan(cwd / "new.toml", True, 'log-level = "DEBUG"\n', [])
    old_umask = os.umask(0o027)
    try:
        assert write(new) == 0o640
    finally:
        os.umask(old_umask)


def test_write_follows_a_symlink(home: Path, cwd: Path) -> None:
    real = home / "vdm.env"
    real.write_text("A=1\n")
    (cwd / ".env").symlink_to(real)
    [file] = plan(Destination("dotenv", None, cwd / ".env"), [ALIAS])
    write(file)
    assert (cwd / ".env").is_symlink()
    assert read_dotenv(real) == {"A": "1", "OPENAI_ALIAS_FAST": "gpt-4o-mini"}


def test_write_refuses_text_that_does_not_read_back(cwd: Path) -> None:
    dotenv = cwd / ".env"
    dotenv.write_text("A=1\n")
    wrong = FilePlan(dotenv, False, "A=1\nOPENAI_API_KEY=other\n", [KEY], existed=True)
    with pytest.raises(WriterError, match="OPENAI_API_KEY would not read back"):
        write(wrong)
    assert dotenv.read_text() == "A=1\n"
    assert sorted(p.name for p in cwd.iterdir()) == [".env"]


def test_shadowed_names_the_layer_that_wins(home: Path, cwd: Path) -> None:
    [file] = plan(Destination("dotenv", None, cwd / ".env"), [KEY, ALIAS])
    write(file)
    env = {"HOME": str(home), "OPENAI_API_KEY": "sk-from-the-shell-123"}
    assert shadowed([file], Settings.load(env, cwd)) == [(KEY, "env", cwd / ".env")]
    assert shadowed([file], Settings.load({"HOME": str(home)}, cwd)) == []


def test_a_dotenv_in_a_git_checkout_must_be_ignored(home: Path, cwd: Path) -> None:
    files = plan(_by_scope(home, cwd)["project"], [KEY])
    assert not unignored_dotenv(files, cwd), "not a git checkout"
    (cwd / ".git").mkdir()
    assert unignored_dotenv(files, cwd), "no .gitignore"
    (cwd / ".gitignore").write_text("node_modules\n/.env\n")
    assert not unignored_dotenv(files, cwd)
    (cwd / ".gitignore").write_text("node_modules\n")
    assert unignored_dotenv(files, cwd)
    assert not unignored_dotenv(plan(_by_scope(home, cwd)["user"], [KEY]), cwd), "no .env"


def test_presets_come_from_the_packaged_defaults_in_order() -> None:
    found = presets()
    assert next(iter(found)) == "openai"
    assert found["openai"].base_url == "https://api.openai.com/v1"
    assert found["openai"].key_required
    ollama = found["ollama"]
    assert (ollama.key_required, ollama.anthropic_url) == (False, "http://localhost:11434")
    assert "fallback" not in found and "custom-headers" not in found
