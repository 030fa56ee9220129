"""Alert steps exported once each at their own time, behind a watermark that survives a restart (SQLite and
PostgreSQL), written through a real batching writer into the embedded store (which keeps every write)."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.api.schemas import HealthReport
from fleet.state_export.alert_steps import AlertSteps
from fleet.state_export.gauges import GaugeReader
from fleet.state_export.task import StateExport
from fleet.state_export.watermark import BEGINNING, Watermark, WatermarkFile
from fleet.timeseries.embedded import EmbeddedSink
from fleet.timeseries.writer import BatchingWriter
from tests.fleet.helpers import FakeClock
from tests.fleet.state_export.running_writer import running_writer, stored
from tests.fleet.state_export.seed import NOW_MS, add_rows, alert, county, gateway, step, town, village
from tests.fleet.state_export.test_gauges import health

PLACE = {"county": "north", "town": "riverside", "village": "xihe"}
RAISED_MS = NOW_MS - 2_000


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[BatchingWriter]:
    async with running_writer(EmbeddedSink(tmp_path / "timeseries.db")) as writer:
        yield writer


def exporter(
    sessions: async_sessionmaker[AsyncSession],
    writer: BatchingWriter,
    watermark: Path,
    clock: FakeClock,
    *,
    batch: int = 5_000,
    health_report: HealthReport | None = None,
) -> StateExport:
    """A state export as a freshly started fleet makes it: nothing in memory but the watermark file."""
    return StateExport(
        GaugeReader(sessions, lambda: health_report or health(), "fleet-a"),
        AlertSteps(sessions, clock, batch=batch),
        WatermarkFile(watermark),
        writer,
        clock,
        interval_s=15.0,
    )


async def seed_place(sessions: async_sessionmaker[AsyncSession]) -> None:
    await add_rows(
        sessions,
        [
            county(),
            town("riverside"),
            village("xihe", "riverside"),
            village("shanbei"),
            gateway("gw-1", "xihe"),
            gateway("gw-3", "shanbei"),
            alert("a1", "gw-1", "xihe", raised_at_ms=RAISED_MS),
            alert("a2", "gw-1", "xihe", raised_at_ms=RAISED_MS, kind="door_forced", severity="major"),
            alert("a3", "gw-3", "shanbei", raised_at_ms=RAISED_MS),
        ],
    )


def step_tags(place: dict[str, str], kind: str, severity: str, step_name: str, level: str) -> dict[str, str]:
    return place | {"kind": kind, "severity": severity, "step": step_name, "level": level}


async def test_each_step_is_one_point_at_its_time_and_notes_are_not_steps(
    any_sessions: async_sessionmaker[AsyncSession], writer: BatchingWriter, tmp_path: Path, clock: FakeClock
) -> None:
    await seed_place(any_sessions)
    await add_rows(
        any_sessions,
        [
            step("a1", "raise", NOW_MS - 1_000),
            step("a1", "note", NOW_MS + 1_000),
            step("a1", "acknowledge", NOW_MS + 28_000),
            step("a3", "raise", NOW_MS - 1_000),
        ],
    )

    await exporter(any_sessions, writer, tmp_path / "mark.json", clock).export_once()

    assert await stored(writer, "alert_step", "count") == [
        (step_tags(PLACE, "panic", "critical", "raise", "village"), 1.0, NOW_MS - 1_000),
        (
            step_tags(
                {**PLACE, "county": "unassigned", "town": "unassigned", "village": "shanbei"},
                "panic",
                "critical",
                "raise",
                "village",
            ),
            1.0,
            NOW_MS - 1_000,
        ),
        (step_tags(PLACE, "panic", "critical", "acknowledge", "village"), 1.0, NOW_MS + 28_000),
    ]
    assert [(value, ts) for _, value, ts in await stored(writer, "alert_step", "since_raised_s")] == [
        (1.0, NOW_MS - 1_000),
        (1.0, NOW_MS - 1_000),
        (30.0, NOW_MS + 28_000),  # time to acknowledge, from when the button was pressed
    ]


async def test_steps_alike_in_the_same_millisecond_are_one_point_with_their_count(
    any_sessions: async_sessionmaker[AsyncSession], writer: BatchingWriter, tmp_path: Path, clock: FakeClock
) -> None:
    await seed_place(any_sessions)
    escalated_ms = NOW_MS + 120_000
    await add_rows(
        any_sessions,
        [
            step("a1", "escalate", escalated_ms, level="town"),
            step("a2", "escalate", escalated_ms, level="town"),  # another kind: another series
            step("a1", "escalate", escalated_ms, level="town"),  # (the same alert twice, for a second alike)
        ],
    )

    await exporter(any_sessions, writer, tmp_path / "mark.json", clock).export_once()

    assert await stored(writer, "alert_step", "count") == [
        (step_tags(PLACE, "door_forced", "major", "escalate", "town"), 1.0, escalated_ms),
        (step_tags(PLACE, "panic", "critical", "escalate", "town"), 2.0, escalated_ms),
    ]


async def test_restart_neither_rewrites_nor_loses_steps(
    any_sessions: async_sessionmaker[AsyncSession], writer: BatchingWriter, tmp_path: Path, clock: FakeClock
) -> None:
    mark = tmp_path / "state" / "mark.json"
    await seed_place(any_sessions)
    await add_rows(any_sessions, [step("a1", "raise", NOW_MS), step("a2", "raise", NOW_MS + 1)])
    first = exporter(any_sessions, writer, mark, clock)
    await first.export_once()
    await first.export_once()  # a second round: nothing new
    await add_rows(any_sessions, [step("a1", "acknowledge", NOW_MS + 5_000)])  # while the fleet is down

    restarted = exporter(any_sessions, writer, mark, clock)
    await restarted.export_once()
    await add_rows(any_sessions, [step("a1", "resolve", NOW_MS + 9_000)])
    await restarted.export_once()

    assert [(tags["step"], ts) for tags, _, ts in await stored(writer, "alert_step", "count")] == [
        ("raise", NOW_MS),
        ("raise", NOW_MS + 1),
        ("acknowledge", NOW_MS + 5_000),
        ("resolve", NOW_MS + 9_000),
    ]
    assert restarted.settled is not None
    assert restarted.settled.at_ms == NOW_MS + 9_000


async def test_history_is_exported_from_the_beginning_in_bounded_batches(
    any_sessions: async_sessionmaker[AsyncSession], writer: BatchingWriter, tmp_path: Path, clock: FakeClock
) -> None:
    await seed_place(any_sessions)
    # steps 3 and 4 share a millisecond: a batch of 3 ends before them, so they are counted together
    at = [NOW_MS, NOW_MS + 1, NOW_MS + 2, NOW_MS + 2, NOW_MS + 3, NOW_MS + 4, NOW_MS + 5]
    await add_rows(any_sessions, [step("a1", "escalate", ms, level="town") for ms in at])
    export = exporter(any_sessions, writer, tmp_path / "mark.json", clock, batch=3)

    await export.export_once()

    assert [(value, ts) for _, value, ts in await stored(writer, "alert_step", "count")] == [
        (1.0, NOW_MS),
        (1.0, NOW_MS + 1),
        (2.0, NOW_MS + 2),
        (1.0, NOW_MS + 3),
        (1.0, NOW_MS + 4),
        (1.0, NOW_MS + 5),
    ]
    assert writer.batches >= 3  # several batches, each written before the next was read


async def test_a_step_committed_behind_a_higher_id_is_not_passed_over(
    any_sessions: async_sessionmaker[AsyncSession], writer: BatchingWriter, tmp_path: Path, clock: FakeClock
) -> None:
    """PostgreSQL hands out ids at insert: id 3 may commit after id 4 was read."""
    clock.now_ms = NOW_MS + 10_000
    await seed_place(any_sessions)
    await add_rows(
        any_sessions,
        [
            step("a1", "raise", NOW_MS, id=1),
            step("a2", "raise", NOW_MS + 1, id=2),
            step("a1", "acknowledge", NOW_MS + 4, id=4),
        ],
    )
    export = exporter(any_sessions, writer, tmp_path / "mark.json", clock)
    await export.export_once()
    assert export.settled is not None
    assert export.settled.transition_id == 2

    await add_rows(any_sessions, [step("a3", "raise", NOW_MS + 3, id=3)])
    await export.export_once()

    assert export.settled is not None
    assert export.settled.transition_id == 4
    assert sorted(ts for _, _, ts in await stored(writer, "alert_step", "count")) == [
        NOW_MS,
        NOW_MS + 1,
        NOW_MS + 3,
        NOW_MS + 4,
        NOW_MS + 4,  # written again, identically, while it waited: the server keeps it once
    ]


async def test_a_gap_that_never_fills_is_passed_after_the_grace(
    any_sessions: async_sessionmaker[AsyncSession], writer: BatchingWriter, tmp_path: Path, clock: FakeClock
) -> None:
    clock.now_ms = NOW_MS + 10_000
    await seed_place(any_sessions)
    await add_rows(any_sessions, [step("a1", "raise", NOW_MS, id=1), step("a1", "acknowledge", NOW_MS + 9_000, id=3)])
    export = exporter(any_sessions, writer, tmp_path / "mark.json", clock)
    await export.export_once()
    assert export.settled is not None
    assert export.settled.transition_id == 1

    clock.now_ms += 60_000  # id 2 was rolled back
    await export.export_once()

    assert export.settled is not None
    assert export.settled.transition_id == 3
    assert (await WatermarkFile(tmp_path / "mark.json").load()).transition_id == 3


async def test_a_watermark_another_database_does_not_hold_starts_from_the_beginning(
    any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    await seed_place(any_sessions)
    await add_rows(any_sessions, [step("a1", "raise", NOW_MS, id=1)])
    steps = AlertSteps(any_sessions, clock)

    assert await steps.verify(Watermark(1, "a1", NOW_MS)) == Watermark(1, "a1", NOW_MS)
    assert await steps.verify(Watermark(1, "a2", NOW_MS)) == BEGINNING  # a restored backup: another step
    assert await steps.verify(Watermark(7, "a1", NOW_MS)) == BEGINNING  # not there at all
