"""Remembers recently handled event ids so a redelivered QoS 1 message is processed once."""

from collections import OrderedDict
from uuid import UUID


class RecentIds:
    def __init__(self, capacity: int = 200_000) -> None:
        self._capacity = capacity
        self._seen: OrderedDict[UUID, None] = OrderedDict()
        self.duplicates = 0

    def seen(self, event_id: UUID) -> bool:
        """Whether ``event_id`` was handled already (within the last ``capacity`` ids); counts repeats."""
        if event_id in self._seen:
            self.duplicates += 1
            return True
        return False

    def remember(self, event_id: UUID) -> None:
        """Record ``event_id`` as handled; call only once its message has been fully processed."""
        self._seen[event_id] = None
        if len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
