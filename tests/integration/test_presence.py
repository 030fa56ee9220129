"""The fleet sees a gateway online, and offline within the heartbeat timeout when it dies."""

import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulators.infra.mosquitto import MosquittoBroker
from tests.integration.conftest import FleetFactory, eventually, fleet_api
from tests.integration.gateway_process import GatewayProcess, gateway_toml

pytestmark = pytest.mark.integration

HEARTBEAT_S = 0.5
TIMEOUT_S = 3 * HEARTBEAT_S  # the fleet's missed_heartbeats x interval


async def _gateway(api: httpx.AsyncClient, gateway_id: str) -> dict[str, Any] | None:
    response = await api.get(f"/gateways/{gateway_id}")
    return response.json() if response.status_code == 200 else None


def _write_config(tmp_path: Path, broker: MosquittoBroker) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(
        gateway_toml(
            village_id="xihe",
            gateway_id="gw-xihe",
            broker_port=broker.port,
            state_dir=tmp_path / "state",
            heartbeat_interval_s=HEARTBEAT_S,
        )
    )
    return path


@pytest.mark.parametrize(
    ("death", "reason"),
    [
        (signal.SIGKILL, "lost"),  # socket closed without DISCONNECT: the broker publishes the Last Will
        (signal.SIGSTOP, "heartbeat_timeout"),  # frozen: socket open, heartbeats stop
    ],
)
async def test_gateway_goes_offline_within_the_heartbeat_timeout_when_it_dies(
    tmp_path: Path, mosquitto: MosquittoBroker, start_fleet: FleetFactory, death: signal.Signals, reason: str
) -> None:
    fleet = await start_fleet(heartbeat_interval_s=HEARTBEAT_S)
    async with (
        fleet_api(fleet.http.url) as api,
        GatewayProcess(_write_config(tmp_path, mosquitto)) as gw,
    ):

        async def online() -> bool:
            state = await _gateway(api, "gw-xihe")
            return state is not None and state["online"] and state["health"] is not None

        await eventually(online, timeout_s=20, what="gateway online with health")

        async def full_health() -> bool:
            state = await _gateway(api, "gw-xihe")
            return state is not None and state["health"]["uplink_rtt_ms"] is not None

        await eventually(full_health, what="a heartbeat reporting the uplink's round trip")
        health = (await _gateway(api, "gw-xihe") or {})["health"]
        assert health["adapters"] == {"cam-entrance": "running"}
        assert health["buffer_depth"] >= 0
        assert health["dropped"] == {}

        gw.signal(death)

        async def offline() -> bool:
            state = await _gateway(api, "gw-xihe")
            return state is not None and not state["online"]

        # Offline within the heartbeat timeout; the slack covers the sweep, the registry write and a busy CI box.
        await eventually(offline, timeout_s=TIMEOUT_S + 2.0, what=f"offline after {death.name}")
        state = await _gateway(api, "gw-xihe")
        assert state is not None
        assert state["presence_reason"] == reason
        assert state["village_id"] == "xihe"
