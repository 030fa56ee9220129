"""Delivery of the alert outbox to the reference governance platform (its real app, in process, verifying every
signature), on SQLite and PostgreSQL: exactly one case per alert, withdrawn when the alert is cancelled or
cleared and never before it was opened; retries with a backoff per message, a pause of the whole channel,
dead letters that raise one correlated ``delivery_failed`` alert."""

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Final

import httpx
import pytest
from pydantic import AnyHttpUrl, SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.access.roles import Actor, Role
from fleet.alerts.channels.base import Delivery
from fleet.alerts.channels.governance import GOVERNANCE_CHANNEL, GovernanceChannel, case_for, withdrawal_for
from fleet.alerts.dead_letters import DeadLetterAlerts
from fleet.alerts.delivery import DeliveryWorker, RetryPolicy
from fleet.alerts.filters import AlertFilter
from fleet.alerts.handling import AlertHandling
from fleet.alerts.history import RAISE
from fleet.alerts.lifecycle import Step
from fleet.alerts.outbox import Action, Outbox, Route, case_route, notify_route
from fleet.alerts.outbox_queue import OutboxQueue, Outcome, Pending
from fleet.alerts.record import AlertRecord
from fleet.alerts.store import AlertStore
from fleet.db.schema import AlertRow, DeliveryState, OutboxRow
from fleet.errors import ChannelRejectedError, NothingToSendError
from fleet.gateways.registry import Registry
from fleet.governance.client import GovernanceClient
from fleet.settings import GovernanceSettings
from protocol.governance import CASES_PATH, CaseClosed, CaseRequest, CaseStatus, CaseUpdateKind, CloseReason
from protocol.messages import AlertKind, FleetAlertKind, Severity
from protocol.reconnect import Backoff
from protocol.request_signing import SIGNATURE_HEADER
from simulators.governance.app import create_platform_app
from simulators.governance.faults import Faults
from simulators.governance.recorder import CaseLedger
from simulators.governance.request_log import RequestLog
from tests.fleet.alert_parts import CASES, alert_row, raised, store_for
from tests.fleet.alerts.channels.deliveries import alert_row as stored_alert_row
from tests.fleet.helpers import RAISED_MS, FakeClock, default_escalation

TOKEN: Final = "platform-token"
SECRET: Final = "shared-signing-secret"
PLATFORM_URL: Final = "http://platform.test"
STAFF: Final = Actor("duty-officer", Role.COMMAND_STAFF)
PATIENT: Final = RetryPolicy(max_attempts=10, base_s=1.0, cap_s=300.0)


class SteppingClock(FakeClock):
    """Jumps ten minutes on every reading, so every retry is due by the time the worker looks again."""

    def __call__(self) -> int:
        self.now_ms += 600_000
        return self.now_ms


class Platform:
    """The reference platform's app with its ledger, the requests it received and the faults it is told to inject."""

    def __init__(self) -> None:
        self.ledger = CaseLedger()
        self.faults = Faults()
        self.log = RequestLog()
        self.app = create_platform_app(
            self.ledger, TOKEN, signing_secrets=[SECRET], request_log=self.log, faults=self.faults
        )

    def posts(self) -> list[tuple[str, int | None]]:
        """Every POST, in arrival order: what it was to (a case, or a case's updates) and the answer's status."""
        return [("case" if entry.path == CASES_PATH else "update", entry.status) for entry in self.log.matching("POST")]


class WatchedQueue(OutboxQueue):
    """The real queue, announcing every outcome so that a test waits for the worker without polling or timing."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        super().__init__(sessions)
        self.changed = asyncio.Event()
        self.holds = 0
        self.due_queries = 0
        self.workers: list[asyncio.Task[None]] = []

    def watch(self, task: asyncio.Task[None]) -> None:
        """A worker task using this queue: its end (a crash) stops :meth:`until` rather than leave it waiting."""
        self.workers.append(task)
        task.add_done_callback(lambda _: self.changed.set())

    async def settle(self, outcomes: Sequence[Outcome]) -> None:
        await super().settle(outcomes)
        self.holds += sum(1 for each in outcomes if each.state == DeliveryState.PENDING and not each.counts_attempt)
        self.changed.set()

    async def due(self, channel: str, now_ms: int, limit: int = 50) -> list[Pending]:
        self.due_queries += 1
        self.changed.set()
        return await super().due(channel, now_ms, limit)

    async def messages(self, alert_id: str, channel: str = GOVERNANCE_CHANNEL) -> list[OutboxRow]:
        """The alert's messages for ``channel``, oldest first."""
        return list(reversed(await self.find(channel=channel, alert_id=alert_id)))

    async def until(self, done: Callable[[], Awaitable[bool]]) -> None:
        """Return once ``done()`` holds, checking again after every outcome."""
        while True:
            self.changed.clear()
            if await done():
                return
            for task in self.workers:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise AssertionError(f"a delivery worker crashed: {task.exception()!r}")
            await self.changed.wait()


class CountedPause(Backoff):
    """The worker's channel-wide pause: short, and announcing each pause so a test can look at that moment."""

    def __init__(self) -> None:
        super().__init__(base_s=0.004, cap_s=0.008)  # >= 2 ms: a retry is never signed in the same millisecond
        self.pauses = 0
        self.paused = asyncio.Event()

    def next_delay(self) -> float:
        self.pauses += 1
        self.paused.set()
        return super().next_delay()


class DeadLetters:
    """What the worker reported dead, in order (announced on ``queue``: a report comes after the message died)."""

    def __init__(self, queue: WatchedQueue | None = None) -> None:
        self.reported: list[tuple[Pending, str]] = []
        self._queue = queue

    async def __call__(self, pending: Pending, error: str) -> None:
        self.reported.append((pending, error))
        if self._queue is not None:
            self._queue.changed.set()

    def count(self, expected: int) -> Callable[[], Awaitable[bool]]:
        async def reported() -> bool:
            return len(self.reported) >= expected

        return reported


@pytest.fixture
async def sessions(any_sessions: async_sessionmaker[AsyncSession]) -> async_sessionmaker[AsyncSession]:
    registry = Registry(any_sessions, FakeClock())
    await registry.register("lakeside", "gw-01")
    await registry.register("riverside", "gw-02")
    return any_sessions


@pytest.fixture
def queue(sessions: async_sessionmaker[AsyncSession]) -> WatchedQueue:
    return WatchedQueue(sessions)


@pytest.fixture
def platform() -> Platform:
    return Platform()


@pytest.fixture
def stepping_clock() -> SteppingClock:
    return SteppingClock()


Connect = Callable[..., GovernanceChannel]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """Governance channels to a platform app, closed after the test."""
    opened: list[GovernanceChannel] = []

    def channel(
        platform: Platform, *, token: str = TOKEN, secret: str = SECRET, url: str = PLATFORM_URL
    ) -> GovernanceChannel:
        settings = GovernanceSettings(url=AnyHttpUrl(url), token=SecretStr(token), signing_secrets=[SecretStr(secret)])
        opened.append(GovernanceChannel(GovernanceClient(settings, transport=httpx.ASGITransport(app=platform.app))))
        return opened[-1]

    yield channel
    for channel_ in opened:
        await channel_.close()


def worker_for(
    queue: OutboxQueue,
    channel: GovernanceChannel,
    clock: Callable[[], int],
    retry: RetryPolicy = PATIENT,
    *,
    on_dead: Callable[[Pending, str], Awaitable[None]] | None = None,
    pause: Backoff | None = None,
) -> DeliveryWorker:
    return DeliveryWorker(queue, channel, clock, retry, on_dead=on_dead or DeadLetters(), pause=pause or CountedPause())


@contextlib.asynccontextmanager
async def running(queue: WatchedQueue, *workers: DeliveryWorker) -> AsyncIterator[None]:
    """``workers`` (over ``queue``) running until the block ends."""
    tasks = [asyncio.create_task(worker.run()) for worker in workers]
    for task in tasks:
        queue.watch(task)
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def drive(
    worker: DeliveryWorker, queue: WatchedQueue, clock: FakeClock, done: Callable[[], Awaitable[bool]]
) -> None:
    """Run ``worker`` until ``done()``, moving the fake clock to the next message's time whenever it waits."""
    async with running(queue, worker):
        while True:
            queue.changed.clear()
            if await done():
                return
            next_due = await queue.next_due_ms(worker.channel.name)
            if next_due is not None and next_due > clock.now_ms:
                clock.now_ms = next_due
            worker.wake()
            await queue.changed.wait()


def settled(queue: WatchedQueue, *alert_ids: str) -> Callable[[], Awaitable[bool]]:
    """Every message about these alerts has left the pending state."""

    async def done() -> bool:
        for alert_id in alert_ids:
            if any(m.state == DeliveryState.PENDING for m in await queue.messages(alert_id)):
                return False
        return True

    return done


# --- what the platform is sent -------------------------------------------------------------------------


def test_a_case_carries_the_alert_its_village_gateway_and_device() -> None:
    row = AlertRow(
        id="00000000-0000-4000-8000-000000000001",
        gateway_id="gw-01",
        village_id="lakeside",
        device_id="panic-1",
        grid_id="grid-7",
        kind="door_forced",
        severity="major",
        summary="door forced",
        evidence={"held_ms": 800},
        seq=1,
        raised_at_ms=RAISED_MS,
        state="raised",
        level="village",
        occurrences=1,
    )

    assert case_for(AlertRecord.of(row)) == CaseRequest(
        alert_id=uuid.UUID("00000000-0000-4000-8000-000000000001"),
        kind=AlertKind.DOOR_FORCED,
        severity=Severity.MAJOR,
        village_id="lakeside",
        gateway_id="gw-01",
        device_id="panic-1",
        grid_id="grid-7",
        raised_at=RAISED_MS,
        summary="door forced",
        evidence={"held_ms": 800},
    )
    row.kind = FleetAlertKind.GATEWAY_OFFLINE  # raised by the fleet about the gateway
    assert case_for(AlertRecord.of(row)).kind is FleetAlertKind.GATEWAY_OFFLINE


@pytest.mark.parametrize(
    ("step", "kind"), [(Step.CANCEL, CaseUpdateKind.CANCELLED), (Step.CLEAR, CaseUpdateKind.CLEARED)]
)
def test_a_withdrawal_names_the_case_the_alert_and_why(step: Step, kind: CaseUpdateKind) -> None:
    alert = AlertRecord.of(stored_alert_row(case_id="CASE-000042"))
    key = str(uuid.uuid4())
    delivery = Delivery(key, Action.WITHDRAW_CASE, step, "x" * 600, 1_700_000_000_123, 1, alert)

    update = withdrawal_for(delivery)

    assert (update.update_id, update.case_id, update.alert_id) == (uuid.UUID(key), "CASE-000042", alert.id)
    assert (update.kind, update.reason, update.at) == (kind, "x" * 256, 1_700_000_000_123)
    never_opened = dataclasses.replace(delivery, alert=dataclasses.replace(alert, case_id=None))
    with pytest.raises(NothingToSendError, match="no case to withdraw"):
        withdrawal_for(never_opened)


# --- exactly one case ------------------------------------------------------------------------------------


async def test_a_raised_alert_becomes_exactly_one_signed_case(
    sessions: async_sessionmaker[AsyncSession],
    queue: WatchedQueue,
    platform: Platform,
    connect: Connect,
    stepping_clock: SteppingClock,
) -> None:
    store = store_for(sessions, stepping_clock)
    alert_id = await raised(store)
    worker = worker_for(queue, connect(platform), stepping_clock)

    async with running(queue, worker):
        await queue.until(settled(queue, alert_id))

    [case] = platform.ledger.cases
    assert str(case.alert_id) == alert_id
    request = case.request
    assert (request.village_id, request.gateway_id, request.device_id, request.grid_id) == (
        "lakeside",
        "gw-01",
        "panic-1",
        "grid-7",
    )
    assert (request.kind, request.severity, request.raised_at) == (AlertKind.PANIC, Severity.CRITICAL, RAISED_MS)
    assert platform.ledger.requests == [request]
    [post] = platform.log.matching("POST")
    assert (post.status, post.header("Idempotency-Key")) == (201, alert_id)
    assert post.header(SIGNATURE_HEADER), "signed, and the platform verified it (else 401)"
    [message] = await queue.messages(alert_id)
    assert (message.state, message.result, message.attempts) == (DeliveryState.DELIVERED, case.case_id, 1)
    row = await alert_row(store, alert_id)
    assert (row.delivery_state, row.case_id, row.delivery_attempts) == (DeliveryState.DELIVERED, case.case_id, 1)
    assert (worker.delivered, worker.dead, worker.blocked) == (1, 0, None)


async def test_several_alerts_each_become_their_own_case(
    sessions: async_sessionmaker[AsyncSession],
    queue: WatchedQueue,
    platform: Platform,
    connect: Connect,
    stepping_clock: SteppingClock,
) -> None:
    store = store_for(sessions, stepping_clock)
    alert_ids = [await raised(store, ts=RAISED_MS + i, device_id=f"panic-{i}") for i in range(3)]
    worker = worker_for(queue, connect(platform), stepping_clock)

    async with running(queue, worker):
        await queue.until(settled(queue, *alert_ids))

    assert [str(case.alert_id) for case in platform.ledger.cases] == alert_ids
    assert platform.ledger.duplicate_requests == 0
    rows = [await alert_row(store, alert_id) for alert_id in alert_ids]
    assert [row.case_id for row in rows] == [case.case_id for case in platform.ledger.cases]
    assert worker.delivered == 3


async def test_a_new_alerts_case_handed_over_by_the_store_is_sent_without_looking_up_the_outbox(
    sessions: async_sessionmaker[AsyncSession],
    queue: WatchedQueue,
    platform: Platform,
    connect: Connect,
    stepping_clock: SteppingClock,
) -> None:
    worker = worker_for(queue, connect(platform), stepping_clock)
    store = AlertStore(sessions, stepping_clock, default_escalation(), outbox=CASES, on_queued=worker.offer)

    async with running(queue, worker):
        await queue.until(lambda: _true(queue.due_queries == 1))  # the worker found nothing due, and waits
        alert_id = await raised(store)
        await queue.until(settled(queue, alert_id))

    assert [str(case.alert_id) for case in platform.ledger.cases] == [alert_id]
    assert queue.due_queries == 1, "the panic's case went out without an outbox query on its way"
    row = await alert_row(store, alert_id)
    assert (row.delivery_state, row.case_id) == (DeliveryState.DELIVERED, platform.ledger.cases[0].case_id)


async def test_a_message_offered_after_the_worker_took_it_from_the_outbox_is_not_sent_again(
    sessions: async_sessionmaker[AsyncSession],
    queue: WatchedQueue,
    platform: Platform,
    connect: Connect,
    stepping_clock: SteppingClock,
) -> None:
    store = store_for(sessions, stepping_clock)
    alert_id = await raised(store)
    worker = worker_for(queue, connect(platform), stepping_clock)
    [due] = await queue.due(GOVERNANCE_CHANNEL, stepping_clock())

    async with running(queue, worker):
        await queue.until(settled(queue, alert_id))
        queries = queue.due_queries
        worker.offer([due])  # the store's hand-over, late: the outbox query had found the message first
        await queue.until(lambda: _true(queue.due_queries > queries))  # a round that sent nothing

    assert platform.ledger.duplicate_requests == 0
    assert len(platform.log.matching("POST")) == 1
    assert worker.delivered == 1


async def _true(value: bool) -> bool:
    return value


@pytest.mark.parametrize("status", [500, 503, 429, 408])
async def test_a_platform_failing_for_the_moment_is_retried_then_delivered_once(
    sessions: async_sessionmaker[AsyncSession],
    queue: WatchedQueue,
    platform: Platform,
    connect: Connect,
    stepping_clock: SteppingClock,
    status: int,
) -> None:
    store = store_for(sessions, stepping_clock)
    alert_id = await raised(store)
    platform.faults.fail(3, status=status)
    worker = worker_for(queue, connect(platform), stepping_clock)

    async with running(queue, worker):
        await queue.until(settled(queue, alert_id))

    assert platform.posts() == [("case", status)] * 3 + [("case", 201)]
    [message] = await queue.messages(alert_id)
    assert (message.state, message.attempts, message.last_error) == (DeliveryState.DELIVERED, 4, None)
    [case] = platform.ledger.cases
    assert len(platform.ledger.requests) == 1
    assert (await alert_row(store, alert_id)).case_id == case.case_id
    assert (worker.delivered, worker.dead) == (1, 0)


async def test_a_lost_answer_is_retried_without_opening_a_second_case(
    sessions: async_sessionmaker[AsyncSession],
    queue: WatchedQueue,
    platform: Platform,
    connect: Connect,
    stepping_clock: SteppingClock,
) -> None:
    store = store_for(sessions, stepping_clock)
    alert_id = await raised(store)
    platform.faults.fail(2, after_processing=True)  # the platform opens the case; its answer never arrives
    worker = worker_for(queue, connect(platform), stepping_clock)

    async with running(queue, worker):
        await queue.until(settled(queue, alert_id))

    [case] = platform.ledger.cases
    assert str(case.alert_id) == alert_id
    assert (len(platform.ledger.requests), platform.ledger.duplicate_requests) == (3, 2)
    assert {post.header("Idempotency-Key") for post in platform.log.matching("POST")} == {alert_id}
    assert (await alert_row(store, alert_id)).case_id == case.case_id


# --- the platform refusing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "why"),
    [
        ({"token": "not-the-token"}, 401, "the bearer token is not valid"),
        ({"secret": "not-the-shared-secret"}, 401, "signature"),
        ({"url": f"{PLATFORM_URL}/not-the-api"}, 404, "not_found"),
    ],
    ids=["token", "signing secret", "url"],
)
async def test_a_platform_refusing_the_fleet_keeps_every_message_pending_and_says_the_channel_is_blocked(
    sessions: async_sessionmaker[AsyncSession],
    queue: WatchedQueue,
    platform: Platform,
    connect: Connect,
    stepping_clock: SteppingClock,
    fault: dict[str, str],
    status: int,
    why: str,
) -> None:
    store = store_for(sessions, stepping_clock)
    first, second = await raised(store), await raised(store, device_id="panic-2")
    worker = worker_for(queue, connect(platform, **fault), stepping_clock, RetryPolicy(2, 1.0, 300.0))

    async def tried_more_often_than_max_attempts() -> bool:
        return queue.holds >= 3

    async with running(queue, worker):
        await queue.until(tried_more_often_than_max_attempts)

    [held, waiting] = [(await queue.messages(alert_id))[0] for alert_id in (first, second)]
    assert (held.state, held.attempts) == (DeliveryState.PENDING, 0), "wrong settings use up no attempts"
    assert held.last_error is not None
    assert str(status) in held.last_error
    assert (waiting.state, waiting.attempts, waiting.last_error) == (DeliveryState.PENDING, 0, None)
    row = await alert_row(store, first)
    assert (row.delivery_state, row.last_error) == (DeliveryState.PENDING, held.last_error)
    assert worker.blocked is not None
    assert "check OUTPOST_FLEET_GOVERNANCE__URL, __TOKEN and __SIGNING_SECRETS" in worker.blocked
    assert why in worker.blocked, "the platform's own reason"
    assert platform.ledger.requests == []
    assert (worker.delivered, worker.dead) == (0, 0)


async def test_a_case_the_platform_refuses_is_a_dead_letter_at_once_and_the_rest_flows_on(
    sessions: async_sessionmaker[AsyncSession],
    queue: WatchedQueue,
    platform: Platform,
    connect: Connect,
    stepping_clock: SteppingClock,
) -> None:
    store = store_for(sessions, stepping_clock)
    refused, taken = await raised(store), await raised(store, device_id="panic-2")
    platform.faults.fail(1, status=422)
    dead_letters = DeadLetters(queue)
    worker = worker_for(queue, connect(platform), stepping_clock, on_dead=dead_letters)

    async with running(queue, worker):
        await queue.until(settled(queue, refused, taken))

    [message] = await queue.messages(refused)
    assert (message.state, message.attempts) == (DeliveryState.DEAD, 1)
    assert message.last_error is not None
    assert "422" in message.last_error
    assert (await alert_row(store, refused)).delivery_state == DeliveryState.DEAD
    assert (await alert_row(store, taken)).delivery_state == DeliveryState.DELIVERED
    assert [(p.message.id, error) for p, error in dead_letters.reported] == [(message.id, message.last_error)]
    assert (worker.delivered, worker.dead) == (1, 1)


async def test_a_message_is_dead_lettered_after_max_attempts_of_a_failing_platform(
    sessions: async_sessionmaker[AsyncSession],
    queue: WatchedQueue,
    platform: Platform,
    connect: Connect,
    stepping_clock: SteppingClock,
) -> None:
    store = store_for(sessions, stepping_clock)
    alert_id = await raised(store)
    platform.faults.fail()
    dead_letters = DeadLetters(queue)
    worker = worker_for(queue, connect(platform), stepping_clock, RetryPolicy(3, 1.0, 300.0), on_dead=dead_letters)

    async with running(queue, worker):
        await queue.until(dead_letters.count(1))

    assert platform.posts() == [("case", 500)] * 3
    [message] = await queue.messages(alert_id)
    assert (message.state, message.attempts) == (DeliveryState.DEAD, 3)
    assert message.last_error is not None
    assert "500" in message.last_error
    assert "after 3 attempts" in message.last_error
    assert platform.ledger.cases == []
    assert len(dead_letters.reported) == 1
    assert (worker.delivered, worker.dead) == (0, 1)


# --- retrying: per message, and the channel as a whole --------------------------------------------------------


async def test_each_failure_doubles_the_messages_wait_up_to_the_cap(
    sessions: async_sessionmaker[AsyncSession],
    queue: WatchedQueue,
    platform: Platform,
    connect: Connect,
    clock: FakeClock,
) -> None:
    alert_id = await raised(store_for(sessions, clock))
    platform.faults.fail()
    worker = worker_for(queue, connect(platform), clock, RetryPolicy(max_attempts=6, base_s=1.0, cap_s=4.0))
    started_ms = clock.now_ms
    retries: list[int] = []
    original_settle = queue.settle

    async def settle_noting_each_retry(outcomes: Sequence[Outcome]) -> None:
        retries.extend(each.retry_at_ms for each in outcomes if each.retry_at_ms is not None)
        await original_settle(outcomes)

    queue.settle = settle_noting_each_retry  # type: ignore[method-assign]

    async def dead() -> bool:
        [message] = await queue.messages(alert_id)
        return message.state == DeliveryState.DEAD

    await drive(worker, queue, clock, dead)

    # drive() moves the clock exactly to each retry time, so an attempt happens at the previous retry
    # time (the first at the start): each wait is the step between successive retry times.
    waits = [later - earlier for earlier, later in zip([started_ms, *retries], retries, strict=False)]
    assert waits == [1_000, 2_000, 4_000, 4_000, 4_000]
    assert len(platform.posts()) == 6
    assert RetryPolicy(15, 1.0, 300.0).delay_ms(9) == 256_000
    assert RetryPolicy(15, 1.0, 300.0).delay_ms(10) == 300_000


async def test_a_failing_channel_pauses_as_a_whole_rather_than_try_every_message_in_turn(
    sessions: async_sessionmaker[AsyncSession],
    queue: WatchedQueue,
    platform: Platform,
    connect: Connect,
    clock: FakeClock,
) -> None:
    store = store_for(sessions, clock)
    first, second = await raised(store), await raised(store, device_id="panic-2")
    platform.faults.fail()
    pause = CountedPause()
    worker = worker_for(queue, connect(platform), clock, pause=pause)

    async with running(queue, worker):
        await pause.paused.wait()
        assert len(platform.posts()) == 1, "the round stopped at the first failure"
        assert [m.attempts for m in await queue.messages(second)] == [0]
        assert worker.blocked is not None
        assert "500" in worker.blocked
        pause.paused.clear()
        await pause.paused.wait()  # after the pause the next message due is tried, the failed one waits its turn
        assert len(platform.posts()) == 2
        assert [(await queue.messages(alert_id))[0].attempts for alert_id in (first, second)] == [1, 1]
        platform.faults.clear()

    await drive(worker, queue, clock, settled(queue, first, second))

    assert platform.posts()[2:] == [("case", 201), ("case", 201)]
    assert worker.blocked is None
    assert worker.delivered == 2


# --- withdrawals -------------------------------------------------------------------------------------------


async def test_a_withdrawal_never_overtakes_its_cases_opening_even_while_the_opening_fails(
    sessions: async_sessionmaker[AsyncSession],
    queue: WatchedQueue,
    platform: Platform,
    connect: Connect,
    clock: FakeClock,
) -> None:
    alert_id = await raised(store_for(sessions, clock))
    await AlertHandling(sessions, clock, outbox=CASES).take(STAFF, alert_id, Step.CANCEL, "test press")
    platform.faults.fail(2)
    worker = worker_for(queue, connect(platform), clock)

    await drive(worker, queue, clock, settled(queue, alert_id))

    assert platform.posts() == [("case", 500), ("case", 500), ("case", 201), ("update", 200)]
    [case] = platform.ledger.cases
    assert case.status is CaseStatus.CLOSED
    assert [m.state for m in await queue.messages(alert_id)] == [DeliveryState.DELIVERED] * 2


async def test_cancelling_an_alert_withdraws_its_case_on_the_platform(
    sessions: async_sessionmaker[AsyncSession],
    queue: WatchedQueue,
    platform: Platform,
    connect: Connect,
    stepping_clock: SteppingClock,
) -> None:
    alert_id = await raised(store_for(sessions, stepping_clock))
    worker = worker_for(queue, connect(platform), stepping_clock)

    async with running(queue, worker):
        await queue.until(settled(queue, alert_id))
        await AlertHandling(sessions, stepping_clock, outbox=CASES).take(
            STAFF, alert_id, Step.CANCEL, "a child pressed it"
        )
        worker.wake()
        await queue.until(settled(queue, alert_id))

    opening, withdrawal = await queue.messages(alert_id)
    [case] = platform.ledger.cases
    [update] = platform.ledger.update_requests
    assert (str(update.update_id), update.case_id, str(update.alert_id)) == (withdrawal.key, case.case_id, alert_id)
    assert (update.kind, update.reason, update.at) == (
        CaseUpdateKind.CANCELLED,
        "a child pressed it",
        withdrawal.created_ms,
    )
    assert case.status is CaseStatus.CLOSED
    closed = case.events[-1]
    assert isinstance(closed, CaseClosed)
    assert closed.reason is CloseReason.WITHDRAWN
    assert (withdrawal.state, withdrawal.result) == (DeliveryState.DELIVERED, "closed")
    assert (await alert_row(store_for(sessions, stepping_clock), alert_id)).case_id == opening.result == case.case_id
    assert worker.delivered == 2


async def test_clearing_an_alert_withdraws_its_case_on_the_platform(
    sessions: async_sessionmaker[AsyncSession],
    queue: WatchedQueue,
    platform: Platform,
    connect: Connect,
    stepping_clock: SteppingClock,
) -> None:
    store = store_for(sessions, stepping_clock)
    alert_id = await raised(store, kind=AlertKind.CAMERA_OFFLINE, device_id="cam-1", severity=Severity.MAJOR)
    worker = worker_for(queue, connect(platform), stepping_clock)

    async with running(queue, worker):
        await queue.until(settled(queue, alert_id))
        assert await store.end_condition("gw-01", "cam-1", [AlertKind.CAMERA_OFFLINE], "camera back online") == 1
        assert await store.clear_due(stepping_clock(), limit=10) == 1
        worker.wake()
        await queue.until(settled(queue, alert_id))

    [case] = platform.ledger.cases
    [update] = platform.ledger.update_requests
    assert (update.kind, update.reason) == (CaseUpdateKind.CLEARED, "the condition ended and stayed away")
    assert case.status is CaseStatus.CLOSED
    closed = case.events[-1]
    assert isinstance(closed, CaseClosed)
    assert closed.reason is CloseReason.WITHDRAWN


async def test_withdrawing_a_case_that_was_never_opened_is_skipped(
    sessions: async_sessionmaker[AsyncSession],
    queue: WatchedQueue,
    platform: Platform,
    connect: Connect,
    stepping_clock: SteppingClock,
) -> None:
    alert_id = await raised(store_for(sessions, stepping_clock))
    await AlertHandling(sessions, stepping_clock, outbox=CASES).take(STAFF, alert_id, Step.CANCEL, "test press")
    platform.faults.fail()
    worker = worker_for(queue, connect(platform), stepping_clock, RetryPolicy(1, 1.0, 300.0))

    async with running(queue, worker):
        await queue.until(settled(queue, alert_id))

    opening, withdrawal = await queue.messages(alert_id)
    assert (opening.state, withdrawal.state, withdrawal.attempts) == (DeliveryState.DEAD, DeliveryState.SKIPPED, 0)
    assert withdrawal.last_error is not None
    assert "no case to withdraw" in withdrawal.last_error
    assert platform.posts() == [("case", 500)], "nothing was sent to withdraw"
    assert worker.dead == 1


async def test_withdrawing_a_case_the_platform_does_not_know_is_a_dead_letter(
    sessions: async_sessionmaker[AsyncSession],
    queue: WatchedQueue,
    platform: Platform,
    connect: Connect,
    stepping_clock: SteppingClock,
) -> None:
    alert_id = await raised(store_for(sessions, stepping_clock))
    async with running(queue, worker_for(queue, connect(platform), stepping_clock)):
        await queue.until(settled(queue, alert_id))
    await AlertHandling(sessions, stepping_clock, outbox=CASES).take(STAFF, alert_id, Step.CANCEL, "test press")
    restored = Platform()  # the platform restored from a backup older than the case
    dead_letters = DeadLetters(queue)
    worker = worker_for(queue, connect(restored), stepping_clock, on_dead=dead_letters)

    async with running(queue, worker):
        await queue.until(dead_letters.count(1))

    _, withdrawal = await queue.messages(alert_id)
    assert (withdrawal.state, withdrawal.attempts) == (DeliveryState.DEAD, 1)
    assert withdrawal.last_error is not None
    assert "case_not_found" in withdrawal.last_error
    assert restored.posts() == [("update", 404)]
    assert [p.message.id for p, _ in dead_letters.reported] == [withdrawal.id]
    assert worker.blocked is None, "the platform refused this message, not the fleet"


# --- dead letters raise an alert ------------------------------------------------------------------------------


async def delivery_failed_alerts(store: AlertStore) -> list[AlertRow]:
    return [row for row in await store.list(AlertFilter()) if row.kind == FleetAlertKind.DELIVERY_FAILED]


async def test_dead_letters_raise_one_delivery_failed_alert_per_channel_and_gateway_which_opens_no_case(
    sessions: async_sessionmaker[AsyncSession],
    queue: WatchedQueue,
    platform: Platform,
    connect: Connect,
    stepping_clock: SteppingClock,
) -> None:
    store = store_for(sessions, stepping_clock)
    first = await raised(store)
    second = await raised(store, device_id="panic-2")
    elsewhere = await raised(store, "riverside")
    platform.faults.fail()
    raised_alerts: list[None] = []

    def on_raised() -> None:
        raised_alerts.append(None)
        queue.changed.set()

    async def third_reported() -> bool:  # the worker takes one message after the other: the third dies last
        return len(raised_alerts) == 2

    reporter = DeadLetterAlerts(store, stepping_clock, on_raised)
    worker = worker_for(queue, connect(platform), stepping_clock, RetryPolicy(1, 1.0, 300.0), on_dead=reporter.report)

    async with running(queue, worker):
        await queue.until(third_reported)

    assert await settled(queue, first, second, elsewhere)()
    failures = {row.gateway_id: row for row in await delivery_failed_alerts(store)}
    assert sorted(failures) == ["gw-01", "gw-02"]
    lakeside = failures["gw-01"]
    assert (lakeside.village_id, lakeside.device_id, lakeside.severity, lakeside.state) == (
        "lakeside",
        GOVERNANCE_CHANNEL,
        Severity.MAJOR,
        "raised",
    )
    assert lakeside.occurrences == 2, "the second dead letter of the channel for the gateway counts on the first"
    assert lakeside.evidence["alert_id"] == first
    assert lakeside.evidence["action"] == Action.OPEN_CASE
    assert "500" in str(lakeside.evidence["error"])
    assert failures["gw-02"].occurrences == 1
    assert len(raised_alerts) == 2
    for row in failures.values():
        assert row.delivery_state == DeliveryState.UNROUTED
        assert await queue.find(alert_id=row.id) == [], "a failing delivery opens no case"
    assert platform.posts() == [("case", 500)] * 3


class RefusingChannel:
    """A channel whose receiver refuses every message (an SMS gateway refusing the number, say)."""

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @property
    def route(self) -> Route:
        return notify_route(self._name, [RAISE])

    async def deliver(self, delivery: Delivery) -> str | None:
        raise ChannelRejectedError(f"{self._name} refused the {delivery.action} of alert {delivery.alert.id}")

    async def close(self) -> None:
        return None


async def test_a_delivery_failed_alerts_own_dead_messages_raise_nothing_more(
    sessions: async_sessionmaker[AsyncSession],
    queue: WatchedQueue,
    platform: Platform,
    connect: Connect,
    stepping_clock: SteppingClock,
) -> None:
    sms = RefusingChannel("sms")
    outbox = Outbox([case_route(GOVERNANCE_CHANNEL), sms.route])
    store = store_for(sessions, stepping_clock, outbox)
    platform.faults.fail()
    workers: list[DeliveryWorker] = []

    def wake_all() -> None:
        for worker in workers:
            worker.wake()

    reporter = DeadLetterAlerts(store, stepping_clock, wake_all)
    workers += [
        worker_for(queue, connect(platform), stepping_clock, RetryPolicy(1, 1.0, 300.0), on_dead=reporter.report),
        DeliveryWorker(queue, sms, stepping_clock, PATIENT, on_dead=reporter.report, pause=CountedPause()),
    ]
    alert_id = await raised(store)

    async def all_settled() -> bool:
        counts = {c.channel: c for c in await queue.counts()}
        return (
            sum(c.pending for c in counts.values()) == 0
            and counts[GOVERNANCE_CHANNEL].dead == 1
            and counts["sms"].dead == 3
        )

    async with running(queue, *workers):
        await queue.until(all_settled)

    failures = await delivery_failed_alerts(store)
    assert sorted(row.device_id for row in failures) == ["governance", "sms"]
    assert all(row.occurrences == 1 for row in failures), "their own dead notifications raised nothing"
    about = {row.device_id: row.evidence["alert_id"] for row in failures}
    assert about == {"governance": alert_id, "sms": alert_id}
    sms_dead = await queue.find(channel="sms", state=DeliveryState.DEAD)
    assert sorted(m.alert_id for m in sms_dead) == sorted([alert_id, *(row.id for row in failures)])
    assert len(await store.list(AlertFilter())) == 3


async def test_several_messages_in_flight_keep_each_alerts_order_and_open_each_case_once(
    sessions: async_sessionmaker[AsyncSession],
    queue: WatchedQueue,
    platform: Platform,
    connect: Connect,
    clock: FakeClock,
) -> None:
    store = store_for(sessions, clock)
    alert_ids = [await raised(store, device_id=f"panic-{index}") for index in range(6)]
    handling = AlertHandling(sessions, clock, outbox=CASES)
    for alert_id in alert_ids:
        await handling.take(STAFF, alert_id, Step.CANCEL, "test press")
    worker = DeliveryWorker(queue, connect(platform), clock, PATIENT, pause=CountedPause(), in_flight=4)

    await drive(worker, queue, clock, settled(queue, *alert_ids))

    assert len(platform.ledger.cases) == 6
    assert all(case.status is CaseStatus.CLOSED for case in platform.ledger.cases)
    for alert_id in alert_ids:
        assert [(m.action, m.state) for m in await queue.messages(alert_id)] == [
            ("open_case", DeliveryState.DELIVERED),
            ("withdraw_case", DeliveryState.DELIVERED),
        ]


async def test_an_alert_the_contract_cannot_carry_is_a_dead_letter_not_a_stuck_worker(
    sessions: async_sessionmaker[AsyncSession],
    queue: WatchedQueue,
    platform: Platform,
    connect: Connect,
    stepping_clock: SteppingClock,
) -> None:
    store = store_for(sessions, stepping_clock)
    unknown, fine = await raised(store), await raised(store, device_id="panic-2")
    async with sessions.begin() as session:
        row = await session.get(AlertRow, unknown)
        assert row is not None
        row.kind = "meteor_strike"  # written by a newer fleet, say
    worker = worker_for(queue, connect(platform), stepping_clock)

    async with running(queue, worker):
        await queue.until(settled(queue, unknown, fine))

    [message] = await queue.messages(unknown)
    assert message.state == DeliveryState.DEAD
    assert message.last_error is not None
    assert f"alert {unknown} cannot be read" in message.last_error
    assert [str(case.alert_id) for case in platform.ledger.cases] == [fine]
