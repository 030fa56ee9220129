"""A panic press travels gateway → Mosquitto → fleet → governance platform as exactly one case."""

import asyncio
from pathlib import Path

import pytest

from edge.adapters.simulated import SimulatedPanicButton
from edge.agent import GatewayAgent
from edge.devices import prebuilt
from edge.settings import BrokerSettings, EdgeSettings
from protocol.clock import utc_now_ms
from protocol.gateway_config import DeviceKind, DeviceSpec, GatewayConfig
from protocol.governance import CaseStatus
from protocol.messages import AlertKind, Severity
from simulators.infra.mosquitto import MosquittoBroker
from tests.integration.conftest import FleetFactory, Platform, eventually, fleet_api

pytestmark = pytest.mark.integration


async def test_panic_press_reaches_the_platform_as_exactly_one_case(
    tmp_path: Path, mosquitto: MosquittoBroker, platform: Platform, start_fleet: FleetFactory
) -> None:
    fleet = await start_fleet()
    settings = EdgeSettings(
        environment="development",
        village_id="dongshan",
        gateway_id="gw-dongshan",
        broker=BrokerSettings(port=mosquitto.port),
        state_dir=tmp_path / "gateway",
        config=GatewayConfig(heartbeat_interval_s=1.0, telemetry_interval_s=0.5),
        devices=[DeviceSpec(kind=DeviceKind.PANIC_BUTTON, id="panic-school", grid_id="dongshan-grid-2")],
    )
    button = SimulatedPanicButton(settings.devices[0], utc_now_ms)
    agent = GatewayAgent(settings, prebuilt([button]))
    stop = asyncio.Event()
    agent_task = asyncio.create_task(agent.run(stop))
    try:
        await eventually(lambda: _is_set(agent.uplink.connected), what="gateway connecting")
        button.press(held_ms=900)
        await eventually(lambda: _has_cases(platform, 1), what="the case reaching the platform")
        await asyncio.sleep(1.0)  # room for a duplicate to show up, if the pipeline made one
    finally:
        stop.set()
        await agent_task

    [case] = platform.ledger.cases
    assert platform.ledger.duplicate_requests == 0
    assert case.status is CaseStatus.RECEIVED
    assert case.request.village_id == "dongshan"
    assert case.request.gateway_id == "gw-dongshan"
    assert case.request.device_id == "panic-school"
    assert case.request.grid_id == "dongshan-grid-2"
    assert case.request.kind is AlertKind.PANIC
    assert case.request.severity is Severity.CRITICAL
    assert case.request.evidence == {"held_ms": 900}

    async with fleet_api(fleet.http.url) as api:
        [alert] = (await api.get("/alerts")).json()
    assert alert["id"] == str(case.alert_id)
    assert alert["delivery_state"] == "delivered"
    assert alert["case_id"] == case.case_id


async def _is_set(event: asyncio.Event) -> bool:
    return event.is_set()


async def _has_cases(platform: Platform, count: int) -> bool:
    return len(platform.ledger.cases) >= count
