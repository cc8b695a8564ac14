"""Random ids for what vdm names itself and nobody relies on being secret: message ids
(`msg_…`) and request ids (`req_vdm_…`).

These ids only need to be distinct: nothing is granted by knowing one (a request id is echoed
in headers and logs, a message id in the answer the client already holds). Tool call ids are
not made here: the reasoning cache trusts their random part to be unguessable
(`codec.unpredictable`), and a Mersenne Twister's state can be rebuilt from its outputs.

These come from one seeded Mersenne Twister rather than the operating system's CSPRNG:
`os.urandom` is a system call per id, and at several ids per request it was
a measurable part of vdm's own CPU. The generator is seeded from `os.urandom` at import and
again in every forked child, so two worker processes never share a sequence.
"""

from __future__ import annotations

import os
import random

_random = random.Random()
os.register_at_fork(after_in_child=_random.seed)

#: 96 random bits: the same size as the ids made from `os.urandom(12)` before.
_getrandbits = _random.getrandbits


def random_hex() -> str:
    """24 lowercase hex digits (96 random bits)."""
    return f"{_getrandbits(96):024x}"
