"""Stamps outgoing messages with the envelope every payload carries."""

import uuid
from collections.abc import Callable
from typing import TypedDict

from edge.sequence import SequenceCounter


class EnvelopeFields(TypedDict):
    gateway_id: str
    seq: int
    event_id: uuid.UUID
    ts: int


class EnvelopeStamper:
    """Hands out ``gateway_id``, the next ``seq``, a fresh ``event_id`` and ``ts`` for a new message."""

    def __init__(self, gateway_id: str, sequence: SequenceCounter, clock: Callable[[], int]) -> None:
        self.gateway_id = gateway_id
        self._sequence = sequence
        self.clock = clock

    def stamp(self, ts: int | None = None) -> EnvelopeFields:
        """Envelope fields; ``ts`` defaults to now, pass the observation's time when it is known."""
        return EnvelopeFields(
            gateway_id=self.gateway_id,
            seq=self._sequence.next(),
            event_id=uuid.uuid4(),
            ts=self.clock() if ts is None else ts,
        )
