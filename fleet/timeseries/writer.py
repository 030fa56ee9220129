"""Batches points in memory and writes them to the sink, retrying while it is unavailable.

Points arrive as chunks (one message's :class:`~fleet.timeseries.points.Points`) and wait in arrival
order. A batch takes chunks from the front until it holds ``batch_points`` points, splitting the last
one when it would overshoot; the batch being written is held apart from the points behind it, and if
the write fails it goes back to the front. The running writer sends a batch as soon as it is full, and
a partial one only when the input went quiet (nothing added for ``idle_flush_s``, the end of a burst)
or its oldest point has waited ``flush_interval_s``. So a busy ingest writes few large requests (the
store's cost per request, not per point, dominates small batches; writing whatever had arrived after
each write degraded a steady stream to ~60 points a request), and no point waits long for company.

Points are never dropped for lack of room: :meth:`BatchingWriter.add` returns a ticket, a future
completed once every point it added has been written (or refused for good by the store, which retrying
cannot change), so ingest acknowledges a message to the broker only then. The bound (``buffer_points``)
is back-pressure instead: :attr:`BatchingWriter.full` says when ingest must stop taking messages, and
:meth:`BatchingWriter.wait_for_room` when it may take more. A caller checks before each message, so
the buffer can exceed the bound by one message's points at most.
"""

import asyncio
import contextlib
import logging
from collections import deque

from fleet.errors import TimeSeriesRejectedError, TimeSeriesUnavailableError
from fleet.timeseries.points import Points
from fleet.timeseries.sink import TimeSeriesSink
from protocol.reconnect import Backoff

logger = logging.getLogger(__name__)

Ticket = asyncio.Future[None]
"""Completed once the points of one :meth:`BatchingWriter.add` call are stored (or refused for good)."""


class BatchingWriter:
    def __init__(
        self,
        sink: TimeSeriesSink,
        batch_points: int,
        flush_interval_s: float,
        buffer_points: int,
        *,
        idle_flush_s: float = 0.05,
    ) -> None:
        self.sink = sink
        self._batch_points = batch_points
        self.flush_interval_s = flush_interval_s
        self.idle_flush_s = idle_flush_s
        self._buffer_points = buffer_points
        self._buffer: deque[tuple[Points, float]] = deque()  # with the loop time each chunk arrived
        self._last_add = 0.0
        self._waiting = 0  # points in _buffer
        self._in_flight = 0  # points in the batch being written
        # Tickets wait in add order for the running count of points settled (written or refused).
        self._tickets: deque[tuple[int, Ticket]] = deque()
        self._added = 0
        self._settled = 0
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._backoff = Backoff(base_s=0.2, cap_s=10.0)
        self.written = 0
        self.batches = 0
        self.dropped = 0  # state points nobody waited for, dropped beyond twice the bound (add_unawaited)
        self.rejected = 0
        self.healthy = True

    @property
    def buffered(self) -> int:
        return self._waiting + self._in_flight

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

    def add(self, points: Points) -> Ticket | None:
        """Queue ``points``; the ticket completes once all of them are stored. None when there were none."""
        count = len(points)
        if count == 0:
            return None
        loop = asyncio.get_running_loop()
        self._last_add = loop.time()
        self._buffer.append((points, self._last_add))
        self._waiting += count
        self._added += count
        ticket: Ticket = loop.create_future()
        self._tickets.append((self._added, ticket))
        if self._waiting >= self._batch_points:
            self._wake.set()
        return ticket

    def add_unawaited(self, points: Points) -> bool:
        """Queue points of last-known state nobody waits for (a heartbeat's health, acknowledged at once):
        taken unless the buffer already holds twice its bound, else dropped and counted in ``dropped``."""
        if self.buffered >= 2 * self._buffer_points:
            self.dropped += len(points)
            if self.dropped == len(points) or self.dropped % 10_000 < len(points):
                logger.warning("time-series buffer at twice its bound: %d state points dropped so far", self.dropped)
            return False
        self.add(points)
        return True

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            with contextlib.suppress(TimeoutError):
                # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation that arrives
                # as the wake-up does, and the task would outlive the fleet's shutdown.
                async with asyncio.timeout(min(self.idle_flush_s, self.flush_interval_s)):
                    await self._wake.wait()
            self._wake.clear()
            partial_due = self._partial_due(loop.time())
            # After a partial batch, points arriving meanwhile wait to fill the next one.
            while self._waiting >= self._batch_points or (partial_due and self._waiting):
                if await self._write_one_batch():
                    partial_due = False
                else:
                    await asyncio.sleep(self._backoff.next_delay())

    def _partial_due(self, now: float) -> bool:
        """Whether the points waiting, fewer than a batch, should go out now (see the module docstring)."""
        if not self._buffer:
            return False
        oldest_arrival = self._buffer[0][1]
        return now - self._last_add >= self.idle_flush_s or now - oldest_arrival >= self.flush_interval_s

    def _take_batch(self) -> tuple[list[tuple[Points, float]], int]:
        """Up to ``batch_points`` of the oldest points, off the front of the buffer, and how many."""
        batch: list[tuple[Points, float]] = []
        room = self._batch_points
        buffer = self._buffer
        while buffer and room:
            chunk, arrived = buffer.popleft()
            if len(chunk) > room:
                chunk, rest = chunk.split(room)
                buffer.appendleft((rest, arrived))
            batch.append((chunk, arrived))
            room -= len(chunk)
        count = self._batch_points - room
        self._waiting -= count
        return batch, count

    async def _write_one_batch(self) -> bool:
        """Write the oldest batch; False (and the batch back in front) when the sink is unavailable."""
        batch, count = self._take_batch()
        self._in_flight = count
        try:
            await self.sink.write([chunk for chunk, _ in batch])
        except TimeSeriesUnavailableError as exc:
            self._put_back(batch, count)
            if self.healthy:
                logger.warning(
                    "time-series store %s unavailable, holding %d points: %s", self.sink.name, self._waiting, exc
                )
            self.healthy = False
            return False
        except TimeSeriesRejectedError as exc:
            self.rejected += count
            logger.error("time-series store %s refused %d points: %s", self.sink.name, count, exc)
            self._settle(count)
        except BaseException:
            self._put_back(batch, count)
            raise
        else:
            self.written += count
            self.batches += 1
            if not self.healthy:
                logger.info("time-series store %s is back", self.sink.name)
            self.healthy = True
            self._backoff.reset()
            self._settle(count)
        finally:
            self._in_flight = 0
            if not self.full:
                self._room.set()
        return True

    def _put_back(self, batch: list[tuple[Points, float]], count: int) -> None:
        self._buffer.extendleft(reversed(batch))
        self._waiting += count

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
        while self._waiting and await self._write_one_batch() and self.healthy:
            pass
