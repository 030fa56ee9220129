"""Commands through a real Mosquitto: a camera's evidence snapshot is listed and fetched only by an audited request.

The gateway keeps the frame behind a detection on its own disk; it leaves only in answer to a
``fetch_snapshot`` naming who asks and why, every attempt is in the gateway's audit log, and each
granted fetch is reported upstream as a ``snapshot_fetched`` event. ``restart_agent`` stops the
agent so that systemd starts it again.
"""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import aiomqtt
import cv2
import numpy as np
import pytest

from edge.adapters.registry import build_devices
from edge.agent import GatewayAgent
from edge.commands import AUDIT_LOG_NAME
from edge.errors import RestartRequestedError
from edge.settings import BrokerSettings, EdgeSettings
from edge.snapshots import SnapshotStore
from protocol.clock import utc_now_ms
from protocol.codec import encode
from protocol.detection import DetectionSettings, LineSettings
from protocol.gateway_config import DeviceKind, DeviceSpec, DriverKind, GatewayConfig, SnapshotPolicy
from protocol.messages import Command, CommandName, CommandResponse, DeviceEvent, EventKind
from protocol.topics import Channel, gateway_topic
from simulators.infra.mosquitto import MosquittoBroker
from simulators.scenes import Camera, crossing, write_clip
from tests.integration.conftest import eventually
from tests.integration.recorder import Recorder

pytestmark = pytest.mark.integration

VILLAGE = "shanwan"
GATEWAY = "gw-shanwan"


def _camera(clip: Path) -> DeviceSpec:
    return DeviceSpec(
        kind=DeviceKind.CHECKPOINT_CAMERA,
        id="cam-north-gate",
        driver=DriverKind.CAMERA,
        params={"source": str(clip), "fps": 30.0},
        detection=DetectionSettings(line=LineSettings()),
    )


@asynccontextmanager
async def _gateway(tmp_path: Path, broker: MosquittoBroker) -> AsyncIterator[tuple[GatewayAgent, asyncio.Task[None]]]:
    clip = write_clip(tmp_path / "north-gate.avi", Camera().frames(120, [crossing("left_to_right", first_frame=20,
                      lane_y=180)]), fps=10.0)  # fmt: skip
    settings = EdgeSettings(
        environment="development",
        village_id=VILLAGE,
        gateway_id=GATEWAY,
        broker=BrokerSettings(port=broker.port),
        state_dir=tmp_path / "gateway",
        config=GatewayConfig(heartbeat_interval_s=1.0, snapshots=SnapshotPolicy(min_interval_s=60)),
        devices=[_camera(clip)],
    )
    snapshots = SnapshotStore(settings.state_dir / "snapshots", settings.config.snapshots, utc_now_ms)
    build = partial(build_devices, clock=utc_now_ms, snapshots=snapshots, file_sources=True)  # a clip for the camera
    agent = GatewayAgent(settings, build, snapshots=snapshots)
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))
    try:
        await eventually(lambda: _flag(agent.uplink.connected), what="gateway connecting")
        yield agent, running
    finally:
        stop.set()
        await asyncio.gather(running, return_exceptions=True)


async def _command(broker: MosquittoBroker, name: CommandName, **fields: object) -> uuid.UUID:
    request_id = uuid.uuid4()
    command = Command.model_validate(
        {
            "gateway_id": GATEWAY,
            "seq": 1,
            "event_id": uuid.uuid4(),
            "ts": utc_now_ms(),
            "request_id": request_id,
            "name": name,
            **fields,
        }
    )
    async with aiomqtt.Client(broker.host, broker.port, identifier=f"test-fleet-{request_id}") as client:
        await client.publish(gateway_topic(VILLAGE, GATEWAY, Channel.COMMAND), encode(command), qos=1)
    return request_id


def _response(recorder: Recorder, request_id: uuid.UUID) -> CommandResponse | None:
    return next(
        (i.message for i in recorder.arrivals
         if isinstance(i.message, CommandResponse) and i.message.request_id == request_id),
        None,
    )  # fmt: skip


async def test_a_snapshot_is_fetched_only_by_an_audited_request(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    channels = [Channel.COMMAND_RESPONSE, Channel.EVENT]
    async with (
        Recorder(mosquitto.host, mosquitto.port, channels) as recorder,
        _gateway(tmp_path, mosquitto) as (
            agent,
            _,
        ),
    ):
        await eventually(lambda: _kept(agent), timeout_s=20, what="a snapshot kept for the crossing")
        [kept] = agent.snapshots.list()
        assert kept.device_id == "cam-north-gate"
        assert kept.reason in {"motion", "line_crossing"}  # the first detection of the walker

        listed = await _command(mosquitto, CommandName.LIST_SNAPSHOTS)
        anonymous = await _command(mosquitto, CommandName.FETCH_SNAPSHOT, args={"snapshot_id": kept.id})
        audited = await _command(
            mosquitto,
            CommandName.FETCH_SNAPSHOT,
            args={"snapshot_id": kept.id},
            requested_by="duty-officer-li",
            reason="case 2026-1123: who crossed at the north gate",
        )
        for request in (listed, anonymous, audited):
            await eventually(partial(_answered, recorder, request), what=f"an answer to {request}")

    listing = _response(recorder, listed)
    assert listing is not None
    assert listing.ok
    assert listing.result["count"] == 1
    assert any(kept.id in str(value) for value in listing.result.values())
    assert listing.attachment is None

    refused = _response(recorder, anonymous)
    assert refused is not None
    assert not refused.ok
    assert refused.attachment is None
    assert refused.error is not None

    granted = _response(recorder, audited)
    assert granted is not None
    assert granted.ok
    assert granted.attachment is not None
    image = cv2.imdecode(np.frombuffer(granted.attachment, dtype=np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    assert image.shape[2] == 3

    [fetched] = [i.message for i in recorder.arrivals
                 if isinstance(i.message, DeviceEvent) and i.message.kind is EventKind.SNAPSHOT_FETCHED]  # fmt: skip
    assert fetched.evidence["snapshot_id"] == kept.id
    assert fetched.evidence["requested_by"] == "duty-officer-li"

    audit = [json.loads(line) for line in (tmp_path / "gateway" / AUDIT_LOG_NAME).read_text().splitlines()]
    assert len(audit) == 2  # the refused attempt and the granted fetch
    assert any("duty-officer-li" in json.dumps(entry) for entry in audit)


async def test_restart_agent_stops_the_agent_for_its_supervisor_to_start_again(
    tmp_path: Path, mosquitto: MosquittoBroker
) -> None:
    recording = Recorder(mosquitto.host, mosquitto.port, [Channel.COMMAND_RESPONSE])
    async with recording as recorder, _gateway(tmp_path, mosquitto) as (_, running):
        request = await _command(mosquitto, CommandName.RESTART_AGENT)
        await eventually(lambda: _done(running), what="the agent stopping")
        with pytest.raises(RestartRequestedError):
            await running
        await eventually(lambda: _answered(recorder, request), what="the acknowledgement")

    acknowledged = _response(recorder, request)
    assert acknowledged is not None
    assert acknowledged.ok


async def _kept(agent: GatewayAgent) -> bool:
    return agent.snapshots.count > 0


async def _answered(recorder: Recorder, request_id: uuid.UUID) -> bool:
    return _response(recorder, request_id) is not None


async def _done(task: "asyncio.Task[None]") -> bool:
    return task.done()


async def _flag(event: asyncio.Event) -> bool:
    return event.is_set()
