"""The outbox through the API, on SQLite and PostgreSQL: what each channel was told or still has to be told
(``GET /deliveries``, ``/deliveries/summary``), and dead letters put back in line by staff, audited
(``POST /deliveries/retry``)."""

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.alerts.channels.governance import GOVERNANCE_CHANNEL
from fleet.alerts.outbox_queue import Outcome
from fleet.api.context import ApiContext
from fleet.db.schema import DeliveryState, OutboxRow
from tests.fleet.alert_county import alert_county
from tests.fleet.api_client import api_client
from tests.fleet.helpers import RAISED_MS, FakeClock, make_alert


@pytest.fixture
async def context(any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> ApiContext:
    return await alert_county(any_sessions, clock)


async def token_for(context: ApiContext, name: str, role: str) -> str:
    async with api_client(context) as admin:
        created = await admin.post("/tokens", json={"name": name, "role": role})
        assert created.status_code == 201, created.text
        secret: str = created.json()["secret"]
        return secret


@pytest.fixture
async def staff(context: ApiContext) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(context, await token_for(context, "duty-officer", "command_staff")) as client:
        yield client


@pytest.fixture
async def technician(context: ApiContext) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(context, await token_for(context, "li-tech", "technician")) as client:
        yield client


async def opening_of(context: ApiContext, village: str = "lakeside", **changes: object) -> OutboxRow:
    """Raise an alert and return the outbox message that opens its case."""
    alert = make_alert(gateway_id="gw-01" if village == "lakeside" else "gw-02", **changes)
    assert await context.alerts.record(village, alert)
    [message] = await context.outbox.find(alert_id=str(alert.event_id))
    return message


async def test_deliveries_are_listed_newest_first_and_narrowed_by_channel_state_and_alert(
    context: ApiContext, staff: httpx.AsyncClient, clock: FakeClock
) -> None:
    delivered = await opening_of(context)
    dead = await opening_of(context, device_id="panic-2")
    pending = await opening_of(context, "riverside")
    await context.outbox.settle([Outcome.delivered(delivered.id, "CASE-000001", clock.now_ms)])
    await context.outbox.settle([Outcome.failed(dead.id, "governance platform refused the case: 422", None)])

    async def ids(**params: str | int) -> list[int]:
        answer = await staff.get("/deliveries", params=params)
        assert answer.status_code == 200, answer.text
        return [row["id"] for row in answer.json()]

    assert await ids() == [pending.id, dead.id, delivered.id]
    assert await ids(state="dead") == [dead.id]
    assert await ids(state="pending", channel=GOVERNANCE_CHANNEL) == [pending.id]
    assert await ids(channel="sms") == []
    assert await ids(alert_id=delivered.alert_id) == [delivered.id]
    assert await ids(limit=1) == [pending.id]
    [shown] = (await staff.get("/deliveries", params={"state": "delivered"})).json()
    assert shown == {
        "id": delivered.id,
        "alert_id": delivered.alert_id,
        "channel": GOVERNANCE_CHANNEL,
        "action": "open_case",
        "step": "raise",
        "reason": "panic button panic-1 pressed",
        "state": "delivered",
        "attempts": 1,
        "created_ms": clock.now_ms,
        "next_attempt_ms": clock.now_ms,
        "delivered_ms": clock.now_ms,
        "last_error": None,
        "result": "CASE-000001",
    }
    for bad in ({"state": "lost"}, {"alert_id": "too-short"}, {"limit": 0}, {"limit": 1001}, {"channel": "x" * 33}):
        assert (await staff.get("/deliveries", params=bad)).status_code == 422, bad


async def test_the_summary_counts_each_channels_messages(
    context: ApiContext, staff: httpx.AsyncClient, clock: FakeClock
) -> None:
    assert (await staff.get("/deliveries/summary")).json() == []
    messages = [await opening_of(context, device_id=f"panic-{i}", ts=RAISED_MS + i) for i in range(4)]
    await context.outbox.settle([Outcome.delivered(messages[0].id, "CASE-000001", clock.now_ms)])
    await context.outbox.settle([Outcome.failed(messages[1].id, "refused", None)])

    summary = await staff.get("/deliveries/summary")

    assert summary.status_code == 200
    assert summary.json() == [{"channel": GOVERNANCE_CHANNEL, "pending": 2, "delivered": 1, "dead": 1}]


async def test_staff_put_a_dead_letter_back_in_line_and_it_is_audited(
    context: ApiContext, staff: httpx.AsyncClient, clock: FakeClock
) -> None:
    dead = await opening_of(context)
    await context.outbox.settle([Outcome.failed(dead.id, "governance platform answered 500 (after 15 attempts)", None)])
    clock.now_ms += 3_600_000

    answer = await staff.post("/deliveries/retry", json={"ids": [dead.id]})

    assert answer.status_code == 200, answer.text
    [retried] = answer.json()
    assert (retried["id"], retried["state"], retried["attempts"], retried["next_attempt_ms"]) == (
        dead.id,
        "pending",
        0,
        clock.now_ms,
    )
    [due] = await context.outbox.due(GOVERNANCE_CHANNEL, clock.now_ms)
    assert due.message.id == dead.id
    alert = (await staff.get(f"/alerts/{dead.alert_id}")).json()
    assert (alert["delivery_state"], alert["delivery_attempts"]) == ("pending", 0)
    [entry] = await context.audit.entries(target_type="delivery")
    assert (entry.action, entry.actor, entry.target_id, entry.at_ms) == (
        "delivery.retry",
        "duty-officer",
        str(dead.id),
        clock.now_ms,
    )
    assert entry.before is not None
    assert entry.before["state"] == "dead"


async def test_retrying_what_is_not_a_dead_letter_is_404_and_changes_nothing(
    context: ApiContext, staff: httpx.AsyncClient
) -> None:
    dead = await opening_of(context)
    pending = await opening_of(context, device_id="panic-2")
    await context.outbox.settle([Outcome.failed(dead.id, "refused", None)])

    for ids in ([dead.id, pending.id], [dead.id, 424_242]):
        answer = await staff.post("/deliveries/retry", json={"ids": ids})
        assert answer.status_code == 404, answer.text
        assert f"no dead letter {ids[1]}" in answer.json()["detail"]

    assert [m.id for m in await context.outbox.find(state=DeliveryState.DEAD)] == [dead.id]
    assert await context.audit.entries(target_type="delivery") == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"ids": []},
        {"ids": [0]},
        {"ids": [-3]},
        {"ids": ["seven"]},
        {"ids": [2**53]},
        {"ids": list(range(1, 1002))},
        {"ids": [1], "force": True},
        [1, 2],
    ],
    ids=["no ids", "empty", "zero", "negative", "not a number", "too large", "too many", "unknown field", "a list"],
)
async def test_a_bad_retry_body_is_422(context: ApiContext, staff: httpx.AsyncClient, body: object) -> None:
    answer = await staff.post("/deliveries/retry", json=body)

    assert answer.status_code == 422, answer.text


async def test_a_technician_reads_deliveries_but_cannot_retry_them_and_strangers_do_neither(
    context: ApiContext, technician: httpx.AsyncClient
) -> None:
    dead = await opening_of(context)
    await context.outbox.settle([Outcome.failed(dead.id, "refused", None)])

    assert (await technician.get("/deliveries")).status_code == 200
    assert (await technician.get("/deliveries/summary")).status_code == 200
    refused = await technician.post("/deliveries/retry", json={"ids": [dead.id]})
    async with api_client(context, token=None) as stranger:
        anonymous = [
            (await stranger.get("/deliveries")).status_code,
            (await stranger.get("/deliveries/summary")).status_code,
            (await stranger.post("/deliveries/retry", json={"ids": [dead.id]})).status_code,
        ]

    assert refused.status_code == 403, refused.text
    assert anonymous == [401, 401, 401]
    assert [m.id for m in await context.outbox.find(state=DeliveryState.DEAD)] == [dead.id]
    assert await context.audit.entries(target_type="delivery") == []
