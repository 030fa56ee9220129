"""A simulated county: villages, each with a gateway running the real agent on simulated devices.

Every gateway runs :class:`edge.agent.GatewayAgent` over MQTT exactly as on a Pi; only the
devices are simulated (panic buttons, a door contact and a checkpoint camera per gateway).
"""

import asyncio
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

from edge.adapters.simulated import SimulatedDoorContact, SimulatedPanicButton, build_simulated
from edge.agent import GatewayAgent
from edge.devices import prebuilt
from edge.settings import BrokerSettings, EdgeSettings
from protocol.clock import utc_now_ms
from protocol.gateway_config import DeviceKind, DeviceSpec, GatewayConfig

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
    ) -> None:
        self._rng = random.Random(seed)
        self.gateways: list[SimulatedGateway] = []
        config = GatewayConfig(heartbeat_interval_s=heartbeat_interval_s, telemetry_interval_s=telemetry_interval_s)
        for village_id in village_ids(villages):
            settings = EdgeSettings(
                village_id=village_id,
                gateway_id=f"gw-{village_id}",
                broker=broker,
                state_dir=state_root / village_id,
                config=config,
                devices=gateway_devices(village_id, camera_period_s=telemetry_interval_s),
            )
            devices = [build_simulated(spec, utc_now_ms) for spec in settings.devices]
            self.gateways.append(
                SimulatedGateway(
                    settings,
                    GatewayAgent(settings, prebuilt(devices)),
                    [d for d in devices if isinstance(d, SimulatedPanicButton)],
                    [d for d in devices if isinstance(d, SimulatedDoorContact)],
                )
            )

    async def start(self) -> None:
        for gateway in self.gateways:
            gateway.task = asyncio.create_task(gateway.agent.run(gateway.stop), name=f"agent-{gateway.gateway_id}")

    async def stop(self) -> None:
        """Stop every agent cleanly (each announces its shutdown) and wait for them."""
        for gateway in self.gateways:
            gateway.stop.set()
        tasks = [gateway.task for gateway in self.gateways if gateway.task is not None]
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, Exception):
                logger.error("a simulated gateway failed: %r", result)

    def press_random_panic(self) -> tuple[SimulatedGateway, SimulatedPanicButton]:
        gateway = self._rng.choice(self.gateways)
        button = self._rng.choice(gateway.panic_buttons)
        button.press(held_ms=self._rng.randint(80, 1500))
        return gateway, button

    def toggle_random_door(self) -> None:
        door = self._rng.choice(self._rng.choice(self.gateways).doors)
        door.open()
        asyncio.get_running_loop().call_later(self._rng.uniform(1, 5), door.close)
