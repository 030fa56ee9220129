"""Remembers recently seen event ids so a redelivered QoS 1 message is processed once."""

from collections import OrderedDict
from uuid import UUID


class RecentIds:
    def __init__(self, capacity: int = 200_000) -> None:
        self._capacity = capacity
        self._seen: OrderedDict[UUID, None] = OrderedDict()
        self.duplicates = 0

    def first_time(self, event_id: UUID) -> bool:
        """True the first time an id is offered (within the last ``capacity`` ids), False after."""
        if event_id in self._seen:
            self.duplicates += 1
            return False
        self._seen[event_id] = None
        if len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
        return True
