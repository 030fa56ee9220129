"""The state export as a task: its rounds, a clean stop, riding out an unavailable database and time-series
store, and its place in the fleet service."""

import asyncio
import contextlib
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.db.engine import create_engine, migrate, session_factory
from fleet.service import FleetService
from fleet.settings import ApiSettings, FleetSettings, StateExportSettings, TimeSeriesSettings
from fleet.state_export.alert_steps import AlertSteps
from fleet.state_export.gauges import GaugeReader
from fleet.state_export.task import StateExport
from fleet.state_export.watermark import WatermarkFile
from fleet.timeseries.embedded import EmbeddedSink
from fleet.timeseries.writer import BatchingWriter
from protocol.reconnect import Backoff
from tests.fleet.helpers import FakeClock, database_url
from tests.fleet.state_export.running_writer import running_writer, stored
from tests.fleet.state_export.seed import NOW_MS, add_rows, alert, gateway, step, village
from tests.fleet.state_export.test_gauges import health
from tests.integration.conftest import eventually


def export_task(
    sessions: async_sessionmaker[AsyncSession], writer: BatchingWriter, mark: Path, clock: FakeClock
) -> StateExport:
    return StateExport(
        GaugeReader(sessions, health, "fleet-a"),
        AlertSteps(sessions, clock),
        WatermarkFile(mark),
        writer,
        clock,
        interval_s=0.05,
        backoff=Backoff(base_s=0.05, cap_s=0.1),
    )


async def seed(sessions: async_sessionmaker[AsyncSession]) -> None:
    await add_rows(
        sessions, [village("xihe"), gateway("gw-1", "xihe"), alert("a1", "gw-1", "xihe"), step("a1", "raise", NOW_MS)]
    )


async def stop(task: "asyncio.Task[None]") -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert task.cancelled()


async def test_runs_a_round_every_interval_and_stops_when_cancelled(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path, clock: FakeClock
) -> None:
    await seed(sessions)
    async with running_writer(EmbeddedSink(tmp_path / "ts.db")) as writer:
        export = export_task(sessions, writer, tmp_path / "mark.json", clock)
        task = asyncio.create_task(export.run())

        async def rounds() -> bool:
            return export.rounds >= 3

        await eventually(rounds, what="three export rounds")
        await stop(task)

        assert len(await stored(writer, "village_state", "status")) >= 3  # a gauge every round
        assert len(await stored(writer, "alert_step", "count")) == 1  # a step once
    assert (await WatermarkFile(tmp_path / "mark.json").load()).alert_id == "a1"


async def test_rides_out_a_database_that_is_not_there_yet(tmp_path: Path, clock: FakeClock) -> None:
    engine = create_engine(database_url(tmp_path))  # not migrated: every query fails like a database away
    sessions = session_factory(engine)
    try:
        async with running_writer(EmbeddedSink(tmp_path / "ts.db")) as writer:
            export = export_task(sessions, writer, tmp_path / "mark.json", clock)
            task = asyncio.create_task(export.run())
            await asyncio.sleep(0.3)
            assert not task.done()
            assert export.rounds == 0

            await migrate(engine)
            await seed(sessions)

            async def exported() -> bool:
                return export.rounds >= 1 and export.step_points == 1

            await eventually(exported, what="an export round once the database answers")
            await stop(task)
    finally:
        await engine.dispose()


async def test_keeps_no_watermark_until_the_time_series_store_took_the_steps(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path, clock: FakeClock
) -> None:
    await seed(sessions)
    store_dir = tmp_path / "not-yet"  # the embedded store cannot open its file: unavailable
    mark = tmp_path / "mark.json"
    async with running_writer(EmbeddedSink(store_dir / "ts.db")) as writer:
        export = export_task(sessions, writer, mark, clock)
        task = asyncio.create_task(export.run())

        async def unhealthy() -> bool:
            return not writer.healthy

        await eventually(unhealthy, what="the time-series store failing")
        assert not mark.exists()
        assert export.rounds == 0

        store_dir.mkdir()

        async def written() -> bool:
            return export.rounds >= 1 and mark.exists()

        await eventually(written, what="the round completing once the store is back")
        await stop(task)
        assert len(await stored(writer, "alert_step", "count")) == 1


def test_the_fleet_service_runs_it_unless_disabled(tmp_path: Path) -> None:
    settings = FleetSettings(
        environment="development",
        database_url=database_url(tmp_path),
        api=ApiSettings(port=0),
        timeseries=TimeSeriesSettings(embedded_path=tmp_path / "ts.db"),
    )
    assert isinstance(FleetService(settings).state_export, StateExport)
    disabled = settings.model_copy(update={"state_export": StateExportSettings(enabled=False)})
    assert FleetService(disabled).state_export is None


@pytest.mark.parametrize("interval_s", [0.5, 3601.0])
def test_an_interval_out_of_bounds_is_refused(interval_s: float) -> None:
    with pytest.raises(ValidationError, match="interval_s"):
        StateExportSettings(interval_s=interval_s)
