"""The alert store runs by each village's rules: kinds turned off, severities changed, rate limits, quiet
hours holding people's notifications (never cases) and escalation deadlines, on a real database."""

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.alerts.channels.governance import GOVERNANCE_CHANNEL
from fleet.alerts.outbox import Outbox, case_route, notify_route
from fleet.alerts.outbox_queue import OutboxQueue, Outcome
from fleet.alerts.rules.model import AlertRules, RulesFor
from fleet.alerts.store import AlertStore
from protocol.messages import AlertKind, Severity
from tests.fleet.alert_county import alert_county
from tests.fleet.helpers import FakeClock, make_alert, rules_everywhere, rules_of

PEOPLE = "people"
OUTBOX = Outbox([case_route(GOVERNANCE_CHANNEL), notify_route(PEOPLE, ["raise", "escalate"])])


def in_lakeside_only(rules: AlertRules) -> RulesFor:
    """``rules`` for lakeside, the defaults elsewhere."""
    return lambda village_id: rules if village_id == "lakeside" else AlertRules()


async def store_with(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock, rules: RulesFor
) -> tuple[AlertStore, OutboxQueue]:
    await alert_county(sessions, clock)
    return AlertStore(sessions, clock, rules, outbox=OUTBOX), OutboxQueue(sessions)


async def test_a_kind_turned_off_in_a_village_opens_nothing_there_only(
    any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    rules = rules_of({"kinds": {"panic": {"enabled": False}}})
    store, _ = await store_with(any_sessions, clock, in_lakeside_only(rules))
    assert await store.record("lakeside", make_alert()) is False
    assert await store.record("riverside", make_alert(gateway_id="gw-02")) is True
    assert store.disabled == 1
    assert [row.village_id for row in await store.list()] == ["riverside"]


async def test_a_rules_severity_replaces_the_raised_one_and_sets_the_deadline(
    any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    rules = rules_of({"kinds": {"camera_tamper": {"severity": "major"}}})
    store, _ = await store_with(any_sessions, clock, in_lakeside_only(rules))
    alert = make_alert(kind=AlertKind.CAMERA_TAMPER, device_id="cam-1", severity=Severity.MINOR)
    await store.record("lakeside", alert)
    row = await store.get(str(alert.event_id))
    assert row is not None
    assert row.severity == "major"
    assert row.escalate_at_ms == alert.ts + 600_000


async def test_past_its_rate_limit_a_kind_counts_on_the_newest_open_alert_of_the_village(
    any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    rules = rules_of({"kinds": {"door_forced": {"rate_limit": {"max_alerts": 2, "per_s": 60}}}})
    store, outbox = await store_with(any_sessions, clock, in_lakeside_only(rules))
    doors = [make_alert(kind=AlertKind.DOOR_FORCED, device_id=f"door-{index}") for index in range(5)]
    opened = []
    for door in doors:
        opened.append(await store.record("lakeside", door))
        clock.now_ms += 1_000
    assert opened == [True, True, False, False, False]
    assert store.rate_limited == 3
    newest = await store.get(str(doors[1].event_id))
    assert newest is not None
    assert newest.occurrences == 4
    assert len(await outbox.due(GOVERNANCE_CHANNEL, clock.now_ms)) == 2
    clock.now_ms += 56_000  # the window has passed: a new door opens its own alert again
    assert await store.record("lakeside", make_alert(kind=AlertKind.DOOR_FORCED, device_id="door-9")) is True


async def test_quiet_hours_hold_peoples_notifications_of_minor_alerts_but_never_the_case(
    any_sessions: async_sessionmaker[AsyncSession],
) -> None:
    night = datetime(2026, 11, 24, 23, 30, tzinfo=UTC)
    clock = FakeClock(round(night.timestamp() * 1000))
    quiet = {"start": "22:00", "end": "06:00", "timezone": "UTC"}
    store, outbox = await store_with(any_sessions, clock, rules_everywhere(quiet_hours=quiet))
    await store.record("lakeside", make_alert(kind=AlertKind.NODE_SILENT, device_id="node-1", severity=Severity.MINOR))
    await store.record("lakeside", make_alert())  # a critical panic: not held
    morning = round(datetime(2026, 11, 25, 6, 0, tzinfo=UTC).timestamp() * 1000)
    assert len(await outbox.due(GOVERNANCE_CHANNEL, clock.now_ms)) == 2
    [panic] = await outbox.due(PEOPLE, clock.now_ms)
    assert panic.alert.kind == "panic"
    assert await outbox.next_due_ms(PEOPLE) == clock.now_ms
    await outbox.settle([Outcome.delivered(panic.message.id, None, clock.now_ms)])
    assert await outbox.next_due_ms(PEOPLE) == morning
    [silent] = await outbox.due(PEOPLE, morning)
    assert silent.alert.kind == "node_silent"
