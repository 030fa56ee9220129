"""Case delivery against the reference governance platform: exactly one case per alert, retries, dead letters."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.alerts.delivery import DeliveryWorker, case_for
from fleet.alerts.store import AlertStore
from fleet.db.schema import AlertRow, DeliveryState
from fleet.governance.client import GovernanceClient
from fleet.registry import Registry
from fleet.settings import GovernanceSettings
from protocol.governance import CaseRequest
from protocol.messages import AlertKind, Severity
from protocol.reconnect import Backoff
from simulators.governance.app import create_platform_app
from simulators.governance.recorder import CaseLedger
from tests.fleet.helpers import RAISED_MS, FakeClock, default_escalation, make_alert

TOKEN = "platform-token"
PLATFORM_URL = "http://platform.test"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class FailingFirst:
    """An ASGI wrapper that answers 500 to the first ``failures`` HTTP requests.

    With ``after_processing`` the platform handles the request first and only its answer is lost,
    the case where a retry must not open a second case.
    """

    def __init__(self, app: AsgiApp, failures: int, *, after_processing: bool = False) -> None:
        self.app = app
        self.failures = failures
        self.after_processing = after_processing
        self.requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.requests += 1
        if self.requests > self.failures:
            await self.app(scope, receive, send)
            return
        if self.after_processing:

            async def discard(message: Message) -> None:
                pass

            await self.app(scope, receive, discard)
        await send({"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"internal error"})


class SteppingClock(FakeClock):
    """Jumps ten minutes on every reading, so every retry is due by the time the worker looks again."""

    def __call__(self) -> int:
        self.now_ms += 600_000
        return self.now_ms


@pytest.fixture
def ledger() -> CaseLedger:
    return CaseLedger()


@pytest.fixture
def stepping_clock() -> SteppingClock:
    return SteppingClock()


@pytest.fixture
async def store(sessions: async_sessionmaker[AsyncSession], stepping_clock: SteppingClock) -> "WatchedStore":
    await Registry(sessions, stepping_clock).register("lakeside", "gw-01")
    return WatchedStore(sessions, stepping_clock)


@pytest.fixture
async def clients() -> AsyncIterator[Callable[[AsgiApp, str], GovernanceClient]]:
    opened: list[GovernanceClient] = []

    def connect(app: AsgiApp, token: str) -> GovernanceClient:
        settings = GovernanceSettings(url=PLATFORM_URL, token=SecretStr(token))
        client = GovernanceClient(settings, transport=httpx.ASGITransport(app=app))
        opened.append(client)
        return client

    yield connect
    for client in opened:
        await client.close()


FAST = Backoff(base_s=0.001, cap_s=0.002)


class WatchedStore(AlertStore):
    """The real store, announcing every delivery outcome so a test can wait for the worker without polling."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Callable[[], int]) -> None:
        super().__init__(sessions, clock, default_escalation())
        self.changed = asyncio.Event()

    async def mark_delivered(self, alert_id: str, case_id: str, at_ms: int) -> None:
        await super().mark_delivered(alert_id, case_id, at_ms)
        self.changed.set()

    async def mark_failed(self, alert_id: str, error: str, next_attempt_ms: int | None) -> None:
        await super().mark_failed(alert_id, error, next_attempt_ms)
        self.changed.set()


async def deliver_until_settled(worker: DeliveryWorker, store: WatchedStore, *alert_ids: str) -> list[AlertRow]:
    """Run the worker until every alert has left the pending state; return their final rows."""
    task = asyncio.create_task(worker.run())
    try:
        while True:
            store.changed.clear()
            rows = [await store.get(alert_id) for alert_id in alert_ids]
            settled = [row for row in rows if row is not None and row.delivery_state != DeliveryState.PENDING]
            if len(settled) == len(alert_ids):
                return settled
            await store.changed.wait()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


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
    )

    assert case_for(row) == CaseRequest(
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


async def test_a_pending_alert_becomes_exactly_one_case(
    store: WatchedStore,
    ledger: CaseLedger,
    stepping_clock: SteppingClock,
    clients: Callable[[AsgiApp, str], GovernanceClient],
) -> None:
    alert = make_alert()
    await store.record("lakeside", alert)
    worker = DeliveryWorker(
        store, clients(create_platform_app(ledger, TOKEN), TOKEN), stepping_clock, max_attempts=5, backoff=FAST
    )

    [row] = await deliver_until_settled(worker, store, str(alert.event_id))

    [case] = ledger.cases
    assert case.alert_id == alert.event_id
    assert (case.request.village_id, case.request.gateway_id, case.request.device_id) == (
        "lakeside",
        "gw-01",
        "panic-1",
    )
    assert case.request.grid_id == "grid-7"
    assert case.request.kind is AlertKind.PANIC
    assert case.request.severity is Severity.CRITICAL
    assert case.request.raised_at == RAISED_MS
    assert ledger.requests == [case.request]
    assert row.delivery_state == DeliveryState.DELIVERED
    assert row.case_id == case.case_id
    assert row.delivery_attempts == 1
    assert (worker.delivered, worker.dead) == (1, 0)


async def test_a_wrong_token_keeps_the_alert_pending_and_says_delivery_is_blocked(
    store: WatchedStore,
    ledger: CaseLedger,
    stepping_clock: SteppingClock,
    clients: Callable[[AsgiApp, str], GovernanceClient],
) -> None:
    alert = make_alert()
    await store.record("lakeside", alert)
    client = clients(create_platform_app(ledger, TOKEN), "not-the-token")
    worker = DeliveryWorker(store, client, stepping_clock, max_attempts=None, backoff=FAST)

    task = asyncio.create_task(worker.run())
    try:
        for _ in range(3):  # several attempts, none of them gives the alert up
            store.changed.clear()
            await store.changed.wait()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    row = await store.get(str(alert.event_id))
    assert row is not None
    assert row.delivery_state == DeliveryState.PENDING
    assert row.delivery_attempts >= 3
    assert row.last_error is not None
    assert "401" in row.last_error
    assert worker.blocked is not None
    assert "check OUTPOST_FLEET_GOVERNANCE__URL, __TOKEN and __SIGNING_SECRETS" in worker.blocked
    assert "the bearer token is not valid" in worker.blocked  # the platform's own reason
    assert ledger.requests == []
    assert (worker.delivered, worker.dead) == (0, 0)


async def test_a_platform_answering_500_is_retried_then_delivered_once(
    store: WatchedStore,
    ledger: CaseLedger,
    stepping_clock: SteppingClock,
    clients: Callable[[AsgiApp, str], GovernanceClient],
) -> None:
    alert = make_alert()
    await store.record("lakeside", alert)
    platform = FailingFirst(create_platform_app(ledger, TOKEN), failures=3)
    worker = DeliveryWorker(store, clients(platform, TOKEN), stepping_clock, max_attempts=10, backoff=FAST)

    [row] = await deliver_until_settled(worker, store, str(alert.event_id))

    assert platform.requests == 4
    assert row.delivery_state == DeliveryState.DELIVERED
    assert row.delivery_attempts == 4
    assert row.last_error is None
    assert len(ledger.cases) == 1
    assert len(ledger.requests) == 1
    assert row.case_id == ledger.cases[0].case_id
    assert (worker.delivered, worker.dead) == (1, 0)


async def test_a_lost_answer_is_retried_without_opening_a_second_case(
    store: WatchedStore,
    ledger: CaseLedger,
    stepping_clock: SteppingClock,
    clients: Callable[[AsgiApp, str], GovernanceClient],
) -> None:
    alert = make_alert()
    await store.record("lakeside", alert)
    platform = FailingFirst(create_platform_app(ledger, TOKEN), failures=2, after_processing=True)
    worker = DeliveryWorker(store, clients(platform, TOKEN), stepping_clock, max_attempts=10, backoff=FAST)

    [row] = await deliver_until_settled(worker, store, str(alert.event_id))

    [case] = ledger.cases
    assert case.alert_id == alert.event_id
    assert len(ledger.requests) == 3
    assert ledger.duplicate_requests == 2
    assert row.delivery_state == DeliveryState.DELIVERED
    assert row.case_id == case.case_id


async def test_an_alert_is_dead_lettered_after_max_attempts_of_a_failing_platform(
    store: WatchedStore,
    ledger: CaseLedger,
    stepping_clock: SteppingClock,
    clients: Callable[[AsgiApp, str], GovernanceClient],
) -> None:
    alert = make_alert()
    await store.record("lakeside", alert)
    platform = FailingFirst(create_platform_app(ledger, TOKEN), failures=1_000)
    worker = DeliveryWorker(store, clients(platform, TOKEN), stepping_clock, max_attempts=3, backoff=FAST)

    [row] = await deliver_until_settled(worker, store, str(alert.event_id))

    assert platform.requests == 3
    assert row.delivery_state == DeliveryState.DEAD
    assert row.delivery_attempts == 3
    assert row.last_error is not None
    assert "500" in row.last_error
    assert "after 3 attempts" in row.last_error
    assert ledger.cases == []
    assert (worker.delivered, worker.dead) == (0, 1)


async def test_several_pending_alerts_each_become_their_own_case(
    store: WatchedStore,
    ledger: CaseLedger,
    stepping_clock: SteppingClock,
    clients: Callable[[AsgiApp, str], GovernanceClient],
) -> None:
    alerts = [make_alert(ts=RAISED_MS + i, device_id=f"panic-{i}") for i in range(3)]
    for alert in alerts:
        await store.record("lakeside", alert)
    worker = DeliveryWorker(
        store, clients(create_platform_app(ledger, TOKEN), TOKEN), stepping_clock, max_attempts=5, backoff=FAST
    )

    rows = await deliver_until_settled(worker, store, *(str(alert.event_id) for alert in alerts))

    assert [case.alert_id for case in ledger.cases] == [alert.event_id for alert in alerts]
    assert ledger.duplicate_requests == 0
    assert [row.case_id for row in rows] == [case.case_id for case in ledger.cases]
    assert worker.delivered == 3
