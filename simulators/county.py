"""A simulated county: villages, each with a gateway running the real agent on simulated devices.

Every gateway runs :class:`edge.agent.GatewayAgent` over MQTT exactly as on a Pi; only the
devices are simulated (panic buttons, a door contact and a checkpoint camera per gateway). Villages
given a local broker (the Pi's own Mosquitto) also have sensor nodes on it running the real
MicroPython firmware (:mod:`simulators.nodes.village`), which their gateway hears through its
node adapters as it would in the field.
"""

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edge.adapters.actuators import Actuator
from edge.adapters.base import DeviceAdapter
from edge.adapters.registry import build_devices
from edge.adapters.simulated import SimulatedDoorContact, SimulatedPanicButton, build_simulated
from edge.agent import GatewayAgent
from edge.devices import DeviceBuilder, prebuilt
from edge.local_bus import LocalBus
from edge.settings import BrokerSettings, EdgeSettings
from protocol.clock import utc_now_ms
from protocol.gateway_config import DeviceKind, DeviceSpec, DriverKind, GatewayConfig
from simulators.infra.broker import Broker
from simulators.nodes.firmware import load_firmware
from simulators.nodes.village import NodeFault, VillageNodes, node_devices
from simulators.nodes.village_broker import local_access

logger = logging.getLogger(__name__)

VILLAGE_NAMES = (
    "dongshan", "xihe", "nanping", "beiling", "shangyuan", "xiaqiao", "qingshui", "huangtu",
    "liujia", "zhangzhuang", "baima", "shiqiao", "taoyuan", "yangliu", "jinsha", "longtan",
)  # fmt: skip


def village_ids(count: int) -> list[str]:
    """``count`` village ids: real-sounding names first, numbered once the names run out."""
    names = [VILLAGE_NAMES[i % len(VILLAGE_NAMES)] for i in range(count)]
    return [name if i < len(VILLAGE_NAMES) else f"{name}-{i // len(VILLAGE_NAMES) + 1}" for i, name in enumerate(names)]


def gateway_devices(village_id: str, camera_period_s: float) -> list[DeviceSpec]:
    return [
        DeviceSpec(kind=DeviceKind.PANIC_BUTTON, id="panic-centre", grid_id=f"{village_id}-grid-1"),
        DeviceSpec(kind=DeviceKind.PANIC_BUTTON, id="panic-school", grid_id=f"{village_id}-grid-2"),
        DeviceSpec(kind=DeviceKind.DOOR_CONTACT, id="door-office", grid_id=f"{village_id}-grid-1"),
        DeviceSpec(
            kind=DeviceKind.CHECKPOINT_CAMERA,
            id="cam-entrance",
            params={"period_s": camera_period_s, "per_minute": 12.0},
        ),
    ]


@dataclass
class SimulatedGateway:
    settings: EdgeSettings
    agent: GatewayAgent
    panic_buttons: list[SimulatedPanicButton]
    doors: list[SimulatedDoorContact]
    nodes: VillageNodes | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: "asyncio.Task[None] | None" = None

    @property
    def gateway_id(self) -> str:
        return self.settings.gateway_id


class SimulatedCounty:
    def __init__(
        self,
        villages: int,
        broker: BrokerSettings,
        state_root: Path,
        *,
        heartbeat_interval_s: float = 2.0,
        telemetry_interval_s: float = 1.0,
        seed: int = 0,
        local_brokers: Sequence[Broker] = (),
    ) -> None:
        """``local_brokers`` are running brokers, one per village from the first: those villages get sensor nodes,
        each logged in as itself when the broker has logins (a ``VillageMosquitto``)."""
        self._rng = random.Random(seed)
        self.gateways: list[SimulatedGateway] = []
        config = GatewayConfig(heartbeat_interval_s=heartbeat_interval_s, telemetry_interval_s=telemetry_interval_s)
        firmware = load_firmware() if local_brokers else None
        for index, village_id in enumerate(village_ids(villages)):
            local = local_access(local_brokers[index]) if index < len(local_brokers) else None
            wired = gateway_devices(village_id, camera_period_s=telemetry_interval_s)
            settings = EdgeSettings(
                environment="development",
                village_id=village_id,
                gateway_id=f"gw-{village_id}",
                broker=broker,
                local_broker=local.gateway if local is not None else None,
                state_dir=state_root / village_id,
                config=config,
                devices=wired + (node_devices(village_id) if local is not None else []),
            )
            devices = [build_simulated(spec, utc_now_ms) for spec in wired]
            nodes = bus = None
            if local is not None and firmware is not None:
                bus = LocalBus(local.gateway, village_id, settings.gateway_id, utc_now_ms)
                nodes = VillageNodes(village_id, local, state_root / "nodes", firmware, self._rng)
            self.gateways.append(
                SimulatedGateway(
                    settings,
                    GatewayAgent(settings, _device_builder(devices, bus), local_bus=bus),
                    [d for d in devices if isinstance(d, SimulatedPanicButton)],
                    [d for d in devices if isinstance(d, SimulatedDoorContact)],
                    nodes,
                )
            )

    @property
    def villages_with_nodes(self) -> list[VillageNodes]:
        return [gateway.nodes for gateway in self.gateways if gateway.nodes is not None]

    async def start(self) -> None:
        for gateway in self.gateways:
            gateway.task = asyncio.create_task(gateway.agent.run(gateway.stop), name=f"agent-{gateway.gateway_id}")
        for nodes in self.villages_with_nodes:
            await nodes.start()

    async def stop(self) -> None:
        """Stop every agent cleanly (each announces its shutdown) and wait for them; then power the nodes off."""
        for gateway in self.gateways:
            gateway.stop.set()
        tasks = [gateway.task for gateway in self.gateways if gateway.task is not None]
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, Exception):
                logger.error("a simulated gateway failed: %r", result)
        for nodes in self.villages_with_nodes:
            await nodes.stop()

    def press_random_panic(self) -> tuple[SimulatedGateway, str]:
        """Press a panic button, wired or on a node, free to be pressed; its gateway and device id."""
        gateway = self._rng.choice(self.gateways)
        wired = gateway.panic_buttons
        on_nodes = [(gateway.nodes, node) for node in gateway.nodes.pressable()] if gateway.nodes is not None else []
        pick = self._rng.randrange(len(wired) + len(on_nodes))
        hold_ms = self._rng.randint(80, 1500)
        if pick < len(wired):
            wired[pick].press(held_ms=hold_ms)
            return gateway, wired[pick].spec.id
        nodes, node = on_nodes[pick - len(wired)]
        nodes.press(node, hold_ms=hold_ms)
        return gateway, node.node_id

    def toggle_random_door(self) -> None:
        """Open a door, wired or on a node, and close it again a few seconds later."""
        gateway = self._rng.choice(self.gateways)
        seconds = self._rng.uniform(1, 5)
        nodes = gateway.nodes
        node_doors = nodes.doors() if nodes is not None else []
        if nodes is not None and node_doors and self._rng.random() < 0.5:
            nodes.open_door_for(self._rng.choice(node_doors), seconds)
            return
        door = self._rng.choice(gateway.doors)
        door.open()
        asyncio.get_running_loop().call_later(seconds, door.close)

    def trigger_random_motion(self) -> None:
        """Someone walks past a PIR node, if a village has one free."""
        sensors = [(nodes, sensor) for nodes in self.villages_with_nodes for sensor in nodes.motion_sensors()]
        if sensors:
            nodes, sensor = self._rng.choice(sensors)
            nodes.trigger_motion(sensor)

    def break_random_node(self) -> tuple[str, str, NodeFault] | None:
        """Break a node in some village (see :class:`VillageNodes`); its village, id and fault, if any was free."""
        candidates = [(nodes, node) for nodes in self.villages_with_nodes for node in nodes.injectable()]
        if not candidates:
            return None
        nodes, node = self._rng.choice(candidates)
        return nodes.village_id, node.node_id, nodes.inject_fault(node)


def _device_builder(simulated: Sequence[DeviceAdapter], bus: LocalBus | None) -> DeviceBuilder:
    """The simulated devices built here, and node devices heard on ``bus`` built as on a real gateway."""
    fixed = prebuilt(simulated)

    def build(specs: Sequence[DeviceSpec]) -> tuple[list[DeviceAdapter], list[Actuator]]:
        adapters, sirens = fixed([spec for spec in specs if spec.driver is not DriverKind.NODE])
        nodes, _ = build_devices([spec for spec in specs if spec.driver is DriverKind.NODE], utc_now_ms, node_bus=bus)
        return adapters + nodes, sirens

    return build
