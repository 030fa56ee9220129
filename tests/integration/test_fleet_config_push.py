"""Config push end to end: the fleet service and a real gateway agent on a real Mosquitto.

A layer put through the API reaches the gateway signed with the fleet's key, is applied, and the API
shows the gateway in sync; an override the gateway cannot apply shows as rejected with its error; a
change made while the fleet was down is published when it starts.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.adapters.registry import build_devices
from edge.agent import GatewayAgent
from edge.settings import BrokerSettings as EdgeBrokerSettings
from edge.settings import EdgeSettings
from fleet.access.roles import Actor, Role
from fleet.configs.push import ConfigPush
from fleet.configs.signing import ConfigSigner
from fleet.db.engine import create_engine, session_factory
from fleet.layers.scope import Scope
from fleet.service import FleetService
from fleet.settings import ApiSettings, BrokerSettings, FleetSettings, PresenceSettings
from protocol.clock import utc_now_ms
from protocol.gateway_config import DeviceKind, DeviceSpec, DriverKind, GatewayConfig
from simulators.infra.mosquitto import MosquittoBroker
from tests.integration.conftest import eventually, fleet_api, running_service

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::gpiozero.exc.PinFactoryFallback")]

VILLAGE = "hekou"
GATEWAY = "gw-hekou"
PANIC = {"kind": "panic_button", "id": "panic-square"}
NO_SUCH_PINS = DeviceSpec(kind=DeviceKind.PANIC_BUTTON, id="panic-wired", driver=DriverKind.GPIO, params={"pin": 17})


@asynccontextmanager
async def _fleet(tmp_path: Path, broker: MosquittoBroker, name: str) -> AsyncIterator[FleetService]:
    settings = FleetSettings(
        environment="development",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'fleet.db'}",
        broker=BrokerSettings(host=broker.host, port=broker.port, client_id=name),
        api=ApiSettings(port=0),
        timeseries={"embedded_path": tmp_path / "timeseries.db", "flush_interval_s": 0.1},
        presence=PresenceSettings(default_interval_s=1.0, sweep_interval_s=0.1),
        registry_flush_interval_s=0.2,
    )
    async with running_service(settings) as service:
        yield service


@asynccontextmanager
async def _gateway(tmp_path: Path, broker: MosquittoBroker, public_key_pem: str) -> AsyncIterator[GatewayAgent]:
    key_file = tmp_path / "etc" / "config-signing.pem"
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text(public_key_pem, encoding="ascii")
    settings = EdgeSettings(
        environment="development",
        village_id=VILLAGE,
        gateway_id=GATEWAY,
        broker=EdgeBrokerSettings(port=broker.port),
        state_dir=tmp_path / "gateway",
        config_signing_key=key_file,
        config=GatewayConfig(heartbeat_interval_s=1.0, telemetry_interval_s=0.5),
    )
    agent = GatewayAgent(settings, partial(build_devices, clock=utc_now_ms), probation_s=0.5)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        await eventually(lambda: _flag(agent.uplink.connected), what="gateway connecting")
        yield agent
    finally:
        stop.set()
        await task


async def _sites(api: httpx.AsyncClient) -> None:
    for path, body in (
        ("/counties", {"id": "anxi", "name": "Anxi"}),
        ("/towns", {"id": "hutou", "county_id": "anxi", "name": "Hutou"}),
        ("/villages", {"id": VILLAGE, "town_id": "hutou", "name": "Hekou"}),
        ("/gateways", {"id": GATEWAY, "village_id": VILLAGE}),
    ):
        response = await api.post(path, json=body)
        assert response.status_code == 201, response.text


async def _put(api: httpx.AsyncClient, path: str, overrides: dict[str, Any]) -> None:
    response = await api.put(path, json=overrides)
    assert response.status_code == 200, response.text


async def _sync(api: httpx.AsyncClient) -> dict[str, Any]:
    response = await api.get(f"/gateways/{GATEWAY}/config")
    assert response.status_code == 200, response.text
    sync: dict[str, Any] = response.json()["sync"]
    return sync


async def _reaches(api: httpx.AsyncClient, status: str, version: int, timeout_s: float = 10.0) -> dict[str, Any]:
    async def there() -> bool:
        sync = await _sync(api)
        return bool(sync["status"] == status and sync["desired_version"] == version)

    await eventually(there, timeout_s=timeout_s, what=f"gateway {status} at version {version}")
    return await _sync(api)


async def test_a_county_layer_is_applied_signed_and_an_override_the_gateway_cannot_run_shows_rejected(
    tmp_path: Path, mosquitto: MosquittoBroker
) -> None:
    async with _fleet(tmp_path, mosquitto, "fleet-a") as fleet, fleet_api(fleet.http.url) as api:
        await _sites(api)
        async with _gateway(tmp_path, mosquitto, fleet.configs.signing_public_key()) as agent:
            await _put(api, f"/config/layers/gateway/{GATEWAY}", {"devices": [PANIC]})
            await _put(api, "/config/layers/county/anxi", {"heartbeat_interval_s": 2.0})

            in_sync = await _reaches(api, "in_sync", 2)
            assert (in_sync["reported_version"], in_sync["error"]) == (2, None)
            assert agent.config.heartbeat_interval_s == 2.0
            assert set(agent.devices.adapters) == {"panic-square"}
            assert agent.config_updates.applied.key_id == fleet.configs.signer.key_id

            # A wired button on a machine without GPIO: the gateway rolls back and says why.
            wired = NO_SUCH_PINS.model_dump(mode="json", exclude_defaults=True)
            await _put(api, f"/config/layers/gateway/{GATEWAY}", {"devices": [PANIC, wired]})

            rejected = await _reaches(api, "rejected", 3, timeout_s=15)
            assert rejected["reported_version"] == 3
            assert "rolled back" in rejected["error"]
            assert "panic-wired" in rejected["error"]
            assert set(agent.devices.adapters) == {"panic-square"}
            assert agent.config_updates.applied.version == 2
            counts = (await api.get("/config/status", params={"county": "anxi"})).json()["counts"]
            assert counts["rejected"] == 1


async def test_a_change_made_while_the_fleet_was_down_is_published_when_it_starts(
    tmp_path: Path, mosquitto: MosquittoBroker
) -> None:
    async with _fleet(tmp_path, mosquitto, "fleet-a") as fleet, fleet_api(fleet.http.url) as api:
        await _sites(api)
        public_key_pem = fleet.configs.signing_public_key()
        await _put(api, "/config/layers/town/hutou", {"heartbeat_interval_s": 2.0, "devices": [PANIC]})
        await _reaches(api, "pending", 1)  # published (retained) before the fleet stops

    async with _gateway(tmp_path, mosquitto, public_key_pem) as agent:
        # The fleet is down: the change is accepted (as by an API call the publisher never got to), not published.
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'fleet.db'}")
        try:
            keys_kept = ConfigSigner.from_settings(
                FleetSettings(environment="development", database_url=str(engine.url))
            )
            push = ConfigPush(session_factory(engine), utc_now_ms, keys_kept)
            await push.put_layer(Actor("li-wei", Role.ADMIN), Scope.VILLAGE, VILLAGE, {"heartbeat_interval_s": 3.0})
            assert (await push.gateway_config(GATEWAY)).sync.status == "not_published"
        finally:
            await engine.dispose()
        # The retained version 1 reaches the gateway meanwhile; it is signed with the key the fleet keeps.
        await eventually(lambda: _applied(agent, 1), what="the retained version 1 applied")

        async with _fleet(tmp_path, mosquitto, "fleet-b") as fleet, fleet_api(fleet.http.url) as api:
            assert fleet.configs.signer.key_id == keys_kept.key_id
            await _reaches(api, "in_sync", 2)
            assert agent.config.heartbeat_interval_s == 3.0


async def test_a_change_made_during_a_broker_outage_is_published_when_the_broker_returns(
    tmp_path: Path, mosquitto: MosquittoBroker
) -> None:
    async with _fleet(tmp_path, mosquitto, "fleet-a") as fleet, fleet_api(fleet.http.url) as api:
        await _sites(api)
        async with _gateway(tmp_path, mosquitto, fleet.configs.signing_public_key()) as agent:
            await mosquitto.stop()
            await eventually(lambda: _down(fleet), what="the fleet noticing the outage")

            await _put(api, f"/config/layers/village/{VILLAGE}", {"heartbeat_interval_s": 4.0})
            await asyncio.sleep(1.0)
            assert (await _sync(api))["status"] == "not_published"

            await mosquitto.start()
            await _reaches(api, "in_sync", 1, timeout_s=30)
            assert agent.config.heartbeat_interval_s == 4.0


async def _down(fleet: FleetService) -> bool:
    return not fleet.downlink.connected


async def _applied(agent: GatewayAgent, version: int) -> bool:
    return agent.config_updates.applied.version == version


async def _flag(event: asyncio.Event) -> bool:
    return event.is_set()
