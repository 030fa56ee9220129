"""Benchmark figures for on-gateway camera analytics (assembled into the ``edge`` group elsewhere).

``edge.detection_fps`` (frames/s, one core): :class:`edge.detection.pipeline.FramePipeline` with
motion (one full-frame zone), line crossing and every tamper check, fed 640 x 360 BGR frames of a
textured scene with two shapes crossing the line in opposite directions and sensor noise. Its
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
import numpy as np
from numpy.typing import NDArray

from bench.harness import Figure, Profile, Workload, median_rates
from edge.detection.pipeline import FramePipeline
from protocol.detection import DetectionSettings, LineSettings
from protocol.messages import EventKind

logger = logging.getLogger(__name__)

WIDTH: Final = 640
HEIGHT: Final = 360
CLIP_FRAMES: Final = 64
FPS_GOAL: Final = 400.0
"""Frames per second one core must analyse at 640 x 360 with every detector on."""

_FRAME_MS: Final = 100
_START_MS: Final = 1_700_000_000_000
_SEED: Final = 20_240_601
_SPEED_PX: Final = 12
_SETTINGS: Final = DetectionSettings(line=LineSettings())

Frame = NDArray[np.uint8]


def clip(frames: int = CLIP_FRAMES, *, seed: int = _SEED) -> list[Frame]:
    """``frames`` deterministic 640 x 360 BGR frames: textured ground, two crossing shapes, noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(50, 170, (HEIGHT // 24 + 2, WIDTH // 24 + 2, 3)).astype(np.float32)
    scene = np.asarray(cv2.resize(coarse, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC), dtype=np.float32)
    scene += rng.normal(0.0, 10.0, (HEIGHT, WIDTH, 1)).astype(np.float32)
    background = np.asarray(np.clip(scene, 0, 200), dtype=np.uint8)
    result: list[Frame] = []
    for index in range(frames):
        frame = background.copy()
        x = -40 + _SPEED_PX * index
        cv2.rectangle(frame, (x - 28, 90), (x + 28, 180), (30, 35, 45), thickness=-1)
        cv2.circle(frame, (WIDTH + 40 - _SPEED_PX * index, 260), 40, (235, 235, 225), thickness=-1)
        noise = rng.normal(0.0, 2.0, frame.shape)
        result.append(np.asarray(np.clip(frame + noise, 0, 255), dtype=np.uint8))
    return result


def pipeline_workload(frames: list[Frame]) -> Workload:
    """One :meth:`FramePipeline.process` call per call, cycling through ``frames``, time moving on."""
    _check_pipeline_sees_the_clip(frames)
    pipeline = FramePipeline("bench-camera", _SETTINGS)
    counter = itertools.count()

    def run() -> object:
        index = next(counter)
        return pipeline.process(frames[index % len(frames)], _START_MS + index * _FRAME_MS)

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
        kinds += [found.kind for found in pipeline.process(frame, _START_MS + index * _FRAME_MS).detections]
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
