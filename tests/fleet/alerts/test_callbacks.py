"""The platform's signed status callbacks move alerts through their lifecycle, on SQLite and PostgreSQL:
in order, once each, refused when unsigned, unknown or not fitting the alert, and 'too early' (retry)
when one before them is missing."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.alerts.channels.governance import GOVERNANCE_CHANNEL
from fleet.alerts.outbox_queue import OutboxQueue, Outcome
from fleet.alerts.store import AlertStore
from fleet.api.context import ApiContext
from protocol.governance import (
    CASE_CALLBACK_PATH,
    Assignee,
    CaseCallback,
    CaseClosed,
    CaseDispatched,
    CaseFeedback,
    CaseResolved,
    CloseReason,
    encode_case_callback,
)
from protocol.messages import Alert
from protocol.request_signing import signature_headers
from tests.fleet.alert_county import alert_county
from tests.fleet.alert_parts import CASES
from tests.fleet.api_client import CALLBACK_SECRET, api_client
from tests.fleet.helpers import FakeClock, default_escalation, make_alert

CASE = "CASE-000042"


@pytest.fixture
async def context(any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> ApiContext:
    return await alert_county(any_sessions, clock)


@pytest.fixture
async def api(context: ApiContext) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(context) as client:
        yield client


@pytest.fixture
async def alert(any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> Alert:
    store = AlertStore(any_sessions, clock, default_escalation(), outbox=CASES)
    raised = make_alert()
    await store.record("lakeside", raised)
    queue = OutboxQueue(any_sessions)
    [opening] = await queue.due(GOVERNANCE_CHANNEL, clock.now_ms)
    await queue.settle([Outcome.delivered(opening.message.id, CASE, clock.now_ms)])
    return raised


def callback(kind: type[Any], alert: Alert, sequence: int, **fields: Any) -> CaseCallback:
    made: CaseCallback = kind(
        callback_id=uuid.uuid4(), case_id=CASE, alert_id=alert.event_id, sequence=sequence, sent_at=1, **fields
    )
    return made


async def send(
    api: httpx.AsyncClient, clock: FakeClock, sent: CaseCallback | bytes, secret: str = CALLBACK_SECRET
) -> httpx.Response:
    body = sent if isinstance(sent, bytes) else encode_case_callback(sent)
    headers = signature_headers(secret, "POST", CASE_CALLBACK_PATH, clock.now_ms, body)
    clock.now_ms += 1  # each attempt signed at its own instant
    return await api.post(CASE_CALLBACK_PATH, content=body, headers=headers)


OFFICER = Assignee(officer_id="gzy-017", name="Wang Li", grid_id="grid-7")


async def test_the_case_loop_moves_the_alert_to_dispatched_resolved_and_closed_with_feedback(
    api: httpx.AsyncClient, alert: Alert, clock: FakeClock
) -> None:
    answers = [
        await send(api, clock, callback(CaseDispatched, alert, 1, assignee=OFFICER)),
        await send(api, clock, callback(CaseResolved, alert, 2, note="resident was unwell; family took over")),
        await send(api, clock, callback(CaseFeedback, alert, 3, rating=4, comment="arrived in 6 minutes")),
        await send(api, clock, callback(CaseClosed, alert, 4, reason=CloseReason.COMPLETED)),
    ]

    assert [answer.status_code for answer in answers] == [204, 204, 204, 204]
    shown = (await api.get(f"/alerts/{alert.event_id}")).json()
    assert (shown["state"], shown["assignee"], shown["escalate_at_ms"]) == (
        "closed",
        "Wang Li (gzy-017, grid grid-7)",
        None,
    )
    assert (shown["feedback_rating"], shown["feedback_comment"]) == (4, "arrived in 6 minutes")
    history = (await api.get(f"/alerts/{alert.event_id}/history")).json()
    assert [(h["step"], h["to_state"], h["actor"]) for h in history[1:]] == [
        ("dispatch", "dispatched", "platform"),
        ("resolve", "resolved", "platform"),
        ("note", "resolved", "platform"),
        ("close", "closed", "platform"),
    ]


async def test_a_repeated_callback_is_answered_and_applied_once(
    api: httpx.AsyncClient, alert: Alert, clock: FakeClock
) -> None:
    dispatched = callback(CaseDispatched, alert, 1, assignee=OFFICER)

    first, again = await send(api, clock, dispatched), await send(api, clock, dispatched)

    assert (first.status_code, again.status_code) == (204, 204)
    history = (await api.get(f"/alerts/{alert.event_id}/history")).json()
    assert [h["step"] for h in history] == ["raise", "dispatch"]


async def test_a_callback_ahead_of_a_missing_one_is_too_early_and_taken_once_that_one_came(
    api: httpx.AsyncClient, alert: Alert, clock: FakeClock
) -> None:
    resolved = callback(CaseResolved, alert, 2, note="done")

    early = await send(api, clock, resolved)
    dispatched = await send(api, clock, callback(CaseDispatched, alert, 1, assignee=OFFICER))
    retried = await send(api, clock, resolved)

    assert early.status_code == 503
    assert early.headers["Retry-After"]
    assert (dispatched.status_code, retried.status_code) == (204, 204)
    assert (await api.get(f"/alerts/{alert.event_id}")).json()["state"] == "resolved"


async def test_a_callback_the_alert_state_does_not_allow_is_refused_recorded_and_does_not_hold_later_ones(
    api: httpx.AsyncClient, alert: Alert, clock: FakeClock
) -> None:
    await api.post(f"/alerts/{alert.event_id}/cancel", json={"reason": "test press during the drill"})

    dispatched = await send(api, clock, callback(CaseDispatched, alert, 1, assignee=OFFICER))
    withdrawn = await send(api, clock, callback(CaseClosed, alert, 2, reason=CloseReason.WITHDRAWN))

    assert dispatched.status_code == 409
    assert "cannot dispatch an alert that is cancelled" in dispatched.json()["detail"]
    assert withdrawn.status_code == 204, "the next one is not held behind the refused one"
    history = (await api.get(f"/alerts/{alert.event_id}/history")).json()
    assert [(h["step"], h["to_state"]) for h in history] == [
        ("raise", "raised"),
        ("cancel", "cancelled"),
        ("note", "cancelled"),
        ("note", "cancelled"),
    ]


async def test_unsigned_wrongly_signed_unknown_and_malformed_callbacks_are_refused(
    api: httpx.AsyncClient, alert: Alert, clock: FakeClock
) -> None:
    dispatched = callback(CaseDispatched, alert, 1, assignee=OFFICER)
    other_case = callback(CaseDispatched, make_alert(), 1, assignee=OFFICER)

    unsigned = await api.post(CASE_CALLBACK_PATH, content=encode_case_callback(dispatched))
    wrong_secret = await send(api, clock, dispatched, secret="not-the-shared-secret")
    unknown = await send(api, clock, other_case)
    malformed = await send(api, clock, b'{"event": "teleported"}')

    assert (unsigned.status_code, wrong_secret.status_code) == (401, 401)
    assert "unsigned_request" in unsigned.json()["detail"]
    assert (unknown.status_code, malformed.status_code) == (404, 422)
    assert (await api.get(f"/alerts/{alert.event_id}")).json()["state"] == "raised"
