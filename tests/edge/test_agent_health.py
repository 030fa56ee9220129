"""The health a gateway's heartbeat carries reports the firmware version each of its sensor nodes last sent.

The agent runs offline (its uplink points at a port nobody listens on) with a node device and a wired
button; the node's messages reach its adapter through a local bus as :class:`edge.local_bus.LocalBus`
hands them over. ``GatewayAgent.health()`` is what the heartbeat task sends as the heartbeat's health.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from edge.adapters.base import DeviceAdapter
from edge.adapters.node import NodeAdapter
from edge.adapters.simulated import SimulatedPanicButton
from edge.agent import GatewayAgent
from edge.devices import DeviceRunner, prebuilt
from edge.local_bus import NodeListener
from edge.settings import BrokerSettings, EdgeSettings
from protocol.gateway_config import DeviceKind, DeviceSpec, DriverKind
from protocol.node import NodeConfig, NodeHeartbeat, NodeInbound
from simulators.infra.ports import free_port
from tests.edge.helpers import LIVENESS_S, FakeClock

NOW_MS = 1_700_000_000_000
NODE = DeviceSpec(kind=DeviceKind.PANIC_BUTTON, id="node-panic-well", driver=DriverKind.NODE)
WIRED = DeviceSpec(kind=DeviceKind.PANIC_BUTTON, id="panic-1")


class NodeMessages:
    """The local bus as node adapters see it; the test hands it what a node publishes."""

    def __init__(self) -> None:
        self.listeners: dict[str, NodeListener] = {}
        self.attached = asyncio.Event()

    def attach(self, node_id: str, listener: NodeListener) -> None:
        self.listeners[node_id] = listener
        self.attached.set()

    def detach(self, node_id: str, listener: NodeListener) -> None:
        self.listeners.pop(node_id, None)

    def configure_node(self, config: NodeConfig) -> None:
        pass  # this node device pushes no settings

    def deliver(self, node_id: str, message: NodeInbound) -> None:
        self.listeners[node_id].on_node_message(message, NOW_MS)


def node_heartbeat(firmware: str) -> NodeHeartbeat:
    return NodeHeartbeat(node_id=NODE.id, boot=1, uptime_ms=5_000, interval_s=5.0, firmware=firmware)


@asynccontextmanager
async def running_agent(tmp_path: Path, adapters: list[DeviceAdapter]) -> AsyncIterator[GatewayAgent]:
    settings = EdgeSettings(
        environment="development",
        village_id="xiaohe",
        gateway_id="gw-xiaohe",
        broker=BrokerSettings(port=free_port()),  # nobody there: the agent runs on, offline
        state_dir=tmp_path / "state",
        devices=[adapter.spec for adapter in adapters],
    )
    agent = GatewayAgent(settings, prebuilt(adapters))
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))
    try:
        yield agent
    finally:
        stop.set()
        await running


async def test_a_nodes_firmware_version_is_in_the_gateways_next_heartbeat_health(tmp_path: Path) -> None:
    bus = NodeMessages()
    clock = FakeClock(NOW_MS)
    adapters: list[DeviceAdapter] = [NodeAdapter(NODE, clock, bus), SimulatedPanicButton(WIRED, clock)]
    async with running_agent(tmp_path, adapters) as agent:
        await asyncio.wait_for(bus.attached.wait(), LIVENESS_S)
        before = agent.health()

        bus.deliver(NODE.id, node_heartbeat("1.0.0"))
        after = agent.health()
        bus.deliver(NODE.id, node_heartbeat("1.1.0"))
        upgraded = agent.health()

    assert before.device_firmware == {}
    assert after.device_firmware == {NODE.id: "1.0.0"}  # the wired button has no firmware to report
    assert upgraded.device_firmware == {NODE.id: "1.1.0"}
    assert set(upgraded.adapters) == {NODE.id, WIRED.id}


class ClaimsFirmware:
    """An adapter whose device reports a version the heartbeat's contract cannot carry."""

    def __init__(self, spec: DeviceSpec, firmware: str | None) -> None:
        self._spec = spec
        self.firmware = firmware

    @property
    def spec(self) -> DeviceSpec:
        return self._spec

    async def run(self, emit: object) -> None:
        await asyncio.Event().wait()


@pytest.mark.parametrize("firmware", [None, "", "2.0 beta\n"], ids=["unknown", "empty", "unusable"])
async def test_a_device_without_a_usable_version_is_left_out_so_the_heartbeat_stays_valid(firmware: str | None) -> None:
    good = DeviceSpec(kind=DeviceKind.PIR_SENSOR, id="pir-1")
    odd = DeviceSpec(kind=DeviceKind.PIR_SENSOR, id="pir-2")
    adapters: list[DeviceAdapter] = [ClaimsFirmware(good, "3.2.1"), ClaimsFirmware(odd, firmware)]
    runner = DeviceRunner(prebuilt(adapters), lambda observation: None)
    runner.start([good, odd])
    try:
        assert runner.firmware() == {"pir-1": "3.2.1"}
    finally:
        await runner.close()
