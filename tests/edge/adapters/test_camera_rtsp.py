"""The camera adapter against a real RTSP server (GStreamer's, RTP over TCP): the configured rate analysed
from a 10 and a 25 fps stream, a frozen server reported offline within ``read_timeout_s`` plus a second,
and a killed server offline, then online again once it is back."""

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.adapters.base import Detected, DeviceStatus, Observation
from edge.adapters.camera import CameraAdapter
from edge.adapters.camera_source import Frame
from edge.adapters.registry import detection_sink
from protocol.clock import utc_now_ms
from protocol.detection import DetectionSettings
from protocol.messages import EventKind
from simulators.infra.rtsp import Credentials, Mount
from simulators.video_clips import Clip, entrance_clip
from tests.edge.adapters.test_camera import camera_spec
from tests.rtsp_server import RtspServerFactory, require_rtsp_server

READ_TIMEOUT_S = 2.0
LIVENESS_S = 30.0


class Frames:
    """A frame sink noting when each analysed frame arrived (monotonic s); and the statuses emitted."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.statuses: list[tuple[float, DeviceStatus]] = []

    def sink(self, frame: Frame, ts: int) -> list[Observation]:
        self.times.append(time.monotonic())
        return []

    def emit(self, observation: Observation) -> None:
        if isinstance(observation, DeviceStatus):
            self.statuses.append((time.monotonic(), observation))

    async def until(self, what: str, check: Callable[["Frames"], bool]) -> None:
        async with asyncio.timeout(LIVENESS_S):
            while not check(self):  # noqa: ASYNC110 - the sink runs in the capture thread: polled
                await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_rtsp_server()
    return tmp_path_factory.mktemp("camera-clips")


def clip(clips: Path, fps: int) -> Clip:
    path = clips / f"entrance-{fps}.mp4"
    return entrance_clip(path, count_in=1, fps=fps, lead_in_s=1.0, tail_s=1.0)


def adapter(url: str, frames: Frames, fps: float) -> CameraAdapter:
    spec = camera_spec(url, fps=fps, read_timeout_s=READ_TIMEOUT_S, backoff_min_s=0.2, backoff_max_s=1.0)
    return CameraAdapter(spec, utc_now_ms, frame_sink=frames.sink)


@pytest.mark.parametrize(("stream_fps", "fps"), [(10, 2.0), (10, 5.0), (25, 10.0)])
async def test_the_configured_rate_is_analysed_from_a_live_stream(
    rtsp_server: RtspServerFactory, clips: Path, stream_fps: int, fps: float
) -> None:
    server = rtsp_server([Mount("/cam", clip(clips, stream_fps).path, playback="loop")])
    frames = Frames()
    camera = adapter(server.url("/cam"), frames, fps)
    task = asyncio.create_task(camera.run(frames.emit))
    try:
        await frames.until("5 frames", lambda f: len(f.times) >= 5)
        started, count = time.monotonic(), len(frames.times)
        camera.health()  # the heartbeat's rate counts from here
        await asyncio.sleep(3.0)
        rate = (len(frames.times) - count) / (time.monotonic() - started)
        health = camera.health()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert rate == pytest.approx(fps, rel=0.2), f"{rate:.2f} frames/s analysed, {fps} configured"
    assert health.analysed_fps == pytest.approx(fps, rel=0.2), "the heartbeat tells the rate analysed"
    assert health.stream_fps == stream_fps
    assert health.last_frame_age_s is not None
    assert health.last_frame_age_s < 1.0
    assert (health.decode_errors, health.reconnects, health.reason) == (0, 0, None)


async def test_a_frozen_stream_is_offline_within_the_read_timeout_and_online_when_it_thaws(
    rtsp_server: RtspServerFactory, clips: Path
) -> None:
    server = rtsp_server([Mount("/cam", clip(clips, 25).path, playback="loop")])
    frames = Frames()
    task = asyncio.create_task(adapter(server.url("/cam"), frames, 5.0).run(frames.emit))
    try:
        await frames.until("online", lambda f: any(s.online for _, s in f.statuses))
        await asyncio.to_thread(server.freeze)
        await frames.until("offline", lambda f: not f.statuses[-1][1].online)
        offline_at, status = frames.statuses[-1]
        await asyncio.to_thread(server.thaw)
        await frames.until("online again", lambda f: f.statuses[-1][1].online)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    # whichever notices first: the freeze check, or FFmpeg's own read timeout
    assert "froze" in status.reason or "timed out" in status.reason
    # the frames buffered before the freeze still arrive: the bound counts from the last frame analysed
    last_frame = max(at for at in frames.times if at < offline_at)
    assert offline_at - last_frame <= READ_TIMEOUT_S + 1.0


async def test_a_killed_server_is_offline_and_online_again_once_restarted(
    rtsp_server: RtspServerFactory, clips: Path
) -> None:
    server = rtsp_server([Mount("/cam", clip(clips, 25).path, playback="loop")])
    frames = Frames()
    camera = adapter(server.url("/cam"), frames, 5.0)
    task = asyncio.create_task(camera.run(frames.emit))
    try:
        await frames.until("online", lambda f: any(s.online for _, s in f.statuses))
        await asyncio.to_thread(server.kill)
        await frames.until("offline", lambda f: not f.statuses[-1][1].online)
        offline = camera.health()
        await asyncio.to_thread(server.restart)
        await frames.until("online again", lambda f: f.statuses[-1][1].online)
        online = camera.health()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [status.online for _, status in frames.statuses] == [True, False, True]
    assert offline.reason == frames.statuses[1][1].reason, "the heartbeat says why it is offline"
    assert online.reason is None
    assert online.reconnects >= 1


@pytest.mark.parametrize(
    ("login", "path", "reason"),
    [
        (Credentials("viewer", "wrong"), "/cam", "rejected the login (401 Unauthorized)"),
        (None, "/cam", "requires a login (401 Unauthorized) and the URL has none"),
        (Credentials("viewer", "s3cret"), "/nowhere", "the camera has no stream at this path (404 Not Found)"),
    ],
)
async def test_wrong_credentials_and_a_wrong_path_are_told_apart(
    rtsp_server: RtspServerFactory, clips: Path, login: Credentials | None, path: str, reason: str
) -> None:
    server = rtsp_server([Mount("/cam", clip(clips, 10).path)], credentials=Credentials("viewer", "s3cret"))
    frames = Frames()
    task = asyncio.create_task(adapter(server.url(path, credentials=login), frames, 5.0).run(frames.emit))
    try:
        await frames.until("offline", lambda f: bool(f.statuses))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    [(_, status)] = frames.statuses
    assert not status.online
    assert reason in status.reason
    assert "wrong" not in status.reason
    assert "s3cret" not in status.reason


async def test_three_cameras_at_2_5_and_10_fps_count_every_crossing_and_see_the_lens_covered(
    rtsp_server: RtspServerFactory, clips: Path
) -> None:
    """One clip played once to three cameras of one gateway at once, each at its own rate, through the
    gateway's own detection pipeline: every crossing counted in order, the covered lens raised as tamper."""
    clip = entrance_clip(
        clips / "walkers.mp4", count_in=1, count_out=1, fps=10, lead_in_s=1.0, gap_s=1.0, tail_s=0.5, covered_s=3.0
    )
    server = rtsp_server([Mount("/gate", clip.path, playback="once")])
    watches = {fps: Detections() for fps in (2.0, 5.0, 10.0)}
    tasks = []
    for fps, watch in watches.items():
        spec = camera_spec(server.url("/gate"), fps=fps, backoff_min_s=30.0, backoff_max_s=30.0)
        spec = spec.model_copy(update={"detection": DetectionSettings(line=clip.line)})
        tasks.append(
            asyncio.create_task(CameraAdapter(spec, utc_now_ms, frame_sink=detection_sink(spec)).run(watch.emit))
        )
    try:
        async with asyncio.timeout(LIVENESS_S + clip.duration_s):
            for watch in watches.values():
                await watch.ended.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    shown = [walker.direction for walker in clip.walkers]
    for fps, watch in watches.items():
        assert watch.crossings == shown, f"at {fps:g} fps"
        assert watch.tampered == ["covered"], f"at {fps:g} fps"


class Detections:
    """Crossings and tamper a camera's pipeline reported, until the stream ended (the camera went offline)."""

    def __init__(self) -> None:
        self.crossings: list[str] = []
        self.tampered: list[str] = []
        self.ended = asyncio.Event()  # emit runs on the event loop

    def emit(self, observation: Observation) -> None:
        if isinstance(observation, DeviceStatus) and not observation.online:
            self.ended.set()
        elif isinstance(observation, Detected) and observation.kind == EventKind.LINE_CROSSING:
            self.crossings.append(str(observation.evidence["direction"]))
        elif isinstance(observation, Detected) and observation.evidence.get("state") == "raised":
            self.tampered.append(str(observation.evidence.get("reason")))
