"""The uplink rides out a broker outage, and a broker refusing its credentials without stopping the agent."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge.adapters.simulated import SimulatedPanicButton
from edge.agent import GatewayAgent
from edge.devices import prebuilt
from edge.faults import UPLINK, UPLINK_REFUSED
from edge.settings import BrokerSettings, EdgeSettings
from protocol.clock import utc_now_ms
from protocol.gateway_config import DeviceKind, DeviceSpec, GatewayConfig
from protocol.messages import AlertKind
from simulators.infra.mosquitto import MosquittoBroker
from tests.integration.conftest import FleetFactory, Platform, eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def mosquitto() -> AsyncIterator[MosquittoBroker]:
    """A broker that keeps sessions on disk, as a production one does: the fleet's persistent
    session (and the messages queued for it) must survive the broker's death."""
    async with MosquittoBroker(persistence=True) as broker:
        yield broker


def _gateway(tmp_path: Path, port: int) -> tuple[GatewayAgent, SimulatedPanicButton]:
    settings = EdgeSettings(
        environment="development",
        village_id="liujia",
        gateway_id="gw-liujia",
        broker=BrokerSettings(port=port, keepalive_s=5),
        state_dir=tmp_path / "gateway",
        config=GatewayConfig(heartbeat_interval_s=0.5, telemetry_interval_s=0.5),
        devices=[DeviceSpec(kind=DeviceKind.PANIC_BUTTON, id="panic-centre")],
    )
    button = SimulatedPanicButton(settings.devices[0], utc_now_ms)
    return GatewayAgent(settings, prebuilt([button])), button


async def test_a_broker_refusing_the_credentials_leaves_the_agent_running_and_says_why(tmp_path: Path) -> None:
    async with MosquittoBroker(allow_anonymous=False) as broker:
        agent, _ = _gateway(tmp_path, broker.port)
        stop = asyncio.Event()
        running = asyncio.create_task(agent.run(stop))
        try:

            async def refused() -> bool:
                return agent.faults.counts[UPLINK_REFUSED] >= 1

            await eventually(refused, what="the refusal")
            assert not running.done()
        finally:
            stop.set()
            await running
    assert "check its credentials" in (agent.faults.reason(UPLINK) or "")


async def test_a_press_during_a_broker_outage_becomes_a_case_when_the_broker_returns(
    tmp_path: Path, mosquitto: MosquittoBroker, platform: Platform, start_fleet: FleetFactory
) -> None:
    await start_fleet()
    agent, button = _gateway(tmp_path, mosquitto.port)
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))
    try:
        await eventually(lambda: _flag(agent.uplink.connected), what="gateway connecting")
        await mosquitto.stop()  # a planned outage: Mosquitto saves the sessions as it stops
        await eventually(lambda: _not(agent.uplink.connected), what="gateway noticing the outage")

        button.press()
        await asyncio.sleep(1.0)
        assert not any(case.request.kind == AlertKind.PANIC for case in platform.ledger.cases)
        await mosquitto.start()

        async def delivered() -> bool:  # the panic's case (the fleet may also open one for the gateway offline)
            return sum(case.request.kind == AlertKind.PANIC for case in platform.ledger.cases) == 1

        await eventually(delivered, timeout_s=30, what="the case after the broker came back")
        assert not running.done()
    finally:
        stop.set()
        await running
    assert agent.uplink.connects >= 2
    assert platform.ledger.duplicate_requests == 0


async def _flag(event: asyncio.Event) -> bool:
    return event.is_set()


async def _not(event: asyncio.Event) -> bool:
    return not event.is_set()
