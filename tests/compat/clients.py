"""The OpenAI clients of the matrix, and the outcomes of their checks as they run.

`CLIENT_OUTCOMES` is filled by tests/compat/test_clients.py and read by tests/compat/
test_matrix.py, which renders docs/compatibility.md; it lives here, in a module both import,
so that the two see one dict.
"""

from __future__ import annotations

from tests.compat.chat_client import CHAT
from tests.compat.openai_checks import Client
from tests.compat.responses_client import RESPONSES

CLIENTS: tuple[Client, ...] = (CHAT, RESPONSES)
#: (client id, family id, check id) -> passed, filled as the checks run.
CLIENT_OUTCOMES: dict[tuple[str, str, str], bool] = {}
#: The check ids every client has, in column order.
CHECK_IDS: tuple[str, ...] = tuple(c.id for c in CHAT.checks)
assert all(tuple(c.id for c in client.checks) == CHECK_IDS for client in CLIENTS)
