"""An alert's deadlines count from the earlier of its source time and its receipt, the source time believed only
within a window of the fleet's clock (on a real SQLite file): a gateway clock in 1970 or a day ahead neither
escalates a panic at once nor holds it back a day; a buffer replaying an outage of hours keeps its times."""

import logging

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.alerts.history import NOTE, RAISE
from fleet.alerts.source_time import DEFAULT_SOURCE_WINDOW, source_window_of
from fleet.alerts.store import AlertStore
from fleet.db.schema import AlertRow, AlertTransitionRow
from fleet.gateways.registry import Registry
from fleet.settings import AlertSettings
from protocol.clock import SourceWindow
from tests.fleet.helpers import FakeClock, default_escalation, make_alert

CRITICAL_DEADLINE_MS = 120_000  # the default rules' acknowledgement deadline for a critical alert
DAY_MS = 86_400_000


@pytest.fixture
async def store(sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> AlertStore:
    await Registry(sessions, clock).register("lakeside", "gw-01")
    return AlertStore(sessions, clock, default_escalation())


async def stored(store: AlertStore, alert_id: str) -> AlertRow:
    row = await store.get(alert_id)
    assert row is not None
    return row


async def history(sessions: async_sessionmaker[AsyncSession], alert_id: str) -> list[AlertTransitionRow]:
    async with sessions() as session:
        query = select(AlertTransitionRow).where(AlertTransitionRow.alert_id == alert_id)
        return list(await session.scalars(query.order_by(AlertTransitionRow.id)))


@pytest.mark.parametrize(
    ("ts_from_now_ms", "behind"),
    [(None, True), (DAY_MS, False), (-8 * DAY_MS, True), (300_001, False)],
    ids=["epoch-0", "a-day-ahead", "eight-days-behind", "just-beyond-the-future-allowance"],
)
async def test_an_alert_from_a_skewed_clock_counts_from_its_receipt_and_says_so(
    store: AlertStore,
    sessions: async_sessionmaker[AsyncSession],
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    ts_from_now_ms: int | None,
    behind: bool,
) -> None:
    ts = 0 if ts_from_now_ms is None else clock.now_ms + ts_from_now_ms
    alert = make_alert(ts=ts)

    with caplog.at_level(logging.WARNING, logger="fleet.alerts.source_time"):
        assert await store.record("lakeside", alert)

    row = await stored(store, str(alert.event_id))
    assert row.raised_at_ms == row.received_at_ms == clock.now_ms
    assert row.escalate_at_ms == clock.now_ms + CRITICAL_DEADLINE_MS
    assert await store.escalate_due(clock.now_ms, limit=10) == 0  # not straight to the town, nor the county
    raise_step, note = await history(sessions, str(alert.event_id))
    assert (raise_step.step, note.step) == (RAISE, NOTE)
    assert note.reason is not None
    assert note.reason.startswith(f"gateway gw-01 clock skewed by {(ts - clock.now_ms) / 1000:+.0f} s")
    assert ("behind" if behind else "ahead of") in note.reason
    assert [record.getMessage() for record in caplog.records if "skewed" in record.getMessage()] != []
    assert store.source_clock.skewed == 1

    clock.now_ms += CRITICAL_DEADLINE_MS
    assert await store.escalate_due(clock.now_ms, limit=10) == 1  # and then on time


async def test_an_alert_replayed_from_an_outage_of_hours_keeps_its_time_and_is_already_due(
    store: AlertStore, sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    raised = clock.now_ms - 3 * 3_600_000  # buffered at the gateway while the uplink was down
    alert = make_alert(ts=raised)

    await store.record("lakeside", alert)

    row = await stored(store, str(alert.event_id))
    assert row.raised_at_ms == raised
    assert row.escalate_at_ms == raised + CRITICAL_DEADLINE_MS  # nobody acknowledged it for hours: overdue
    assert [step.step for step in await history(sessions, str(alert.event_id))] == [RAISE]
    assert store.source_clock.skewed == 0


async def test_a_source_time_slightly_ahead_counts_from_the_receipt(store: AlertStore, clock: FakeClock) -> None:
    alert = make_alert(ts=clock.now_ms + 60_000)  # within the allowance: believed, but deadlines never start later

    await store.record("lakeside", alert)

    row = await stored(store, str(alert.event_id))
    assert row.raised_at_ms == clock.now_ms + 60_000
    assert row.escalate_at_ms == clock.now_ms + CRITICAL_DEADLINE_MS


async def test_a_skewed_gateway_is_logged_once_and_every_alert_is_noted(
    store: AlertStore, sessions: async_sessionmaker[AsyncSession], clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    alerts = [make_alert(ts=0, device_id=f"panic-{index}") for index in range(3)]

    with caplog.at_level(logging.WARNING, logger="fleet.alerts.source_time"):
        for alert in alerts:
            await store.record("lakeside", alert)

    assert len([record for record in caplog.records if "skewed" in record.getMessage()]) == 1
    for alert in alerts:
        assert [step.step for step in await history(sessions, str(alert.event_id))] == [RAISE, NOTE]
    assert store.source_clock.skewed == 3


async def test_a_repeat_from_a_clock_a_day_ahead_does_not_push_the_condition_a_day_ahead(
    store: AlertStore, clock: FakeClock
) -> None:
    first = make_alert()
    await store.record("lakeside", first)

    assert not await store.record("lakeside", make_alert(ts=clock.now_ms + DAY_MS))

    row = await stored(store, str(first.event_id))
    assert row.occurrences == 2
    assert row.last_seen_ms == clock.now_ms


async def test_the_window_is_settable(sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> None:
    await Registry(sessions, clock).register("lakeside", "gw-01")
    window = source_window_of(AlertSettings(source_max_age_s=3_600, source_max_ahead_s=10))
    store = AlertStore(sessions, clock, default_escalation(), source_window=window)
    alert = make_alert(ts=clock.now_ms - 3 * 3_600_000)  # three hours: beyond a one-hour window

    await store.record("lakeside", alert)

    assert window == SourceWindow(max_age_ms=3_600_000, max_ahead_ms=10_000)
    assert (await stored(store, str(alert.event_id))).raised_at_ms == clock.now_ms
    assert source_window_of(AlertSettings()) == DEFAULT_SOURCE_WINDOW
