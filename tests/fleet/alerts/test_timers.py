"""Escalation on SQLite and PostgreSQL: deadlines are stored with the alert, survive a restart, move it up
village -> town -> county one level per missed deadline, and leave a trail of transitions."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.alerts.store import AlertStore
from fleet.alerts.timers import AlertTimers
from fleet.db.schema import AlertRow, AlertTransitionRow
from fleet.gateways.registry import Registry
from protocol.clock import utc_now_ms
from protocol.messages import Severity
from protocol.notifications import AlertState
from tests.fleet.helpers import RAISED_MS, FakeClock, make_alert, rules_everywhere

POLICY = rules_everywhere(ack_deadline_s={Severity.CRITICAL: 120.0, Severity.MAJOR: 600.0})


@pytest.fixture
async def store(any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> AlertStore:
    await Registry(any_sessions, clock).register("lakeside", "gw-01")
    return AlertStore(any_sessions, clock, POLICY)


async def transitions(sessions: async_sessionmaker[AsyncSession], alert_id: str) -> list[tuple[str, str, str, int]]:
    query = select(AlertTransitionRow).where(AlertTransitionRow.alert_id == alert_id).order_by(AlertTransitionRow.id)
    async with sessions() as session:
        return [(row.step, row.to_state, row.level, row.at_ms) for row in await session.scalars(query)]


async def test_a_new_alert_is_raised_at_the_village_with_its_first_deadline_from_when_it_was_raised(
    store: AlertStore, any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    alert = make_alert()

    await store.record("lakeside", alert)

    row = await store.get(str(alert.event_id))
    assert row is not None
    assert (row.state, row.level, row.escalate_at_ms) == ("raised", "village", RAISED_MS + 120_000)
    assert await store.next_deadline_ms() == RAISED_MS + 120_000
    assert await transitions(any_sessions, row.id) == [("raise", "raised", "village", clock.now_ms)]


async def test_an_unacknowledged_alert_goes_up_one_level_per_missed_deadline_and_stops_at_the_county(
    store: AlertStore, any_sessions: async_sessionmaker[AsyncSession]
) -> None:
    alert = make_alert()
    await store.record("lakeside", alert)
    alert_id = str(alert.event_id)

    assert await store.escalate_due(RAISED_MS + 119_999, limit=10) == 0
    assert await store.escalate_due(RAISED_MS + 120_000, limit=10) == 1
    town = await store.get(alert_id)
    assert town is not None
    assert (town.level, town.state, town.escalate_at_ms) == ("town", "raised", RAISED_MS + 240_000)
    assert await store.escalate_due(RAISED_MS + 240_500, limit=10) == 1
    county = await store.get(alert_id)
    assert county is not None
    assert (county.level, county.escalate_at_ms) == ("county", None)
    assert await store.escalate_due(RAISED_MS + 10_000_000, limit=10) == 0
    assert await store.next_deadline_ms() is None

    steps = await transitions(any_sessions, alert_id)
    assert [(step, level, at) for step, _, level, at in steps[1:]] == [
        ("escalate", "town", RAISED_MS + 120_000),
        ("escalate", "county", RAISED_MS + 240_500),
    ]


async def test_an_alert_held_offline_past_its_deadline_escalates_as_soon_as_it_is_swept(store: AlertStore) -> None:
    late = make_alert(ts=RAISED_MS - 600_000)  # raised ten minutes before the fleet heard of it

    await store.record("lakeside", late)

    assert await store.escalate_due(RAISED_MS, limit=10) == 1
    row = await store.get(str(late.event_id))
    assert row is not None
    assert (row.level, row.escalate_at_ms) == ("town", RAISED_MS + 120_000)


async def test_only_raised_alerts_escalate_and_severities_without_a_deadline_never_do(
    store: AlertStore, any_sessions: async_sessionmaker[AsyncSession]
) -> None:
    taken_on, quiet = make_alert(), make_alert(severity=Severity.INFO, device_id="door-1")
    await store.record("lakeside", taken_on)
    await store.record("lakeside", quiet)
    async with any_sessions.begin() as session:  # as acknowledging does (fleet.alerts.handling)
        await session.execute(
            update(AlertRow).where(AlertRow.id == str(taken_on.event_id)).values(state=AlertState.ACKNOWLEDGED)
        )

    assert await store.escalate_due(RAISED_MS + 10_000_000, limit=10) == 0
    row = await store.get(str(quiet.event_id))
    assert row is not None
    assert (row.level, row.escalate_at_ms) == ("village", None)


async def test_a_sweep_escalates_at_most_its_batch_earliest_first(store: AlertStore) -> None:
    alerts = [make_alert(ts=RAISED_MS + n, device_id=f"panic-{n}") for n in range(5)]
    for alert in alerts:
        await store.record("lakeside", alert)

    assert await store.escalate_due(RAISED_MS + 200_000, limit=3) == 3

    levels = [(await store.get(str(alert.event_id))).level for alert in alerts]  # type: ignore[union-attr]
    assert levels == ["town", "town", "town", "village", "village"]


@pytest.fixture
async def running() -> AsyncIterator[list[asyncio.Task[None]]]:
    tasks: list[asyncio.Task[None]] = []
    yield tasks
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_an_escalation_pending_when_the_fleet_stops_fires_after_it_restarts_never_early(
    any_sessions: async_sessionmaker[AsyncSession], running: list[asyncio.Task[None]]
) -> None:
    """Real time: the deadline is in the database, not in a timer of the process that stopped."""
    await Registry(any_sessions, utc_now_ms).register("lakeside", "gw-01")
    policy = rules_everywhere(ack_deadline_s={Severity.CRITICAL: 1.0})
    before = AlertStore(any_sessions, utc_now_ms, policy)
    alert = make_alert(ts=utc_now_ms())
    await before.record("lakeside", alert)
    first = AlertTimers(before, utc_now_ms)
    running.append(asyncio.create_task(first.run()))
    await asyncio.sleep(0.2)
    running.pop().cancel()  # the fleet stops before the deadline

    restarted = AlertTimers(AlertStore(any_sessions, utc_now_ms, policy), utc_now_ms)
    running.append(asyncio.create_task(restarted.run()))
    async with asyncio.timeout(10):
        while restarted.escalated == 0:  # noqa: ASYNC110 - the escalator announces nothing else
            await asyncio.sleep(0.05)

    [*_, (step, _, level, at_ms)] = await transitions(any_sessions, str(alert.event_id))
    assert (step, level) == ("escalate", "town")
    assert at_ms >= alert.ts + 1000, "never before the deadline"
