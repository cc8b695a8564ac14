"""Routing defaults with the real Claude Code: `vdm wrap -- claude -p` with two providers
configured (OpenAI and DeepSeek, each a fake upstream on loopback) and no `--model`, so every
request carries Claude Code's own model names. They all reach the default provider's mappings,
and the other provider gets nothing, whichever provider the user chose."""

from __future__ import annotations

import sys
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.responses_upstream import FakeResponses
from tests.harness import REPO, clean_env
from tests.processes import run_to_end

pytestmark = pytest.mark.e2e

PRESETS = tomllib.loads(
    resources.files("vdm.config").joinpath("defaults.toml").read_text(encoding="utf-8")
)
RUN_TIMEOUT = 60.0
#: Installed by `make install-claude` (pinned in the Makefile), as for tests/e2e.
CLAUDE = REPO / ".venv" / "node" / "node_modules" / ".bin" / "claude"


@pytest.fixture
def claude_bin() -> Path:
    """As tests/e2e's fixture: skipped only where npm is missing."""
    import shutil

    if CLAUDE.is_file():
        return CLAUDE
    if shutil.which("npm"):
        pytest.fail(f"the Claude Code CLI is not installed at {CLAUDE}: run `make install-claude`")
    pytest.skip("npm not found: cannot install the Claude Code CLI")


def _posted(fake: FakeOpenAI) -> list[str]:
    return [r.json["model"] for r in fake.requests if r.method == "POST"]


@pytest.mark.parametrize("default", ["openai", "deepseek", "mycorp"])
def test_claude_codes_own_names_reach_the_default_provider(
    claude_bin: Path, default: str, tmp_path: Path
) -> None:
    """OpenAI is the default when none is chosen; DeepSeek when chosen; a custom provider
    when chosen gets Claude Code's names unchanged (and `vdm wrap` warned about it), even
    though the other two have packaged mappings for them."""
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    with FakeResponses() as openai, FakeOpenAI() as deepseek, FakeOpenAI() as mycorp:
        env = clean_env(
            HOME=str(home),
            OPENAI_API_KEY="sk-openai-e2e",
            OPENAI_BASE_URL=openai.base_url,
            DEEPSEEK_API_KEY="sk-deepseek-e2e",
            DEEPSEEK_BASE_URL=deepseek.base_url,
            MYCORP_API_KEY="sk-mycorp-e2e",
            MYCORP_BASE_URL=mycorp.base_url,
            CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
            DISABLE_AUTOUPDATER="1",
            CLAUDE_CODE_MAX_RETRIES="0",
        )
        if default != "openai":
            env["VDM_DEFAULT_PROVIDER"] = default
        command = [sys.executable, "-m", "vdm.cli", "wrap", "--quiet", "--"]
        command += [str(claude_bin), "-p", "say hi"]
        proc = run_to_end(command, env=env, cwd=project, timeout=RUN_TIMEOUT)
        stdout, stderr = proc.stdout, proc.stderr
    fakes: dict[str, FakeOpenAI] = {"openai": openai, "deepseek": deepseek, "mycorp": mycorp}
    got = {name: _posted(fake) for name, fake in fakes.items()}
    why = f"exit {proc.returncode}\nstdout:\n{stdout[-2000:]}\nstderr:\n{stderr[-3000:]}\n{got}"
    assert proc.returncode == 0, why
    assert got[default], why
    if default == "mycorp":
        assert all(model.startswith("claude-") for model in got[default]), why
        assert "Claude Code's model names" in stderr and "MYCORP_ALIAS_SONNET" in stderr, why
    else:
        assert set(got[default]) <= set(PRESETS[default]["aliases"].values()), why
    assert all(not models for name, models in got.items() if name != default), why
