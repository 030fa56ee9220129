"""The enrollment routes through the real API: tokens for technicians, ``POST /enroll`` for gateways (the
enrollment token is their only credential: every bad one is a 401 with the reason), revoke and restore."""

from collections.abc import AsyncIterator

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.api.context import ApiContext
from protocol.config_signing import public_key_pem
from protocol.enrollment import EnrollmentGrant, parse_enrollment_code
from tests.fleet.api_client import api_client, api_context
from tests.fleet.helpers import FakeClock


def enroll_body(token: str) -> dict[str, object]:
    key = public_key_pem(Ed25519PrivateKey.generate().public_key())
    return {"schema_version": 1, "token": token, "public_key_pem": key, "hostname": "pi", "agent_version": "0.1.0"}


@pytest.fixture
def context(sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> ApiContext:
    return api_context(sessions, clock)


@pytest.fixture
async def admin(context: ApiContext) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(context) as client:
        for path, body in (
            ("/counties", {"id": "lishui", "name": "Lishui"}),
            ("/towns", {"id": "shuinan", "county_id": "lishui", "name": "Shuinan"}),
            ("/villages", {"id": "shiqiao", "town_id": "shuinan", "name": "Shiqiao"}),
        ):
            assert (await client.post(path, json=body)).status_code == 201, path
        yield client


async def role_token(admin: httpx.AsyncClient, name: str, role: str) -> str:
    response = await admin.post("/tokens", json={"name": name, "role": role})
    assert response.status_code == 201
    secret: str = response.json()["secret"]
    return secret


@pytest.fixture
async def gateway(context: ApiContext) -> AsyncIterator[httpx.AsyncClient]:
    """A caller without an API token, as a gateway enrolling is."""
    async with api_client(context, token=None) as client:
        yield client


async def test_a_technician_issues_a_token_that_enrolls_one_gateway_once(
    context: ApiContext, admin: httpx.AsyncClient, gateway: httpx.AsyncClient
) -> None:
    technician = await role_token(admin, "li-wei", "technician")
    async with api_client(context, technician) as client:
        created = await client.post("/enrollment-tokens", json={"village_id": "shiqiao"})
    assert created.status_code == 201
    issued = created.json()
    assert parse_enrollment_code(issued["code"]).token == issued["secret"]
    assert issued["created_by"] == "li-wei"

    first = await gateway.post("/enroll", json=enroll_body(issued["secret"]))
    again = await gateway.post("/enroll", json=enroll_body(issued["secret"]))

    assert first.status_code == 200, first.text
    grant = EnrollmentGrant.model_validate_json(first.content)
    assert grant.village_id == "shiqiao"
    assert grant.broker.password is None  # a development fleet without a broker administrator…
    assert grant.notices  # …says so
    assert again.status_code == 401
    assert "used already" in again.json()["detail"]
    listed = (await admin.get(f"/gateways/{grant.gateway_id}")).json()
    assert listed["village_id"] == "shiqiao"
    tokens = (await admin.get("/enrollment-tokens", params={"include_inactive": "true"})).json()
    assert [(token["id"], token["enrolled_gateway_id"]) for token in tokens] == [(issued["id"], grant.gateway_id)]
    assert (await admin.get("/enrollment-tokens")).json() == []


@pytest.mark.parametrize(
    ("token", "reason"),
    [("oet_" + "A" * 43, "unknown"), ("opt_an-api-token", "unknown"), ("", None)],
    ids=["unknown", "api-token", "empty"],
)
async def test_a_bad_enrollment_token_is_a_401_or_422_never_a_server_error(
    admin: httpx.AsyncClient, gateway: httpx.AsyncClient, token: str, reason: str | None
) -> None:
    response = await gateway.post("/enroll", json=enroll_body(token))

    if reason is None:
        assert response.status_code == 422
    else:
        assert response.status_code == 401
        assert reason in response.json()["detail"]


async def test_expired_and_revoked_tokens_are_refused_with_their_reason(
    admin: httpx.AsyncClient, gateway: httpx.AsyncClient, clock: FakeClock
) -> None:
    short = (await admin.post("/enrollment-tokens", json={"village_id": "shiqiao", "ttl_s": 60})).json()
    revoked = (await admin.post("/enrollment-tokens", json={"village_id": "shiqiao"})).json()
    assert (await admin.delete(f"/enrollment-tokens/{revoked['id']}")).json()["revoked_ms"] == clock.now_ms
    clock.now_ms += 60_000

    expired = await gateway.post("/enroll", json=enroll_body(short["secret"]))
    refused = await gateway.post("/enroll", json=enroll_body(revoked["secret"]))

    assert (expired.status_code, refused.status_code) == (401, 401)
    assert "expired" in expired.json()["detail"]
    assert "revoked" in refused.json()["detail"]


async def test_a_key_that_is_not_ed25519_is_refused_and_leaves_the_token_usable(
    admin: httpx.AsyncClient, gateway: httpx.AsyncClient
) -> None:
    issued = (await admin.post("/enrollment-tokens", json={"village_id": "shiqiao"})).json()
    not_a_key = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"
    body = enroll_body(issued["secret"]) | {"public_key_pem": not_a_key}

    assert (await gateway.post("/enroll", json=body)).status_code == 422
    assert (await gateway.post("/enroll", json=enroll_body(issued["secret"]))).status_code == 200


async def test_replacing_a_gateway_keeps_its_id_and_records_who_did_what(
    admin: httpx.AsyncClient, gateway: httpx.AsyncClient
) -> None:
    assert (await admin.post("/gateways", json={"id": "gw-clinic", "village_id": "shiqiao"})).status_code == 201
    for expected_replaced in (False, True):
        bound = {"village_id": "shiqiao", "gateway_id": "gw-clinic"}
        issued = (await admin.post("/enrollment-tokens", json=bound)).json()
        grant = (await gateway.post("/enroll", json=enroll_body(issued["secret"]))).json()
        assert (grant["gateway_id"], grant["replaced"]) == ("gw-clinic", expected_replaced)

    revoked = await admin.post("/gateways/gw-clinic/revoke")
    restored = await admin.post("/gateways/gw-clinic/restore")

    assert revoked.status_code == restored.status_code == 200
    assert revoked.json()["revoked_ms"] is not None
    assert restored.json()["revoked_ms"] is None
    audit = (await admin.get("/audit", params={"target_id": "gw-clinic"})).json()
    assert [entry["action"] for entry in reversed(audit)] == [
        "gateway.create",
        "gateway.enroll",
        "gateway.replace",
        "gateway.revoke",
        "gateway.restore",
    ]
    assert audit[0]["actor"] == "bootstrap-admin"
    assert audit[2]["actor"].startswith("enrollment-token-")


async def test_command_staff_may_not_issue_enrollment_tokens_and_tokens_need_a_known_village(
    context: ApiContext, admin: httpx.AsyncClient
) -> None:
    staff = await role_token(admin, "duty-officer", "command_staff")
    async with api_client(context, staff) as client:
        assert (await client.post("/enrollment-tokens", json={"village_id": "shiqiao"})).status_code == 403
        assert (await client.post("/gateways/gw-x/revoke")).status_code == 403
    async with api_client(context, None) as anonymous:
        assert (await anonymous.post("/enrollment-tokens", json={"village_id": "shiqiao"})).status_code == 401
    assert (await admin.post("/enrollment-tokens", json={"village_id": "nowhere"})).status_code == 404
    assert (await admin.post("/gateways/gw-unknown/revoke")).status_code == 404


async def test_only_an_admin_lets_a_revoked_gateway_in_again(context: ApiContext, admin: httpx.AsyncClient) -> None:
    """A revoked gateway may have been stolen: a technician may revoke it, but neither restore it nor enroll it
    again (which would lift the revocation)."""
    assert (await admin.post("/gateways", json={"id": "gw-stolen", "village_id": "shiqiao"})).status_code == 201
    technician = await role_token(admin, "li-wei", "technician")
    async with api_client(context, technician) as client:
        assert (await client.post("/gateways/gw-stolen/revoke")).status_code == 200
        restore = await client.post("/gateways/gw-stolen/restore")
        enroll_again = await client.post(
            "/enrollment-tokens", json={"village_id": "shiqiao", "gateway_id": "gw-stolen"}
        )
        fresh = await client.post("/enrollment-tokens", json={"village_id": "shiqiao", "gateway_id": "gw-new"})

    assert (restore.status_code, enroll_again.status_code, fresh.status_code) == (403, 403, 201)
    assert "only an admin may enroll it again" in enroll_again.json()["detail"]
    assert (await admin.post("/gateways/gw-stolen/restore")).status_code == 200
