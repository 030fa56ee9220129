"""Remembers recent event ids so a redelivered QoS 1 message is processed once.

An id is *pending* from the moment its message was routed until everything the message caused is
durable (its time-series points written), then *done*. A repeat of a pending id (the broker redelivers
a message that was not acknowledged before a reconnect) waits for the same completion instead of
being routed again; a repeat of a done id is acknowledged at once.

Sequence numbers are not used to drop messages: ``seq`` is per gateway across all channels, but
heartbeats bypass the gateway's buffer and a replay after an outage interleaves with live traffic,
and shared subscriptions split one gateway's stream across workers, so a worker cannot tell a gap
from a message another worker took. Event ids are exact; the memory is bounded by ``capacity``.
"""

import asyncio
from collections import OrderedDict
from uuid import UUID


class RecentIds:
    def __init__(self, capacity: int = 200_000) -> None:
        self._capacity = capacity
        self._seen: OrderedDict[UUID, None] = OrderedDict()
        self._pending: dict[UUID, asyncio.Future[None]] = {}
        self.duplicates = 0

    def seen(self, event_id: UUID) -> bool:
        """Whether ``event_id`` was handled already (within the last ``capacity`` ids); counts repeats."""
        if event_id in self._seen:
            self.duplicates += 1
            return True
        return False

    def pending(self, event_id: UUID) -> "asyncio.Future[None] | None":
        """The completion of ``event_id``'s message if it is routed but not yet durable; counts repeats."""
        completion = self._pending.get(event_id)
        if completion is not None:
            self.duplicates += 1
        return completion

    def remember(self, event_id: UUID) -> None:
        """Record ``event_id`` as handled; call only once its message has been fully processed."""
        self._pending.pop(event_id, None)
        self._seen[event_id] = None
        if len(self._seen) > self._capacity:
            self._seen.popitem(last=False)

    def remember_when_done(self, event_id: UUID, completion: "asyncio.Future[None]") -> None:
        """Record ``event_id`` as pending until ``completion`` is done, then as handled."""
        self._pending[event_id] = completion
        completion.add_done_callback(lambda done: self._settled(event_id, done))

    def _settled(self, event_id: UUID, completion: "asyncio.Future[None]") -> None:
        if completion.cancelled():  # abandoned (stopping): a redelivery must be handled afresh
            self._pending.pop(event_id, None)
        else:
            self.remember(event_id)

    @property
    def pending_count(self) -> int:
        return len(self._pending)
