"""A village's gateway for the sensor-node tests: the real edge agent on the village's local broker."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

from edge.adapters.registry import build_devices
from edge.agent import GatewayAgent
from edge.local_bus import LocalBus
from edge.settings import BrokerSettings, EdgeSettings
from protocol.clock import utc_now_ms
from protocol.gateway_config import DeviceSpec, GatewayConfig
from simulators.infra.broker import Broker
from simulators.nodes.village_broker import local_access
from tests.integration.conftest import eventually


async def is_set(event: asyncio.Event) -> bool:
    return event.is_set()


@asynccontextmanager
async def village_gateway(
    village_id: str,
    gateway_id: str,
    uplink: BrokerSettings,
    local: Broker,
    state_dir: Path,
    devices: list[DeviceSpec],
) -> AsyncIterator[LocalBus]:
    """Run the agent with ``devices`` until the block ends; yield its local bus once it is connected (logged in
    as the gateway when ``local`` has logins)."""
    local_settings = local_access(local).gateway
    settings = EdgeSettings(
        environment="development",
        village_id=village_id,
        gateway_id=gateway_id,
        broker=uplink,
        local_broker=local_settings,
        state_dir=state_dir,
        config=GatewayConfig(heartbeat_interval_s=1.0, telemetry_interval_s=0.5),
        devices=devices,
    )
    bus = LocalBus(local_settings, village_id, gateway_id, utc_now_ms)
    agent = GatewayAgent(settings, partial(build_devices, clock=utc_now_ms, node_bus=bus), local_bus=bus)
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))
    try:
        await eventually(lambda: is_set(bus.connected), what="the gateway connecting to the local broker")
        yield bus
    finally:
        stop.set()
        await running
