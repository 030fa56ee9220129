"""A village's sensor nodes as the demo runs them: declared on its gateway, flashed, powered, stirred.

A village whose gateway has a local broker (the Pi's own Mosquitto) gets three nodes running the real
firmware (:class:`~simulators.nodes.node.SimulatedNode`): a battery-powered panic button by the well,
a door contact on the store room (mains-powered) and a battery-powered PIR in the yard.
:func:`node_devices` is what the gateway declares for them (driver ``node``): how it watches them,
and the firmware settings it pushes to them (a heartbeat every few seconds, so a demo sees the
batteries move); :class:`VillageNodes` flashes the nodes with a technician's factory settings, runs
them, and does to them what happens in a village:

- gestures: a panic press, a door opened and closed again, a PIR trigger, every press bouncing;
- faults: Wi-Fi lost for a few seconds (the broker sends the node's Last Will: "node silent"
  upstream, cleared when it is back, presses meanwhile kept and sent late), a battery sagging below
  the low-battery threshold for a while, a power cut (the node reboots; its unsent panic events come
  back from flash).

A node takes one gesture and one fault at a time, never a gesture while it is powered off (a press
then would be lost to the world, not to the firmware), and its button rests :data:`PRESS_REST_S`
between presses, so every simulated press is one press to the firmware (never merged into a
multi-press): the demo can account for every press it makes. A press while the node's Wi-Fi is
gone is the point: the firmware keeps it and sends it late.
"""

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from protocol.gateway_config import DeviceKind, DeviceSpec, DriverKind
from simulators.nodes.firmware import Firmware
from simulators.nodes.flash import factory_settings
from simulators.nodes.node import SimulatedNode
from simulators.nodes.village_broker import LocalAccess

logger = logging.getLogger(__name__)

HEARTBEAT_S: Final = 5
"""Pushed to the nodes by the gateway: a demo should see batteries and signal move within seconds."""
SILENT_AFTER_S: Final = 3.0 * HEARTBEAT_S
LOW_BATTERY_V: Final = 3.4
HEALTHY_BATTERY_V: Final = 3.9
SAGGED_BATTERY_V: Final = 3.2
BATTERY_SAG_S: Final = 3.0 * HEARTBEAT_S
WIFI_OUTAGE_S: Final = 4.0
PRESS_REST_S: Final = 2.0
"""Between two presses of one node's button: well past its multi-press window (0.6 s)."""
_BATTERY_ADC_PIN: Final = 34


class NodeFault(StrEnum):
    WIFI_LOST = "wifi_lost"
    BATTERY_LOW = "battery_low"
    POWER_CUT = "power_cut"


@dataclass(frozen=True)
class _Plan:
    device_id: str
    kind: DeviceKind
    grid: int
    battery: bool


_PLANS: Final = (
    _Plan("node-panic-well", DeviceKind.PANIC_BUTTON, 2, battery=True),
    _Plan("node-door-store", DeviceKind.DOOR_CONTACT, 1, battery=False),
    _Plan("node-pir-yard", DeviceKind.PIR_SENSOR, 1, battery=True),
)

_ON_BATTERY: Final = frozenset(plan.device_id for plan in _PLANS if plan.battery)
NODE_IDS: Final = tuple(plan.device_id for plan in _PLANS)
"""The ids of a village's nodes: its broker needs a login for each."""


def node_devices(village_id: str) -> list[DeviceSpec]:
    """The village's nodes as its gateway declares them."""
    specs = []
    for plan in _PLANS:
        params: dict[str, float | int | str | bool] = {"heartbeat_s": HEARTBEAT_S, "silent_after_s": SILENT_AFTER_S}
        if plan.battery:
            params["low_battery_v"] = LOW_BATTERY_V
        specs.append(
            DeviceSpec(
                kind=plan.kind,
                id=plan.device_id,
                driver=DriverKind.NODE,
                grid_id=f"{village_id}-grid-{plan.grid}",
                params=params,
            )
        )
    return specs


@dataclass(frozen=True)
class NodeStatus:
    """One node as the demo's view shows it."""

    node_id: str
    role: str
    link: str
    boot: int | None
    battery_v: float | None
    sent: int
    fault: str | None


class VillageNodes:
    """The nodes of ``village_id`` on its local broker (each logged in as itself when ``local`` has logins),
    flash under ``flash_root``."""

    def __init__(
        self,
        village_id: str,
        local: LocalAccess,
        flash_root: Path,
        firmware: Firmware,
        rng: random.Random,
    ) -> None:
        self.village_id = village_id
        self._rng = rng
        self.nodes: list[SimulatedNode] = []
        for index, plan in enumerate(_PLANS):
            extra: dict[str, object] = {"battery_adc_pin": _BATTERY_ADC_PIN} if plan.battery else {}
            extra |= local.node_login(plan.device_id)
            flashed = factory_settings(plan.device_id, plan.kind.value, local.gateway.host, local.gateway.port, **extra)
            self.nodes.append(
                SimulatedNode(
                    flash_root / village_id / plan.device_id,
                    flashed,
                    firmware=firmware,
                    seed=rng.randrange(1 << 30) + index,
                    battery_volts=HEALTHY_BATTERY_V,
                    reconnect_base_ms=500,
                    reconnect_cap_ms=5_000,
                )
            )
        self._gestures: dict[str, asyncio.Task[None]] = {}
        self._suffering: dict[str, tuple[NodeFault, asyncio.Task[None]]] = {}
        self._last_press: dict[str, float] = {}
        self.faults: dict[NodeFault, int] = dict.fromkeys(NodeFault, 0)

    async def start(self) -> None:
        for node in self.nodes:
            await node.start()

    async def stop(self) -> None:
        """Power every node off (each one's Last Will goes to the local broker)."""
        busy = [*self._gestures.values(), *(task for _, task in self._suffering.values())]
        for task in busy:
            task.cancel()
        for task in busy:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for node in self.nodes:
            await node.stop()

    # -- gestures ------------------------------------------------------------------------------------

    def pressable(self) -> list[SimulatedNode]:
        """Panic-button nodes free to be pressed now."""
        now = time.monotonic()
        return [
            node
            for node in self._gesture_free(DeviceKind.PANIC_BUTTON)
            if now - self._last_press.get(node.node_id, -PRESS_REST_S) >= PRESS_REST_S
        ]

    def press(self, node: SimulatedNode, hold_ms: int) -> None:
        """Press ``node``'s button for ``hold_ms`` (below its long press: one press, one alert)."""
        self._last_press[node.node_id] = time.monotonic()
        self._gesture(node, node.press(min(hold_ms, int(node.settings["long_press_ms"]) - 300)))

    def doors(self) -> list[SimulatedNode]:
        return self._gesture_free(DeviceKind.DOOR_CONTACT)

    def open_door_for(self, node: SimulatedNode, seconds: float) -> None:
        async def open_and_close() -> None:
            await node.open_door()
            await asyncio.sleep(seconds)
            await node.close_door()

        self._gesture(node, open_and_close())

    def motion_sensors(self) -> list[SimulatedNode]:
        return self._gesture_free(DeviceKind.PIR_SENSOR)

    def trigger_motion(self, node: SimulatedNode) -> None:
        self._gesture(node, node.motion(active_ms=self._rng.randint(300, 1500)))

    # -- faults --------------------------------------------------------------------------------------

    def injectable(self) -> list[SimulatedNode]:
        """Nodes free for a fault: running, in no fault and no gesture."""
        busy = self._gestures.keys() | self._suffering.keys()
        return [node for node in self.nodes if node.running and node.node_id not in busy]

    def inject_fault(self, node: SimulatedNode, fault: NodeFault | None = None) -> NodeFault:
        """Break ``node`` with ``fault``, by default one of the ways nodes break in a village (a low
        battery only if it has one)."""
        if fault is None:
            has_battery = node.node_id in _ON_BATTERY
            fault = self._rng.choice([f for f in NodeFault if has_battery or f is not NodeFault.BATTERY_LOW])
        self.faults[fault] += 1
        task = self._spawn(node, self._suffer(node, fault), self._suffering)
        self._suffering[node.node_id] = (fault, task)
        logger.info("node %s of %s: %s", node.node_id, self.village_id, fault.value)
        return fault

    @staticmethod
    async def _suffer(node: SimulatedNode, fault: NodeFault) -> None:
        match fault:
            case NodeFault.WIFI_LOST:
                await node.lose_wifi(WIFI_OUTAGE_S)
                await asyncio.sleep(WIFI_OUTAGE_S)
                await node.online.wait()
            case NodeFault.BATTERY_LOW:
                node.battery_volts = SAGGED_BATTERY_V
                try:
                    await asyncio.sleep(BATTERY_SAG_S)
                finally:
                    node.battery_volts = HEALTHY_BATTERY_V
            case NodeFault.POWER_CUT:
                await node.reset("power_on")
                await node.online.wait()

    # -- what the view shows -------------------------------------------------------------------------

    def status(self) -> list[NodeStatus]:
        statuses = []
        for node in self.nodes:
            if not node.running:
                link = "off"
            elif node.wifi_lost():
                link = "Wi-Fi lost"
            elif node.online.is_set():
                link = "online"
            else:
                link = "connecting"
            fault = self._suffering.get(node.node_id, (None, None))[0]
            statuses.append(
                NodeStatus(
                    node_id=node.node_id,
                    role=node.role,
                    link=link,
                    boot=node.boot if node.running else None,
                    battery_v=node.battery_volts if node.node_id in _ON_BATTERY else None,
                    sent=len(node.published),
                    fault=fault.value if fault is not None else None,
                )
            )
        return statuses

    # -- helpers -------------------------------------------------------------------------------------

    def _gesture_free(self, kind: DeviceKind) -> list[SimulatedNode]:
        """Nodes of ``kind`` in no gesture, running, and not in a power cut."""
        return [
            node
            for node in self.nodes
            if node.role == kind.value
            and node.running
            and node.node_id not in self._gestures
            and self._suffering.get(node.node_id, (None, None))[0] is not NodeFault.POWER_CUT
        ]

    def _gesture(self, node: SimulatedNode, action: Coroutine[Any, Any, None]) -> None:
        self._gestures[node.node_id] = self._spawn(node, action, self._gestures)

    def _spawn(
        self, node: SimulatedNode, action: Coroutine[Any, Any, None], running: dict[str, Any]
    ) -> "asyncio.Task[None]":
        """Run ``action`` on ``node``; ``running`` forgets it when it ends."""
        task = asyncio.get_running_loop().create_task(action, name=f"{self.village_id}/{node.node_id}")

        def done(_: "asyncio.Task[None]") -> None:
            running.pop(node.node_id, None)
            if not task.cancelled() and task.exception() is not None:
                logger.error("node %s of %s: %r", node.node_id, self.village_id, task.exception())

        task.add_done_callback(done)
        return task
