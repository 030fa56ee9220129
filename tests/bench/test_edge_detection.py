"""The edge detection benchmark figure: measured quickly, shaped as documented (no timing thresholds)."""

import math

import cv2

from bench.edge_detection import FPS_GOAL, clip, detection_figures
from bench.harness import QUICK


def test_detection_figure_has_the_documented_fields() -> None:
    threads = cv2.getNumThreads()
    [figure] = detection_figures(QUICK)
    assert figure.figure == "edge.detection_fps"
    assert figure.unit == "frames/s"
    assert figure.better == "higher"
    assert figure.goal == FPS_GOAL == 400.0
    assert figure.runs == QUICK.runs
    assert figure.value > 0
    assert figure.baseline is not None
    assert figure.baseline > 0
    assert figure.ratio is not None
    assert math.isclose(figure.ratio, figure.value / figure.baseline)
    assert cv2.getNumThreads() == threads  # the one-thread limit is lifted afterwards


def test_the_clip_is_640x360_bgr() -> None:
    frames = clip(4)
    assert len(frames) == 4
    assert all(frame.shape == (360, 640, 3) and frame.dtype == "uint8" for frame in frames)
