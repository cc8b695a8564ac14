"""The client dimension of the matrix: each OpenAI client (tests/compat/chat_client.py,
tests/compat/responses_client.py) against every provider family's fake.

One fake and one vdm per (client, family) cell, shared by its checks; `errors` runs last in
each cell, so the key its 429 rests never leaks into another check. The outcomes go to
`tests.compat.clients.CLIENT_OUTCOMES`, which tests/compat/test_matrix.py renders into
docs/compatibility.md: this module's name sorts before it, so pytest runs it first.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.compat.clients import CHECK_IDS, CLIENT_OUTCOMES, CLIENTS
from tests.compat.families import FAMILIES, Family
from tests.compat.openai_checks import Client, ClientCheck, ClientStand
from tests.harness import running_vdm

_CELLS = [(c, f) for c in CLIENTS for f in FAMILIES]


@pytest.fixture(scope="module", params=_CELLS, ids=[f"{c.id}-{f.id}" for c, f in _CELLS])
def cell(request: pytest.FixtureRequest) -> Iterator[tuple[Client, ClientStand]]:
    client: Client
    family: Family
    client, family = request.param
    script = family.script()
    with script.server() as fake, running_vdm(family.env(fake)) as vdm:
        sdk = openai.OpenAI(base_url=vdm.url + "/v1", api_key="sk-client", max_retries=0)
        with sdk:
            yield client, ClientStand(family, script, fake, sdk)


@pytest.mark.parametrize("check_id", CHECK_IDS)
def test_client_check(cell: tuple[Client, ClientStand], check_id: str) -> None:
    client, stand = cell
    check: ClientCheck = next(c for c in client.checks if c.id == check_id)
    key = (client.id, stand.family.id, check.id)
    CLIENT_OUTCOMES[key] = False
    check.run(stand)
    CLIENT_OUTCOMES[key] = True
