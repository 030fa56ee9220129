"""The alert outbox on SQLite and PostgreSQL: each step of an alert queues what its channels are to be told, in
the step's transaction; the queue hands messages out in order per alert and keeps what came of each."""

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from fleet.access.audit import AuditLog
from fleet.access.roles import Actor, Role
from fleet.alerts.channels.governance import GOVERNANCE_CHANNEL
from fleet.alerts.filters import AlertFilter
from fleet.alerts.handling import AlertHandling
from fleet.alerts.history import RAISE
from fleet.alerts.lifecycle import Step
from fleet.alerts.new_alert import NewAlert
from fleet.alerts.outbox import Action, Outbox, case_route, notify_route
from fleet.alerts.outbox_queue import ChannelCounts, OutboxQueue, Outcome
from fleet.db.engine import alembic_config, create_engine, session_factory
from fleet.db.schema import AlertRow, DeliveryState, OutboxRow
from fleet.errors import NotFoundError
from fleet.gateways.registry import Registry
from protocol.messages import FleetAlertKind, Severity
from tests.fleet.alert_parts import CASES, alert_row, raised, store_for
from tests.fleet.helpers import RAISED_MS, FakeClock, database_url

SMS = "sms"
CASES_AND_SMS = Outbox([case_route(GOVERNANCE_CHANNEL), notify_route(SMS, [RAISE, Step.CANCEL])])
STAFF = Actor("duty-officer", Role.COMMAND_STAFF)
HOUR_MS = 3_600_000


@pytest.fixture
async def sessions(
    any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> async_sessionmaker[AsyncSession]:
    registry = Registry(any_sessions, clock)
    await registry.register("lakeside", "gw-01")
    await registry.register("riverside", "gw-02")
    return any_sessions


@pytest.fixture
def queue(sessions: async_sessionmaker[AsyncSession]) -> OutboxQueue:
    return OutboxQueue(sessions)


async def only(queue: OutboxQueue, alert_id: str, channel: str = GOVERNANCE_CHANNEL) -> OutboxRow:
    [message] = await queue.find(channel=channel, alert_id=alert_id)
    return message


# --- what each step queues ------------------------------------------------------------------------


async def test_a_raised_alert_queues_the_opening_of_its_case_keyed_by_the_alert_id(
    sessions: async_sessionmaker[AsyncSession], queue: OutboxQueue, clock: FakeClock
) -> None:
    store = store_for(sessions, clock)
    alert_id = await raised(store)

    message = await only(queue, alert_id)
    assert (message.channel, message.action, message.step) == (GOVERNANCE_CHANNEL, Action.OPEN_CASE, RAISE)
    assert message.key == alert_id, "the platform's idempotency key is the alert id"
    assert (message.state, message.attempts, message.created_ms, message.next_attempt_ms) == (
        DeliveryState.PENDING,
        0,
        clock.now_ms,
        clock.now_ms,
    )
    assert message.reason == "panic button panic-1 pressed"
    row = await alert_row(store, alert_id)
    assert (row.delivery_state, row.delivery_attempts, row.case_id) == (DeliveryState.PENDING, 0, None)


@pytest.mark.parametrize("routes", [Outbox(), Outbox([notify_route(SMS, [RAISE])])], ids=["no routes", "sms only"])
async def test_an_alert_no_case_is_opened_for_is_unrouted(
    sessions: async_sessionmaker[AsyncSession], queue: OutboxQueue, clock: FakeClock, routes: Outbox
) -> None:
    store = store_for(sessions, clock, routes)
    alert_id = await raised(store)

    assert (await alert_row(store, alert_id)).delivery_state == DeliveryState.UNROUTED
    assert await queue.find(channel=GOVERNANCE_CHANNEL) == []
    assert [m.action for m in await queue.find(channel=SMS)] == ([Action.NOTIFY] if routes.channels else [])


async def test_a_delivery_failed_alert_is_kept_local_but_people_still_hear_of_it(
    sessions: async_sessionmaker[AsyncSession], queue: OutboxQueue, clock: FakeClock
) -> None:
    store = store_for(sessions, clock, CASES_AND_SMS)
    new = NewAlert.by_fleet("lakeside", "gw-01", FleetAlertKind.DELIVERY_FAILED, "the platform never took it", 1)

    assert await store.open(new)

    assert (await alert_row(store, new.event_id)).delivery_state == DeliveryState.UNROUTED
    assert await queue.find(channel=GOVERNANCE_CHANNEL) == []
    assert [(m.action, m.step) for m in await queue.find(channel=SMS)] == [(Action.NOTIFY, RAISE)]


async def test_notify_routes_hear_only_their_steps_and_a_cancel_withdraws_the_case(
    sessions: async_sessionmaker[AsyncSession], queue: OutboxQueue, clock: FakeClock
) -> None:
    store = store_for(sessions, clock, CASES_AND_SMS)
    handling = AlertHandling(sessions, clock, outbox=CASES_AND_SMS)
    alert_id = await raised(store)

    clock.now_ms += 1_000
    await handling.take(STAFF, alert_id, Step.ACKNOWLEDGE)
    clock.now_ms += 1_000
    await handling.take(STAFF, alert_id, Step.CANCEL, "drill")

    sms = list(reversed(await queue.find(channel=SMS)))
    assert [(m.action, m.step, m.created_ms) for m in sms] == [
        (Action.NOTIFY, RAISE, clock.now_ms - 2_000),
        (Action.NOTIFY, Step.CANCEL, clock.now_ms),
    ]
    opening, withdrawal = reversed(await queue.find(channel=GOVERNANCE_CHANNEL))
    assert (withdrawal.action, withdrawal.step, withdrawal.reason) == (Action.WITHDRAW_CASE, Step.CANCEL, "drill")
    assert withdrawal.key != alert_id
    assert uuid.UUID(withdrawal.key).version == 4, "a withdrawal has its own idempotency key"
    assert opening.id < withdrawal.id


async def test_quiet_hours_hold_notifications_back_but_never_cases(
    sessions: async_sessionmaker[AsyncSession], queue: OutboxQueue, clock: FakeClock
) -> None:
    alert_id = await raised(store_for(sessions, clock, Outbox()))
    quiet_until = clock.now_ms + 8 * HOUR_MS

    async with sessions.begin() as session:
        row = await session.get(AlertRow, alert_id)
        assert row is not None
        queued = await CASES_AND_SMS.follow(session, row, RAISE, "raised", clock.now_ms, not_before_ms=quiet_until)
        past = await CASES_AND_SMS.follow(session, row, Step.CANCEL, "x", clock.now_ms, not_before_ms=clock.now_ms - 1)

    assert {(m.channel, m.next_attempt_ms) for m in queued} == {
        (GOVERNANCE_CHANNEL, clock.now_ms),
        (SMS, quiet_until),
    }
    assert {(m.channel, m.next_attempt_ms) for m in past} == {(GOVERNANCE_CHANNEL, clock.now_ms), (SMS, clock.now_ms)}
    assert [p.message.step for p in await queue.due(GOVERNANCE_CHANNEL, clock.now_ms)] == [RAISE]
    assert await queue.due(SMS, quiet_until - 1) == [], "held, and the cancel waits behind it"
    assert [p.message.step for p in await queue.due(SMS, quiet_until)] == [RAISE]


async def test_a_withdrawal_is_queued_only_where_a_case_is_being_opened(
    sessions: async_sessionmaker[AsyncSession], queue: OutboxQueue, clock: FakeClock
) -> None:
    alert_id = await raised(store_for(sessions, clock, Outbox()))  # raised before a platform was configured

    await AlertHandling(sessions, clock, outbox=CASES).take(STAFF, alert_id, Step.CANCEL, "false alarm")

    assert await queue.find(alert_id=alert_id) == []


# --- what is due -----------------------------------------------------------------------------------


async def test_due_lists_pending_messages_oldest_first_with_their_alert(
    sessions: async_sessionmaker[AsyncSession], queue: OutboxQueue, clock: FakeClock
) -> None:
    store = store_for(sessions, clock)
    first = await raised(store, ts=RAISED_MS + 10)
    clock.now_ms += 5
    second = await raised(store, "riverside", ts=RAISED_MS - 10)

    due = await queue.due(GOVERNANCE_CHANNEL, clock.now_ms)

    assert [p.message.alert_id for p in due] == [first, second]
    assert [p.alert.id for p in due] == [first, second]
    assert due[1].alert.village_id == "riverside"
    assert [p.message.alert_id for p in await queue.due(GOVERNANCE_CHANNEL, clock.now_ms - 1)] == [first]
    assert len(await queue.due(GOVERNANCE_CHANNEL, clock.now_ms, limit=1)) == 1
    assert await queue.due(SMS, clock.now_ms) == []


async def test_the_most_severe_alerts_cases_are_due_first_then_the_longest_due(
    sessions: async_sessionmaker[AsyncSession], queue: OutboxQueue, clock: FakeClock
) -> None:
    store = store_for(sessions, clock)
    minor = await raised(store, device_id="door-1", severity=Severity.MINOR)
    clock.now_ms += 1_000
    first_major = await raised(store, device_id="door-2", severity=Severity.MAJOR)
    clock.now_ms += 1_000
    critical = await raised(store, device_id="panic-1")
    second_major = await raised(store, device_id="door-3", severity=Severity.MAJOR)

    due = [p.message.alert_id for p in await queue.due(GOVERNANCE_CHANNEL, clock.now_ms)]

    assert due == [critical, first_major, second_major, minor], "a storm of lesser cases never delays a panic's"


async def test_next_due_is_the_earliest_pending_attempt(
    sessions: async_sessionmaker[AsyncSession], queue: OutboxQueue, clock: FakeClock
) -> None:
    store = store_for(sessions, clock)
    assert await queue.next_due_ms(GOVERNANCE_CHANNEL) is None
    first = await only(queue, await raised(store))
    second = await only(queue, await raised(store, device_id="panic-2"))

    await queue.settle([Outcome.failed(first.id, "platform answered 503", clock.now_ms + 4_000)])
    await queue.settle([Outcome.failed(second.id, "platform answered 503", clock.now_ms + 2_000)])

    assert await queue.next_due_ms(GOVERNANCE_CHANNEL) == clock.now_ms + 2_000
    assert await queue.due(GOVERNANCE_CHANNEL, clock.now_ms + 1_999) == []
    assert [p.message.id for p in await queue.due(GOVERNANCE_CHANNEL, clock.now_ms + 2_000)] == [second.id]


async def test_a_withdrawal_waits_behind_its_cases_opening_and_does_not_count_as_due_meanwhile(
    sessions: async_sessionmaker[AsyncSession], queue: OutboxQueue, clock: FakeClock
) -> None:
    store = store_for(sessions, clock)
    alert_id = await raised(store)
    await AlertHandling(sessions, clock, outbox=CASES).take(STAFF, alert_id, Step.CANCEL, "false alarm")
    opening, withdrawal = reversed(await queue.find(alert_id=alert_id))
    await queue.settle([Outcome.failed(opening.id, "platform answered 503", clock.now_ms + 8_000)])
    other = await raised(store, device_id="panic-2")

    assert [p.message.alert_id for p in await queue.due(GOVERNANCE_CHANNEL, clock.now_ms)] == [other]
    await queue.settle([Outcome.delivered((await only(queue, other)).id, "CASE-000002", clock.now_ms)])
    # The withdrawal's own time has come, but it falls due only after the opening: the worker must sleep until then.
    assert await queue.next_due_ms(GOVERNANCE_CHANNEL) == clock.now_ms + 8_000
    assert [p.message.id for p in await queue.due(GOVERNANCE_CHANNEL, clock.now_ms + 8_000)] == [opening.id]

    await queue.settle([Outcome.delivered(opening.id, "CASE-000001", clock.now_ms + 8_000)])

    [due] = await queue.due(GOVERNANCE_CHANNEL, clock.now_ms + 8_000)
    assert due.message.id == withdrawal.id
    assert due.alert.case_id == "CASE-000001", "the withdrawal names the case its opening got"


async def test_a_dead_opening_lets_its_withdrawal_through_to_be_skipped(
    sessions: async_sessionmaker[AsyncSession], queue: OutboxQueue, clock: FakeClock
) -> None:
    store = store_for(sessions, clock)
    alert_id = await raised(store)
    await AlertHandling(sessions, clock, outbox=CASES).take(STAFF, alert_id, Step.CANCEL, "false alarm")
    opening, withdrawal = reversed(await queue.find(alert_id=alert_id))
    await queue.settle([Outcome.failed(opening.id, "platform refused the case: 422", None)])

    [due] = await queue.due(GOVERNANCE_CHANNEL, clock.now_ms)
    assert due.message.id == withdrawal.id
    await queue.settle([Outcome.skipped(withdrawal.id, "no case to withdraw")])

    [skipped] = await queue.find(state=DeliveryState.SKIPPED)
    assert (skipped.id, skipped.attempts, skipped.last_error) == (withdrawal.id, 0, "no case to withdraw")
    row = await alert_row(store, alert_id)
    assert (row.delivery_state, row.last_error) == (DeliveryState.DEAD, "platform refused the case: 422")
    assert await queue.next_due_ms(GOVERNANCE_CHANNEL) is None


# --- what came of each ------------------------------------------------------------------------------


async def test_a_delivered_opening_keeps_its_case_on_the_message_and_the_alert(
    sessions: async_sessionmaker[AsyncSession], queue: OutboxQueue, clock: FakeClock
) -> None:
    store = store_for(sessions, clock)
    alert_id = await raised(store)
    message = await only(queue, alert_id)
    await queue.settle([Outcome.failed(message.id, "timeout", clock.now_ms)])

    await queue.settle([Outcome.delivered(message.id, "CASE-000001", clock.now_ms + 50)])

    message = await only(queue, alert_id)
    assert (message.state, message.result, message.delivered_ms, message.attempts, message.last_error) == (
        DeliveryState.DELIVERED,
        "CASE-000001",
        clock.now_ms + 50,
        2,
        None,
    )
    row = await alert_row(store, alert_id)
    assert (row.delivery_state, row.case_id, row.delivered_at_ms) == (
        DeliveryState.DELIVERED,
        "CASE-000001",
        clock.now_ms + 50,
    )
    assert (row.delivery_attempts, row.last_error) == (2, None)
    assert await queue.due(GOVERNANCE_CHANNEL, clock.now_ms + 10**9) == []
    assert await queue.next_due_ms(GOVERNANCE_CHANNEL) is None


async def test_a_failure_with_a_next_attempt_stays_pending_and_counts_the_attempt(
    sessions: async_sessionmaker[AsyncSession], queue: OutboxQueue, clock: FakeClock
) -> None:
    store = store_for(sessions, clock)
    alert_id = await raised(store)

    await queue.settle(
        [Outcome.failed((await only(queue, alert_id)).id, "platform answered 500", clock.now_ms + 1_000)]
    )

    message = await only(queue, alert_id)
    assert (message.state, message.attempts, message.last_error, message.next_attempt_ms) == (
        DeliveryState.PENDING,
        1,
        "platform answered 500",
        clock.now_ms + 1_000,
    )
    row = await alert_row(store, alert_id)
    assert (row.delivery_state, row.delivery_attempts, row.last_error) == (
        DeliveryState.PENDING,
        1,
        "platform answered 500",
    )


async def test_a_failure_without_a_next_attempt_is_a_dead_letter(
    sessions: async_sessionmaker[AsyncSession], queue: OutboxQueue, clock: FakeClock
) -> None:
    store = store_for(sessions, clock)
    alert_id = await raised(store)

    await queue.settle(
        [Outcome.failed((await only(queue, alert_id)).id, "platform refused the case: 422 " + "x" * 1000, None)]
    )

    message = await only(queue, alert_id)
    assert (message.state, message.attempts) == (DeliveryState.DEAD, 1)
    assert message.last_error is not None
    assert message.last_error.startswith("platform refused the case: 422")
    assert len(message.last_error) == 512
    assert await queue.due(GOVERNANCE_CHANNEL, clock.now_ms + 10**9) == []
    assert await queue.next_due_ms(GOVERNANCE_CHANNEL) is None
    assert [r.id for r in await store.list(AlertFilter(delivery_state=DeliveryState.DEAD))] == [alert_id]


async def test_a_message_held_by_a_refusal_of_the_fleet_keeps_its_place_and_its_attempts(
    sessions: async_sessionmaker[AsyncSession], queue: OutboxQueue, clock: FakeClock
) -> None:
    store = store_for(sessions, clock)
    alert_id = await raised(store)
    message = await only(queue, alert_id)

    await queue.settle([Outcome.held(message.id, "governance platform answered 401")])

    message = await only(queue, alert_id)
    assert (message.state, message.attempts, message.next_attempt_ms, message.last_error) == (
        DeliveryState.PENDING,
        0,
        clock.now_ms,
        "governance platform answered 401",
    )
    assert (await alert_row(store, alert_id)).last_error == "governance platform answered 401"


async def test_marking_an_unknown_message_changes_nothing(
    sessions: async_sessionmaker[AsyncSession], queue: OutboxQueue, clock: FakeClock
) -> None:
    await queue.settle([Outcome.delivered(999_999, "CASE-000001", 1)])
    await queue.settle([Outcome.failed(999_999, "error", None)])
    await queue.settle([Outcome.skipped(999_999, "nothing")])
    await queue.settle([Outcome.held(999_999, "401")])

    assert await queue.find() == []
    assert await store_for(sessions, clock).list() == []


# --- reading and putting back ----------------------------------------------------------------------------


async def test_find_narrows_newest_first_and_counts_are_per_channel(
    sessions: async_sessionmaker[AsyncSession], queue: OutboxQueue, clock: FakeClock
) -> None:
    store = store_for(sessions, clock, CASES_AND_SMS)
    first, second, third = [await raised(store, device_id=f"panic-{i}") for i in range(3)]
    await queue.settle([Outcome.delivered((await only(queue, first)).id, "CASE-000001", clock.now_ms)])
    await queue.settle([Outcome.failed((await only(queue, second)).id, "refused", None)])
    await queue.settle([Outcome.failed((await only(queue, third, SMS)).id, "refused", None)])

    assert [m.alert_id for m in await queue.find(channel=GOVERNANCE_CHANNEL)] == [third, second, first]
    assert [(m.channel, m.alert_id) for m in await queue.find(state=DeliveryState.DEAD)] == [
        (SMS, third),
        (GOVERNANCE_CHANNEL, second),
    ]
    assert {m.channel for m in await queue.find(alert_id=first)} == {GOVERNANCE_CHANNEL, SMS}
    assert len(await queue.find(limit=2)) == 2
    assert await queue.counts() == [ChannelCounts(GOVERNANCE_CHANNEL, 1, 1, 1), ChannelCounts(SMS, 2, 0, 1)]


async def test_retry_puts_dead_letters_back_in_line_afresh_and_audits_it(
    sessions: async_sessionmaker[AsyncSession], queue: OutboxQueue, clock: FakeClock
) -> None:
    store = store_for(sessions, clock)
    alert_id = await raised(store)
    message = await only(queue, alert_id)
    await queue.settle([Outcome.failed(message.id, "platform answered 500 (after 3 attempts)", None)])
    clock.now_ms += HOUR_MS

    [retried] = await queue.retry(STAFF, [message.id], clock.now_ms)

    assert (retried.id, retried.state, retried.attempts, retried.next_attempt_ms) == (
        message.id,
        DeliveryState.PENDING,
        0,
        clock.now_ms,
    )
    assert [p.message.id for p in await queue.due(GOVERNANCE_CHANNEL, clock.now_ms)] == [message.id]
    row = await alert_row(store, alert_id)
    assert (row.delivery_state, row.delivery_attempts) == (DeliveryState.PENDING, 0)
    [entry] = await AuditLog(sessions).entries(target_type="delivery", target_id=str(message.id))
    assert (entry.action, entry.actor, entry.role, entry.at_ms) == (
        "delivery.retry",
        "duty-officer",
        "command_staff",
        clock.now_ms,
    )
    assert entry.before == {"state": "dead", "attempts": 1, "last_error": "platform answered 500 (after 3 attempts)"}
    assert entry.after == {"state": "pending", "attempts": 0}


async def test_retry_refuses_an_id_that_is_not_a_dead_letter_and_changes_nothing(
    sessions: async_sessionmaker[AsyncSession], queue: OutboxQueue, clock: FakeClock
) -> None:
    store = store_for(sessions, clock)
    dead = await only(queue, await raised(store))
    pending = await only(queue, await raised(store, device_id="panic-2"))
    await queue.settle([Outcome.failed(dead.id, "refused", None)])

    for ids in ([dead.id, pending.id], [dead.id, 999_999]):
        with pytest.raises(NotFoundError, match=f"no dead letter {ids[1]}"):
            await queue.retry(STAFF, ids, clock.now_ms)

    assert [m.id for m in await queue.find(state=DeliveryState.DEAD)] == [dead.id]
    assert await AuditLog(sessions).entries(target_type="delivery") == []


async def test_retrying_a_cases_opening_takes_the_withdrawal_skipped_behind_it_along(
    sessions: async_sessionmaker[AsyncSession], queue: OutboxQueue, clock: FakeClock
) -> None:
    store = store_for(sessions, clock)
    alert_id = await raised(store)
    await AlertHandling(sessions, clock, outbox=CASES).take(STAFF, alert_id, Step.CANCEL, "false alarm")
    opening, withdrawal = reversed(await queue.find(alert_id=alert_id))
    await queue.settle([Outcome.failed(opening.id, "refused", None)])
    await queue.settle([Outcome.skipped(withdrawal.id, "no case to withdraw")])

    retried = await queue.retry(STAFF, [opening.id], clock.now_ms)

    assert [(m.id, m.state) for m in retried] == [
        (opening.id, DeliveryState.PENDING),
        (withdrawal.id, DeliveryState.PENDING),
    ]
    assert [p.message.id for p in await queue.due(GOVERNANCE_CHANNEL, clock.now_ms)] == [opening.id]
    await queue.settle([Outcome.delivered(opening.id, "CASE-000001", clock.now_ms)])
    assert [p.message.id for p in await queue.due(GOVERNANCE_CHANNEL, clock.now_ms)] == [withdrawal.id]
    audited = await AuditLog(sessions).entries(target_type="delivery")
    assert sorted(entry.target_id for entry in audited) == sorted([str(opening.id), str(withdrawal.id)])


# --- migration 0007 -> 0008 ------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
async def bare_engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An empty database of each kind, for migrating step by step."""
    url = database_url(tmp_path) if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    yield engine
    await engine.dispose()


async def migrate_to(engine: AsyncEngine, revision: str, *, down: bool = False) -> None:
    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(run)


_ALERT_AT_0007 = text(
    "INSERT INTO alerts (id, gateway_id, village_id, device_id, kind, severity, summary, evidence, seq, "
    "raised_at_ms, received_at_ms, delivery_state, delivery_attempts, next_attempt_ms, last_error, case_id, "
    "delivered_at_ms, state, level, state_changed_ms, condition_key, occurrences, last_seen_ms, case_sequence) "
    "VALUES (:id, 'gw-01', 'lakeside', :device, 'panic', 'critical', 'pressed', '{}', 1, 1000, :received, :state, "
    ":attempts, :next, :error, :case_id, :delivered, 'raised', 'village', 1000, :key, 1, 1000, 0)"
)


async def test_migration_0008_moves_every_cases_opening_into_the_outbox(
    bare_engine: AsyncEngine, clock: FakeClock
) -> None:
    await migrate_to(bare_engine, "0007")
    pending, delivered, dead = (str(uuid.uuid4()) for _ in range(3))
    async with bare_engine.begin() as connection:
        await connection.execute(text("INSERT INTO villages (id, name, first_seen_ms) VALUES ('lakeside', 'L', 1)"))
        await connection.execute(
            text(
                "INSERT INTO gateways (id, village_id, first_seen_ms, online, presence_reason) "
                "VALUES ('gw-01', 'lakeside', 1, false, 'never_connected')"
            )
        )
        for alert_id, state, attempts, nxt, error, case_id, at in (
            (pending, "pending", 2, 9_000, "platform answered 503", None, None),
            (delivered, "delivered", 1, 2_000, None, "CASE-000007", 2_500),
            (dead, "dead", 1, 3_000, "refused: 422", None, None),
        ):
            await connection.execute(
                _ALERT_AT_0007,
                {
                    "id": alert_id,
                    "device": f"d-{state}",
                    "received": 1_000 + attempts,
                    "state": state,
                    "attempts": attempts,
                    "next": nxt,
                    "error": error,
                    "case_id": case_id,
                    "delivered": at,
                    "key": f"gw-01/d-{state}/panic",
                },
            )
        # Rows that refer to an alert: the upgrade must not trip over them (SQLite's foreign keys).
        await connection.execute(
            text(
                "INSERT INTO alert_transitions (alert_id, step, to_state, level, actor, at_ms) "
                "VALUES (:id, 'raise', 'raised', 'village', 'gateway gw-01', 1000)"
            ),
            {"id": pending},
        )

    await migrate_to(bare_engine, "head")

    sessions = session_factory(bare_engine)
    queue = OutboxQueue(sessions)
    messages = {m.alert_id: m for m in await queue.find()}
    assert {alert_id: (m.state, m.attempts, m.key, m.action, m.step) for alert_id, m in messages.items()} == {
        pending: (DeliveryState.PENDING, 2, pending, Action.OPEN_CASE, RAISE),
        delivered: (DeliveryState.DELIVERED, 1, delivered, Action.OPEN_CASE, RAISE),
        dead: (DeliveryState.DEAD, 1, dead, Action.OPEN_CASE, RAISE),
    }
    assert (messages[pending].next_attempt_ms, messages[pending].last_error) == (9_000, "platform answered 503")
    assert (messages[delivered].result, messages[delivered].delivered_ms) == ("CASE-000007", 2_500)
    assert [p.message.alert_id for p in await queue.due(GOVERNANCE_CHANNEL, 9_000)] == [pending]
    # A case opened before the outbox is still withdrawn when its alert is cancelled.
    await AlertHandling(sessions, clock, outbox=CASES).take(STAFF, delivered, Step.CANCEL, "false alarm")
    [due] = [p for p in await queue.due(GOVERNANCE_CHANNEL, clock.now_ms) if p.message.alert_id == delivered]
    assert (due.message.action, due.alert.case_id) == (Action.WITHDRAW_CASE, "CASE-000007")
    # A dead letter from before can be put back in line.
    assert [m.alert_id for m in await queue.retry(STAFF, [messages[dead].id], clock.now_ms)] == [dead]

    await migrate_to(bare_engine, "0007", down=True)
    async with bare_engine.connect() as connection:
        rows = (await connection.execute(text("SELECT id, next_attempt_ms FROM alerts"))).all()
    assert {alert_id for alert_id, _ in rows} == {pending, delivered, dead}
