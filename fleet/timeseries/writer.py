"""Batches points in memory and writes them to the sink, retrying while it is unavailable.

The batch being written is held apart from the points waiting behind it; if the write fails it goes
back to the front. The waiting buffer is bounded; when it overflows the oldest waiting points are
dropped and counted (issue 5 turns this into back-pressure on the broker).
"""

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable

from fleet.errors import TimeSeriesRejectedError, TimeSeriesUnavailableError
from fleet.timeseries.points import Point
from fleet.timeseries.sink import TimeSeriesSink
from protocol.reconnect import Backoff

logger = logging.getLogger(__name__)


class BatchingWriter:
    def __init__(self, sink: TimeSeriesSink, batch_points: int, flush_interval_s: float, buffer_points: int) -> None:
        self.sink = sink
        self._batch_points = batch_points
        self._flush_interval_s = flush_interval_s
        self._buffer_points = buffer_points
        self._buffer: deque[Point] = deque()
        self._in_flight: list[Point] = []
        self._wake = asyncio.Event()
        self._backoff = Backoff(base_s=0.2, cap_s=10.0)
        self.written = 0
        self.dropped = 0
        self.rejected = 0
        self.healthy = True

    @property
    def buffered(self) -> int:
        return len(self._buffer) + len(self._in_flight)

    def add(self, points: Iterable[Point]) -> None:
        self._buffer.extend(points)
        overflow = len(self._buffer) - self._buffer_points
        if overflow > 0:
            for _ in range(overflow):
                self._buffer.popleft()
            self.dropped += overflow
            logger.warning("time-series buffer full: dropped the %d oldest points (%d so far)", overflow, self.dropped)
        if len(self._buffer) >= self._batch_points:
            self._wake.set()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_interval_s)
            self._wake.clear()
            while self._buffer:
                if not await self._write_one_batch():
                    await asyncio.sleep(self._backoff.next_delay())

    async def _write_one_batch(self) -> bool:
        """Write the oldest batch; False (and the batch back in front) when the sink is unavailable."""
        count = min(self._batch_points, len(self._buffer))
        batch = self._in_flight = [self._buffer.popleft() for _ in range(count)]
        try:
            await self.sink.write(batch)
        except TimeSeriesUnavailableError as exc:
            self._buffer.extendleft(reversed(batch))
            if self.healthy:
                logger.warning(
                    "time-series store %s unavailable, holding %d points: %s", self.sink.name, len(self._buffer), exc
                )
            self.healthy = False
            return False
        except TimeSeriesRejectedError as exc:
            self.rejected += len(batch)
            logger.error("time-series store %s refused %d points: %s", self.sink.name, len(batch), exc)
        except BaseException:
            self._buffer.extendleft(reversed(batch))
            raise
        else:
            self.written += len(batch)
            if not self.healthy:
                logger.info("time-series store %s is back", self.sink.name)
            self.healthy = True
            self._backoff.reset()
        finally:
            self._in_flight = []
        return True

    async def flush(self) -> None:
        """Write everything buffered now; stop at the first failure."""
        while self._buffer and await self._write_one_batch() and self.healthy:
            pass
