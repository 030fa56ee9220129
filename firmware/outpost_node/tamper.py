"""A tamper loop (an enclosure switch, or a wire that reads open when cut): ``tamper`` when it
opens, ``tamper_cleared`` when it closes again."""

from outpost_node import wire

TYPE_CHECKING = False
if TYPE_CHECKING:
    from outpost_node.events import Emit


class TamperLoop:
    def __init__(self, emit: "Emit") -> None:
        self._emit = emit

    def change(self, tampered: bool, at: int) -> None:
        self._emit(wire.TAMPER if tampered else wire.TAMPER_CLEARED, at, 0, 1)

    def tick(self, now: int) -> None:
        return

    def due(self) -> int:
        return -1
