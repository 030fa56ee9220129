"""The platform works each case through its loop and calls a real HTTP receiver back with signed callbacks."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from http import HTTPStatus

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from fleet.api.server import HttpServer
from protocol.clock import utc_now_ms
from protocol.errors import GovernancePayloadError, RequestSignatureError
from protocol.governance import (
    CASE_CALLBACK_PATH,
    CaseCallback,
    CaseClosed,
    CaseDispatched,
    CaseEvent,
    CaseFeedback,
    CaseReceipt,
    CaseStatus,
    CloseReason,
    decode_case_callback,
)
from protocol.request_signing import RequestVerifier, asgi_request_target
from simulators.governance.callbacks import DeliveryOutcome
from simulators.governance.case_loop import CaseLoopSettings, officer_for
from simulators.governance.platform import GovernancePlatform, callback_url_for
from tests.simulators.governance.cases import make_request
from tests.simulators.test_governance_platform import SECRET, TOKEN, make_update, post_case, post_update

FAST = CaseLoopSettings(
    dispatch_after_s=0,
    resolve_after_s=0,
    feedback_after_s=0,
    close_after_s=0,
    retry_base_s=0.005,
    retry_cap_s=0.02,
    rating=4,
    comment="came within minutes",
)
LOOP_EVENTS = [CaseEvent.DISPATCHED, CaseEvent.RESOLVED, CaseEvent.FEEDBACK, CaseEvent.CLOSED]


class FleetReceiver:
    """The fleet's end of the callback contract, as small as it can be: verifies the signature,
    de-duplicates on ``callback_id``, and (when ``strict_order``) refuses a sequence that skips one."""

    def __init__(self, secret: str, *, strict_order: bool = True, fail_first: int = 0, port: int = 0) -> None:
        self._verifier = RequestVerifier(secret)
        self._strict_order = strict_order
        self._fail_first = fail_first
        self.requests = 0
        self.arrived: list[CaseCallback] = []
        self.accepted: list[CaseCallback] = []
        self.refused: list[tuple[int, str]] = []
        self.duplicates = 0
        self._last_sequence: dict[str, int] = {}
        self._changed = asyncio.Event()
        app = FastAPI()
        app.add_api_route(CASE_CALLBACK_PATH, self._receive, methods=["POST"])
        self.server = HttpServer(app, "127.0.0.1", port, "fleet-receiver")

    @property
    def url(self) -> str:
        return callback_url_for(self.server.url)

    async def _receive(self, request: Request) -> Response:
        try:
            return self._handle(request, await request.body())
        finally:
            self._changed.set()

    def _handle(self, request: Request, body: bytes) -> Response:
        self.requests += 1
        if self.requests <= self._fail_first:
            return Response(status_code=HTTPStatus.INTERNAL_SERVER_ERROR)
        target = asgi_request_target(request.scope["raw_path"], request.scope["query_string"])
        try:
            self._verifier.verify(request.headers, request.method, target, body, utc_now_ms())
            callback = decode_case_callback(body)
        except RequestSignatureError as exc:
            return self._refuse(HTTPStatus.UNAUTHORIZED, exc.reason)
        except GovernancePayloadError:
            return self._refuse(HTTPStatus.UNPROCESSABLE_ENTITY, "invalid_callback")
        self.arrived.append(callback)
        if any(seen.callback_id == callback.callback_id for seen in self.accepted):
            self.duplicates += 1
            return Response(status_code=HTTPStatus.OK)
        expected = self._last_sequence.get(callback.case_id, 0) + 1
        if self._strict_order and callback.sequence != expected:
            return self._refuse(HTTPStatus.CONFLICT, f"out_of_order: expected {expected}, got {callback.sequence}")
        self._last_sequence[callback.case_id] = max(callback.sequence, expected - 1)
        self.accepted.append(callback)
        return Response(status_code=HTTPStatus.NO_CONTENT)

    def _refuse(self, status: int, reason: str) -> Response:
        self.refused.append((status, reason))
        return Response(status_code=status)

    async def wait_for(self, predicate: Callable[["FleetReceiver"], bool]) -> None:
        async with asyncio.timeout(30):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
async def receiver() -> AsyncIterator[FleetReceiver]:
    receiver = FleetReceiver(SECRET)
    await receiver.server.start()
    yield receiver
    await receiver.server.stop()


@pytest.fixture
async def platform(receiver: FleetReceiver) -> AsyncIterator[GovernancePlatform]:
    async with GovernancePlatform(
        token=TOKEN, signing_secrets=[SECRET], case_loop=FAST, callback_url=receiver.url
    ) as running:
        yield running


@pytest.fixture
async def http(platform: GovernancePlatform) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=platform.url, timeout=10.0) as client:
        yield client


async def open_case(http: httpx.AsyncClient) -> CaseReceipt:
    response = await post_case(http, make_request())
    assert response.status_code == 201, response.text
    return CaseReceipt.model_validate_json(response.content)


async def settled(platform: GovernancePlatform) -> None:
    async with asyncio.timeout(30):
        await platform.settled()


async def test_a_case_is_dispatched_resolved_rated_and_closed_with_signed_callbacks(
    platform: GovernancePlatform, http: httpx.AsyncClient, receiver: FleetReceiver
) -> None:
    request = make_request(grid_id="grid-7")
    receipt = CaseReceipt.model_validate_json((await post_case(http, request)).content)

    await settled(platform)

    assert [c.event for c in receiver.accepted] == LOOP_EVENTS
    assert [c.sequence for c in receiver.accepted] == [1, 2, 3, 4]
    assert {(c.case_id, c.alert_id) for c in receiver.accepted} == {(receipt.case_id, request.alert_id)}
    dispatched, _, feedback, closed = receiver.accepted
    assert isinstance(dispatched, CaseDispatched)
    assert dispatched.assignee.grid_id == "grid-7"
    assert isinstance(feedback, CaseFeedback)
    assert (feedback.rating, feedback.comment) == (4, "came within minutes")
    assert isinstance(closed, CaseClosed)
    assert closed.reason is CloseReason.COMPLETED
    assert receiver.refused == []
    case = platform.ledger.get(receipt.case_id)
    assert case is not None
    assert case.status is CaseStatus.CLOSED
    assert case.events == tuple(receiver.accepted)
    assert [(d.outcome, d.attempts) for d in platform.callbacks.deliveries] == [(DeliveryOutcome.DELIVERED, 1)] * 4


async def test_a_case_without_a_grid_goes_to_the_village_duty_officer(
    platform: GovernancePlatform, http: httpx.AsyncClient, receiver: FleetReceiver
) -> None:
    await post_case(http, make_request(grid_id=None))

    await settled(platform)

    dispatched = receiver.accepted[0]
    assert isinstance(dispatched, CaseDispatched)
    assert dispatched.assignee.grid_id is None
    assert dispatched.assignee.officer_id == "lakeside-duty-officer"


async def test_every_case_runs_its_own_loop(
    platform: GovernancePlatform, http: httpx.AsyncClient, receiver: FleetReceiver
) -> None:
    receipts = [await open_case(http) for _ in range(5)]

    await settled(platform)

    for receipt in receipts:
        mine = [c for c in receiver.accepted if c.case_id == receipt.case_id]
        assert [c.sequence for c in mine] == [1, 2, 3, 4]
    assert len(receiver.accepted) == 20


async def test_callbacks_are_retried_until_the_fleet_takes_them(platform: GovernancePlatform) -> None:
    flaky = FleetReceiver(SECRET, fail_first=3)
    await flaky.server.start()
    try:
        platform.set_callback_url(flaky.url)
        async with httpx.AsyncClient(base_url=platform.url) as http:
            await open_case(http)
        await settled(platform)
    finally:
        await flaky.server.stop()

    assert [c.event for c in flaky.accepted] == LOOP_EVENTS
    assert flaky.requests == 3 + 4
    assert [d.attempts for d in platform.callbacks.deliveries] == [4, 1, 1, 1]
    assert [a.status for a in platform.callbacks.attempts[:4]] == [500, 500, 500, 204]


async def test_callbacks_wait_for_a_fleet_that_is_not_listening_yet() -> None:
    probe = FleetReceiver(SECRET)
    await probe.server.start()
    port = probe.server.port
    await probe.server.stop()  # nothing listens there now
    async with GovernancePlatform(
        token=TOKEN, signing_secrets=[SECRET], case_loop=FAST, callback_url=callback_url_for(f"http://127.0.0.1:{port}")
    ) as platform:
        async with httpx.AsyncClient(base_url=platform.url) as http:
            await open_case(http)
        await platform.callbacks.wait_for(lambda log: len(log.attempts) >= 2)
        late = FleetReceiver(SECRET, port=port)
        await late.server.start()
        try:
            await settled(platform)
        finally:
            await late.server.stop()

    assert [c.event for c in late.accepted] == LOOP_EVENTS
    assert platform.callbacks.attempts[0].status is None
    assert platform.callbacks.deliveries[0].attempts >= 2


async def test_the_callback_url_can_be_given_once_the_fleet_listens(receiver: FleetReceiver) -> None:
    async with GovernancePlatform(token=TOKEN, signing_secrets=[SECRET], case_loop=FAST) as platform:
        async with httpx.AsyncClient(base_url=platform.url) as http:
            await open_case(http)
            set_url = await http.put(
                "/_sim/callback-url", json={"url": receiver.url}, headers={"Authorization": f"Bearer {TOKEN}"}
            )
        await settled(platform)

    assert set_url.status_code == 204
    assert [c.event for c in receiver.accepted] == LOOP_EVENTS


async def test_a_refused_callback_is_recorded_and_not_retried(platform: GovernancePlatform) -> None:
    other_key = FleetReceiver("a-different-secret")
    await other_key.server.start()
    try:
        platform.set_callback_url(other_key.url)
        async with httpx.AsyncClient(base_url=platform.url) as http:
            receipt = await open_case(http)
        await settled(platform)
    finally:
        await other_key.server.stop()

    assert other_key.requests == 4
    assert other_key.refused == [(401, "bad_signature")] * 4
    assert [(d.outcome, d.status, d.attempts) for d in platform.callbacks.deliveries] == [
        (DeliveryOutcome.REFUSED, 401, 1)
    ] * 4
    case = platform.ledger.get(receipt.case_id)
    assert case is not None
    assert case.status is CaseStatus.CLOSED  # the platform's loop goes on; the fleet missed it


async def test_duplicate_callbacks_repeat_the_same_callback_id(
    platform: GovernancePlatform, http: httpx.AsyncClient, receiver: FleetReceiver
) -> None:
    platform.faults.duplicate_callbacks(4)

    await open_case(http)
    await settled(platform)

    assert len(receiver.arrived) == 8
    assert [c.event for c in receiver.accepted] == LOOP_EVENTS
    assert receiver.duplicates == 4
    assert [c.callback_id for c in receiver.arrived] == [c.callback_id for c in receiver.accepted for _ in range(2)]
    assert [d.repeat for d in platform.callbacks.deliveries] == [False, True] * 4
    assert platform.faults.injected["duplicate"] == 4


async def test_out_of_order_callbacks_arrive_with_the_later_sequence_first(platform: GovernancePlatform) -> None:
    tolerant = FleetReceiver(SECRET, strict_order=False)
    await tolerant.server.start()
    try:
        platform.set_callback_url(tolerant.url)
        platform.faults.reorder_callbacks(1)
        async with httpx.AsyncClient(base_url=platform.url) as http:
            await open_case(http)
        await settled(platform)
    finally:
        await tolerant.server.stop()

    assert [c.sequence for c in tolerant.arrived] == [2, 1, 3, 4]
    assert [c.event for c in tolerant.arrived] == [CaseEvent.RESOLVED, CaseEvent.DISPATCHED, *LOOP_EVENTS[2:]]


async def test_an_out_of_order_callback_the_fleet_refuses_is_not_sent_again(
    platform: GovernancePlatform, http: httpx.AsyncClient, receiver: FleetReceiver
) -> None:
    platform.faults.reorder_callbacks(1)

    await open_case(http)
    await settled(platform)

    assert receiver.refused[0] == (409, "out_of_order: expected 1, got 2")
    first = platform.callbacks.deliveries[0]
    assert (first.callback.sequence, first.outcome, first.attempts) == (2, DeliveryOutcome.REFUSED, 1)
    assert sum(1 for c in receiver.arrived if c.sequence == 2) == 1


async def test_a_withdrawn_case_stops_its_loop_and_says_closed(
    receiver: FleetReceiver,
) -> None:
    waits_for_officer = FAST.model_copy(update={"resolve_after_s": 3600})
    async with (
        GovernancePlatform(
            token=TOKEN, signing_secrets=[SECRET], case_loop=waits_for_officer, callback_url=receiver.url
        ) as platform,
        httpx.AsyncClient(base_url=platform.url) as http,
    ):
        receipt = await open_case(http)
        await receiver.wait_for(lambda r: len(r.accepted) == 1)
        update = make_update(receipt, reason="false alarm: a pupil pressed it")

        first = await post_update(http, update)
        await settled(platform)
        again = await post_update(http, update)
        await settled(platform)

    assert first.status_code == again.status_code == 200
    assert [(c.event, c.sequence) for c in receiver.accepted] == [(CaseEvent.DISPATCHED, 1), (CaseEvent.CLOSED, 2)]
    closed = receiver.accepted[1]
    assert isinstance(closed, CaseClosed)
    assert closed.reason is CloseReason.WITHDRAWN
    case = platform.ledger.get(receipt.case_id)
    assert case is not None
    assert case.assignee == officer_for(case)
    assert case.resolution_note is None


async def test_a_withdrawal_after_the_loop_ended_sends_nothing_more(
    platform: GovernancePlatform, http: httpx.AsyncClient, receiver: FleetReceiver
) -> None:
    receipt = await open_case(http)
    await settled(platform)

    response = await post_update(http, make_update(receipt, update_id=uuid.uuid4()))
    await settled(platform)

    assert response.status_code == 200
    assert len(receiver.accepted) == 4
    case = platform.ledger.get(receipt.case_id)
    assert case is not None
    assert case.close_reason is CloseReason.COMPLETED


async def test_stopping_the_platform_abandons_callbacks_nobody_takes() -> None:
    async with GovernancePlatform(
        token=TOKEN, signing_secrets=[SECRET], case_loop=FAST, callback_url="http://127.0.0.1:9/nowhere"
    ) as platform:
        async with httpx.AsyncClient(base_url=platform.url) as http:
            await open_case(http)
        await platform.callbacks.wait_for(lambda log: len(log.attempts) >= 1)

    assert [d.outcome for d in platform.callbacks.deliveries] == [DeliveryOutcome.ABANDONED]


def test_a_callback_url_without_a_case_loop_is_a_mistake() -> None:
    with pytest.raises(ValueError, match="case loop"):
        GovernancePlatform(token=TOKEN, callback_url="http://127.0.0.1:1/cb")
