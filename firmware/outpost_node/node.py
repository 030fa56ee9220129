"""One sensor node's logic: inputs in, messages out.

The board (``main.py``), the simulator and the tests drive it the same way:

- ``edge(line, now)`` from a pin interrupt, ``step(now)`` whenever awake (it reads the pins, runs
  the debouncers and timers and turns input changes into events);
- ``outgoing(now)`` for the next message to publish, and ``delivered()`` once the broker has it
  (QoS 1); until then the same message comes back, so nothing is lost when the link drops;
- ``connected(now)`` / ``disconnected()`` as the MQTT session comes and goes, ``configure(payload,
  now)`` for a settings update the gateway pushed.

``now`` is the uptime in milliseconds. Pins are anything with ``value()`` (``machine.Pin`` on a
board); ``battery_v`` and ``rssi_dbm`` are callables, or None where the board has no such reading.
"""

import json

from outpost_node import FIRMWARE_VERSION, wire
from outpost_node.button import PanicButton
from outpost_node.debounce import Debouncer
from outpost_node.door import DoorContact
from outpost_node.events import Event, EventQueue
from outpost_node.motion import MotionSensor
from outpost_node.settings import apply_update
from outpost_node.tamper import TamperLoop

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Protocol

    from outpost_node.flash_ring import FlashRing
    from outpost_node.settings import Settings

    class PinLike(Protocol):
        def value(self) -> int: ...

    class InputLogic(Protocol):
        def change(self, active: bool, at: int) -> None: ...

        def tick(self, now: int) -> None: ...

        def due(self) -> int: ...

    Outgoing = tuple[str, bytes, bool]  # topic, payload, retain

INPUT = 0
TAMPER_INPUT = 1
URGENT = (wire.PRESS, wire.LONG_PRESS, wire.MULTI_PRESS, wire.TAMPER)
_TAMPER_SETTLE_MS = 50


class Node:
    def __init__(
        self,
        settings: "Settings",
        boot: int,
        reset_cause: str,
        ring: "FlashRing",
        input_pin: "PinLike",
        tamper_pin: "PinLike | None" = None,
        battery_v: "Callable[[], float] | None" = None,
        rssi_dbm: "Callable[[], int] | None" = None,
        save: "Callable[[Settings], None] | None" = None,
    ) -> None:
        self.settings = settings
        self.node_id = str(settings["node_id"])
        self.boot = boot
        self.reset_cause = reset_cause
        self._ring = ring
        self._input_pin = input_pin
        self._tamper_pin = tamper_pin
        self._battery_v = battery_v
        self._rssi_dbm = rssi_dbm
        self._save = save
        self._active_low = bool(settings["active_low"])
        self.queue = EventQueue(int(settings["queue_size"]))
        self._seq = 0
        self._logic = self._make_logic()
        self._tamper = TamperLoop(self._emit) if tamper_pin is not None else None
        self._debouncers: list[Debouncer] = []
        self._online = False
        self._status_due = False
        self._result: bytes | None = None
        self._heartbeat_at = 0
        self._sending: str = ""  # what outgoing() last handed out: "status", "result", "event" or "heartbeat"

    def _make_logic(self) -> "InputLogic":
        role = self.settings["role"]
        if role == "panic_button":
            return PanicButton(self._emit, self._int("long_press_ms"), self._int("multi_window_ms"))
        if role == "door_contact":
            return DoorContact(self._emit, self._int("held_open_s") * 1000)
        return MotionSensor(self._emit, self._int("rearm_s") * 1000)

    def _int(self, name: str) -> int:
        return int(self.settings[name])

    # -- inputs --------------------------------------------------------------------------------

    def start(self, now: int, woke_by_input: bool = False) -> None:
        """Read the pins' levels and queue the urgent events earlier boots left unsent on flash.

        ``woke_by_input``: the board woke from deep sleep on the input pin, so an active input is a
        change to report, not the level it was already at.
        """
        active = self._active(INPUT)
        self._debouncers = [
            Debouncer(False if woke_by_input else active, self._int("confirm_ms"), self._int("settle_ms"))
        ]
        if self._tamper_pin is not None:  # starts closed: a loop found open at boot (cut while off) is reported
            self._debouncers.append(Debouncer(False, self._int("confirm_ms"), _TAMPER_SETTLE_MS))
            if self._active(TAMPER_INPUT):
                self._debouncers[TAMPER_INPUT].edge(now)
        for event in self._ring.pending():
            self.queue.push(event, True)
            self._seq = max(self._seq, event.seq + 1) if event.boot == self.boot else self._seq
        self._heartbeat_at = now
        if woke_by_input and active:
            self._debouncers[INPUT].edge(now)

    def _active(self, line: int) -> bool:
        pin = self._input_pin if line == INPUT else self._tamper_pin
        if pin is None:
            return False
        level = pin.value() == 1
        if line == TAMPER_INPUT:
            return level  # a closed loop to ground reads low; open or cut reads high
        return not level if self._active_low else level

    def edge(self, line: int, now: int) -> None:
        """A pin interrupt: ``line`` is INPUT or TAMPER_INPUT."""
        if line < len(self._debouncers):
            self._debouncers[line].edge(now)

    def step(self, now: int) -> None:
        for line, debouncer in enumerate(self._debouncers):
            changed_at = debouncer.poll(now, self._active(line))
            if changed_at >= 0:
                if line == INPUT:
                    self._logic.change(debouncer.level, changed_at)
                elif self._tamper is not None:
                    self._tamper.change(debouncer.level, changed_at)
        self._logic.tick(now)

    def _emit(self, kind: str, at: int, held_ms: int, count: int) -> None:
        event = Event(self.boot, self._seq, kind, at, held_ms, count, -1)
        self._seq += 1
        urgent = kind in URGENT
        if urgent:
            event = Event(event.boot, event.seq, kind, at, held_ms, count, self._ring.keep(event))
        self.queue.push(event, urgent)

    def due(self, now: int) -> int:
        """Milliseconds until ``step`` has work (a debounce check, a timer, a heartbeat when online;
        offline, no heartbeat is due, so a board waiting to reconnect may sleep)."""
        soonest = self._heartbeat_at if self._online else now + self._int("heartbeat_s") * 1000
        for deadline in [d.due() for d in self._debouncers] + [self._logic.due()]:
            if 0 <= deadline < soonest:
                soonest = deadline
        return max(0, soonest - now)

    def idle(self) -> bool:
        """Nothing to send and nothing half-seen: the board may sleep until the next heartbeat."""
        pending = [d.due() for d in self._debouncers] + [self._logic.due()]
        return not len(self.queue) and self._result is None and max(pending) < 0

    # -- the MQTT session -----------------------------------------------------------------------

    def last_will(self, now: int) -> "Outgoing":
        return wire.topic(self.node_id, wire.STATUS), wire.status(self.node_id, self.boot, now, False), True

    def config_topic(self) -> str:
        return wire.topic(self.node_id, wire.CONFIG)

    def connected(self, now: int) -> None:
        self._online = True
        self._status_due = True

    def disconnected(self) -> None:
        self._online = False

    def outgoing(self, now: int) -> "Outgoing | None":
        """The next message to publish at QoS 1, or None; the same one until ``delivered()``."""
        if not self._online:
            return None
        node, boot = self.node_id, self.boot
        if self._status_due:
            self._sending = "status"
            return wire.topic(node, wire.STATUS), wire.status(node, boot, now, True), True
        if self._result is not None:
            self._sending = "result"
            return wire.topic(node, wire.CONFIG_RESULT), self._result, False
        event = self.queue.peek()
        if event is not None:
            self._sending = "event"
            payload = wire.event(node, boot, now, event.boot, event.seq, event.kind, event.at, event.held_ms,
                                 event.count)  # fmt: skip
            return wire.topic(node, wire.EVENT), payload, False
        if now >= self._heartbeat_at:
            self._sending = "heartbeat"
            battery = self._battery_v() if self._battery_v is not None else None
            rssi = self._rssi_dbm() if self._rssi_dbm is not None else None
            payload = wire.heartbeat(node, boot, now, self._int("heartbeat_s"), battery, rssi, self.reset_cause,
                                     FIRMWARE_VERSION, len(self.queue))  # fmt: skip
            return wire.topic(node, wire.HEARTBEAT), payload, False
        return None

    def delivered(self, now: int) -> None:
        """The message ``outgoing`` last returned is with the broker."""
        sent, self._sending = self._sending, ""
        if sent == "status":
            self._status_due = False
        elif sent == "result":
            self._result = None
        elif sent == "event" and len(self.queue):
            event = self.queue.pop()
            if event.slot >= 0:
                self._ring.release(event)
        elif sent == "heartbeat":
            self._heartbeat_at = now + self._int("heartbeat_s") * 1000

    # -- settings pushed by the gateway -----------------------------------------------------------

    def configure(self, payload: bytes, now: int) -> bool:
        """Apply a settings update; report the outcome to the gateway. True if the settings changed."""
        revision = "?"
        changed = False
        try:
            update = json.loads(payload)
            if not isinstance(update, dict):
                raise ValueError("not a JSON object")
            revision = str(update.get("revision", "?"))[:64]
            if update.get("schema_version") != wire.SCHEMA_VERSION:
                problems = ["schema_version: must be " + str(wire.SCHEMA_VERSION)]
            elif update.get("node_id") != self.node_id:
                problems = ["node_id: names another node"]
            elif revision == self.settings.get("revision"):
                problems = []  # already applied (a retained message heard again on reconnect)
            else:
                merged, problems = apply_update(self.settings, update.get("settings"))
                if not problems:
                    merged["revision"] = revision
                    self._apply(merged)
                    changed = True
                    # A heartbeat now, not on the old interval's schedule (60 s by default): it tells the
                    # gateway the new interval, and a shorter one holds from here.
                    self._heartbeat_at = min(self._heartbeat_at, now)
        except ValueError as exc:  # includes malformed JSON
            problems = ["unreadable update: " + str(exc)[:80]]
        self._result = wire.config_result(self.node_id, self.boot, now, revision, not problems, problems[:8])
        return changed

    def _apply(self, settings: "Settings") -> None:
        if self._save is not None:
            self._save(settings)  # first: a reset right after applying keeps the new settings
        self.settings = settings
        logic = self._logic
        if isinstance(logic, PanicButton):
            logic.long_press_ms = self._int("long_press_ms")
            logic.multi_window_ms = self._int("multi_window_ms")
        elif isinstance(logic, DoorContact):
            logic.held_open_ms = self._int("held_open_s") * 1000
        elif isinstance(logic, MotionSensor):
            logic.rearm_ms = self._int("rearm_s") * 1000
        for debouncer in self._debouncers[:1]:
            debouncer.confirm_ms = self._int("confirm_ms")
            debouncer.settle_ms = self._int("settle_ms")
