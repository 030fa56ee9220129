"""A real batching writer running on a time-series sink for the duration of a test, and what it stored."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fleet.timeseries.embedded import EmbeddedSink
from fleet.timeseries.writer import BatchingWriter


@contextlib.asynccontextmanager
async def running_writer(sink: EmbeddedSink) -> AsyncIterator[BatchingWriter]:
    writer = BatchingWriter(sink, batch_points=5_000, flush_interval_s=0.05, buffer_points=100_000, idle_flush_s=0.01)
    task = asyncio.create_task(writer.run())
    try:
        yield writer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await sink.close()


async def stored(writer: BatchingWriter, measurement: str, field: str) -> list[tuple[dict[str, str], float, int]]:
    """Every value of ``measurement``'s ``field`` the embedded store holds, oldest first (then by tags)."""
    sink = writer.sink
    assert isinstance(sink, EmbeddedSink)
    rows = await sink.series(measurement, field)
    return sorted(rows, key=lambda row: (row[2], sorted(row[0].items())))
