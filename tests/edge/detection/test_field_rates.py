"""Cameras as they are in the field (issue 18): the pipeline fed an entrance scene's frames the way a
camera adapter hands them on, at 2, 5 and 10 analysed frames a second out of 10 and 25 frames/s streams.

Exact counts, in order, across both line orientations; a 5 s cover raised and cleared at every rate;
count reports every minute, zeros included; the first crossing counted when a walker is already in
view as the frames start (a fresh start, or a stream coming back); too low a rate refused.

Frames are rendered in memory (:func:`simulators.video_clips.entrance_scene`), only those analysed; each
carries its capture time, ``index / fps`` after the scene's start, as the adapter stamps it.
"""

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from edge.adapters.base import Detected, Measured
from edge.detection.line_crossing import MINUTE_MS
from edge.detection.pipeline import FramePipeline
from edge.detection.rates import MIN_COUNTING_FPS, check_counting_rate, minimum_counting_fps
from edge.errors import EdgeConfigError
from protocol.detection import DetectionSettings, LineSettings
from protocol.messages import EventKind
from simulators.scenes import HEIGHT, NORMAL, START_MS, WIDTH, Frame
from simulators.video_clips import EntranceScene, Orientation, alternating, entrance_scene

RATES = (2, 5, 10)
STREAMS = (10, 25)
ORIENTATIONS: tuple[Orientation, ...] = ("vertical", "horizontal")
COVERED_S = 5
UNCOVERED_S = 5
BAND_PX = LineSettings().hysteresis * WIDTH
"""The half-width of the line's band on the full frame (the processing frame is half the size both ways)."""
START_MINUTE = START_MS - START_MS % MINUTE_MS


@pytest.fixture(autouse=True)
def quiet_tamper_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="edge.detection")


@dataclass(frozen=True, slots=True)
class Feed:
    """What a pipeline produced from a run of frames."""

    detections: list[Detected]
    measurements: list[Measured]

    def crossings(self) -> list[Detected]:
        return [found for found in self.detections if found.kind == EventKind.LINE_CROSSING]

    def directions(self) -> list[str]:
        return [str(found.evidence["direction"]) for found in self.crossings()]

    def tamper(self) -> list[tuple[str, str, int]]:
        return [
            (str(found.evidence["reason"]), str(found.evidence["state"]), found.ts)
            for found in self.detections
            if found.kind == EventKind.CAMERA_TAMPER
        ]


def analysed(fps: int, rate: float, first: int, end: int) -> Iterator[int]:
    """The frames ``first .. end - 1`` of a ``fps`` stream that an adapter analysing ``rate`` a second hands on."""
    step = fps / rate
    taken = 0
    while (index := first + round(taken * step)) < end:
        yield index
        taken += 1


def capture_ms(scene: EntranceScene, index: int, start_ms: int = START_MS) -> int:
    return start_ms + index * 1_000 // scene.fps


def frame(scene: EntranceScene, index: int) -> Frame:
    """Frame ``index`` of the scene; past its end, the entrance goes on with the lens uncovered."""
    return scene.frame(index) if index < scene.frames else scene.camera.frame(index, NORMAL, scene.movers)


def feed(
    pipeline: FramePipeline, scene: EntranceScene, rate: float, first: int, end: int, *, start_ms: int = START_MS
) -> Feed:
    detections: list[Detected] = []
    measurements: list[Measured] = []
    for index in analysed(scene.fps, rate, first, end):
        result = pipeline.process(frame(scene, index), start_ms + (index - first) * 1_000 // scene.fps)
        detections += result.detections
        measurements += result.measurements
    return Feed(detections, measurements)


def walker_position(scene: EntranceScene, walker: int, index: int, orientation: Orientation) -> float:
    """How far across the frame (px, along the walk) walker ``walker`` is at frame ``index``."""
    centre = scene.movers[walker].centre(index)
    assert centre is not None
    return centre[0] if orientation == "vertical" else centre[1]


# --- counts and tamper at every rate ----------------------------------------------------------------


@pytest.mark.parametrize("orientation", ORIENTATIONS)
@pytest.mark.parametrize("stream_fps", STREAMS)
@pytest.mark.parametrize("rate", RATES)
def test_every_walker_is_counted_in_order_and_a_covered_lens_raised_and_cleared(
    orientation: Orientation, stream_fps: int, rate: int
) -> None:
    scene = entrance_scene(count_in=3, count_out=2, fps=stream_fps, orientation=orientation, covered_s=COVERED_S)
    assert scene.covered_from_frame is not None
    pipeline = FramePipeline("cam-entrance", DetectionSettings(line=scene.line))
    uncovered_from = scene.frames
    fed = feed(pipeline, scene, rate, 0, uncovered_from + UNCOVERED_S * stream_fps)

    assert fed.directions() == list(alternating(3, 2)) == [walker.direction for walker in scene.walkers]
    for crossing, walker in zip(fed.crossings(), scene.walkers, strict=True):  # each counted while in view
        assert capture_ms(scene, walker.first_frame) < crossing.ts <= capture_ms(scene, walker.last_frame)
    last = fed.crossings()[-1].evidence
    assert (last["total_in"], last["total_out"]) == (3, 2)

    covered_ms, uncovered_ms = capture_ms(scene, scene.covered_from_frame), capture_ms(scene, uncovered_from)
    assert [(reason, state) for reason, state, _ in fed.tamper()] == [("covered", "raised"), ("covered", "cleared")]
    (_, _, raised_ts), (_, _, cleared_ts) = fed.tamper()
    assert covered_ms < raised_ts < uncovered_ms  # within the 5 s cover, at 2 frames/s as at 10
    assert uncovered_ms < cleared_ts < uncovered_ms + UNCOVERED_S * 1_000


@pytest.mark.parametrize("rate", RATES)
def test_a_cover_shorter_than_the_hold_is_not_tamper_at_any_rate(rate: int) -> None:
    scene = entrance_scene(fps=10, lead_in_s=0.0, tail_s=6.0, covered_s=1.0)  # 6 s of entrance, 1 s covered
    pipeline = FramePipeline("cam-entrance", DetectionSettings(line=scene.line))
    assert feed(pipeline, scene, rate, 0, scene.frames + 40).tamper() == []


# --- counts reported every minute, zeros included ------------------------------------------------------


def reports(measurements: list[Measured]) -> list[tuple[int, str, float]]:
    return [(found.ts, found.metric, found.value) for found in measurements]


def test_every_minute_watched_is_reported_with_its_counts_and_quiet_ones_with_zeros() -> None:
    # One in and one out in the first minute (the scene starts 20 s into it), then a quiet entrance.
    scene = entrance_scene(count_in=1, count_out=1, fps=2, tail_s=100.0)
    pipeline = FramePipeline("cam-entrance", DetectionSettings(line=scene.line))
    fed = feed(pipeline, scene, 2, 0, scene.frames)
    assert capture_ms(scene, scene.frames - 1) // MINUTE_MS == START_MINUTE // MINUTE_MS + 2  # into a third minute
    assert fed.directions() == ["in", "out"]
    assert reports(fed.measurements) == [
        (START_MINUTE, "line_in", 1.0),
        (START_MINUTE, "line_out", 1.0),
        (START_MINUTE + MINUTE_MS, "line_in", 0.0),
        (START_MINUTE + MINUTE_MS, "line_out", 0.0),
    ]
    assert all(found.device_id == "cam-entrance" for found in fed.measurements)


def test_minutes_without_frames_are_not_reported_so_a_dead_counter_is_not_an_empty_entrance() -> None:
    scene = entrance_scene(fps=2, lead_in_s=0.0, tail_s=10.0)
    pipeline = FramePipeline("cam-entrance", DetectionSettings(line=scene.line))
    before = feed(pipeline, scene, 2, 0, scene.frames)  # 20 s .. 30 s into the first minute
    offline_ms = 4 * MINUTE_MS  # no frames at all for four minutes (the camera was offline)
    after = feed(pipeline, scene, 2, 0, scene.frames, start_ms=START_MS + offline_ms)
    assert before.measurements == []  # the first minute is still going on
    assert reports(after.measurements) == [(START_MINUTE, "line_in", 0.0), (START_MINUTE, "line_out", 0.0)]
    assert pipeline.crossing_minutes()[-1].start_ms == START_MINUTE + offline_ms


def test_without_a_line_nothing_is_reported() -> None:
    scene = entrance_scene(fps=2, lead_in_s=0.0, tail_s=50.0)
    assert feed(FramePipeline("cam-entrance"), scene, 2, 0, scene.frames).measurements == []


# --- the first crossing after a start or a reconnect ------------------------------------------------------


def just_before_the_line(scene: EntranceScene, orientation: Orientation) -> int:
    """The first frame at which the first walker (going in) is in view and less than a band's width
    short of the band: whoever is counted must have been followed from that frame."""
    line = (WIDTH if orientation == "vertical" else HEIGHT) / 2
    walker = scene.walkers[0]
    return next(
        index
        for index in range(walker.first_frame, walker.last_frame)
        if walker_position(scene, 0, index, orientation) >= line - 2.5 * BAND_PX
    )


@pytest.mark.parametrize("orientation", ORIENTATIONS)
@pytest.mark.parametrize("stream_fps", STREAMS)
@pytest.mark.parametrize("rate", RATES)
def test_a_walker_in_view_at_the_very_first_frame_is_counted(
    orientation: Orientation, stream_fps: int, rate: int
) -> None:
    scene = entrance_scene(count_in=1, fps=stream_fps, orientation=orientation)
    first = just_before_the_line(scene, orientation)
    pipeline = FramePipeline("cam-entrance", DetectionSettings(line=scene.line))
    fed = feed(pipeline, scene, rate, first, scene.frames)
    assert fed.directions() == ["in"]
    assert fed.crossings()[0].ts > START_MS


@pytest.mark.parametrize("orientation", ORIENTATIONS)
@pytest.mark.parametrize("stream_fps", STREAMS)
@pytest.mark.parametrize("rate", RATES)
def test_a_walker_in_view_as_a_stream_comes_back_after_a_cover_is_counted(
    orientation: Orientation, stream_fps: int, rate: int
) -> None:
    # The stream ends on a covered lens (as the field test's clip did), reconnects 8 s later, and
    # starts again with the first walker already in view, just short of the line.
    scene = entrance_scene(count_in=2, count_out=1, fps=stream_fps, orientation=orientation, covered_s=COVERED_S)
    pipeline = FramePipeline("cam-entrance", DetectionSettings(line=scene.line))
    before = feed(pipeline, scene, rate, 0, scene.frames)
    assert before.directions() == ["in", "out", "in"]
    first = just_before_the_line(scene, orientation)
    back_ms = capture_ms(scene, scene.frames) + 8_000
    after = feed(pipeline, scene, rate, first, scene.walkers[0].last_frame + 1, start_ms=back_ms)
    assert after.directions() == ["in"]


# --- the rate a counting line needs ---------------------------------------------------------------------


def test_a_counting_line_refuses_too_low_an_analysed_rate() -> None:
    with_line = DetectionSettings(line=LineSettings())
    assert minimum_counting_fps(with_line) == MIN_COUNTING_FPS == 1.5
    with pytest.raises(EdgeConfigError, match=r"camera cam-gate: fps 1 is too low .* at least 1\.5"):
        check_counting_rate("cam-gate", 1.0, with_line)
    for fps in (1.5, 2.0, 10.0):
        check_counting_rate("cam-gate", fps, with_line)


@pytest.mark.parametrize("settings", [None, DetectionSettings()])
def test_without_a_line_any_rate_will_do(settings: DetectionSettings | None) -> None:
    assert minimum_counting_fps(settings) is None
    check_counting_rate("cam-gate", 0.2, settings)
