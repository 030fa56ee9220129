"""CPU work of an export round done in slices, giving the event loop back between them.

A round builds and renders thousands of points (6,000 for 1,000 villages and gateways with 10,000 alerts);
done in one go that held the loop ~30-100 ms here, and a panic alert arriving meanwhile with it. In
slices of :data:`SLICE` no stall is longer than a few milliseconds.
"""

import asyncio
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

from fleet.timeseries.points import Point

SLICE: Final = 250

_Item = TypeVar("_Item")
_Built = TypeVar("_Built")


async def in_slices(items: Sequence[_Item], build: Callable[[_Item], _Built]) -> list[_Built]:
    """``[build(item) for item in items]``, yielding to the event loop after every :data:`SLICE` items."""
    built: list[_Built] = []
    for start in range(0, len(items), SLICE):
        built += [build(item) for item in items[start : start + SLICE]]
        await asyncio.sleep(0)
    return built


@dataclass(frozen=True, slots=True)
class RenderedPoints:
    """Points with their line protocol rendered beforehand (in slices, by :func:`rendered`), so the writer's
    batch costs a join, not thousands of renderings at once (:class:`~fleet.timeseries.points.Points`)."""

    points: Sequence[Point]
    rendered: Sequence[str]

    def __len__(self) -> int:
        return len(self.points)

    def lines(self) -> Iterator[str]:
        return iter(self.rendered)

    def rows(self) -> Iterator[Point]:
        return iter(self.points)

    def split(self, count: int) -> tuple["RenderedPoints", "RenderedPoints"]:
        return (
            RenderedPoints(self.points[:count], self.rendered[:count]),
            RenderedPoints(self.points[count:], self.rendered[count:]),
        )


async def rendered(points: Sequence[Point]) -> RenderedPoints:
    return RenderedPoints(points, await in_slices(points, Point.line))
