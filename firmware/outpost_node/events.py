"""The node's events waiting to be sent: a bounded queue in RAM.

When the queue is full the oldest event that is not urgent makes room (a motion trigger goes before
a panic press); urgent events are also kept on flash (:mod:`outpost_node.flash_ring`) until the
gateway's broker has them, so neither a full queue nor a reset loses a press.
"""

from collections import namedtuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

    Emit = Callable[[str, int, int, int], None]  # kind, at (uptime ms), held_ms, count

# boot and seq identify the event; at is its uptime in that boot; slot is its flash slot or -1.
Event = namedtuple("Event", ("boot", "seq", "kind", "at", "held_ms", "count", "slot"))


class EventQueue:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.dropped = 0
        self._items: list[Event] = []

    def __len__(self) -> int:
        return len(self._items)

    def push(self, event: Event, urgent: bool) -> "Event | None":
        """Queue ``event``; return the event it pushed out when full (None if nothing was)."""
        dropped = None
        if len(self._items) >= self.capacity:
            index = 0
            for i, queued in enumerate(self._items):
                if queued.slot < 0:
                    index = i
                    break
            else:
                if not urgent:
                    self.dropped += 1
                    return event  # every queued event is urgent: the newcomer gives way
            dropped = self._items.pop(index)
            self.dropped += 1
        self._items.append(event)
        return dropped

    def peek(self) -> "Event | None":
        return self._items[0] if self._items else None

    def pop(self) -> Event:
        return self._items.pop(0)
