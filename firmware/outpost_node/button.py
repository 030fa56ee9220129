"""A panic button's presses: the first press of a gesture is reported at once; what kind of gesture
it was (a long hold, or several quick presses) follows as its own event.

- ``press``: the moment the button goes down, never held back to classify it;
- ``long_press``: while the button is still held, once the hold reaches ``long_press_ms``;
- ``multi_press``: ``count`` presses, each within ``multi_window_ms`` of the previous release,
  reported when the window after the last release closes.
"""

from outpost_node import wire

TYPE_CHECKING = False
if TYPE_CHECKING:
    from outpost_node.events import Emit


class PanicButton:
    def __init__(self, emit: "Emit", long_press_ms: int, multi_window_ms: int) -> None:
        self._emit = emit
        self.long_press_ms = long_press_ms
        self.multi_window_ms = multi_window_ms
        self._started_at = -1  # first press of the gesture; -1: no gesture
        self._pressed_at = -1  # the current press; -1: released
        self._released_at = 0
        self._held_ms = 0
        self._count = 0
        self._long_sent = False

    def change(self, pressed: bool, at: int) -> None:
        if pressed:
            self._pressed_at = at
            if self._started_at < 0:
                self._started_at = at
                self._count = 1
                self._long_sent = False
                self._emit(wire.PRESS, at, 0, 1)
            else:
                self._count += 1
        elif self._pressed_at >= 0:
            self._held_ms = at - self._pressed_at
            self._pressed_at = -1
            self._released_at = at

    def tick(self, now: int) -> None:
        if self._started_at < 0:
            return
        if self._pressed_at >= 0:
            if not self._long_sent and now - self._pressed_at >= self.long_press_ms:
                self._long_sent = True
                self._emit(wire.LONG_PRESS, self._pressed_at, now - self._pressed_at, 1)
            return
        if self._long_sent or now - self._released_at >= self.multi_window_ms:
            if self._count > 1 and not self._long_sent:
                self._emit(wire.MULTI_PRESS, self._started_at, self._held_ms, self._count)
            self._started_at = -1

    def due(self) -> int:
        if self._started_at < 0:
            return -1
        if self._pressed_at >= 0:
            return -1 if self._long_sent else self._pressed_at + self.long_press_ms
        return self._released_at if self._long_sent else self._released_at + self.multi_window_ms
