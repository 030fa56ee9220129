"""Presence across a fleet restart, with a real Mosquitto and real gateway agents.

The restarted fleet is the same service as before: the same database and the same MQTT client id,
so the broker hands it the persistent session it left, with everything queued meanwhile, and the
retained presence of every gateway when it subscribes.
"""

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fleet.service import FleetService
from fleet.settings import ApiSettings, BrokerSettings, FleetSettings, PresenceSettings, TimeSeriesSettings
from protocol.clock import utc_now_ms
from simulators.infra.mosquitto import MosquittoBroker
from tests.integration.conftest import eventually, fleet_api
from tests.integration.gateway_process import GatewayProcess, gateway_toml

pytestmark = pytest.mark.integration

VILLAGE = "xiyuan"
HEARTBEAT_S = 0.5
TIMEOUT_S = 3 * HEARTBEAT_S  # the fleet's missed_heartbeats x interval


class RestartableFleet:
    """One fleet service, stopped and started again on the same database and MQTT session."""

    def __init__(self, tmp_path: Path, broker: MosquittoBroker) -> None:
        self.settings = FleetSettings(
            environment="development",
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'fleet.db'}",
            broker=BrokerSettings(host=broker.host, port=broker.port, client_id="fleet-restarted"),
            api=ApiSettings(port=0),
            timeseries=TimeSeriesSettings(embedded_path=tmp_path / "timeseries.db", flush_interval_s=0.1),
            presence=PresenceSettings(missed_heartbeats=3, default_interval_s=HEARTBEAT_S, sweep_interval_s=0.1),
            registry_flush_interval_s=0.2,
        )
        self.service: FleetService | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> FleetService:
        service = self.service = FleetService(self.settings)
        self._stop = asyncio.Event()
        task = self._task = asyncio.create_task(service.run(self._stop))

        async def subscribed() -> bool:
            if task.done():
                task.result()
            return service.ready.is_set() and service.ingest.connected

        await eventually(subscribed, what="fleet start-up")
        return service

    async def stop(self) -> None:
        if self._task is not None:
            self._stop.set()
            await self._task
            self._task = None

    def api(self) -> httpx.AsyncClient:
        assert self.service is not None
        return fleet_api(self.service.http.url)


@pytest.fixture
async def fleet(tmp_path: Path, mosquitto: MosquittoBroker) -> AsyncIterator[RestartableFleet]:
    fleet = RestartableFleet(tmp_path, mosquitto)
    yield fleet
    await fleet.stop()


def _gateway_config(tmp_path: Path, broker: MosquittoBroker, gateway_id: str) -> Path:
    path = tmp_path / f"{gateway_id}.toml"
    path.write_text(
        gateway_toml(
            village_id=VILLAGE,
            gateway_id=gateway_id,
            broker_port=broker.port,
            state_dir=tmp_path / gateway_id,
            heartbeat_interval_s=HEARTBEAT_S,
        )
    )
    return path


async def _known_state(fleet: RestartableFleet, gateway_id: str) -> dict[str, Any] | None:
    async with fleet.api() as api:
        response = await api.get(f"/gateways/{gateway_id}")
    return response.json() if response.status_code == 200 else None


async def _state(fleet: RestartableFleet, gateway_id: str) -> dict[str, Any]:
    state = await _known_state(fleet, gateway_id)
    assert state is not None, f"the fleet does not know {gateway_id}"
    return state


async def _until_state(fleet: RestartableFleet, gateway_id: str, online: bool, reason: str, timeout_s: float) -> None:
    async def reached() -> bool:
        state = await _known_state(fleet, gateway_id)
        return state is not None and state["online"] == online and state["presence_reason"] == reason

    await eventually(reached, timeout_s=timeout_s, what=f"{gateway_id} {'online' if online else 'offline'} ({reason})")


def _went_online(caplog: pytest.LogCaptureFixture, gateway_id: str) -> list[str]:
    """The registry's log of presence transitions taking ``gateway_id`` online."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "fleet.gateways.registry"
        and record.getMessage().startswith(f"gateway {gateway_id} is online")
    ]


async def test_a_running_gateway_is_online_again_after_a_fleet_restart_once_heard_from(
    tmp_path: Path, mosquitto: MosquittoBroker, fleet: RestartableFleet
) -> None:
    await fleet.start()
    async with GatewayProcess(_gateway_config(tmp_path, mosquitto, "gw-alive")):
        await _until_state(fleet, "gw-alive", True, "connected", timeout_s=20)
        before = await _state(fleet, "gw-alive")

        await fleet.stop()
        restarted_ms = utc_now_ms()
        await fleet.start()

        await _until_state(fleet, "gw-alive", True, "connected", timeout_s=5)
        after = await _state(fleet, "gw-alive")
        # Online from what the restarted fleet heard, not from the row the old process left behind.
        assert after["presence_changed_ms"] >= restarted_ms > before["presence_changed_ms"]
        await asyncio.sleep(2 * TIMEOUT_S)  # and it stays online: its heartbeats keep coming
        assert (await _state(fleet, "gw-alive"))["online"]


async def test_a_gateway_that_died_while_the_fleet_was_down_is_offline_after_restart_never_online(
    tmp_path: Path, mosquitto: MosquittoBroker, fleet: RestartableFleet, caplog: pytest.LogCaptureFixture
) -> None:
    await fleet.start()
    async with GatewayProcess(_gateway_config(tmp_path, mosquitto, "gw-dies")) as gateway:
        await _until_state(fleet, "gw-dies", True, "connected", timeout_s=20)
        await fleet.stop()
        await asyncio.sleep(2 * HEARTBEAT_S)  # heartbeats queue up in the fleet's session meanwhile
        gateway.signal(signal.SIGKILL)  # the broker publishes its Last Will (retained)
        await asyncio.sleep(TIMEOUT_S + 1.0)  # the fleet stays down past the heartbeat timeout

        caplog.clear()
        with caplog.at_level(logging.INFO, logger="fleet.gateways.registry"):
            await fleet.start()
            await _until_state(fleet, "gw-dies", False, "lost", timeout_s=5)
            await asyncio.sleep(TIMEOUT_S)  # whatever was queued has been taken by now

        assert not (await _state(fleet, "gw-dies"))["online"]
        assert _went_online(caplog, "gw-dies") == []


async def test_a_gateway_recorded_but_never_connected_is_offline_never_connected_across_restarts(
    fleet: RestartableFleet,
) -> None:
    await fleet.start()
    async with fleet.api() as api:
        for path, body in (
            ("/counties", {"id": "anxi", "name": "Anxi County"}),
            ("/towns", {"id": "hutou", "county_id": "anxi", "name": "Hutou Town"}),
            ("/villages", {"id": VILLAGE, "town_id": "hutou", "name": "Xiyuan"}),
            ("/gateways", {"id": "gw-boxed", "village_id": VILLAGE, "name": "Still in its box"}),
        ):
            response = await api.post(path, json=body)
            assert response.status_code == 201, response.text

    first = await _state(fleet, "gw-boxed")
    await fleet.stop()
    await fleet.start()
    await asyncio.sleep(TIMEOUT_S)  # sweeps and flushes have run
    after_restart = await _state(fleet, "gw-boxed")

    for state in (first, after_restart):
        assert (state["online"], state["presence_reason"], state["last_seen_ms"]) == (False, "never_connected", None)
    assert fleet.service is not None
    assert fleet.service.health().gateways_online == 0
