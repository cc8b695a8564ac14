# vdm — developer commands. Everything installs into .venv (Python) and .venv/node (Claude Code,
# Codex CLI).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CLAUDE_CODE_VERSION := 2.1.330
CLAUDE := $(VENV)/node/node_modules/.bin/claude
CODEX_VERSION := 0.169.0
CODEX := $(VENV)/node/node_modules/.bin/codex
CCR_VERSION := 2.0.0
CCR := $(VENV)/node/node_modules/.bin/ccr

.PHONY: install install-claude install-codex install-ccr run wrap test compat check bench soak fuzz completions dist clean

$(PY): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(PY)

install: $(PY)

# The real Claude Code CLI, pinned, for the end-to-end tests (needs npm).
install-claude: $(CLAUDE)
$(CLAUDE):
	@if command -v npm >/dev/null 2>&1; then \
		mkdir -p $(VENV)/node && npm install --silent --no-audit --no-fund --prefix $(VENV)/node \
			@anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION); \
	else echo "npm not found: the Claude Code end-to-end tests will be skipped"; fi

# The real Codex CLI, pinned, for its end-to-end test (tests/e2e/test_codex.py; needs npm).
install-codex: $(CODEX)
$(CODEX):
	@if command -v npm >/dev/null 2>&1; then \
		mkdir -p $(VENV)/node && npm install --silent --no-audit --no-fund --prefix $(VENV)/node \
			@openai/codex@$(CODEX_VERSION); \
	else echo "npm not found: the Codex end-to-end test will be skipped"; fi

# claude-code-router (CCR), pinned, for `make bench`'s side-by-side comparison (needs npm).
install-ccr: $(CCR)
$(CCR):
	@if command -v npm >/dev/null 2>&1; then \
		mkdir -p $(VENV)/node && npm install --silent --no-audit --no-fund --prefix $(VENV)/node \
			@musistudio/claude-code-router@$(CCR_VERSION) \
			|| echo "npm install failed: make bench will measure vdm without claude-code-router"; \
	else echo "npm not found: make bench will measure vdm without claude-code-router"; fi

run: install
	$(VENV)/bin/vdm server start

# The main job: Claude Code behind a private proxy, e.g. make wrap ARGS="--model openai:gpt-4o".
# Uses the pinned Claude Code from .venv/node, or the `claude` on PATH when npm is missing.
wrap: install install-claude install-codex
	PATH="$(CURDIR)/$(VENV)/node/node_modules/.bin:$$PATH" $(VENV)/bin/vdm wrap -- claude $(ARGS)

test: install install-claude install-codex
	$(PY) -m pytest -q

# The compatibility matrix (tests/compat): every provider family's fake x Claude-Code-shaped
# checks; writes docs/compatibility.md. `make test` runs it too and fails if the file is stale.
compat: install
	VDM_COMPAT_WRITE=1 $(PY) -m pytest -q tests/compat

check: install
	@for sh in bash zsh fish; do _VDM_COMPLETE=source_$$sh $(VENV)/bin/vdm | diff -q - shell-completions/vdm.$$sh >/dev/null \
		|| { echo "shell-completions/vdm.$$sh is out of date: run make completions"; exit 1; }; done
	$(VENV)/bin/ruff format --check vdm tests
	$(VENV)/bin/ruff check vdm tests
	$(VENV)/bin/mypy vdm
	$(PY) -m pytest -q tests/test_layers.py

# The benchmark (docs/performance.md): direct, vdm and claude-code-router side by side, then the
# targets; e.g. make bench ARGS="--only a,b --duration 5". Without npm, vdm-only figures.
bench: install install-ccr
	$(PY) -m tests.bench.run $(ARGS)

# Soak: SOAK_CLIENTS (100) streaming clients for SOAK_MINUTES (10) against vdm in front of a
# faulty fake upstream; prints PASS/FAIL per target (docs/reliability.md). E.g. make soak
# SOAK_MINUTES=2 ARGS="--seed 7".
soak: install
	$(PY) -m tests.reliability.soak $(ARGS)

# Property-based fuzzing of /v1/messages and count_tokens (tests/reliability/test_fuzz.py)
# with FUZZ_EXAMPLES examples per property (make test runs 60).
FUZZ_EXAMPLES ?= 3000
fuzz: install
	VDM_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q -p no:cacheprovider \
		tests/reliability/test_fuzz.py --hypothesis-show-statistics

# Shell completion scripts, generated from the typer app.
completions: install
	@for sh in bash zsh fish; do _VDM_COMPLETE=source_$$sh $(VENV)/bin/vdm > shell-completions/vdm.$$sh; done

# The distribution (sdist, then a wheel built from it) in dist/: `uv tool install
# dist/vandamme_proxy-*.whl` or `pipx install …` on any machine (README, Install).
dist: install
	rm -rf dist
	$(PY) -m build --outdir dist .

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
