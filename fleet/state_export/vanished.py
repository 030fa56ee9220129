"""A zero for a group that is gone: the last open alert of a kind closed, the last dead letter retried, a
sensor node's previous firmware version.

A group of open alerts, deliveries or nodes of a version that no longer exists has no row to export, and a
time-series server would go on answering its last count (PromQL looks back minutes for the latest sample;
InfluxQL's ``last()`` as far as its time range reaches). So the round after a group disappears it is written once
more, as zero. The memory is the process's: after a restart, a group that vanished meanwhile just ages
out of the server's look-back.
"""

from collections.abc import Sequence

from fleet.timeseries.points import Point


class VanishedGroups:
    """Remembers one measurement's tag sets of the last round and zeroes those missing from the next."""

    def __init__(self) -> None:
        self._last: dict[tuple[tuple[str, str], ...], Point] = {}

    def with_zeros(self, points: Sequence[Point], now_ms: int) -> list[Point]:
        """``points`` and, for every tag set written last round but not now, that point with zero fields at
        ``now_ms``."""
        current = {point.tags: point for point in points}
        zeros = [
            Point(point.measurement, tags, tuple((field, 0.0) for field, _ in point.fields), now_ms)
            for tags, point in self._last.items()
            if tags not in current
        ]
        self._last = current
        return [*points, *zeros]
