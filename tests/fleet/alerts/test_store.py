"""Alerts on a real SQLite file: recorded once with everything their case needs, and listed by filter.

What becomes of their cases (the outbox: due, delivered, dead) is in test_outbox.py."""

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.alerts.channels.governance import GOVERNANCE_CHANNEL
from fleet.alerts.filters import AlertFilter
from fleet.alerts.outbox import Outbox, case_route
from fleet.alerts.outbox_queue import OutboxQueue, Outcome
from fleet.alerts.store import AlertStore
from fleet.db.schema import DeliveryState
from fleet.errors import FleetError
from fleet.gateways.registry import Registry
from tests.fleet.helpers import RAISED_MS, FakeClock, default_escalation, make_alert


@pytest.fixture
async def store(sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> AlertStore:
    registry = Registry(sessions, clock)
    await registry.register("lakeside", "gw-01")
    await registry.register("riverside", "gw-02")
    return AlertStore(sessions, clock, default_escalation(), outbox=Outbox([case_route(GOVERNANCE_CHANNEL)]))


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


async def test_list_filters_by_village_and_state_newest_first(
    store: AlertStore, sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    lake_old = make_alert(ts=RAISED_MS)
    lake_new = make_alert(ts=RAISED_MS + 1, device_id="panic-2")
    river = make_alert(gateway_id="gw-02", ts=RAISED_MS + 2)
    for village_id, alert in [("lakeside", lake_old), ("lakeside", lake_new), ("riverside", river)]:
        await store.record(village_id, alert)
    queue = OutboxQueue(sessions)
    [opening] = await queue.find(channel=GOVERNANCE_CHANNEL, alert_id=str(lake_new.event_id))
    await queue.settle([Outcome.delivered(opening.id, "CASE-000001", clock.now_ms)])

    assert [r.id for r in await store.list()] == [str(a.event_id) for a in (river, lake_new, lake_old)]
    assert [r.id for r in await store.list(AlertFilter(village_id="lakeside"))] == [
        str(lake_new.event_id),
        str(lake_old.event_id),
    ]
    assert [
        r.id for r in await store.list(AlertFilter(village_id="lakeside", delivery_state=DeliveryState.PENDING))
    ] == [str(lake_old.event_id)]
    assert len(await store.list(AlertFilter(limit=2))) == 2
