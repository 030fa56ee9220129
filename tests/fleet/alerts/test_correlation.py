"""Correlation on SQLite and PostgreSQL: one open alert per condition, repeats counted on it, and conditions
that end clear their alert only after a hold-off, so a flapping camera keeps one alert, not hundreds."""

import uuid

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.alerts.filters import AlertFilter
from fleet.alerts.store import AlertStore
from fleet.db.schema import AlertRow
from fleet.gateways.registry import Registry
from protocol.messages import Alert, AlertKind, DeviceEvent, EventKind, Severity
from tests.fleet.helpers import RAISED_MS, FakeClock, make_alert, rules_everywhere

HOLD_S = 60.0


@pytest.fixture
async def store(any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> AlertStore:
    await Registry(any_sessions, clock).register("lakeside", "gw-01")
    return AlertStore(any_sessions, clock, rules_everywhere(clear_hold_s=HOLD_S))


def camera_lost(ts: int = RAISED_MS) -> Alert:
    return make_alert(device_id="cam-gate", kind=AlertKind.CAMERA_OFFLINE, severity=Severity.MAJOR, ts=ts)


def camera_back() -> DeviceEvent:
    return DeviceEvent(
        gateway_id="gw-01",
        seq=9,
        event_id=uuid.uuid4(),
        ts=RAISED_MS,
        device_id="cam-gate",
        kind=EventKind.DEVICE_ONLINE,
    )


async def test_a_repeated_condition_counts_on_the_open_alert_instead_of_opening_another(store: AlertStore) -> None:
    first = make_alert()
    again = make_alert(ts=RAISED_MS + 5_000)
    elsewhere = make_alert(device_id="panic-2")

    assert await store.record("lakeside", first) is True
    assert await store.record("lakeside", again) is False
    assert await store.record("lakeside", again) is False, "a redelivery is not another repeat"
    assert await store.record("lakeside", elsewhere) is True

    row = await store.get(str(first.event_id))
    assert row is not None
    assert (row.occurrences, row.last_seen_ms) == (2, RAISED_MS + 5_000)
    assert await store.get(str(again.event_id)) is None


async def test_a_condition_that_ends_clears_its_alert_after_the_hold_off(store: AlertStore, clock: FakeClock) -> None:
    lost = camera_lost()
    await store.record("lakeside", lost)

    assert await store.condition_ended(camera_back()) == 1
    assert await store.clear_due(clock.now_ms + 59_999, limit=10) == 0
    assert await store.next_deadline_ms() == clock.now_ms + 60_000
    assert await store.clear_due(clock.now_ms + 60_000, limit=10) == 1

    row = await store.get(str(lost.event_id))
    assert row is not None
    assert (row.state, row.clear_at_ms, row.escalate_at_ms) == ("cleared", None, None)


async def test_a_flapping_camera_keeps_one_alert_open(store: AlertStore, clock: FakeClock) -> None:
    first = camera_lost()
    await store.record("lakeside", first)
    for flap in range(1, 50):  # back online, then lost again ten seconds later, over and over
        await store.condition_ended(camera_back())
        clock.now_ms += 10_000
        assert await store.clear_due(clock.now_ms, limit=10) == 0
        assert await store.record("lakeside", camera_lost(ts=RAISED_MS + flap * 10_000)) is False

    row = await store.get(str(first.event_id))
    assert row is not None
    assert (row.state, row.occurrences, row.clear_at_ms) == ("raised", 50, None)
    assert len(await store.list(AlertFilter(limit=100))) == 1


async def test_a_panic_does_not_clear_and_a_dispatched_alert_only_notes_that_its_condition_ended(
    store: AlertStore, any_sessions: async_sessionmaker[AsyncSession]
) -> None:
    panic = make_alert(device_id="cam-gate")  # same device, a kind no event ends
    lost = camera_lost()
    await store.record("lakeside", panic)
    await store.record("lakeside", lost)
    async with any_sessions.begin() as session:  # the platform dispatched an officer
        await session.execute(update(AlertRow).where(AlertRow.id == str(lost.event_id)).values(state="dispatched"))

    assert await store.condition_ended(camera_back()) == 0

    dispatched = await store.get(str(lost.event_id))
    still = await store.get(str(panic.event_id))
    assert dispatched is not None
    assert still is not None
    assert (dispatched.state, dispatched.clear_at_ms) == ("dispatched", None)
    assert (still.state, still.clear_at_ms) == ("raised", None)
