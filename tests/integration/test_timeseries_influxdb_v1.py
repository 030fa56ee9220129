"""The fleet's batching writer with the v1 write sink into a real InfluxDB 1.6 (Debian's ``influxdb``).

InfluxDB 1.6 has no v2 write API; these prove the v1 sink instead: what the writer writes reads back
through InfluxQL with the same values, tags and millisecond timestamps; a database that does not exist
yet holds the points rather than losing them; points the server refuses are counted as rejected and
do not block the ones behind them.
"""

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any, Final

import httpx
import pytest
from pydantic import AnyHttpUrl, SecretStr

from fleet.errors import TimeSeriesRejectedError
from fleet.settings import InfluxSettings
from fleet.timeseries.influx_v1 import InfluxV1Sink
from fleet.timeseries.points import (
    DEVICE_EVENT,
    GATEWAY_HEALTH,
    TELEMETRY,
    Point,
    PointList,
    Points,
    event_point,
    health_point,
    telemetry_points,
)
from fleet.timeseries.writer import BatchingWriter
from protocol.messages import (
    AdapterState,
    DeviceEvent,
    EventKind,
    GatewayHealth,
    Heartbeat,
    TelemetryBatch,
    TelemetryPoint,
)
from simulators.infra.influxdb import InfluxDBServer
from tests.integration.conftest import eventually

pytestmark = pytest.mark.integration

DATABASE: Final = "outpost_1x"
VILLAGE: Final = "lakeside"
GATEWAY: Final = "gw-lake-01"
BASE_MS: Final = 1_795_000_000_123
WAIT_S: Final = 10.0


@pytest.fixture
async def influxdb() -> AsyncIterator[InfluxDBServer]:
    if not InfluxDBServer.available():
        pytest.fail(InfluxDBServer.not_installed_message())
    async with InfluxDBServer() as server:
        yield server


def v1_sink(server: InfluxDBServer, database: str) -> InfluxV1Sink:
    """The v1 sink as a 1.x without auth is configured: the token is required but ignored."""
    settings = InfluxSettings(
        url=AnyHttpUrl(server.url), token=SecretStr("ignored-without-auth"), write_api="v1", influxql_database=database
    )
    return InfluxV1Sink(settings)


@contextlib.asynccontextmanager
async def running_writer(server: InfluxDBServer, database: str, *, batch_points: int) -> AsyncIterator[BatchingWriter]:
    """The fleet's writer with the v1 sink, running; closed after."""
    writer = BatchingWriter(v1_sink(server, database), batch_points, 0.05, 100_000, idle_flush_s=0.01)
    task = asyncio.create_task(writer.run())
    try:
        yield writer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await writer.sink.close()


async def stored(writer: BatchingWriter, chunks: Iterable[Points]) -> None:
    """Add ``chunks`` and return once every point was written or refused for good."""
    tickets = [ticket for chunk in chunks if (ticket := writer.add(chunk)) is not None]
    async with asyncio.timeout(WAIT_S):
        await asyncio.gather(*tickets)


async def select_all(server: InfluxDBServer, database: str, measurement: str) -> list[dict[str, Any]]:
    """Every row of ``measurement`` through InfluxQL on ``/query``, tags and fields by name, nulls left out."""
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT_S) as client:
        response = await client.get(
            "/query", params={"db": database, "q": f'SELECT * FROM "{measurement}"', "epoch": "ms"}
        )
    response.raise_for_status()
    [result] = response.json()["results"]
    assert "error" not in result, result
    rows = [
        {name: value for name, value in zip(series["columns"], values, strict=True) if value is not None}
        for series in result.get("series", [])
        for values in series["values"]
    ]
    return sorted(rows, key=_row_order)


def as_rows(points: Iterable[Point]) -> list[dict[str, Any]]:
    """``points`` as :func:`select_all` reads them back: ``time`` in ms, each tag and field by name."""
    return sorted(({"time": p.ts_ms, **dict(p.tags), **dict(p.fields)} for p in points), key=_row_order)


def _row_order(row: dict[str, Any]) -> tuple[int, str]:
    return row["time"], repr(sorted((k, v) for k, v in row.items() if isinstance(v, str)))


def telemetry(seq: int, metric: str, count: int, start_ms: int = BASE_MS) -> TelemetryBatch:
    points = [
        TelemetryPoint(device_id=device, metric=metric, value=i / 3 - 7.5, ts=start_ms + i * 1000)
        for i in range(count)
        for device in ("cam-gate", "door-hall")
    ]
    return TelemetryBatch(gateway_id=GATEWAY, seq=seq, event_id=uuid.uuid4(), ts=start_ms, points=points)


def heartbeat(i: int) -> Heartbeat:
    return Heartbeat(
        gateway_id=GATEWAY,
        seq=100 + i,
        event_id=uuid.uuid4(),
        ts=BASE_MS + i * 10_000,
        interval_s=10.0,
        health=GatewayHealth(
            cpu_percent=12.5 + i,
            memory_percent=40.25,
            disk_percent=71.0,
            uptime_s=86_400.0 + i * 10,
            temperature_c=51.2 if i % 2 else None,
            uplink_rtt_ms=23.5,
            buffer_depth=i,
            buffer_bytes=4096 * i,
            dropped={"telemetry": i},
            adapters={"cam-gate": AdapterState.RUNNING, "door-hall": AdapterState.OFFLINE},
        ),
    )


def event(i: int, kind: EventKind) -> DeviceEvent:
    return DeviceEvent(
        gateway_id=GATEWAY, seq=200 + i, event_id=uuid.uuid4(), ts=BASE_MS + i * 777, device_id="door-hall", kind=kind
    )


async def test_telemetry_health_and_events_written_through_v1_read_back_with_influxql(
    influxdb: InfluxDBServer,
) -> None:
    await influxdb.create_database(DATABASE)
    readings = telemetry_points(VILLAGE, telemetry(1, "line_in", 9))
    health = PointList([health_point(VILLAGE, heartbeat(i)) for i in range(3)])
    events = PointList(
        [event_point(VILLAGE, event(i, kind)) for i, kind in enumerate([EventKind.DOOR_OPENED, EventKind.MOTION])]
    )

    # Batches of 4: a request ends inside a chunk and takes points of several measurements.
    async with running_writer(influxdb, DATABASE, batch_points=4) as writer:
        await stored(writer, [readings, health, events])

    assert writer.written == len(readings) + len(health) + len(events)
    assert writer.rejected == 0
    assert await select_all(influxdb, DATABASE, TELEMETRY) == as_rows(readings.rows())
    assert await select_all(influxdb, DATABASE, GATEWAY_HEALTH) == as_rows(health.rows())
    assert await select_all(influxdb, DATABASE, DEVICE_EVENT) == as_rows(events.rows())


async def test_a_missing_database_holds_the_points_until_it_exists(influxdb: InfluxDBServer) -> None:
    readings = telemetry_points(VILLAGE, telemetry(1, "line_in", 5))

    async with running_writer(influxdb, DATABASE, batch_points=100) as writer:
        ticket = writer.add(readings)
        assert ticket is not None

        async def unavailable() -> bool:
            return not writer.healthy

        await eventually(unavailable, what="the writer finding the database missing")
        assert not ticket.done()
        assert writer.buffered == len(readings)
        assert writer.written == 0

        await influxdb.create_database(DATABASE)
        async with asyncio.timeout(WAIT_S):
            await ticket

        assert writer.healthy
        assert writer.written == len(readings)
        assert writer.rejected == 0
    assert await select_all(influxdb, DATABASE, TELEMETRY) == as_rows(readings.rows())


async def test_points_the_server_refuses_are_rejected_and_the_rest_written(
    influxdb: InfluxDBServer, caplog: pytest.LogCaptureFixture
) -> None:
    await influxdb.create_database(DATABASE)
    # line_in is a string field in this shard already: float points for it are a field type conflict.
    await influxdb.write(
        DATABASE, [f'{TELEMETRY},device=cam-gate,gateway={GATEWAY},village={VILLAGE} line_in="broken" {BASE_MS - 1}']
    )
    conflicting = telemetry_points(VILLAGE, telemetry(1, "line_in", 3))
    fine = telemetry_points(VILLAGE, telemetry(2, "line_out", 3, start_ms=BASE_MS + 60_000))

    sink = v1_sink(influxdb, DATABASE)
    try:
        with pytest.raises(TimeSeriesRejectedError, match=r"answered 400: .*partial write: field type conflict"):
            await sink.write([conflicting])
    finally:
        await sink.close()

    caplog.set_level(logging.ERROR, logger="fleet.timeseries.writer")
    async with running_writer(influxdb, DATABASE, batch_points=len(conflicting)) as writer:
        await stored(writer, [conflicting, fine])

    assert writer.rejected == len(conflicting)
    assert writer.written == len(fine)
    assert "field type conflict" in caplog.text
    seeded = {"time": BASE_MS - 1, "device": "cam-gate", "gateway": GATEWAY, "village": VILLAGE, "line_in": "broken"}
    assert await select_all(influxdb, DATABASE, TELEMETRY) == sorted([seeded, *as_rows(fine.rows())], key=_row_order)
