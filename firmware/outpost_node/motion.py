"""A PIR sensor: a trigger is reported as ``motion``; triggers within ``rearm_ms`` of the last one
reported are ignored, so one person walking past is one event."""

from outpost_node import wire

TYPE_CHECKING = False
if TYPE_CHECKING:
    from outpost_node.events import Emit


class MotionSensor:
    def __init__(self, emit: "Emit", rearm_ms: int) -> None:
        self._emit = emit
        self.rearm_ms = rearm_ms
        self._reported_at = -1
        self.ignored = 0

    def change(self, active: bool, at: int) -> None:
        if not active:
            return
        if self._reported_at >= 0 and at - self._reported_at < self.rearm_ms:
            self.ignored += 1
            return
        self._reported_at = at
        self._emit(wire.MOTION, at, 0, 1)

    def tick(self, now: int) -> None:
        return

    def due(self) -> int:
        return -1
