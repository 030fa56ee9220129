"""Batches points in memory and writes them to the sink, retrying while it is unavailable.

The batch being written is held apart from the points waiting behind it; if the write fails it goes
back to the front. Points are never dropped for lack of room: :meth:`BatchingWriter.add` returns a
ticket, a future completed once every point it added has been written (or refused for good by the
store, which retrying cannot change), so ingest acknowledges a message to the broker only then. The
bound (``buffer_points``) is back-pressure instead: :attr:`BatchingWriter.full` says when ingest must
stop taking messages, and :meth:`BatchingWriter.wait_for_room` when it may take more. A caller checks
before each message, so the buffer can exceed the bound by one message's points at most.
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

Ticket = asyncio.Future[None]
"""Completed once the points of one :meth:`BatchingWriter.add` call are stored (or refused for good)."""


class BatchingWriter:
    def __init__(self, sink: TimeSeriesSink, batch_points: int, flush_interval_s: float, buffer_points: int) -> None:
        self.sink = sink
        self._batch_points = batch_points
        self._flush_interval_s = flush_interval_s
        self._buffer_points = buffer_points
        self._buffer: deque[Point] = deque()
        self._in_flight: list[Point] = []
        # Tickets wait in add order for the running count of points settled (written or refused).
        self._tickets: deque[tuple[int, Ticket]] = deque()
        self._added = 0
        self._settled = 0
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._backoff = Backoff(base_s=0.2, cap_s=10.0)
        self.written = 0
        self.dropped = 0  # kept for /healthz: the writer no longer drops points (back-pressure instead)
        self.rejected = 0
        self.healthy = True

    @property
    def buffered(self) -> int:
        return len(self._buffer) + len(self._in_flight)

    @property
    def bound(self) -> int:
        return self._buffer_points

    @property
    def full(self) -> bool:
        """Whether the buffer reached its bound: callers must stop adding until :meth:`wait_for_room`."""
        return self.buffered >= self._buffer_points

    async def wait_for_room(self) -> None:
        """Return once the buffer is below its bound."""
        while self.full:
            self._room.clear()
            await self._room.wait()

    def add(self, points: Iterable[Point]) -> Ticket | None:
        """Queue ``points``; the ticket completes once all of them are stored. None when there were none."""
        before = len(self._buffer)
        self._buffer.extend(points)
        count = len(self._buffer) - before
        if count == 0:
            return None
        self._added += count
        ticket: Ticket = asyncio.get_running_loop().create_future()
        self._tickets.append((self._added, ticket))
        if len(self._buffer) >= self._batch_points:
            self._wake.set()
        return ticket

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
            self._settle(len(batch))
        except BaseException:
            self._buffer.extendleft(reversed(batch))
            raise
        else:
            self.written += len(batch)
            if not self.healthy:
                logger.info("time-series store %s is back", self.sink.name)
            self.healthy = True
            self._backoff.reset()
            self._settle(len(batch))
        finally:
            self._in_flight = []
            if not self.full:
                self._room.set()
        return True

    def _settle(self, count: int) -> None:
        """``count`` more points (the oldest) are done with: complete the tickets they fulfil."""
        self._settled += count
        tickets = self._tickets
        while tickets and tickets[0][0] <= self._settled:
            _, ticket = tickets.popleft()
            if not ticket.done():
                ticket.set_result(None)

    async def flush(self) -> None:
        """Write everything buffered now; stop at the first failure."""
        while self._buffer and await self._write_one_batch() and self.healthy:
            pass
