"""Line crossing: exact counts per direction, no double counts for jitter, per-minute buckets."""

from collections.abc import Iterable, Sequence

import cv2
import numpy as np
import pytest

from edge.detection.line_crossing import Crossing, LineCrossingCounter, MinuteCount
from edge.detection.motion import Gray
from protocol.detection import LineSettings

WIDTH, HEIGHT = 320, 180
START_MS = 1_700_000_060_000  # 20 s into a minute
FRAME_MS = 100
Centre = tuple[float, float]


def mask(centres: Iterable[Centre], half: int = 10) -> Gray:
    """A foreground mask with one square blob (21 x 21 by default) per centre."""
    image = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    for x, y in centres:
        cv2.rectangle(image, (round(x) - half, round(y) - half), (round(x) + half, round(y) + half), 255, -1)
    return image


def walk(x0: float, x1: float, y: float, step: float = 6.0) -> list[Centre]:
    """Centres from ``x0`` to ``x1`` along row ``y``, ``step`` pixels per frame."""
    count = int(abs(x1 - x0) / step) + 1
    return [(float(x), y) for x in np.linspace(x0, x1, count)]


def run(
    counter: LineCrossingCounter, frames: Sequence[Sequence[Centre]], *, start_ms: int = START_MS, half: int = 10
) -> list[Crossing]:
    crossings: list[Crossing] = []
    for index, centres in enumerate(frames):
        crossings += counter.update(mask(centres, half), start_ms + index * FRAME_MS)
    return crossings


def one_at_a_time(*paths: list[Centre], gap: int = 10) -> list[list[Centre]]:
    """Each path in turn, one blob per frame, with ``gap`` empty frames between paths."""
    frames: list[list[Centre]] = []
    for path in paths:
        frames += [[centre] for centre in path] + [[] for _ in range(gap)]
    return frames


def counter(**settings: object) -> LineCrossingCounter:
    return LineCrossingCounter(LineSettings.model_validate(settings), WIDTH, HEIGHT)


def test_each_blob_crossing_is_counted_once_in_its_direction() -> None:
    line = counter()  # vertical, down the middle; "in" is left to right
    rightwards = [walk(10, 310, 40 + 20 * n) for n in range(5)]
    leftwards = [walk(310, 10, 50 + 25 * n) for n in range(3)]
    crossings = run(line, one_at_a_time(*rightwards, *leftwards))
    assert [crossing.direction for crossing in crossings] == ["in"] * 5 + ["out"] * 3
    counts = line.counts()
    assert (counts.total_in, counts.total_out) == (5, 3)
    assert all(0.0 <= crossing.position <= 1.0 for crossing in crossings)
    assert all(crossing.blob_area > 0.0 for crossing in crossings)


def test_blobs_crossing_at_the_same_time_in_opposite_lanes_are_both_counted() -> None:
    line = counter()
    top, bottom = walk(10, 310, 40), walk(310, 10, 140)
    crossings = run(line, [[a, b] for a, b in zip(top, bottom, strict=True)])
    assert sorted(crossing.direction for crossing in crossings) == ["in", "out"]


def test_the_inside_point_names_the_directions() -> None:
    line = counter(inside=(0.0, 0.5))  # the left half is "in" now
    run(line, one_at_a_time(walk(10, 310, 90)))
    assert (line.counts().total_in, line.counts().total_out) == (0, 1)


def test_jitter_on_the_line_is_never_counted() -> None:
    line = counter()  # band: 3% of 320 = 9.6 px either side of x = 160
    approach = walk(40, 160, 90)
    jitter = [(160.0 + (8 if n % 2 else -8), 90.0) for n in range(60)]
    retreat = walk(160, 40, 90)
    assert run(line, one_at_a_time(approach + jitter + retreat)) == []


def test_jitter_then_going_through_is_one_crossing() -> None:
    line = counter()
    path = walk(40, 160, 90) + [(160.0 + (8 if n % 2 else -8), 90.0) for n in range(60)] + walk(160, 300, 90)
    crossings = run(line, one_at_a_time(path))
    assert [crossing.direction for crossing in crossings] == ["in"]


def test_stepping_over_and_back_counts_in_then_out() -> None:
    line = counter()
    crossings = run(line, one_at_a_time(walk(40, 220, 90) + walk(220, 40, 90)))
    assert [crossing.direction for crossing in crossings] == ["in", "out"]


def test_passing_beyond_the_end_of_the_line_is_not_a_crossing() -> None:
    line = counter(start=(0.5, 0.0), end=(0.5, 0.5))  # the top half only
    crossings = run(line, one_at_a_time(walk(10, 310, 140), walk(10, 310, 40)))
    assert len(crossings) == 1
    assert crossings[0].position < 0.5


def test_blobs_too_small_or_too_large_are_ignored() -> None:
    small = counter(min_blob_area=0.01)  # 576 px; the walker is 21 x 21 = 441
    assert run(small, one_at_a_time(walk(10, 310, 90))) == []
    large = counter(max_blob_area=0.005)
    assert run(large, one_at_a_time(walk(10, 310, 90))) == []


def test_a_blob_briefly_lost_on_the_line_keeps_its_side() -> None:
    line = counter()  # forgiving up to 1.5 s unseen
    frames = [[centre] for centre in walk(40, 150, 90)] + [[], [], []] + [[centre] for centre in walk(170, 300, 90)]
    assert [crossing.direction for crossing in run(line, frames)] == ["in"]


def test_a_blob_lost_for_too_long_is_forgotten_and_not_counted() -> None:
    line = counter(max_missed_s=0.2)
    frames = [[centre] for centre in walk(40, 150, 90)] + [[], [], []] + [[centre] for centre in walk(170, 300, 90)]
    assert run(line, frames) == []


def test_counts_are_kept_per_minute_with_quiet_minutes_at_zero() -> None:
    line = counter(keep_minutes=3)
    one_crossing = one_at_a_time(walk(10, 310, 90))
    run(line, one_crossing, start_ms=START_MS)  # minute 0 (the walk ends within it)
    run(line, one_at_a_time(walk(310, 10, 90)), start_ms=START_MS + 60_000)  # minute 1
    run(line, one_crossing, start_ms=START_MS + 180_000)  # minute 3, after a quiet minute 2
    minute = START_MS - START_MS % 60_000
    assert line.minutes() == (
        MinuteCount(minute + 60_000, 0, 1),
        MinuteCount(minute + 120_000, 0, 0),
        MinuteCount(minute + 180_000, 1, 0),
    )
    counts = line.counts()
    assert (counts.total_in, counts.total_out) == (2, 1)
    assert counts.minute == MinuteCount(minute + 180_000, 1, 0)


def test_a_long_silence_keeps_only_the_last_minutes() -> None:
    line = counter(keep_minutes=2)
    run(line, [[]], start_ms=START_MS)
    run(line, [[]], start_ms=START_MS + 24 * 3_600_000)
    assert [minute.count_in for minute in line.minutes()] == [0, 0]
    assert line.minutes()[-1].start_ms - line.minutes()[0].start_ms == 60_000


# --- following at any frame rate ---------------------------------------------------------------------


def run_every(counter: LineCrossingCounter, frames: Sequence[Sequence[Centre]], period_ms: int) -> list[Crossing]:
    return [
        crossing
        for index, centres in enumerate(frames)
        for crossing in counter.update(mask(centres), START_MS + index * period_ms)
    ]


def test_a_blob_that_steps_over_the_whole_band_between_two_frames_is_counted() -> None:
    line = counter()  # band: 9.6 px either side of x = 160; steps of 40 px never land in it
    crossings = run_every(line, one_at_a_time([(100.0, 90.0), (140.0, 90.0), (180.0, 90.0), (220.0, 90.0)]), 500)
    assert [crossing.direction for crossing in crossings] == ["in"]
    assert crossings[0].ts == START_MS + 2 * 500
    assert 0.45 < crossings[0].position < 0.55  # where its step crossed the line: half-way down


def test_how_far_a_blob_may_move_grows_with_the_time_between_frames() -> None:
    steps = one_at_a_time(walk(60, 260, 90, step=50.0))  # 50 px (0.16 of the width) a frame
    assert run_every(counter(), steps, 100) == []  # 1.6 widths a second: faster than max_speed, not one blob
    assert [crossing.direction for crossing in run_every(counter(), steps, 500)] == ["in"]  # 0.3 widths a second
    assert [crossing.direction for crossing in run_every(counter(max_speed=2.0), steps, 100)] == ["in"]


@pytest.mark.parametrize("period_ms", [100, 200, 500, 667])  # 10, 5, 2 and 1.5 frames/s
def test_walkers_passing_each_other_on_the_line_are_both_counted(period_ms: int) -> None:
    step = 0.08 * period_ms  # 80 px/s, a quarter of the width a second
    count = int(300 / step) + 1
    rightwards, leftwards = walk(10, 310, 78, step), walk(310, 10, 102, step)
    frames = [[a, b] for a, b in zip(rightwards[:count], leftwards[:count], strict=True)]
    assert sorted(crossing.direction for crossing in run_every(counter(), frames, period_ms)) == ["in", "out"]


def test_a_track_lost_for_a_while_does_not_take_the_blob_of_one_followed_all_along() -> None:
    line = counter()
    # One blob walks right along row 60, its sighting at frame 10 a little ahead of where it should be
    # (3 px). Another, right of the line and heading down-left, is seen twice and lost: where it would
    # be by frame 10 is 6 px from the first blob's sighting, well within its allowance, grown over a
    # second unseen. The first blob's own track keeps it: nobody came back across the line.
    walking = [(40.0 + 8.0 * index + (3.0 if index >= 10 else 0.0), 60.0) for index in range(30)]
    lost = [(199.0, 120.0), (192.0, 114.0)]
    frames = [[walking[index], *([lost[index]] if index < len(lost) else [])] for index in range(30)]
    assert [crossing.direction for crossing in run(line, frames)] == ["in"]


# --- minutes reported ------------------------------------------------------------------------------


def test_a_watched_minute_is_finished_by_the_first_frame_of_a_later_one_and_unwatched_minutes_are_not() -> None:
    line = counter()
    minute = START_MS - START_MS % 60_000
    run(line, one_at_a_time(walk(10, 310, 90)), start_ms=START_MS)  # a crossing in the first minute
    assert line.take_finished() == []  # the minute is not over
    run(line, [[]], start_ms=minute + 60_000)  # a frame in the next minute
    run(line, [[]], start_ms=minute + 5 * 60_000)  # then none for three minutes
    assert line.take_finished() == [MinuteCount(minute, 1, 0), MinuteCount(minute + 60_000, 0, 0)]
    assert line.take_finished() == []
