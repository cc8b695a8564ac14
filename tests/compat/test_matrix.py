"""The compatibility matrix: every check (tests/compat/checks.py) against every provider
family (tests/compat/families.py), then docs/compatibility.md rendered from the outcomes,
the OpenAI clients' (tests/compat/test_clients.py, run first) included.

One fake and one vdm per family, shared by its checks (a module-scoped fixture: pytest runs
a family's checks together). The last test compares the rendered document with the committed
one, and fails with "run `make compat`" when they differ; `VDM_COMPAT_WRITE=1` (what `make
compat` sets) writes it instead. It does either only when every (family, check) and every
(client, family, check) ran, so a `-k` subset never rewrites or judges the document.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator

import anthropic
import pytest

from tests.compat import report
from tests.compat.checks import CHECKS, Check, Stand
from tests.compat.clients import CLIENT_OUTCOMES, CLIENTS
from tests.compat.families import FAMILIES, Family
from tests.harness import running_vdm

#: (family id, check id) -> passed, filled as the checks run.
OUTCOMES: dict[tuple[str, str], bool] = {}


@pytest.fixture(scope="module", params=FAMILIES, ids=[f.id for f in FAMILIES])
def stand(request: pytest.FixtureRequest) -> Iterator[Stand]:
    family: Family = request.param
    script = family.script()
    with script.server() as fake:
        env = family.env(fake)
        with (
            running_vdm(env) as vdm,
            anthropic.Anthropic(base_url=vdm.url, api_key="sk-client", max_retries=0) as client,
        ):
            yield Stand(family, script, fake, env, client)


@pytest.mark.parametrize("check", CHECKS, ids=[c.id for c in CHECKS])
def test_check(stand: Stand, check: Check) -> None:
    key = (stand.family.id, check.id)
    OUTCOMES[key] = False
    check.run(stand)
    OUTCOMES[key] = True


def test_document() -> None:
    """docs/compatibility.md is what this run renders (written with VDM_COMPAT_WRITE=1)."""
    expected = {(f.id, c.id) for f in FAMILIES for c in CHECKS}
    missing = expected - OUTCOMES.keys()
    if missing:
        pytest.skip(f"{len(missing)} of {len(expected)} (family, check) pairs did not run")
    cells = {(k.id, f.id, c.id) for k in CLIENTS for f in FAMILIES for c in k.checks}
    if absent := cells - CLIENT_OUTCOMES.keys():
        pytest.skip(f"{len(absent)} of {len(cells)} (client, family, check) cells did not run")
    text = report.render(FAMILIES, CHECKS, OUTCOMES, CLIENTS, CLIENT_OUTCOMES)
    if os.environ.get("VDM_COMPAT_WRITE") == "1":
        report.write(text)
        return
    current = report.DOCUMENT.read_text(encoding="utf-8") if report.DOCUMENT.exists() else ""
    if current != text:
        diff = "".join(
            difflib.unified_diff(
                current.splitlines(keepends=True),
                text.splitlines(keepends=True),
                "docs/compatibility.md (committed)",
                "docs/compatibility.md (this run)",
            )
        )
        pytest.fail(f"docs/compatibility.md is out of date: run `make compat`\n{diff}")
