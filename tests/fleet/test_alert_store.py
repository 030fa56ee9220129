"""The alert outbox on a real SQLite file: recorded once, found when due, and moved to delivered or dead."""

import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.alerts.filters import AlertFilter
from fleet.alerts.store import AlertStore
from fleet.db.schema import DeliveryState
from fleet.errors import FleetError
from fleet.registry import Registry
from tests.fleet.helpers import RAISED_MS, FakeClock, default_escalation, make_alert


@pytest.fixture
async def store(sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> AlertStore:
    registry = Registry(sessions, clock)
    await registry.register("lakeside", "gw-01")
    await registry.register("riverside", "gw-02")
    return AlertStore(sessions, clock, default_escalation())


async def test_a_recorded_alert_is_pending_with_everything_the_case_needs(store: AlertStore, clock: FakeClock) -> None:
    alert = make_alert(evidence={"held_ms": 800, "battery_v": 3.1})

    assert await store.record("lakeside", alert) is True

    row = await store.get(str(alert.event_id))
    assert row is not None
    assert (row.gateway_id, row.village_id, row.device_id, row.grid_id) == ("gw-01", "lakeside", "panic-1", "grid-7")
    assert (row.kind, row.severity) == ("panic", "critical")
    assert row.summary == "panic button panic-1 pressed"
    assert row.evidence == {"held_ms": 800, "battery_v": 3.1}
    assert row.seq == 41
    assert row.raised_at_ms == RAISED_MS
    assert row.received_at_ms == clock.now_ms
    assert row.delivery_state == DeliveryState.PENDING
    assert row.delivery_attempts == 0
    assert row.next_attempt_ms == clock.now_ms
    assert row.case_id is None


async def test_recording_the_same_event_id_again_is_a_no_op(store: AlertStore, clock: FakeClock) -> None:
    alert = make_alert()
    await store.record("lakeside", alert)
    clock.now_ms += 5_000

    assert await store.record("lakeside", alert) is False
    assert await store.record("lakeside", alert.model_copy(update={"summary": "edited"})) is False

    rows = await store.list()
    assert len(rows) == 1
    assert rows[0].summary == "panic button panic-1 pressed"
    assert rows[0].received_at_ms == clock.now_ms - 5_000


async def test_an_alert_from_an_unregistered_gateway_is_not_mistaken_for_a_duplicate(store: AlertStore) -> None:
    alert = make_alert(gateway_id="gw-never-registered")

    try:
        stored = await store.record("lakeside", alert)
    except FleetError:
        return  # refusing loudly is acceptable; reporting a duplicate is not
    assert stored is True


async def test_due_lists_pending_alerts_whose_attempt_is_due_oldest_first(store: AlertStore, clock: FakeClock) -> None:
    newer = make_alert(ts=RAISED_MS + 10)
    older = make_alert(ts=RAISED_MS - 10, gateway_id="gw-02")
    await store.record("lakeside", newer)
    await store.record("riverside", older)

    due = await store.due(clock.now_ms)

    assert [row.id for row in due] == [str(older.event_id), str(newer.event_id)]
    assert await store.due(clock.now_ms - 1) == []
    assert len(await store.due(clock.now_ms, limit=1)) == 1


async def test_next_due_is_the_earliest_pending_attempt(store: AlertStore, clock: FakeClock) -> None:
    assert await store.next_due_ms() is None
    first, second = make_alert(), make_alert(device_id="panic-2")
    await store.record("lakeside", first)
    await store.record("lakeside", second)

    await store.mark_failed(str(first.event_id), "platform answered 503", clock.now_ms + 4_000)
    await store.mark_failed(str(second.event_id), "platform answered 503", clock.now_ms + 2_000)

    assert await store.next_due_ms() == clock.now_ms + 2_000
    assert await store.due(clock.now_ms + 1_999) == []
    assert [row.id for row in await store.due(clock.now_ms + 2_000)] == [str(second.event_id)]


async def test_a_delivered_alert_keeps_its_case_and_is_no_longer_due(store: AlertStore, clock: FakeClock) -> None:
    alert = make_alert()
    await store.record("lakeside", alert)
    await store.mark_failed(str(alert.event_id), "timeout", clock.now_ms)

    await store.mark_delivered(str(alert.event_id), "CASE-000001", clock.now_ms + 50)

    row = await store.get(str(alert.event_id))
    assert row is not None
    assert row.delivery_state == DeliveryState.DELIVERED
    assert row.case_id == "CASE-000001"
    assert row.delivered_at_ms == clock.now_ms + 50
    assert row.delivery_attempts == 2
    assert row.last_error is None
    assert await store.due(clock.now_ms + 10**9) == []
    assert await store.next_due_ms() is None


async def test_a_failure_with_a_next_attempt_stays_pending_and_counts_the_attempt(
    store: AlertStore, clock: FakeClock
) -> None:
    alert = make_alert()
    await store.record("lakeside", alert)

    await store.mark_failed(str(alert.event_id), "platform answered 500", clock.now_ms + 1_000)

    row = await store.get(str(alert.event_id))
    assert row is not None
    assert row.delivery_state == DeliveryState.PENDING
    assert row.delivery_attempts == 1
    assert row.last_error == "platform answered 500"
    assert row.next_attempt_ms == clock.now_ms + 1_000


async def test_a_failure_without_a_next_attempt_is_dead_lettered(store: AlertStore, clock: FakeClock) -> None:
    alert = make_alert()
    await store.record("lakeside", alert)

    await store.mark_failed(str(alert.event_id), "platform refused the case: 401 " + "x" * 1000, None)

    row = await store.get(str(alert.event_id))
    assert row is not None
    assert row.delivery_state == DeliveryState.DEAD
    assert row.delivery_attempts == 1
    assert row.last_error is not None
    assert row.last_error.startswith("platform refused the case: 401")
    assert len(row.last_error) == 512
    assert await store.due(clock.now_ms + 10**9) == []
    assert await store.next_due_ms() is None
    assert [r.id for r in await store.list(AlertFilter(delivery_state=DeliveryState.DEAD))] == [str(alert.event_id)]


async def test_marking_an_unknown_alert_changes_nothing(store: AlertStore) -> None:
    await store.mark_delivered(str(uuid.uuid4()), "CASE-000001", 1)
    await store.mark_failed(str(uuid.uuid4()), "error", None)

    assert await store.list() == []


async def test_list_filters_by_village_and_state_newest_first(store: AlertStore, clock: FakeClock) -> None:
    lake_old = make_alert(ts=RAISED_MS)
    lake_new = make_alert(ts=RAISED_MS + 1, device_id="panic-2")
    river = make_alert(gateway_id="gw-02", ts=RAISED_MS + 2)
    for village_id, alert in [("lakeside", lake_old), ("lakeside", lake_new), ("riverside", river)]:
        await store.record(village_id, alert)
    await store.mark_delivered(str(lake_new.event_id), "CASE-000001", clock.now_ms)

    assert [r.id for r in await store.list()] == [str(a.event_id) for a in (river, lake_new, lake_old)]
    assert [r.id for r in await store.list(AlertFilter(village_id="lakeside"))] == [
        str(lake_new.event_id),
        str(lake_old.event_id),
    ]
    assert [
        r.id for r in await store.list(AlertFilter(village_id="lakeside", delivery_state=DeliveryState.PENDING))
    ] == [str(lake_old.event_id)]
    assert len(await store.list(AlertFilter(limit=2))) == 2
