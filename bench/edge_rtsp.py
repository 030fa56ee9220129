"""Cameras as they are in the field: the real camera adapter reading a real RTSP server (issue 18).

GStreamer's RTSP server (:class:`simulators.infra.rtsp.RtspServer`, RTP over TCP) serves an H.264 entrance
clip (:func:`simulators.video_clips.entrance_clip`: 640 x 360 at 10 fps, 3 people walking in and 2 out,
one at a time at walking pace) to :class:`edge.adapters.camera.CameraAdapter` with the gateway's own
detection pipeline behind it, as ``outpost gateway run`` builds it.

- ``edge.rtsp_count_accuracy_{2,5,10}fps``: crossings counted right / crossings shown, the clip played once
  over RTSP with the adapter's ``fps`` at 2, 5 and 10: ``1 - (|in - 3| + |out - 2|) / 5`` (a miss and an
  extra count both cost), median over the runs. Goal 1.0. Baseline: the same, the clip's frames decoded from
  its file and every ``10 / fps``-th handed to the pipeline directly (no network, no pacing).
- ``edge.camera_freeze_detect_s``: the server frozen (SIGSTOP, its connections open): seconds from the last
  frame analysed until the adapter reports the camera offline, with ``read_timeout_s`` of
  :data:`READ_TIMEOUT_S`. Goal ``read_timeout_s + 1``. Baseline: the same for a killed server (the
  connection closes, nothing to wait for).
"""

import asyncio
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import cv2
import numpy as np

from bench.harness import Figure, Profile
from edge.adapters.base import Detected, DeviceStatus, Observation
from edge.adapters.camera import CameraAdapter, FrameSink
from edge.adapters.camera_source import Frame
from edge.adapters.registry import detection_sink
from edge.detection.pipeline import FramePipeline
from protocol.clock import utc_now_ms
from protocol.detection import DetectionSettings
from protocol.gateway_config import DeviceKind, DeviceSpec, DriverKind
from protocol.messages import EventKind
from simulators.infra.rtsp import Mount, RtspServer, unavailable_reason
from simulators.scenes import START_MS
from simulators.video_clips import Clip, entrance_clip

logger = logging.getLogger(__name__)

RATES: Final = (2.0, 5.0, 10.0)
READ_TIMEOUT_S: Final = 5.0
_CLIP_FPS: Final = 10
_LIVENESS_S: Final = 120.0
_SETTLE_S: Final = 3.0  # detections come up to the pipeline's 2 s warm-up late


def _require_server() -> None:
    reason = unavailable_reason()
    if reason is not None:
        raise RuntimeError(reason)


def _entrance(directory: Path) -> Clip:
    return entrance_clip(directory / "entrance.mp4", count_in=3, count_out=2, fps=_CLIP_FPS)


def _spec(url: str, clip: Clip, fps: float, read_timeout_s: float = 10.0) -> DeviceSpec:
    return DeviceSpec(
        kind=DeviceKind.CHECKPOINT_CAMERA,
        id="cam-bench",
        driver=DriverKind.CAMERA,
        params={"source": url, "fps": fps, "read_timeout_s": read_timeout_s, "backoff_min_s": 0.2},
        detection=DetectionSettings(line=clip.line),
    )


def accuracy(clip: Clip, crossings: list[str]) -> float:
    """1 for exactly the clip's walkers in each direction; each miss or extra count costs 1 / walkers."""
    wrong = abs(crossings.count("in") - clip.count_in) + abs(crossings.count("out") - clip.count_out)
    return max(0.0, 1.0 - wrong / (clip.count_in + clip.count_out))


class _Watch:
    """What the adapter emitted: crossings, statuses (with when), and when each frame was analysed."""

    def __init__(self) -> None:
        self.crossings: list[str] = []
        self.statuses: list[tuple[float, DeviceStatus]] = []
        self.frames: list[float] = []

    def emit(self, observation: Observation) -> None:
        if isinstance(observation, DeviceStatus):
            self.statuses.append((time.monotonic(), observation))
        elif isinstance(observation, Detected) and observation.kind == EventKind.LINE_CROSSING:
            self.crossings.append(str(observation.evidence.get("direction")))

    def counting(self, sink: FrameSink) -> FrameSink:
        def counted(frame: Frame, ts: int) -> list[Observation]:
            self.frames.append(time.monotonic())
            return sink(frame, ts)

        return counted

    async def until(self, check: Callable[["_Watch"], bool], what: str) -> None:
        deadline = time.monotonic() + _LIVENESS_S
        while not check(self):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not happen within {_LIVENESS_S} s")
            await asyncio.sleep(0.05)


def _went_offline(watch: _Watch) -> bool:
    return len(watch.statuses) >= 2 and not watch.statuses[-1][1].online


async def _count_over_rtsp(server: RtspServer, clip: Clip, fps: float) -> list[str]:
    """The crossings the adapter reports for one play of the clip (it goes offline at the stream's end)."""
    spec = _spec(server.url("/once"), clip, fps)
    watch = _Watch()
    adapter = CameraAdapter(spec, utc_now_ms, frame_sink=watch.counting(detection_sink(spec)))
    task = asyncio.create_task(adapter.run(watch.emit))
    try:
        await watch.until(_went_offline, "the clip's end")
        await asyncio.sleep(_SETTLE_S)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return watch.crossings


def _count_from_file(clip: Clip, fps: float) -> list[str]:
    every = round(_CLIP_FPS / fps)
    pipeline = FramePipeline("cam-bench", DetectionSettings(line=clip.line))
    capture = cv2.VideoCapture(str(clip.path), cv2.CAP_FFMPEG)
    crossings: list[str] = []
    index = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % every == 0:
                result = pipeline.process(np.asarray(frame, dtype=np.uint8), START_MS + index * 1000 // _CLIP_FPS)
                crossings += [
                    str(d.evidence.get("direction")) for d in result.detections if d.kind == EventKind.LINE_CROSSING
                ]
            index += 1
    finally:
        capture.release()
    return crossings


async def _detect_s(server: RtspServer, clip: Clip, fault: Callable[[], None]) -> float:
    """Seconds from the last frame analysed before ``fault`` until the adapter reports the camera offline."""
    spec = _spec(server.url("/loop"), clip, 5.0, read_timeout_s=READ_TIMEOUT_S)
    watch = _Watch()
    adapter = CameraAdapter(spec, utc_now_ms, frame_sink=watch.counting(lambda frame, ts: []))
    task = asyncio.create_task(adapter.run(watch.emit))
    try:
        await watch.until(lambda w: len(w.frames) >= 10, "frames arriving")
        await asyncio.to_thread(fault)
        await watch.until(lambda w: bool(w.statuses) and not w.statuses[-1][1].online, "the camera offline")
        offline_at = watch.statuses[-1][0]
        last_frame = max(at for at in watch.frames if at < offline_at)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return offline_at - last_frame


def rtsp_figures(profile: Profile) -> list[Figure]:
    _require_server()
    runs = 1 if profile.target_s < 0.1 else 3
    with tempfile.TemporaryDirectory(prefix="outpost-rtsp-bench-") as tmp:
        directory = Path(tmp)
        clip = _entrance(directory)
        mounts = [Mount("/once", clip.path, playback="once"), Mount("/loop", clip.path, playback="loop")]
        figures: list[Figure] = []
        with RtspServer(mounts, directory=directory / "server") as server:
            for fps in RATES:
                measured = [accuracy(clip, asyncio.run(_count_over_rtsp(server, clip, fps))) for _ in range(runs)]
                baseline = accuracy(clip, _count_from_file(clip, fps))
                logger.info("count accuracy at %g fps over RTSP: %s (from the file: %.2f)", fps, measured, baseline)
                figures.append(
                    Figure.measured(
                        f"edge.rtsp_count_accuracy_{fps:g}fps",
                        statistics.median(measured),
                        "ratio",
                        better="higher",
                        runs=runs,
                        goal=1.0,
                        baseline=baseline,
                    )
                )
            freezes, kills = [], []
            for _ in range(runs):
                freezes.append(asyncio.run(_detect_s(server, clip, server.freeze)))
                server.thaw()
                kills.append(asyncio.run(_detect_s(server, clip, server.kill)))
                server.start()
            logger.info("freeze detected after %s s, kill after %s s", freezes, kills)
            figures.append(
                Figure.measured(
                    "edge.camera_freeze_detect_s",
                    statistics.median(freezes),
                    "s",
                    better="lower",
                    runs=runs,
                    goal=READ_TIMEOUT_S + 1.0,
                    baseline=statistics.median(kills),
                )
            )
    return figures
