"""Benchmark figures for on-gateway camera analytics (assembled into the ``edge`` group elsewhere).

``edge.detection_fps`` (frames/s, one core): :class:`edge.detection.pipeline.FramePipeline` with
motion (one full-frame zone), line crossing and every tamper check, fed 640 x 360 BGR frames of a
textured scene (:mod:`simulators.scenes`) with two shapes crossing the line in opposite directions
and sensor noise. Its
baseline is what a plain OpenCV loop would do on the same full-size frames: MOG2 ``apply``
(shadows off), the variance of the grey frame's Laplacian and ``meanStdDev`` of the grey frame,
with no downscaling, tracking or debouncing. OpenCV is limited to one thread
(``cv2.setNumThreads(1)``) while measuring, as a gateway runs one camera per core.
"""

import itertools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import cv2

from bench.harness import Figure, Profile, Workload, median_rates
from edge.detection.pipeline import FramePipeline
from protocol.detection import DetectionSettings, LineSettings
from protocol.messages import EventKind
from simulators.scenes import BRIGHT, FRAME_MS, START_MS, WIDTH, Camera, Frame, Mover, linear_path

logger = logging.getLogger(__name__)

CLIP_FRAMES: Final = 64
FPS_GOAL: Final = 400.0
"""Frames per second one core must analyse at 640 x 360 with every detector on."""

_SEED: Final = 20_240_601
_SPEED_PX: Final = 12
_SETTINGS: Final = DetectionSettings(line=LineSettings())


def clip(frames: int = CLIP_FRAMES, *, seed: int = _SEED) -> list[Frame]:
    """``frames`` deterministic 640 x 360 BGR frames: textured ground, two shapes crossing, noise."""
    travel = _SPEED_PX * (frames - 1)
    movers = (
        Mover(linear_path((-40.0, 135.0), (-40.0 + travel, 135.0), frames), half_size=(28, 45)),
        Mover(
            linear_path((WIDTH + 40.0, 260.0), (WIDTH + 40.0 - travel, 260.0), frames),
            shape="circle",
            half_size=(40, 40),
            color=BRIGHT,
        ),
    )
    return list(Camera(seed).frames(frames, movers))


def pipeline_workload(frames: list[Frame]) -> Workload:
    """One :meth:`FramePipeline.process` call per call, cycling through ``frames``, time moving on."""
    _check_pipeline_sees_the_clip(frames)
    pipeline = FramePipeline("bench-camera", _SETTINGS)
    counter = itertools.count()

    def run() -> object:
        index = next(counter)
        return pipeline.process(frames[index % len(frames)], START_MS + index * FRAME_MS)

    return run


def baseline_workload(frames: list[Frame]) -> Workload:
    """MOG2, Laplacian variance and meanStdDev on each full-size frame, cycling through ``frames``."""
    subtractor = cv2.createBackgroundSubtractorMOG2(detectShadows=False)
    counter = itertools.count()

    def run() -> object:
        frame = frames[next(counter) % len(frames)]
        foreground = subtractor.apply(frame)
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        _, laplacian_std = cv2.meanStdDev(cv2.Laplacian(gray, cv2.CV_64F))
        mean, std = cv2.meanStdDev(gray)
        return foreground, float(laplacian_std[0, 0]) ** 2, mean, std

    return run


def _check_pipeline_sees_the_clip(frames: list[Frame]) -> None:
    """The measured pipeline must be doing real work: both shapes are counted, nothing is tamper."""
    pipeline = FramePipeline("bench-check", _SETTINGS)
    kinds: list[str] = []
    for index, frame in enumerate(frames):
        kinds += [found.kind for found in pipeline.process(frame, START_MS + index * FRAME_MS).detections]
    crossings = kinds.count(EventKind.LINE_CROSSING.value)
    if crossings != 2 or EventKind.CAMERA_TAMPER.value in kinds:
        raise RuntimeError(f"the benchmark clip does not exercise the pipeline as intended: {kinds}")


@contextmanager
def _one_opencv_thread() -> Iterator[None]:
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


def detection_figures(profile: Profile) -> list[Figure]:
    """Measure ``edge.detection_fps`` against the plain full-frame OpenCV baseline."""
    frames = clip()
    with _one_opencv_thread():
        pipeline_fps, baseline_fps = median_rates(
            [pipeline_workload(frames), baseline_workload(frames)], items_per_call=[1, 1], profile=profile
        )
    logger.info(
        "detection pipeline %.0f frames/s, full-frame OpenCV baseline %.0f frames/s", pipeline_fps, baseline_fps
    )
    return [
        Figure.measured(
            "edge.detection_fps",
            pipeline_fps,
            "frames/s",
            better="higher",
            runs=profile.runs,
            goal=FPS_GOAL,
            baseline=baseline_fps,
        )
    ]
