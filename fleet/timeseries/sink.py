"""The interface every time-series store implements."""

from collections.abc import Sequence
from typing import Protocol

from fleet.timeseries.points import Point


class TimeSeriesSink(Protocol):
    """Stores points durably. ``write`` returns only once the store accepted them, and raises
    :class:`~fleet.errors.TimeSeriesUnavailableError` (retry) or
    :class:`~fleet.errors.TimeSeriesRejectedError` (do not)."""

    name: str

    async def write(self, points: Sequence[Point]) -> None: ...

    async def close(self) -> None: ...
