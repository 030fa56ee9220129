"""Which frames of a live stream the camera analyses: the configured rate on an even grid, whatever the
stream's own rate and its jitter (frames arriving exactly one period apart were once all skipped)."""

import itertools
import random

import pytest

from edge.adapters.frame_pacing import FramePacer


def taken(pacer: FramePacer, arrivals_ms: list[float]) -> list[float]:
    return [at for at in arrivals_ms if pacer.take(at)]


def stream(fps: float, seconds: float, *, jitter_ms: float = 0.0, seed: int = 7) -> list[float]:
    """Arrival times of a stream's frames (ms), each up to ``jitter_ms`` late, never out of order."""
    rng = random.Random(seed)
    arrivals: list[float] = []
    for index in range(round(fps * seconds)):
        at = index * 1000.0 / fps + rng.uniform(0.0, jitter_ms)
        arrivals.append(max(at, arrivals[-1] if arrivals else 0.0))
    return arrivals


@pytest.mark.parametrize(
    ("stream_fps", "fps"), [(10, 2), (10, 5), (10, 10), (25, 2), (25, 5), (25, 10), (15, 3), (12.5, 5)]
)
def test_the_configured_rate_is_analysed_from_any_faster_stream(stream_fps: float, fps: float) -> None:
    frames = taken(FramePacer(fps, stream_fps), stream(stream_fps, 60))
    assert len(frames) == pytest.approx(fps * 60, abs=1)
    gaps = [later - earlier for earlier, later in itertools.pairwise(frames)]
    assert max(gaps) <= 1000 / fps + 1000 / stream_fps, "no frame is analysed later than one stream frame past due"


@pytest.mark.parametrize(("stream_fps", "fps"), [(10, 5), (10, 10), (25, 10)])
def test_jitter_under_half_a_stream_frame_costs_no_analysed_frame(stream_fps: float, fps: float) -> None:
    arrivals = stream(stream_fps, 60, jitter_ms=0.45 * 1000 / stream_fps)
    assert len(taken(FramePacer(fps, stream_fps), arrivals)) == pytest.approx(fps * 60, abs=1)


def test_a_stream_slower_than_the_rate_has_every_frame_analysed() -> None:
    arrivals = stream(4, 30, jitter_ms=20)
    assert taken(FramePacer(10, 4), arrivals) == arrivals


def test_a_stall_starts_a_new_grid_instead_of_a_burst() -> None:
    pacer = FramePacer(5, 10)
    before = taken(pacer, [float(at) for at in range(0, 1000, 100)])
    after = taken(pacer, [float(at) for at in range(5000, 6000, 100)])  # 4 s of nothing, then the stream again
    assert before == [0, 200, 400, 600, 800]
    assert after == [5000, 5200, 5400, 5600, 5800]


def test_an_implausible_stream_rate_is_ignored() -> None:
    assert len(taken(FramePacer(5, 90_000), stream(10, 10))) == 50
