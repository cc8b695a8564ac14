"""vdm's own ids: message and request ids from a seeded generator, tool ids from the OS."""

from __future__ import annotations

import os
import re

import pytest

from vdm.protocol import ids
from vdm.protocol.anthropic_stream import new_message_id, new_tool_id
from vdm.usage.trace import ID_PREFIX, new_request_id


def test_message_and_request_ids_have_96_random_bits_in_hex() -> None:
    assert re.fullmatch(r"msg_[0-9a-f]{24}", new_message_id())
    assert re.fullmatch(re.escape(ID_PREFIX) + r"[0-9a-f]{24}", new_request_id())
    made = {ids.random_hex() for _ in range(10_000)}
    assert len(made) == 10_000
    # Leading zeros are kept: every id is 24 digits, even a small number's.
    assert all(len(h) == 24 for h in made)


def test_tool_ids_do_not_follow_the_seeded_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    # The reasoning cache trusts a tool id's random part to be out of another user's reach
    # (`codec.unpredictable`): knowing the generator's state must not give the next tool id.
    state = ids._random.getstate()
    try:
        ids._random.seed(1234)
        first = (new_message_id(), new_tool_id())
        ids._random.seed(1234)
        second = (new_message_id(), new_tool_id())
    finally:
        ids._random.setstate(state)
    assert first[0] == second[0]  # the seeded generator repeats itself...
    assert first[1] != second[1]  # ...tool ids come from the OS
    assert re.fullmatch(r"toolu_[0-9a-f]{24}", first[1])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_worker_does_not_repeat_its_parents_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, to the parent
        try:
            os.write(write, ids.random_hex().encode())
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 24
    assert child != ids.random_hex()
