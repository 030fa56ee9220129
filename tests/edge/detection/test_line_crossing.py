"""Line crossing: exact counts per direction, no double counts for jitter, per-minute buckets."""

from collections.abc import Iterable, Sequence

import cv2
import numpy as np

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
    line = counter()  # forgiving up to 5 missed frames
    frames = [[centre] for centre in walk(40, 150, 90)] + [[], [], []] + [[centre] for centre in walk(170, 300, 90)]
    assert [crossing.direction for crossing in run(line, frames)] == ["in"]


def test_a_blob_lost_for_too_long_is_forgotten_and_not_counted() -> None:
    line = counter(max_missed_frames=1)
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
