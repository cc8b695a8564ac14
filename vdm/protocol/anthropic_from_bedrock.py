"""Bedrock's InvokeModelWithResponseStream -> canonical events, pure.

The body is AWS event-stream framing (vdm/protocol/aws_eventstream.py): each `chunk` event
carries one Anthropic stream event, base64 in its payload, which the Anthropic decoder
(vdm/protocol/anthropic_events.py) turns into canonical events as it would an SSE event. So
Bedrock's own additions cost nothing: `message_stop`'s `amazon-bedrock-invocationMetrics` is a
member no one reads. An exception frame (`throttlingException`, `modelStreamErrorException`,
...) becomes the Anthropic `error` event of its type, which the Anthropic decoder raises as a
VdmError of the matching status (429 for throttling), and the server ends the client's stream
with an error in the client's own dialect. A frame that fails its checksum, or a body cut
inside a frame, is a 502: what follows cannot be trusted.
"""

from __future__ import annotations

from vdm.protocol.anthropic_events import AnthropicEventDecoder
from vdm.protocol.aws_eventstream import EventStreamDecoder, EventStreamError, anthropic_event_of
from vdm.protocol.errors import VdmError, held
from vdm.protocol.events import Event


class BedrockStreamDecoder:
    """State machine: Bedrock event-stream bytes in, canonical events out (`StreamDecoder`)."""

    def __init__(self) -> None:
        self._frames = EventStreamDecoder()
        self._events = AnthropicEventDecoder()
        self.done = False
        #: The Anthropic decoder's own (updated in place as events come).
        self.usage = self._events.usage
        self.reasoning_tokens = 0
        #: An exception frame that came in the read of events before it: raised by `finish`,
        #: once those events are out (the client sees the text, then the error).
        self._error: VdmError | None = None

    def feed(self, data: bytes) -> list[Event]:
        out: list[Event] = []
        if self.done:
            return out
        try:
            messages = self._frames.feed(data)
            for message in messages:
                event = anthropic_event_of(message)
                if event is not None:
                    out += self._events.feed_event(event)
                if self._events.done:
                    self.done = True
                    break
        except EventStreamError as exc:
            raise broken(exc) from None
        except VdmError as exc:
            self._error, self.done = held(exc, out), True  # see `held`
        return out

    def finish(self) -> list[Event]:
        """A 502 when the body ended inside a frame or before `message_stop`; the upstream's
        error when an exception frame ended it."""
        if self._error is not None:
            raise self._error
        if not self.done:
            try:
                self._frames.close()
            except EventStreamError as exc:
                raise broken(exc) from None
        return self._events.finish()


def broken(exc: EventStreamError) -> VdmError:
    return VdmError(502, f"Bedrock sent a broken event stream: {exc}", unavailable=True)
