"""The garbage collector's settings for a process that serves (`vdm server start`, `vdm wrap`).

Measured under load (50 small requests at once, py-spy and `gc.callbacks`): with Python's
defaults (700, 10, 10) the cyclic collector ran ~180 times a second and took 6-8 % of vdm's
CPU. Each full collection walked the whole start-up heap (modules, pydantic models, the
capability and price tables) for ~20 ms, a latency spike as well; the young collections
examined the objects of the requests in flight again and again, although a request's objects
are freed by reference counting (the collections found almost no cyclic garbage).

So, once the server is about to serve: one collection, then `gc.freeze()` moves the start-up
heap into the permanent generation (no collection walks it again), and the young generation's
threshold goes to `YOUNG_THRESHOLD` net allocations, which a request's objects are gone
before reaching. Cyclic garbage is still collected, a few thousand objects at a time.
Process-wide: only the CLI's serving processes ask for it, never a process that merely embeds
the server (the tests).
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)
#: Net allocations of tracked objects between two young collections (Python's default: 700).
YOUNG_THRESHOLD = 10_000


def tune_for_serving() -> None:
    """Collect once, freeze what is alive, and raise the young generation's threshold."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    log.debug(
        "garbage collector tuned for serving: %d start-up objects frozen, young threshold %d",
        gc.get_freeze_count(),
        YOUNG_THRESHOLD,
    )
