"""A camera adapter reading a recorded clip, through its detection pipeline, into the local rules."""

import asyncio
from pathlib import Path

import pytest

from edge.adapters.base import Measured
from edge.adapters.registry import build_adapter
from edge.envelope import EnvelopeStamper
from edge.rules import LocalRules
from edge.sequence import SequenceCounter
from protocol.clock import utc_now_ms
from protocol.detection import DetectionSettings, LineSettings
from protocol.gateway_config import DeviceKind, DeviceSpec, DriverKind
from protocol.messages import DeviceEvent, EventKind, Message
from simulators.scenes import Camera, crossing, write_clip


def _record_clip(path: Path) -> None:
    movers = [
        crossing("left_to_right", first_frame=30, lane_y=180),
        crossing("right_to_left", first_frame=90, lane_y=180),
    ]
    write_clip(path, Camera().frames(150, movers), fps=10.0)


async def test_people_crossing_the_entrance_become_counted_line_crossing_events(tmp_path: Path) -> None:
    clip = tmp_path / "entrance.avi"
    _record_clip(clip)
    spec = DeviceSpec(
        kind=DeviceKind.CHECKPOINT_CAMERA,
        id="cam-entrance",
        driver=DriverKind.CAMERA,
        params={"source": str(clip), "fps": 30.0},
        detection=DetectionSettings(line=LineSettings()),
    )
    sent: list[Message] = []
    counted: set[str] = set()
    both_directions = asyncio.Event()

    def count(measured: Measured) -> None:
        counted.add(measured.metric)
        if {"line_in", "line_out"} <= counted:
            both_directions.set()

    rules = LocalRules(
        EnvelopeStamper("gw-dongshan", SequenceCounter(tmp_path / "sequence"), utc_now_ms), sent.append, count
    )
    rules.use_devices([spec], [])
    adapter = build_adapter(spec, utc_now_ms, file_sources=True)  # a generated clip stands for the camera
    running = asyncio.create_task(adapter.run(rules.handle))
    try:
        await asyncio.wait_for(both_directions.wait(), 60)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)

    crossings = [m for m in sent if isinstance(m, DeviceEvent) and m.kind is EventKind.LINE_CROSSING]
    assert {c.evidence["direction"] for c in crossings} == {"in", "out"}
    assert all(c.device_id == "cam-entrance" for c in crossings)
    online = [m for m in sent if isinstance(m, DeviceEvent) and m.kind is EventKind.DEVICE_ONLINE]
    assert online, "the camera reports itself online with its first frame"


def test_detection_settings_are_for_cameras_only() -> None:
    with pytest.raises(ValueError, match="only cameras take detection settings"):
        DeviceSpec(kind=DeviceKind.DOOR_CONTACT, id="door-1", detection=DetectionSettings())
