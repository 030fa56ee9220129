"""The frame pipeline: debounced motion and tamper episodes, exact line counts, valid evidence."""

from collections.abc import Sequence
from typing import Any
from uuid import uuid4

import numpy as np
import pytest
from numpy.typing import NDArray

from edge.adapters.base import Detected
from edge.detection.line_crossing import MinuteCount
from edge.detection.pipeline import Debouncer, FramePipeline, FrameResult, prepare
from protocol.detection import DetectionSettings, Hold, LineSettings, MotionSettings, ProcessingSettings, Zone
from protocol.messages import DeviceEvent, EventKind
from simulators.scenes import (
    BLURRED,
    COVERED,
    HEIGHT,
    NORMAL,
    SHIFTED,
    WIDTH,
    Camera,
    Mover,
    View,
    brightening,
    crossing,
    linear_path,
    timestamp,
)

DEVICE = "cam-gate"
WITH_LINE = DetectionSettings(line=LineSettings())


def play(
    pipeline: FramePipeline, views: Sequence[View], movers: Sequence[Mover] = (), start: int = 0
) -> list[FrameResult]:
    camera = Camera()
    return [
        pipeline.process(camera.frame(start + offset, view, movers), timestamp(start + offset))
        for offset, view in enumerate(views)
    ]


def detections(results: Sequence[FrameResult], kind: EventKind | None = None) -> list[Detected]:
    return [found for result in results for found in result.detections if kind is None or found.kind == kind]


# --- debouncing ----------------------------------------------------------------------------------


def test_a_condition_is_raised_once_it_has_lasted_its_seconds_and_cleared_likewise() -> None:
    debouncer = Debouncer(Hold(raise_s=1.0, clear_s=0.5))
    changes = [debouncer.update(True, ts) for ts in range(0, 1_100, 100)]
    assert changes == [None] * 10 + ["raised"]
    assert debouncer.active
    assert [debouncer.update(False, ts) for ts in (1_200, 1_300, 1_700)] == [None, None, "cleared"]


@pytest.mark.parametrize("period_ms", [100, 200, 500])  # 10, 5 and 2 frames/s
def test_a_hold_lasts_as_long_at_any_frame_rate(period_ms: int) -> None:
    debouncer = Debouncer(Hold(raise_s=2.0, clear_s=2.0))
    raised = [ts for ts in range(0, 5_000, period_ms) if debouncer.update(True, ts) == "raised"]
    cleared = [ts for ts in range(5_000, 10_000, period_ms) if debouncer.update(False, ts) == "cleared"]
    assert (raised, cleared) == ([2_000], [7_000])


def test_a_hold_of_zero_acts_on_the_first_frame() -> None:
    debouncer = Debouncer(Hold(raise_s=0.0, clear_s=0.0))
    assert [debouncer.update(flag, ts) for ts, flag in enumerate([True, True, False])] == ["raised", None, "cleared"]


def test_a_flicker_shorter_than_the_hold_is_ignored_and_resets_the_count() -> None:
    debouncer = Debouncer(Hold(raise_s=0.2))
    pattern = [True, True, False, True, True, False, True]
    assert [debouncer.update(flag, index * 100) for index, flag in enumerate(pattern)] == [None] * 7
    assert not debouncer.active


# --- preparing frames ------------------------------------------------------------------------------


def test_a_frame_is_reduced_once_to_grey_at_processing_size() -> None:
    prepared = prepare(Camera().frame(0), ProcessingSettings())
    assert prepared.gray.shape == prepared.blurred.shape == (180, 320)
    assert prepared.gray.dtype == prepared.blurred.dtype == np.uint8
    unblurred = prepare(Camera().frame(0), ProcessingSettings(blur_kernel=1))
    assert unblurred.blurred is unblurred.gray


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((HEIGHT, WIDTH), dtype=np.uint8),
        np.zeros((HEIGHT, WIDTH, 4), dtype=np.uint8),
        np.zeros((HEIGHT, WIDTH, 3), dtype=np.float32),
    ],
)
def test_anything_but_a_bgr_byte_frame_is_refused(frame: NDArray[Any]) -> None:
    with pytest.raises(ValueError, match="BGR"):
        FramePipeline(DEVICE).process(frame, timestamp(0))


# --- no false alarms -------------------------------------------------------------------------------


def test_a_static_scene_produces_nothing() -> None:
    results = play(FramePipeline(DEVICE, WITH_LINE), [NORMAL] * 300)
    assert detections(results) == []
    assert results[-1].counts is not None
    assert (results[-1].counts.total_in, results[-1].counts.total_out) == (0, 0)


def test_a_slowly_brightening_scene_produces_nothing() -> None:
    frames = 400
    results = play(FramePipeline(DEVICE, WITH_LINE), [brightening(index, frames) for index in range(frames)])
    assert detections(results) == []


def test_a_brief_cover_shorter_than_the_hold_is_not_tamper() -> None:
    results = play(FramePipeline(DEVICE), [NORMAL] * 40 + [COVERED] * 5 + [NORMAL] * 40)
    assert detections(results, EventKind.CAMERA_TAMPER) == []


# --- line crossing ---------------------------------------------------------------------------------


def test_crossings_are_counted_exactly_in_each_direction() -> None:
    inwards = [crossing("left_to_right", first_frame=20 + 50 * n, lane_y=100 + 50 * (n % 3)) for n in range(4)]
    outwards = [
        crossing("right_to_left", first_frame=45 + 50 * n, lane_y=250, shape="circle", color=(235, 235, 225))
        for n in range(3)
    ]
    # Two more at the same time, in lanes far apart.
    together = [
        crossing("left_to_right", first_frame=260, lane_y=70),
        crossing("right_to_left", first_frame=260, lane_y=290, color=(235, 235, 225)),
    ]
    pipeline = FramePipeline(DEVICE, WITH_LINE)
    results = play(pipeline, [NORMAL] * 320, [*inwards, *outwards, *together])
    found = detections(results, EventKind.LINE_CROSSING)
    directions = [event.evidence["direction"] for event in found]
    assert directions.count("in") == 5
    assert directions.count("out") == 4
    last = results[-1].counts
    assert last is not None
    assert (last.total_in, last.total_out) == (5, 4)
    assert found[-1].evidence["total_in"] + found[-1].evidence["total_out"] == 9  # type: ignore[operator]
    assert all(event.evidence["line"] == "line" for event in found)
    assert sum(minute.count_in for minute in pipeline.crossing_minutes()) == 5
    assert sum(minute.count_out for minute in pipeline.crossing_minutes()) == 4


def test_the_warm_up_holds_the_first_two_seconds_then_analyses_them_losing_nothing() -> None:
    pipeline = FramePipeline(DEVICE, WITH_LINE)
    walker = crossing("left_to_right", first_frame=0, lane_y=180, frames=16)  # gone by frame 16 (1.6 s)
    results = play(pipeline, [NORMAL] * 40, [walker])
    assert all(result.detections == [] for result in results[:20])  # held while the background is learned
    assert not pipeline.warming_up
    held = results[20].detections  # the frame 2 s after the first ends the warm-up
    crossings = [event for event in held if event.kind == EventKind.LINE_CROSSING]
    assert [event.evidence["direction"] for event in crossings] == ["in"]
    assert timestamp(0) < crossings[0].ts < timestamp(16)
    assert [event.evidence["state"] for event in detections(results[20:], EventKind.MOTION)] == ["start", "stop"]
    assert next(event for event in held if event.kind == EventKind.MOTION).ts < timestamp(16)  # when it happened


def test_without_a_line_there_are_no_counts() -> None:
    pipeline = FramePipeline(DEVICE)
    results = play(pipeline, [NORMAL] * 60, [crossing("left_to_right", first_frame=5, lane_y=180)])
    assert detections(results, EventKind.LINE_CROSSING) == []
    assert results[-1].counts is None
    assert pipeline.crossing_minutes() == ()


def test_counts_report_the_current_minute() -> None:
    pipeline = FramePipeline(DEVICE, WITH_LINE)
    results = play(pipeline, [NORMAL] * 60, [crossing("left_to_right", first_frame=5, lane_y=180)])
    counts = results[-1].counts
    assert counts is not None
    minute_start = timestamp(0) - timestamp(0) % 60_000  # the clip's 6 s lie within one minute
    assert timestamp(59) < minute_start + 60_000
    assert counts.minute == MinuteCount(minute_start, 1, 0)


# --- motion ------------------------------------------------------------------------------------------


def test_motion_starts_and_stops_in_the_zone_it_happens_in() -> None:
    left = Zone(name="left", polygon=((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)))
    right = Zone(name="right", polygon=((0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)))
    settings = DetectionSettings(motion=MotionSettings(zones=(left, right)))
    walker = Mover(linear_path((120.0, -40.0), (120.0, 400.0), 40), first_frame=10)
    found = detections(play(FramePipeline(DEVICE, settings), [NORMAL] * 80, [walker]), EventKind.MOTION)
    assert [(event.evidence["zone"], event.evidence["state"]) for event in found] == [
        ("left", "start"),
        ("left", "stop"),
    ]
    start, stop = found
    assert start.evidence["score"] >= start.evidence["threshold"]  # type: ignore[operator]
    assert stop.evidence["peak_score"] >= start.evidence["score"]  # type: ignore[operator]
    assert stop.evidence["duration_ms"] == stop.ts - start.ts
    assert start.ts >= timestamp(10)


# --- tamper -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("view", "reason"), [(COVERED, "covered"), (BLURRED, "defocused"), (SHIFTED, "moved")])
def test_tamper_is_raised_once_and_cleared_after_the_condition_goes(view: View, reason: str) -> None:
    results = play(FramePipeline(DEVICE), [NORMAL] * 40 + [view] * 60 + [NORMAL] * 60)
    found = detections(results, EventKind.CAMERA_TAMPER)
    assert [(event.evidence["reason"], event.evidence["state"]) for event in found] == [
        (reason, "raised"),
        (reason, "cleared"),
    ]
    raised, cleared = found
    assert timestamp(40) < raised.ts < timestamp(100)
    assert timestamp(100) < cleared.ts < timestamp(160)
    assert {"score", "threshold", "brightness", "contrast", "sharpness_ratio", "shift_x"} <= raised.evidence.keys()


def test_relearning_clears_a_move_and_accepts_the_new_view() -> None:
    pipeline = FramePipeline(DEVICE)
    before = play(pipeline, [NORMAL] * 40 + [SHIFTED] * 40)
    pipeline.relearn()
    after = play(pipeline, [SHIFTED] * 100, start=80)
    assert [event.evidence["state"] for event in detections(before, EventKind.CAMERA_TAMPER)] == ["raised"]
    assert [event.evidence["state"] for event in detections(after, EventKind.CAMERA_TAMPER)] == ["cleared"]


# --- the observations themselves -----------------------------------------------------------------------


def test_every_observation_is_a_valid_device_event_without_pixels() -> None:
    settings = DetectionSettings(line=LineSettings())
    views = [NORMAL] * 40 + [COVERED] * 30 + [NORMAL] * 40
    results = play(FramePipeline(DEVICE, settings), views, [crossing("left_to_right", first_frame=80, lane_y=180)])
    found = detections(results)
    assert {event.kind for event in found} == {"motion", "line_crossing", "camera_tamper"}
    for event in found:
        assert event.device_id == DEVICE
        DeviceEvent(
            gateway_id="gw-1",
            seq=0,
            event_id=uuid4(),
            ts=event.ts,
            device_id=event.device_id,
            kind=EventKind(event.kind),
            evidence=event.evidence,
        )
