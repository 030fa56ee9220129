"""A door contact: open and closed as they happen, and once per opening a ``door_held_open`` when
the door stays open for ``held_open_ms`` (0: never)."""

from outpost_node import wire

TYPE_CHECKING = False
if TYPE_CHECKING:
    from outpost_node.events import Emit


class DoorContact:
    def __init__(self, emit: "Emit", held_open_ms: int) -> None:
        self._emit = emit
        self.held_open_ms = held_open_ms
        self._opened_at = -1  # -1: closed
        self._held_sent = False

    def change(self, is_open: bool, at: int) -> None:
        if is_open:
            self._opened_at = at
            self._held_sent = False
            self._emit(wire.DOOR_OPEN, at, 0, 1)
        else:
            self._opened_at = -1
            self._emit(wire.DOOR_CLOSED, at, 0, 1)

    def tick(self, now: int) -> None:
        deadline = self.due()
        if deadline >= 0 and now >= deadline:
            self._held_sent = True
            self._emit(wire.DOOR_HELD_OPEN, self._opened_at, now - self._opened_at, 1)

    def due(self) -> int:
        if self._opened_at < 0 or self._held_sent or self.held_open_ms <= 0:
            return -1
        return self._opened_at + self.held_open_ms
