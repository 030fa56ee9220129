"""Commands from the fleet's API to a real gateway agent through a real Mosquitto, answered back through ingest:
diagnostics, a camera's snapshot listed and fetched as an audited JPEG, and a stopped gateway's command timing out
at its deadline (and the gateway refusing it as expired when it comes back, which the fleet keeps as a late answer).
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from edge.adapters.registry import build_devices
from edge.agent import GatewayAgent
from edge.settings import BrokerSettings, EdgeSettings
from edge.snapshots import SnapshotStore
from protocol.clock import utc_now_ms
from protocol.detection import DetectionSettings, LineSettings
from protocol.gateway_config import DeviceKind, DeviceSpec, DriverKind, GatewayConfig, SnapshotPolicy
from simulators.infra.mosquitto import MosquittoBroker
from simulators.scenes import Camera, crossing, write_clip
from tests.integration.conftest import FleetFactory, eventually, fleet_api

pytestmark = pytest.mark.integration

VILLAGE = "xiaxi"
GATEWAY = "gw-xiaxi"


@asynccontextmanager
async def _gateway(state_dir: Path, broker: MosquittoBroker, clip: Path | None = None) -> AsyncIterator[GatewayAgent]:
    """The real agent, with a simulated camera playing ``clip`` (a walker crossing its line) when given."""
    camera = DeviceSpec(
        kind=DeviceKind.CHECKPOINT_CAMERA,
        id="cam-bridge",
        driver=DriverKind.CAMERA,
        params={"source": str(clip), "fps": 30.0},
        detection=DetectionSettings(line=LineSettings()),
    )
    settings = EdgeSettings(
        environment="development",
        village_id=VILLAGE,
        gateway_id=GATEWAY,
        broker=BrokerSettings(port=broker.port),
        state_dir=state_dir,
        config=GatewayConfig(heartbeat_interval_s=1.0, snapshots=SnapshotPolicy(min_interval_s=60)),
        devices=[camera] if clip is not None else [],
    )
    snapshots = SnapshotStore(settings.state_dir / "snapshots", settings.config.snapshots, utc_now_ms)
    build = partial(build_devices, clock=utc_now_ms, snapshots=snapshots, file_sources=True)  # a clip for the camera
    agent = GatewayAgent(settings, build, snapshots=snapshots)
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))
    try:
        await eventually(lambda: _flag(agent.uplink.connected), what="gateway connecting")
        yield agent
    finally:
        stop.set()
        await asyncio.gather(running, return_exceptions=True)


async def _technician(fleet_url: str) -> httpx.AsyncClient:
    async with fleet_api(fleet_url) as admin:
        issued = await admin.post("/tokens", json={"name": "tech-wu", "role": "technician"})
        assert issued.status_code == 201, issued.text
    return httpx.AsyncClient(base_url=fleet_url, headers={"Authorization": f"Bearer {issued.json()['secret']}"})


async def _send(api: httpx.AsyncClient, name: str, **body: Any) -> httpx.Response:
    return await api.post(f"/gateways/{GATEWAY}/commands", json={"name": name, **body}, timeout=30)


async def test_diagnostics_and_a_snapshot_are_fetched_through_the_fleet(
    tmp_path: Path, mosquitto: MosquittoBroker, start_fleet: FleetFactory
) -> None:
    fleet = await start_fleet()
    frames = Camera().frames(120, [crossing("left_to_right", first_frame=20, lane_y=180)])
    clip = write_clip(tmp_path / "bridge.avi", frames, fps=10.0)
    async with _gateway(tmp_path / "gateway", mosquitto, clip) as agent, await _technician(fleet.http.url) as api:
        await eventually(lambda: _registered(api), what="the fleet registering the gateway")
        await eventually(lambda: _kept(agent), timeout_s=20, what="a snapshot kept for the crossing")
        [kept] = agent.snapshots.list()

        diagnosed = await _send(api, "diagnostics", wait=True, timeout_s=10)
        listed = await _send(api, "list_snapshots", wait=True, args={"device_id": "cam-bridge"})
        snapshot_id = str(listed.json()["result"]["snapshot_00"]).split()[0]
        reason = "case 2026-311: who crossed the bridge"
        fetched = await _send(api, "fetch_snapshot", wait=True, args={"snapshot_id": snapshot_id}, reason=reason)
        image = await api.get(fetched.json()["attachment"]["url"])
        history = (await api.get(f"/gateways/{GATEWAY}/commands")).json()
        shown = (await api.get(f"/commands/{diagnosed.json()['request_id']}")).json()
    async with fleet_api(fleet.http.url) as admin:
        audit = (await admin.get("/audit", params={"actor": "tech-wu", "target_type": "command"})).json()

    assert diagnosed.status_code == 200, diagnosed.text
    assert shown["state"] == "succeeded"
    assert shown["result"]["agent_version"]
    assert shown["result"]["adapters_running"] == 1
    assert listed.json()["state"] == "succeeded"
    assert snapshot_id == kept.id
    assert (fetched.status_code, fetched.json()["state"]) == (200, "succeeded")
    assert fetched.json()["attachment"]["content_type"] == "image/jpeg"
    assert image.headers["content-type"] == "image/jpeg"
    decoded = cv2.imdecode(np.frombuffer(image.content, dtype=np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None
    assert [row["name"] for row in history] == ["fetch_snapshot", "list_snapshots", "diagnostics"]
    actions = sorted(entry["action"] for entry in audit)
    assert actions == ["command.send", "command.send", "command.send", "snapshot.view"]
    assert any(entry["after"]["reason"] == reason for entry in audit if entry["action"] == "command.send")


async def test_a_command_to_a_stopped_gateway_times_out_at_its_deadline(
    tmp_path: Path, mosquitto: MosquittoBroker, start_fleet: FleetFactory
) -> None:
    """The broker keeps the command for the stopped gateway; the fleet times it out at its deadline; the gateway,
    back later, refuses it as expired, and the fleet keeps that answer without changing the outcome."""
    fleet = await start_fleet()
    async with await _technician(fleet.http.url) as api:
        async with _gateway(tmp_path / "gateway", mosquitto):
            await eventually(lambda: _registered(api), what="the fleet registering the gateway")

        waited = await _send(api, "diagnostics", wait=True, timeout_s=2)
        answered_at_ms = utc_now_ms()
        swept = await _send(api, "diagnostics", timeout_s=1)
        request_id = swept.json()["request_id"]
        await eventually(lambda: _in_state(api, request_id, "timed_out"), what="the sweeper timing it out")

        async with _gateway(tmp_path / "gateway", mosquitto):
            await eventually(lambda: _answered_late(api, request_id), what="the gateway's late refusal")
        late = (await api.get(f"/commands/{request_id}")).json()

    assert waited.status_code == 200
    outcome = waited.json()
    assert (outcome["state"], outcome["responded_ms"]) == ("timed_out", None)
    assert outcome["deadline_ms"] - outcome["created_ms"] == 2_000
    assert answered_at_ms >= outcome["deadline_ms"]
    assert (swept.status_code, swept.json()["state"]) == (202, "sent")
    assert late["state"] == "timed_out"
    assert late["error"].startswith("expired")


async def _registered(api: httpx.AsyncClient) -> bool:
    return (await api.get(f"/gateways/{GATEWAY}")).status_code == 200


async def _in_state(api: httpx.AsyncClient, request_id: str, state: str) -> bool:
    return bool((await api.get(f"/commands/{request_id}")).json()["state"] == state)


async def _answered_late(api: httpx.AsyncClient, request_id: str) -> bool:
    return bool((await api.get(f"/commands/{request_id}")).json()["answered_late"])


async def _kept(agent: GatewayAgent) -> bool:
    return agent.snapshots.count > 0


async def _flag(event: asyncio.Event) -> bool:
    return event.is_set()
