"""Whole SSE events only: the unfinished end of a relayed stream held back (pure).

vdm relays a provider's stream byte for byte (vdm/server/relay.py), but when the stream breaks
it writes an end of its own. Written after half an upstream event, that end would be glued to
it and read as one broken event: the OpenAI SDK fails on its JSON and never sees the
`response.failed` or the error chunk. Passing on only whole events means vdm's end always
starts an event of its own; the half event is dropped (a client cannot use it).
"""

from __future__ import annotations

import logging

log = logging.getLogger("vdm.requests")


class EventFrames:
    """Holds back the unfinished end of a relayed SSE stream: what `feed` passes on always
    ends on an event boundary (a blank line, in any of SSE's line ends). The held bytes go out
    with `rest` at the upstream's normal end, or are dropped (`drop`) when the stream breaks.
    A read that ends on a boundary, the usual case, goes out as it came, uncopied."""

    def __init__(self) -> None:
        self._held: list[bytes] = []

    def feed(self, read: bytes) -> bytes:
        if not self._held:
            end = _boundary(read)
            if end == len(read):
                return read
            if end > 0:
                self._held.append(read[end:])
                return read[:end]
            self._held.append(read)
            return b""
        # A blank line may straddle the reads: look at the held end's last bytes too.
        joint = b"".join(self._held[-3:])[-3:]
        end = _boundary(joint + read) - len(joint)
        if end <= 0:
            self._held.append(read)
            return b""
        out = b"".join(self._held) + read[:end]
        self._held = [read[end:]] if end < len(read) else []
        return out

    def rest(self) -> bytes:
        """What is held: the stream's end, when it did not end with a blank line."""
        held = b"".join(self._held)
        self._held = []
        return held

    def drop(self) -> None:
        if self._held:
            log.debug("half an upstream event (%d bytes) dropped", sum(map(len, self._held)))
        self._held = []


def _boundary(data: bytes) -> int:
    """Where the last blank line in `data` ends (any of SSE's line ends), or -1."""
    best = -1
    for mark in (b"\n\n", b"\r\n\r\n", b"\r\r"):
        at = data.rfind(mark)
        if at >= 0:
            best = max(best, at + len(mark))
    return best
