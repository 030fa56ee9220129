"""The reference governance platform answers the case API as the contract describes."""

import json
from collections.abc import AsyncIterator
from uuid import uuid4

import httpx
import pytest

from protocol.governance import CASES_PATH, IDEMPOTENCY_HEADER, CaseReceipt, CaseRequest, CaseStatus
from protocol.messages import AlertKind, Severity
from simulators.governance.app import create_platform_app
from simulators.governance.recorder import CaseLedger, format_case_id
from tests.simulators.governance.cases import make_request

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class StepClock:
    """A clock that starts at a fixed instant and moves 1 s every time it is read."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self.now_ms = start_ms

    def __call__(self) -> int:
        value = self.now_ms
        self.now_ms += 1_000
        return value


def headers_for(request: CaseRequest, **extra: str) -> dict[str, str]:
    return {**AUTH, IDEMPOTENCY_HEADER: str(request.alert_id), "Content-Type": "application/json", **extra}


@pytest.fixture
def ledger() -> CaseLedger:
    return CaseLedger(clock=StepClock())


@pytest.fixture
async def client(ledger: CaseLedger) -> AsyncIterator[httpx.AsyncClient]:
    app = create_platform_app(ledger, TOKEN)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://platform.test") as http:
        yield http


async def post_case(
    client: httpx.AsyncClient, request: CaseRequest, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post(
        CASES_PATH,
        content=request.model_dump_json(),
        headers=headers if headers is not None else headers_for(request),
    )


def assert_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"}
    assert body["error"] == error
    assert isinstance(body["detail"], str)
    assert body["detail"]


async def test_new_case_is_created(client: httpx.AsyncClient, ledger: CaseLedger) -> None:
    request = make_request()

    response = await post_case(client, request)

    assert response.status_code == 201, response.text
    receipt = CaseReceipt.model_validate_json(response.content)
    assert receipt.case_id == "CASE-000001"
    assert receipt.alert_id == request.alert_id
    assert receipt.status is CaseStatus.RECEIVED
    assert receipt.received_at == 1_700_000_000_000
    assert receipt.duplicate is False
    assert response.headers["Location"] == f"{CASES_PATH}/CASE-000001"
    assert ledger.requests == [request]
    [case] = ledger.cases
    assert case.request == request
    assert case.duplicate_requests == 0


async def test_case_ids_count_up(client: httpx.AsyncClient, ledger: CaseLedger) -> None:
    receipts = []
    for _ in range(3):
        response = await post_case(client, make_request())
        assert response.status_code == 201
        receipts.append(CaseReceipt.model_validate_json(response.content))

    assert [r.case_id for r in receipts] == ["CASE-000001", "CASE-000002", "CASE-000003"]
    assert [r.received_at for r in receipts] == [1_700_000_000_000, 1_700_000_001_000, 1_700_000_002_000]
    assert len(ledger) == 3


async def test_duplicate_returns_the_same_case_and_is_counted(client: httpx.AsyncClient, ledger: CaseLedger) -> None:
    request = make_request()
    first = await post_case(client, request)

    second = await post_case(client, request)
    third = await post_case(client, request)

    assert first.status_code == 201
    assert second.status_code == 200, second.text
    assert third.status_code == 200
    original = CaseReceipt.model_validate_json(first.content)
    repeat = CaseReceipt.model_validate_json(second.content)
    assert repeat.case_id == original.case_id
    assert repeat.received_at == original.received_at
    assert repeat.duplicate is True
    assert repeat.model_copy(update={"duplicate": False}) == original
    assert len(ledger) == 1
    assert ledger.requests == [request, request, request]
    assert ledger.duplicate_requests == 2
    case = ledger.for_alert(request.alert_id)
    assert case is not None
    assert case.duplicate_requests == 2


async def test_missing_token_is_refused(client: httpx.AsyncClient, ledger: CaseLedger) -> None:
    request = make_request()
    headers = headers_for(request)
    del headers["Authorization"]

    response = await post_case(client, request, headers)

    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert ledger.requests == []


@pytest.mark.parametrize("authorization", ["Bearer wrong-token", f"Basic {TOKEN}", "Bearer", TOKEN])
async def test_bad_token_is_refused(client: httpx.AsyncClient, ledger: CaseLedger, authorization: str) -> None:
    request = make_request()

    response = await post_case(client, request, headers_for(request, Authorization=authorization))

    assert_error(response, 401, "unauthorized")
    assert ledger.requests == []


async def test_token_is_checked_before_the_body(client: httpx.AsyncClient) -> None:
    response = await client.post(CASES_PATH, content=b"{not json", headers={"Authorization": "Bearer nope"})

    assert_error(response, 401, "unauthorized")


async def test_mismatched_idempotency_key_is_refused(client: httpx.AsyncClient, ledger: CaseLedger) -> None:
    request = make_request()

    response = await post_case(client, request, headers_for(request, **{IDEMPOTENCY_HEADER: str(uuid4())}))

    assert_error(response, 400, "idempotency_key_mismatch")
    assert ledger.requests == []


async def test_missing_idempotency_key_is_refused(client: httpx.AsyncClient, ledger: CaseLedger) -> None:
    request = make_request()
    headers = headers_for(request)
    del headers[IDEMPOTENCY_HEADER]

    response = await post_case(client, request, headers)

    assert_error(response, 400, "missing_idempotency_key")
    assert ledger.requests == []


async def test_idempotency_key_that_is_not_a_uuid_is_refused(client: httpx.AsyncClient) -> None:
    request = make_request()

    response = await post_case(client, request, headers_for(request, **{IDEMPOTENCY_HEADER: "alert-1"}))

    assert_error(response, 400, "invalid_idempotency_key")


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"alert_id": "00000000-0000-0000-0000-000000000001"}',
        b'{"schema_version": 1, "alert_id": "00000000-0000-0000-0000-000000000001", "kind": "panic",'
        b' "severity": "critical", "village_id": "Lakeside!", "gateway_id": "gw-01",'
        b' "device_id": "panic-3", "raised_at": 1}',
    ],
    ids=["malformed-json", "not-an-object", "missing-fields", "bad-identifier"],
)
async def test_invalid_body_is_unprocessable(client: httpx.AsyncClient, ledger: CaseLedger, body: bytes) -> None:
    headers = {**AUTH, IDEMPOTENCY_HEADER: "00000000-0000-0000-0000-000000000001"}

    response = await client.post(CASES_PATH, content=body, headers=headers)

    assert_error(response, 422, "invalid_case")
    assert ledger.requests == []


async def test_unknown_fields_are_refused(client: httpx.AsyncClient) -> None:
    request = make_request()
    body = request.model_dump(mode="json") | {"priority": "urgent"}

    response = await client.post(CASES_PATH, json=body, headers=headers_for(request))

    assert_error(response, 422, "invalid_case")
    assert "priority" in response.json()["detail"]


async def test_list_and_get_cases(client: httpx.AsyncClient) -> None:
    first, second = make_request(), make_request(kind=AlertKind.DOOR_FORCED, severity=Severity.MAJOR)
    await post_case(client, first)
    await post_case(client, second)
    await post_case(client, second)

    listing = await client.get(CASES_PATH, headers=AUTH)

    assert listing.status_code == 200, listing.text
    cases = listing.json()
    assert [c["case_id"] for c in cases] == ["CASE-000001", "CASE-000002"]
    assert [c["alert_id"] for c in cases] == [str(first.alert_id), str(second.alert_id)]
    assert [c["duplicate_requests"] for c in cases] == [0, 1]
    assert [c["status"] for c in cases] == ["received", "received"]
    assert [c["received_at_ms"] for c in cases] == [1_700_000_000_000, 1_700_000_001_000]
    assert CaseRequest.model_validate_json(json.dumps(cases[1]["request"])) == second

    one = await client.get(f"{CASES_PATH}/CASE-000002", headers=AUTH)

    assert one.status_code == 200, one.text
    assert one.json() == cases[1]


async def test_unknown_case_is_not_found(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{CASES_PATH}/{format_case_id(42)}", headers=AUTH)

    assert_error(response, 404, "case_not_found")


async def test_reading_cases_needs_the_token(client: httpx.AsyncClient) -> None:
    assert_error(await client.get(CASES_PATH), 401, "unauthorized")
    assert_error(await client.get(f"{CASES_PATH}/CASE-000001"), 401, "unauthorized")


async def test_unknown_route_answers_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/nothing-here", headers=AUTH)

    assert_error(response, 404, "not_found")


async def test_healthz(client: httpx.AsyncClient) -> None:
    await post_case(client, make_request())

    response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "cases": 1}


def test_platform_needs_a_token(ledger: CaseLedger) -> None:
    with pytest.raises(ValueError, match="token"):
        create_platform_app(ledger, "")


def test_ledger_keeps_the_first_body_of_a_repeated_alert() -> None:
    ledger = CaseLedger(clock=StepClock())
    original = make_request()
    changed = make_request(original.alert_id, summary="edited")

    first = ledger.receive(original)
    repeat = ledger.receive(changed)

    assert repeat.case_id == first.case_id
    assert repeat.duplicate is True
    case = ledger.get(first.case_id)
    assert case is not None
    assert case.request == original
    assert ledger.requests == [original, changed]


def test_case_ids_are_six_digits() -> None:
    assert format_case_id(1) == "CASE-000001"
    assert format_case_id(123_456) == "CASE-123456"
    with pytest.raises(ValueError, match="start at 1"):
        format_case_id(0)
