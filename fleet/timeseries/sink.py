"""The interface every time-series store implements."""

from collections.abc import Sequence
from typing import Protocol

from fleet.timeseries.points import Points


class TimeSeriesSink(Protocol):
    """Stores points durably. ``write`` returns only once the store accepted every chunk's points, and
    raises :class:`~fleet.errors.TimeSeriesUnavailableError` (retry) or
    :class:`~fleet.errors.TimeSeriesRejectedError` (do not)."""

    name: str

    async def write(self, batch: Sequence[Points]) -> None: ...

    async def close(self) -> None: ...
