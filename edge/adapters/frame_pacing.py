"""Which frames of a live stream are analysed: ``fps`` a second on a fixed grid, or every frame of a slower stream.

A live camera sends frames at its own rate (10 to 25 a second, say) and the adapter grabs every one of them
so the decoder never falls behind; only some are decoded and analysed. :class:`FramePacer` picks them on
a grid of ``1/fps`` seconds anchored at the first frame: a frame is taken when it arrives at or after its
grid point, less half the stream's own frame interval, since frames arrive with jitter and a frame on time
must not count as early. The next point is the previous one plus the period (not the moment the frame was
taken, which would fall later than the next frame every time and halve the rate); a pacer fallen more than
a period behind (a stall) starts a new grid at the frame it takes, so a stall is not made up for with a
burst. A stream slower than ``fps`` has every frame taken.
"""

from typing import Final

_MIN_STREAM_FPS: Final = 1.0
_MAX_STREAM_FPS: Final = 120.0


class FramePacer:
    def __init__(self, fps: float, stream_fps: float | None = None) -> None:
        """``stream_fps``: the stream's own rate if known (cameras announce it; implausible values are ignored)."""
        self._period_ms = 1000.0 / fps
        plausible = stream_fps is not None and _MIN_STREAM_FPS <= stream_fps <= _MAX_STREAM_FPS
        self._slack_ms = 500.0 / stream_fps if stream_fps is not None and plausible else 0.0
        self._next_ms: float | None = None

    def take(self, at_ms: float) -> bool:
        """Whether to analyse the frame that arrived at ``at_ms`` (a monotonic clock, in ms)."""
        if self._next_ms is not None and at_ms < self._next_ms - self._slack_ms:
            return False
        if self._next_ms is None or at_ms - self._next_ms >= self._period_ms:
            self._next_ms = at_ms + self._period_ms  # first frame, or after a stall: a new grid
        else:
            self._next_ms += self._period_ms
        return True
