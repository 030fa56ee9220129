"""The reference governance platform over real HTTP: signed requests, faults on demand, every request on record."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from protocol.clock import utc_now_ms
from protocol.governance import (
    CASES_PATH,
    IDEMPOTENCY_HEADER,
    CaseReceipt,
    CaseRequest,
    CaseStatus,
    CaseUpdate,
    CaseUpdateKind,
    CaseUpdateReceipt,
    case_updates_path,
)
from protocol.request_signing import SIGNATURE_HEADER, signature_headers
from simulators.governance.case_loop import officer_for
from simulators.governance.faults import Faults
from simulators.governance.platform import GovernancePlatform
from simulators.governance.recorder import CaseLedger, CaseTransitionError, UnknownCaseError
from tests.simulators.governance.cases import make_request

TOKEN = "platform-token"
SECRET = "shared-signing-secret"
OLD_SECRET = "previous-signing-secret"


def make_update(receipt: CaseReceipt, **changes: Any) -> CaseUpdate:
    fields: dict[str, Any] = {
        "update_id": uuid.uuid4(),
        "case_id": receipt.case_id,
        "alert_id": receipt.alert_id,
        "kind": CaseUpdateKind.CANCELLED,
        "reason": "false alarm",
        "at": 1_700_000_100_000,
    }
    fields.update(changes)
    return CaseUpdate(**fields)


def signed(
    path: str, body: bytes, *, secret: str | None = SECRET, key: str, timestamp_ms: int | None = None
) -> dict[str, str]:
    """The headers the fleet sends: bearer, idempotency key, and (with ``secret``) the signature."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", IDEMPOTENCY_HEADER: key}
    if secret is not None:
        now = utc_now_ms() if timestamp_ms is None else timestamp_ms
        headers |= signature_headers(secret, "POST", path, now, body)
    return headers


async def post_case(
    http: httpx.AsyncClient, request: CaseRequest, *, secret: str | None = SECRET, timestamp_ms: int | None = None
) -> httpx.Response:
    body = request.model_dump_json().encode()
    headers = signed(CASES_PATH, body, secret=secret, key=str(request.alert_id), timestamp_ms=timestamp_ms)
    return await http.post(CASES_PATH, content=body, headers=headers)


async def post_update(http: httpx.AsyncClient, update: CaseUpdate, *, secret: str | None = SECRET) -> httpx.Response:
    path = case_updates_path(update.case_id)
    body = update.model_dump_json().encode()
    return await http.post(path, content=body, headers=signed(path, body, secret=secret, key=str(update.update_id)))


@pytest.fixture
async def platform() -> AsyncIterator[GovernancePlatform]:
    async with GovernancePlatform(token=TOKEN, signing_secrets=[SECRET, OLD_SECRET]) as running:
        yield running


@pytest.fixture
async def http(platform: GovernancePlatform) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=platform.url, timeout=10.0) as client:
        yield client


def error_of(response: httpx.Response) -> str:
    body = response.json()
    assert isinstance(body["detail"], str)
    assert body["detail"]
    error: str = body["error"]
    return error


# --- signatures ----------------------------------------------------------------------------------


async def test_a_signed_case_is_opened_and_recorded_as_received(
    platform: GovernancePlatform, http: httpx.AsyncClient
) -> None:
    request = make_request()

    response = await post_case(http, request)

    assert response.status_code == 201, response.text
    assert CaseReceipt.model_validate_json(response.content).case_id == "CASE-000001"
    [entry] = platform.requests.entries
    assert (entry.method, entry.target, entry.status) == ("POST", CASES_PATH, 201)
    assert entry.body == request.model_dump_json().encode()
    assert entry.header(SIGNATURE_HEADER) == response.request.headers[SIGNATURE_HEADER]
    assert platform.ledger.requests == [request]


async def test_a_request_signed_with_the_previous_secret_is_accepted_during_rotation(
    platform: GovernancePlatform, http: httpx.AsyncClient
) -> None:
    response = await post_case(http, make_request(), secret=OLD_SECRET)

    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("secret", "age_ms", "error"),
    [
        (None, 0, "unsigned_request"),
        ("someone-elses-secret", 0, "bad_signature"),
        (SECRET, 301_000, "timestamp_outside_window"),
        (SECRET, -301_000, "timestamp_outside_window"),
    ],
    ids=["unsigned", "wrong-secret", "stale", "from-the-future"],
)
async def test_an_untrustworthy_request_is_refused_with_the_reason_and_opens_nothing(
    platform: GovernancePlatform, http: httpx.AsyncClient, secret: str | None, age_ms: int, error: str
) -> None:
    response = await post_case(http, make_request(), secret=secret, timestamp_ms=utc_now_ms() - age_ms)

    assert response.status_code == 401, response.text
    assert error_of(response) == error
    assert response.headers["WWW-Authenticate"].startswith("Outpost-HMAC")
    assert len(platform.ledger) == 0
    [entry] = platform.requests.entries
    assert (entry.status, entry.error) == (401, error)


async def test_a_replayed_request_is_refused_even_inside_the_window(
    platform: GovernancePlatform, http: httpx.AsyncClient
) -> None:
    first = await post_case(http, make_request())
    captured = first.request

    replay = await http.post(CASES_PATH, content=captured.content, headers=dict(captured.headers))

    assert first.status_code == 201
    assert replay.status_code == 401
    assert error_of(replay) == "replayed_request"
    assert platform.ledger.duplicate_requests == 0
    assert [e.status for e in platform.requests.entries] == [201, 401]


async def test_a_body_changed_in_transit_is_refused(platform: GovernancePlatform, http: httpx.AsyncClient) -> None:
    request = make_request()
    body = request.model_dump_json().encode()
    headers = signed(CASES_PATH, body, key=str(request.alert_id))
    tampered = body.replace(b'"critical"', b'"warning"')

    response = await http.post(CASES_PATH, content=tampered, headers=headers)

    assert response.status_code == 401
    assert error_of(response) == "bad_signature"


async def test_the_bearer_token_is_still_checked_first(platform: GovernancePlatform, http: httpx.AsyncClient) -> None:
    request = make_request()
    body = request.model_dump_json().encode()
    headers = signed(CASES_PATH, body, key=str(request.alert_id)) | {"Authorization": "Bearer wrong"}

    response = await http.post(CASES_PATH, content=body, headers=headers)

    assert response.status_code == 401
    assert error_of(response) == "unauthorized"


async def test_without_a_secret_the_platform_accepts_unsigned_requests() -> None:
    async with (
        GovernancePlatform(token=TOKEN) as platform,
        httpx.AsyncClient(base_url=platform.url) as http,
    ):
        response = await post_case(http, make_request(), secret=None)

    assert response.status_code == 201, response.text


async def test_reading_cases_needs_the_token_but_no_signature(
    platform: GovernancePlatform, http: httpx.AsyncClient
) -> None:
    await post_case(http, make_request())

    listing = await http.get(CASES_PATH, headers={"Authorization": f"Bearer {TOKEN}"})

    assert listing.status_code == 200
    assert [case["status"] for case in listing.json()] == ["received"]


# --- exactly once, whatever the faults ------------------------------------------------------------


async def test_failures_for_the_next_requests_then_the_case_opens_once(
    platform: GovernancePlatform, http: httpx.AsyncClient
) -> None:
    platform.faults.fail(2)
    request = make_request()

    answers = [(await post_case(http, request)).status_code for _ in range(3)]

    assert answers == [500, 500, 201]
    assert len(platform.ledger) == 1
    assert [(e.status, e.error) for e in platform.requests.entries] == [
        (500, "injected_fault"),
        (500, "injected_fault"),
        (201, None),
    ]
    assert platform.faults.injected["fail"] == 2


async def test_a_lost_answer_then_a_retry_opens_one_case_and_counts_the_duplicate(
    platform: GovernancePlatform, http: httpx.AsyncClient
) -> None:
    platform.faults.fail(1, status=503, after_processing=True)
    request = make_request()

    lost = await post_case(http, request)
    retry = await post_case(http, request)

    assert lost.status_code == 503
    assert retry.status_code == 200
    assert CaseReceipt.model_validate_json(retry.content).duplicate is True
    assert len(platform.ledger) == 1
    assert platform.ledger.requests == [request, request]
    assert platform.ledger.duplicate_requests == 1


async def test_an_outage_lasts_until_cleared(platform: GovernancePlatform, http: httpx.AsyncClient) -> None:
    platform.faults.fail(for_s=3600)
    request = make_request()

    during = [(await post_case(http, request)).status_code for _ in range(3)]
    platform.faults.clear()
    after = await post_case(http, request)

    assert during == [500, 500, 500]
    assert after.status_code == 201
    assert len(platform.ledger) == 1


def test_a_fault_window_ends_by_the_clock_and_a_count_by_use() -> None:
    now = [100.0]
    faults = Faults(monotonic=lambda: now[0])
    faults.fail(for_s=10)
    faults.delay(1.0, 2)

    assert faults.next_request_fault() is not None
    now[0] = 110.0
    first, second, third = (faults.next_request_fault() for _ in range(3))

    assert first is not None
    assert first.kind == "delay"
    assert second is first
    assert third is None
    assert faults.request_faults == []


async def test_a_hanging_request_is_never_answered_and_the_next_one_is(
    platform: GovernancePlatform, http: httpx.AsyncClient
) -> None:
    platform.faults.hang(1)
    request = make_request()

    async with httpx.AsyncClient(base_url=platform.url, timeout=0.2) as impatient:
        with pytest.raises(httpx.TimeoutException):
            await post_case(impatient, request)
    answered = await post_case(http, request)

    assert answered.status_code == 201
    assert len(platform.ledger) == 1
    assert [e.status for e in platform.requests.entries] == [None, 201]


async def test_hanging_requests_answer_once_released(platform: GovernancePlatform, http: httpx.AsyncClient) -> None:
    platform.faults.hang()
    pending = asyncio.create_task(post_case(http, make_request()))
    await platform.requests.wait_for(lambda log: len(log) == 1)

    platform.faults.clear()
    response = await pending

    assert response.status_code == 503
    assert error_of(response) == "released"
    assert len(platform.ledger) == 0


async def test_a_hang_after_processing_then_a_retry_opens_one_case(
    platform: GovernancePlatform, http: httpx.AsyncClient
) -> None:
    platform.faults.hang(1, after_processing=True)
    request = make_request()

    async with httpx.AsyncClient(base_url=platform.url, timeout=0.2) as impatient:
        with pytest.raises(httpx.TimeoutException):
            await post_case(impatient, request)
    retry = await post_case(http, request)

    assert retry.status_code == 200
    assert len(platform.ledger) == 1
    assert platform.ledger.duplicate_requests == 1


async def test_a_slow_answer_arrives_intact(platform: GovernancePlatform, http: httpx.AsyncClient) -> None:
    platform.faults.delay(0.05, 1)

    response = await post_case(http, make_request())

    assert response.status_code == 201
    assert platform.faults.injected["delay"] == 1


async def test_a_slow_platform_opens_the_case_the_impatient_client_gave_up_on(
    platform: GovernancePlatform, http: httpx.AsyncClient
) -> None:
    platform.faults.delay(3600, 1, after_processing=True)
    request = make_request()

    async with httpx.AsyncClient(base_url=platform.url, timeout=0.2) as impatient:
        with pytest.raises(httpx.TimeoutException):
            await post_case(impatient, request)
    retry = await post_case(http, request)

    assert retry.status_code == 200
    assert CaseReceipt.model_validate_json(retry.content).duplicate is True
    assert len(platform.ledger) == 1


# --- withdrawing a case ------------------------------------------------------------------------


async def test_a_withdrawal_closes_the_case_once(platform: GovernancePlatform, http: httpx.AsyncClient) -> None:
    receipt = CaseReceipt.model_validate_json((await post_case(http, make_request())).content)
    update = make_update(receipt, kind=CaseUpdateKind.CLEARED)

    first = await post_update(http, update)
    again = await post_update(http, update)

    assert first.status_code == 200, first.text
    assert CaseUpdateReceipt.model_validate_json(first.content) == CaseUpdateReceipt(
        update_id=update.update_id, case_id=receipt.case_id, status=CaseStatus.CLOSED
    )
    assert CaseUpdateReceipt.model_validate_json(again.content).duplicate is True
    case = platform.ledger.get(receipt.case_id)
    assert case is not None
    assert case.status is CaseStatus.CLOSED
    assert case.updates == (update,)
    assert [event.sequence for event in case.events] == [1]
    assert platform.ledger.update_requests == [update, update]


async def test_withdrawals_that_do_not_fit_are_refused(platform: GovernancePlatform, http: httpx.AsyncClient) -> None:
    receipt = CaseReceipt.model_validate_json((await post_case(http, make_request())).content)

    unknown = await post_update(http, make_update(receipt, case_id="CASE-999999"))
    other_alert = await post_update(http, make_update(receipt, alert_id=uuid.uuid4()))
    unsigned = await post_update(http, make_update(receipt), secret=None)

    assert (unknown.status_code, error_of(unknown)) == (404, "case_not_found")
    assert (other_alert.status_code, error_of(other_alert)) == (409, "update_mismatch")
    assert (unsigned.status_code, error_of(unsigned)) == (401, "unsigned_request")


async def test_an_update_whose_path_and_body_disagree_is_refused(
    platform: GovernancePlatform, http: httpx.AsyncClient
) -> None:
    receipt = CaseReceipt.model_validate_json((await post_case(http, make_request())).content)
    update = make_update(receipt)
    path = case_updates_path("CASE-000002")
    body = update.model_dump_json().encode()

    response = await http.post(path, content=body, headers=signed(path, body, key=str(update.update_id)))

    assert (response.status_code, error_of(response)) == (400, "case_id_mismatch")


# --- the admin endpoints -------------------------------------------------------------------------


async def test_faults_can_be_armed_read_and_cleared_over_http(
    platform: GovernancePlatform, http: httpx.AsyncClient
) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}

    armed = await http.post("/_sim/faults/requests", json={"kind": "fail", "count": 1, "status": 503}, headers=auth)
    refused = await post_case(http, make_request())
    state = await http.get("/_sim/faults", headers=auth)
    dup = await http.post("/_sim/faults/callbacks", json={"kind": "duplicate", "count": 2}, headers=auth)
    cleared = await http.delete("/_sim/faults", headers=auth)
    log = await http.get("/_sim/requests", headers=auth)

    assert armed.status_code == 201, armed.text
    assert armed.json()["request_faults"][0]["remaining"] == 1
    assert refused.status_code == 503
    assert state.json()["injected"] == {"fail": 1}
    assert state.json()["request_faults"] == []
    assert dup.json()["callback_faults"] == {"duplicate": 2}
    assert cleared.json()["callback_faults"] == {}
    assert [(entry["method"], entry["status"], entry["error"]) for entry in log.json()] == [
        ("POST", 503, "injected_fault")
    ]


async def test_admin_endpoints_need_the_token_and_validate_orders(
    platform: GovernancePlatform, http: httpx.AsyncClient
) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}

    anonymous = await http.delete("/_sim/faults")
    bad = await http.post("/_sim/faults/requests", json={"kind": "explode"}, headers=auth)
    no_loop = await http.put("/_sim/callback-url", json={"url": "http://127.0.0.1:1/x"}, headers=auth)

    assert anonymous.status_code == 401
    assert bad.status_code == 422
    assert no_loop.status_code == 404  # this platform runs no case loop


# --- the ledger's own rules ----------------------------------------------------------------------


def test_the_ledger_refuses_steps_out_of_order_and_numbers_callbacks() -> None:
    ledger = CaseLedger(clock=lambda: 1_700_000_000_000)
    case, new = ledger.open(make_request())

    with pytest.raises(CaseTransitionError):
        ledger.resolve(case.case_id, "too early")
    dispatched = ledger.dispatch(case.case_id, officer_for(case))
    with pytest.raises(CaseTransitionError):
        ledger.dispatch(case.case_id, officer_for(case))
    resolved = ledger.resolve(case.case_id, "done")
    rated = ledger.rate(case.case_id, 3, "ok")
    with pytest.raises(CaseTransitionError):
        ledger.rate(case.case_id, 5, "again")
    with pytest.raises(UnknownCaseError):
        ledger.dispatch("CASE-999999", officer_for(case))

    assert new is True
    assert [c.sequence for c in (dispatched, resolved, rated)] == [1, 2, 3]
    assert len({c.callback_id for c in (dispatched, resolved, rated)}) == 3
    final = ledger.get(case.case_id)
    assert final is not None
    assert final.status is CaseStatus.RESOLVED
    assert final.assignee == officer_for(case)
