"""The batching writer: points reach the store in batches, survive an outage, and tickets say when."""

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from fleet.errors import TimeSeriesRejectedError, TimeSeriesUnavailableError
from fleet.timeseries.embedded import EmbeddedSink
from fleet.timeseries.points import Point, PointList, Points
from fleet.timeseries.writer import BatchingWriter

TS = 1_700_000_000_000
TAGS = (("device", "camera-1"), ("gateway", "gw-01"), ("village", "lakeside"))


def points(n: int, start: int = 0) -> PointList:
    return PointList([Point("telemetry", TAGS, (("line_in", float(i)),), TS + i) for i in range(start, start + n)])


class RecordingSink:
    """Accepts every write (passing it on to ``inner`` if given) and remembers the batches."""

    name = "recording"

    def __init__(self, inner: EmbeddedSink | None = None) -> None:
        self.inner = inner
        self.batches: list[list[Point]] = []  # the points of each write
        self.activity = asyncio.Event()  # set on every write attempt, so tests can wait for the writer

    @property
    def accepted(self) -> list[Point]:
        return [point for batch in self.batches for point in batch]

    async def write(self, batch: Sequence[Points]) -> None:
        if self.inner is not None:
            await self.inner.write(batch)
        self.batches.append([point for chunk in batch for point in chunk.rows()])
        self.activity.set()

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait, write attempt by write attempt, until ``condition`` holds."""
        while not condition():
            self.activity.clear()
            await self.activity.wait()

    async def close(self) -> None:
        if self.inner is not None:
            await self.inner.close()


class FlakySink(RecordingSink):
    """Unavailable for the first ``failures`` writes, then accepts everything."""

    name = "flaky"

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.attempts = 0

    async def write(self, batch: Sequence[Points]) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            self.activity.set()
            raise TimeSeriesUnavailableError("store is down")
        await super().write(batch)


class RefusingSink(RecordingSink):
    """Refuses the writes whose (1-based) numbers are in ``refused`` permanently."""

    name = "refusing"

    def __init__(self, refused: set[int]) -> None:
        super().__init__()
        self.refused = refused
        self.attempts = 0

    async def write(self, batch: Sequence[Points]) -> None:
        self.attempts += 1
        if self.attempts in self.refused:
            self.activity.set()
            raise TimeSeriesRejectedError("400 bad data")
        await super().write(batch)


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[EmbeddedSink]:
    sink = EmbeddedSink(tmp_path / "timeseries.db")
    yield sink
    await sink.close()


@pytest.fixture
async def running() -> AsyncIterator[Callable[[BatchingWriter], None]]:
    tasks: list[asyncio.Task[None]] = []

    def start(writer: BatchingWriter) -> None:
        tasks.append(asyncio.create_task(writer.run()))

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_flushed_points_land_in_the_embedded_store_and_read_back(embedded: EmbeddedSink) -> None:
    writer = BatchingWriter(embedded, batch_points=3, flush_interval_s=60, buffer_points=100)
    writer.add(points(7))

    await writer.flush()

    assert writer.written == 7
    assert writer.buffered == 0
    assert writer.healthy
    stored = await embedded.series("telemetry", "line_in")
    assert stored == [(dict(TAGS), float(i), TS + i) for i in range(7)]


async def test_points_are_written_in_batches_of_at_most_batch_points(embedded: EmbeddedSink) -> None:
    sink = RecordingSink(embedded)
    writer = BatchingWriter(sink, batch_points=3, flush_interval_s=60, buffer_points=100)
    writer.add(points(7))

    await writer.flush()

    assert [len(batch) for batch in sink.batches] == [3, 3, 1]
    assert len(await embedded.series("telemetry", "line_in")) == 7


async def test_every_field_of_a_point_is_stored(embedded: EmbeddedSink) -> None:
    health = Point("gateway_health", TAGS[1:], (("cpu_percent", 12.5), ("disk_percent", 70.0)), TS)
    writer = BatchingWriter(embedded, batch_points=10, flush_interval_s=60, buffer_points=100)
    writer.add(PointList([health]))

    await writer.flush()

    assert await embedded.series("gateway_health", "cpu_percent") == [(dict(TAGS[1:]), 12.5, TS)]
    assert await embedded.series("gateway_health", "disk_percent") == [(dict(TAGS[1:]), 70.0, TS)]
    assert await embedded.series("telemetry", "cpu_percent") == []


async def test_a_full_batch_wakes_the_running_writer(
    embedded: EmbeddedSink, running: Callable[[BatchingWriter], None]
) -> None:
    sink = RecordingSink(embedded)
    writer = BatchingWriter(sink, batch_points=5, flush_interval_s=3600, buffer_points=100)
    running(writer)

    writer.add(points(5))
    await sink.until(lambda: writer.written == 5)

    assert len(await embedded.series("telemetry", "line_in")) == 5


async def test_the_running_writer_flushes_a_partial_batch_every_interval(
    embedded: EmbeddedSink, running: Callable[[BatchingWriter], None]
) -> None:
    sink = RecordingSink(embedded)
    writer = BatchingWriter(sink, batch_points=1000, flush_interval_s=0.01, buffer_points=100, idle_flush_s=3600)
    running(writer)

    writer.add(points(2))
    await sink.until(lambda: writer.written == 2)

    assert writer.buffered == 0


async def test_the_end_of_a_burst_goes_out_once_the_input_is_quiet_without_waiting_for_the_interval(
    running: Callable[[BatchingWriter], None],
) -> None:
    sink = RecordingSink()
    writer = BatchingWriter(sink, batch_points=1000, flush_interval_s=3600, buffer_points=100, idle_flush_s=0.01)
    running(writer)

    writer.add(points(3))
    await sink.until(lambda: writer.written == 3)

    assert [len(batch) for batch in sink.batches] == [3]


async def test_nothing_is_lost_while_the_store_is_unavailable_and_health_recovers() -> None:
    sink = FlakySink(failures=3)
    writer = BatchingWriter(sink, batch_points=2, flush_interval_s=60, buffer_points=100)
    sent = points(5)
    writer.add(sent)

    for _ in range(3):
        await writer.flush()
        assert not writer.healthy
        assert writer.buffered == 5
        assert writer.written == 0

    await writer.flush()

    assert writer.healthy
    assert writer.written == 5
    assert writer.buffered == 0
    assert sink.accepted == sent.points


async def test_the_running_writer_retries_until_the_store_is_back(running: Callable[[BatchingWriter], None]) -> None:
    sink = FlakySink(failures=2)
    writer = BatchingWriter(sink, batch_points=2, flush_interval_s=3600, buffer_points=100)
    sent = points(4)
    running(writer)

    writer.add(sent)
    await sink.until(lambda: writer.written == 4)

    assert sink.attempts == 4
    assert sink.accepted == sent.points
    assert writer.healthy


async def test_flush_stops_at_the_first_failure() -> None:
    sink = FlakySink(failures=0)
    writer = BatchingWriter(sink, batch_points=2, flush_interval_s=60, buffer_points=100)
    writer.add(points(6))
    await writer.flush()
    sink.failures, sink.attempts = 1, 0
    writer.add(points(6, start=6))

    await writer.flush()

    assert sink.attempts == 1
    assert writer.buffered == 6
    assert not writer.healthy


async def test_a_refused_batch_is_dropped_and_counted_and_the_rest_is_written() -> None:
    sink = RefusingSink(refused={1})
    writer = BatchingWriter(sink, batch_points=2, flush_interval_s=60, buffer_points=100)
    sent = points(5)
    writer.add(sent)

    await writer.flush()

    assert writer.rejected == 2
    assert writer.written == 3
    assert writer.buffered == 0
    assert writer.healthy
    assert sink.accepted == sent.points[2:]


async def test_a_full_buffer_keeps_every_point_and_says_it_is_full() -> None:
    sink = RecordingSink()
    writer = BatchingWriter(sink, batch_points=2, flush_interval_s=60, buffer_points=3)
    sent = points(5)

    writer.add(sent)

    assert writer.full
    assert writer.dropped == 0
    assert writer.buffered == 5
    await writer.flush()
    assert sink.accepted == sent.points
    assert not writer.full


async def test_waiting_for_room_returns_once_the_store_took_enough(running: Callable[[BatchingWriter], None]) -> None:
    sink = FlakySink(failures=2)
    writer = BatchingWriter(sink, batch_points=2, flush_interval_s=0.01, buffer_points=4)
    writer.add(points(6))
    running(writer)

    await asyncio.wait_for(writer.wait_for_room(), 10)

    assert writer.buffered < 4
    assert sink.attempts >= 3


async def test_a_ticket_completes_only_once_all_its_points_are_written() -> None:
    sink = FlakySink(failures=1)
    writer = BatchingWriter(sink, batch_points=2, flush_interval_s=60, buffer_points=100)
    first = writer.add(points(3))
    second = writer.add(points(1, start=3))
    assert first is not None
    assert second is not None

    await writer.flush()  # the store is down
    assert not first.done()
    assert not second.done()
    await writer.flush()  # [0, 1] then [2, 3]

    assert first.done()
    assert second.done()
    assert sink.accepted == points(4).points


async def test_a_ticket_is_not_completed_by_an_earlier_batch() -> None:
    sink = GatedSink()
    writer = BatchingWriter(sink, batch_points=2, flush_interval_s=60, buffer_points=100)
    first = writer.add(points(2))
    second = writer.add(points(2, start=2))
    assert first is not None
    assert second is not None
    sink.gate.set()

    await writer._write_one_batch()

    assert first.done()
    assert not second.done()


async def test_a_refused_batch_completes_its_tickets_because_retrying_cannot_help() -> None:
    sink = RefusingSink(refused={1})
    writer = BatchingWriter(sink, batch_points=2, flush_interval_s=60, buffer_points=100)
    ticket = writer.add(points(2))
    assert ticket is not None

    await writer.flush()

    assert ticket.done()
    assert writer.rejected == 2


async def test_adding_no_points_needs_no_ticket() -> None:
    writer = BatchingWriter(RecordingSink(), batch_points=2, flush_interval_s=60, buffer_points=100)

    assert writer.add(PointList([])) is None


async def test_flushing_an_empty_buffer_writes_nothing() -> None:
    sink = RecordingSink()
    writer = BatchingWriter(sink, batch_points=10, flush_interval_s=60, buffer_points=10)

    await writer.flush()

    assert sink.batches == []
    assert writer.written == 0


class GatedSink(RecordingSink):
    """Holds each write until the test opens the gate, so points can arrive while a batch is in flight."""

    name = "gated"

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def write(self, batch: Sequence[Points]) -> None:
        self.entered.set()
        await self.gate.wait()
        await super().write(batch)


async def test_a_batch_ends_inside_a_chunk_and_the_rest_of_it_leads_the_next() -> None:
    sink = RecordingSink()
    writer = BatchingWriter(sink, batch_points=4, flush_interval_s=60, buffer_points=100)
    first, second = points(3), points(3, start=3)
    first_ticket, second_ticket = writer.add(first), writer.add(second)
    assert first_ticket is not None
    assert second_ticket is not None

    await writer._write_one_batch()

    assert [[p.ts_ms - TS for p in batch] for batch in sink.batches] == [[0, 1, 2, 3]]
    assert first_ticket.done()
    assert not second_ticket.done()
    assert writer.buffered == 2
    await writer.flush()
    assert sink.accepted == [*first.points, *second.points]
    assert second_ticket.done()


async def test_the_running_writer_holds_a_partial_batch_until_it_fills(
    running: Callable[[BatchingWriter], None],
) -> None:
    """Busy ingest writes few large requests: a partial batch waits (here for an interval that never
    passes) while more points arrive, and goes out whole once it is full."""
    sink = RecordingSink()
    writer = BatchingWriter(sink, batch_points=5, flush_interval_s=3600, buffer_points=100, idle_flush_s=3600)
    running(writer)

    writer.add(points(3))
    for _ in range(20):  # give the writer every chance to (wrongly) send the partial batch
        await asyncio.sleep(0)
    assert sink.batches == []
    writer.add(points(2, start=3))
    await sink.until(lambda: writer.written == 5)

    assert [len(batch) for batch in sink.batches] == [5]
    assert writer.batches == 1


async def test_after_a_quiet_interval_the_partial_batch_goes_out_alone_and_newcomers_wait_to_fill(
    running: Callable[[BatchingWriter], None],
) -> None:
    """Points arriving while the partial batch is written wait for a full batch (or the next interval):
    a steady stream must not degrade into one tiny write per write's duration."""
    sink = GatedSink()
    writer = BatchingWriter(sink, batch_points=5, flush_interval_s=0.01, buffer_points=100, idle_flush_s=3600)
    running(writer)
    writer.add(points(2))
    await sink.entered.wait()  # the interval passed: the partial batch is being written
    writer.flush_interval_s = 3600.0  # no further interval passes during the rest of the test

    writer.add(points(3, start=2))
    sink.gate.set()
    await sink.until(lambda: writer.written == 2)
    for _ in range(20):
        await asyncio.sleep(0)
    assert writer.buffered == 3, "the newcomers wait to fill a batch"
    writer.add(points(2, start=5))
    await sink.until(lambda: writer.written == 7)

    assert [len(batch) for batch in sink.batches] == [2, 5]
