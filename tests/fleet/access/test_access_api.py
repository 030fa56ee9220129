"""Tokens and roles: who may call what, on SQLite and on PostgreSQL."""

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.api.context import ApiContext
from tests.fleet.api_client import api_client, api_context
from tests.fleet.helpers import FakeClock


@pytest.fixture
def context(any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> ApiContext:
    return api_context(any_sessions, clock)


@pytest.fixture
async def admin(context: ApiContext) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(context) as client:
        yield client


async def _token(admin: httpx.AsyncClient, name: str, role: str, **extra: object) -> str:
    response = await admin.post("/tokens", json={"name": name, "role": role, **extra})
    assert response.status_code == 201, response.text
    secret = response.json()["secret"]
    assert isinstance(secret, str)
    return secret


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("technician", {"read", "gateway"}),
        ("command_staff", {"read"}),
        ("admin", {"read", "gateway", "county", "tokens"}),
    ],
)
async def test_each_role_may_do_what_it_is_granted_and_nothing_else(
    context: ApiContext, admin: httpx.AsyncClient, role: str, allowed: set[str]
) -> None:
    await admin.post("/counties", json={"id": "anxi", "name": "Anxi"})
    await admin.post("/towns", json={"id": "hutou", "county_id": "anxi", "name": "Hutou"})
    await admin.post("/villages", json={"id": "shiqiao", "town_id": "hutou", "name": "Shiqiao"})
    secret = await _token(admin, f"someone-{role.replace('_', '-')}", role)

    async with api_client(context, secret) as caller:
        outcomes = {
            "read": (await caller.get("/villages")).status_code,
            "gateway": (await caller.post("/gateways", json={"id": "gw-1", "village_id": "shiqiao"})).status_code,
            "county": (await caller.post("/counties", json={"id": "other", "name": "Other"})).status_code,
            "tokens": (await caller.get("/tokens")).status_code,
        }

    assert {what for what, status in outcomes.items() if status in (200, 201)} == allowed
    assert {status for what, status in outcomes.items() if what not in allowed} <= {403}


async def test_missing_unknown_and_malformed_tokens_get_401(context: ApiContext) -> None:
    for token in (None, "opt_unknown", "not-even-ours"):
        async with api_client(context, token) as caller:
            response = await caller.get("/counties")
        assert response.status_code == 401, token
        assert response.headers["www-authenticate"] == "Bearer"


async def test_a_revoked_or_expired_token_stops_working(
    context: ApiContext, admin: httpx.AsyncClient, clock: FakeClock
) -> None:
    revoked = await _token(admin, "leaver", "technician")
    expiring = await _token(admin, "visitor", "command_staff", ttl_s=60)

    assert (await admin.delete("/tokens/leaver")).json()["revoked_ms"] == clock.now_ms
    clock.now_ms += 61_000

    for secret, why in ((revoked, "revoked"), (expiring, "expired")):
        async with api_client(context, secret) as caller:
            response = await caller.get("/counties")
        assert response.status_code == 401
        assert why in response.json()["detail"]


async def test_token_secrets_are_shown_once_and_never_stored_or_audited(
    admin: httpx.AsyncClient, any_sessions: async_sessionmaker[AsyncSession]
) -> None:
    secret = await _token(admin, "li-wei", "technician")

    listed = (await admin.get("/tokens")).json()
    audit = (await admin.get("/audit", params={"target_type": "token"})).json()

    assert [t["name"] for t in listed] == ["li-wei"]
    assert "secret" not in listed[0]
    assert secret not in str(audit)
    assert "secret_sha256" not in audit[0]["after"]
    assert (await admin.post("/tokens", json={"name": "li-wei", "role": "admin"})).status_code == 409
