"""What happens in the demo's county while it runs: presses, doors, passers-by and node faults, on a cadence."""

import logging
from collections import Counter

from simulators.county import SimulatedCounty

logger = logging.getLogger(__name__)

_FIRST_PRESS_AFTER_S = 2.0
"""Let the gateways connect first."""


class Stimulus:
    """Every ``press_every_s`` a panic press somewhere (a wired button or a node's), a door opened for a
    few seconds and someone walking past a PIR node; every ``fault_every_s`` (0: never) a node fault.

    Counts what it did, so the demo can account for every press it made.
    """

    def __init__(self, county: SimulatedCounty, press_every_s: float, fault_every_s: float, started: float) -> None:
        self._county = county
        self._press_every_s = press_every_s
        self._fault_every_s = fault_every_s
        self._next_press = started + min(press_every_s, _FIRST_PRESS_AFTER_S)
        self._next_fault = started + fault_every_s
        self._node_ids = {(v.village_id, node.node_id) for v in county.villages_with_nodes for node in v.nodes}
        self.presses = 0
        self.node_presses = 0
        self.faults: Counter[str] = Counter()

    @property
    def sensor_nodes(self) -> int:
        return len(self._node_ids)

    def tick(self, now: float) -> None:
        """Do whatever is due at ``now`` (monotonic seconds)."""
        if now >= self._next_press:
            gateway, device_id = self._county.press_random_panic()
            self.presses += 1
            self.node_presses += (gateway.settings.village_id, device_id) in self._node_ids
            self._county.toggle_random_door()
            self._county.trigger_random_motion()
            self._next_press = now + self._press_every_s
        if self._fault_every_s > 0 and now >= self._next_fault:
            broken = self._county.break_random_node()
            if broken is not None:
                self.faults[broken[2].value] += 1
            self._next_fault = now + self._fault_every_s
