"""Enrollment tokens on SQLite and PostgreSQL: only hashes stored, expiry, revocation, and one winner when two
gateways redeem the same token at once."""

import asyncio
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.access.roles import Actor, Role
from fleet.db.schema import AuditRow, EnrollmentTokenRow, GatewayRow, VillageRow
from fleet.enrollment.service import EnrollmentService
from fleet.errors import ConflictError, EnrollmentBrokerError, EnrollmentTokenError, NotFoundError
from protocol.config_signing import public_key_pem
from protocol.enrollment import EnrollmentGrant, EnrollmentRequest
from tests.fleet.enrollment.parts import development_enrollment
from tests.fleet.helpers import FakeClock

TECHNICIAN = Actor("li-wei", Role.TECHNICIAN)
ADMIN = Actor("zhao-min", Role.ADMIN)  # the revoked one was stolen: only an admin lets its id in again


def request(token: str, *, hostname: str = "raspberrypi") -> EnrollmentRequest:
    key = public_key_pem(Ed25519PrivateKey.generate().public_key())
    return EnrollmentRequest(token=token, public_key_pem=key, hostname=hostname, agent_version="0.1.0")


@pytest.fixture
async def village(any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> str:
    async with any_sessions.begin() as session:
        session.add(VillageRow(id="shiqiao", name="Shiqiao", first_seen_ms=clock()))
    return "shiqiao"


@pytest.fixture
def enrollment(any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> EnrollmentService:
    return development_enrollment(any_sessions, clock)


async def test_only_the_hash_of_a_token_is_stored(
    any_sessions: async_sessionmaker[AsyncSession], enrollment: EnrollmentService, village: str
) -> None:
    issued = await enrollment.issue_token(TECHNICIAN, village)

    assert issued.secret.startswith("oet_")
    async with any_sessions() as session:
        rows = (await session.execute(text("SELECT * FROM enrollment_tokens"))).all()
        audit = (await session.scalars(select(AuditRow))).all()
    assert len(rows) == 1
    assert issued.secret not in repr(rows[0])
    assert hashlib.sha256(issued.secret.encode()).hexdigest() in tuple(rows[0])
    assert [entry.action for entry in audit] == ["enrollment_token.create"]
    assert issued.secret not in repr([(entry.before, entry.after) for entry in audit])
    assert "secret_sha256" not in (audit[0].after or {})


async def test_a_token_expires_after_its_time_to_live(
    enrollment: EnrollmentService, village: str, clock: FakeClock
) -> None:
    issued = await enrollment.issue_token(TECHNICIAN, village, ttl_s=600)
    clock.now_ms += 600_000

    with pytest.raises(EnrollmentTokenError, match="expired"):
        await enrollment.enroll(request(issued.secret))


async def test_a_token_works_until_just_before_it_expires_and_then_once(
    enrollment: EnrollmentService, village: str, clock: FakeClock
) -> None:
    issued = await enrollment.issue_token(TECHNICIAN, village)  # the default: 30 minutes
    clock.now_ms += 30 * 60_000 - 1

    grant = await enrollment.enroll(request(issued.secret))

    assert grant.village_id == village
    assert grant.gateway_id.startswith(f"gw-{village}-")
    with pytest.raises(EnrollmentTokenError, match="used already"):
        await enrollment.enroll(request(issued.secret))


async def test_two_gateways_redeeming_one_token_at_once_make_one_enrollment(
    any_sessions: async_sessionmaker[AsyncSession], enrollment: EnrollmentService, village: str
) -> None:
    for attempt in range(3):  # several rounds, so the race is really run, not won by whoever started first
        issued = await enrollment.issue_token(TECHNICIAN, village)
        outcomes = await asyncio.gather(
            *(enrollment.enroll(request(issued.secret, hostname=f"pi-{attempt}-{n}")) for n in range(4)),
            return_exceptions=True,
        )

        grants = [outcome for outcome in outcomes if isinstance(outcome, EnrollmentGrant)]
        refusals = [outcome for outcome in outcomes if isinstance(outcome, EnrollmentTokenError)]
        assert len(grants) == 1, outcomes
        assert len(refusals) == 3, outcomes
    async with any_sessions() as session:
        gateways = (await session.scalars(select(GatewayRow))).all()
        tokens = (await session.scalars(select(EnrollmentTokenRow))).all()
    assert len(gateways) == 3
    assert all(token.used_ms is not None and token.enrolled_gateway_id for token in tokens)


async def test_a_revoked_or_unknown_token_is_refused(enrollment: EnrollmentService, village: str) -> None:
    issued = await enrollment.issue_token(TECHNICIAN, village)
    await enrollment.tokens.revoke(TECHNICIAN, issued.row.id)

    with pytest.raises(EnrollmentTokenError, match="revoked"):
        await enrollment.enroll(request(issued.secret))
    with pytest.raises(EnrollmentTokenError, match="unknown"):
        await enrollment.enroll(request("oet_" + "x" * 43))
    with pytest.raises(EnrollmentTokenError, match="unknown"):
        await enrollment.enroll(request("opt_not-an-enrollment-token"))
    assert await enrollment.tokens.tokens() == []
    assert [row.id for row in await enrollment.tokens.tokens(include_inactive=True)] == [issued.row.id]


async def test_a_token_bound_to_a_gateway_re_enrolls_it_with_a_new_key(
    any_sessions: async_sessionmaker[AsyncSession], enrollment: EnrollmentService, village: str, clock: FakeClock
) -> None:
    first = await enrollment.enroll(request((await enrollment.issue_token(TECHNICIAN, village, "gw-clinic")).secret))
    await enrollment.revoke_gateway(TECHNICIAN, "gw-clinic")
    clock.now_ms += 1000

    again = await enrollment.enroll(request((await enrollment.issue_token(ADMIN, village, "gw-clinic")).secret))

    assert (first.gateway_id, first.replaced) == ("gw-clinic", False)
    assert (again.gateway_id, again.replaced) == ("gw-clinic", True)
    async with any_sessions() as session:
        gateway = await session.get(GatewayRow, "gw-clinic")
        actions = (await session.scalars(select(AuditRow.action).order_by(AuditRow.id))).all()
    assert gateway is not None
    assert gateway.revoked_ms is None  # the replacement is not the stolen one
    assert gateway.enrolled_ms == clock.now_ms
    assert "gateway.enroll" in actions
    assert "gateway.revoke" in actions
    assert actions[-2:] == ["gateway.replace", "enrollment_token.use"]


async def test_one_key_cannot_enroll_two_gateways(enrollment: EnrollmentService, village: str) -> None:
    cloned = request((await enrollment.issue_token(TECHNICIAN, village)).secret)
    await enrollment.enroll(cloned)
    second_token = (await enrollment.issue_token(TECHNICIAN, village)).secret

    with pytest.raises(ConflictError, match="enrolled as gateway"):
        await enrollment.enroll(cloned.model_copy(update={"token": second_token}))
    grant = await enrollment.enroll(request(second_token))  # the refusal left the token usable
    assert grant.gateway_id


async def test_tokens_are_issued_only_for_known_villages_and_their_own_gateways(
    any_sessions: async_sessionmaker[AsyncSession], enrollment: EnrollmentService, village: str, clock: FakeClock
) -> None:
    async with any_sessions.begin() as session:
        session.add(VillageRow(id="dongcun", name="Dongcun", first_seen_ms=clock()))
        await session.flush()
        session.add(GatewayRow(id="gw-dongcun", village_id="dongcun", first_seen_ms=clock()))

    with pytest.raises(NotFoundError):
        await enrollment.issue_token(TECHNICIAN, "nowhere")
    with pytest.raises(ConflictError, match="stands in village 'dongcun'"):
        await enrollment.issue_token(TECHNICIAN, village, "gw-dongcun")


async def test_a_production_fleet_without_a_broker_administrator_refuses_to_enroll(
    any_sessions: async_sessionmaker[AsyncSession], village: str, clock: FakeClock
) -> None:
    production = development_enrollment(any_sessions, clock, development=False)

    with pytest.raises(EnrollmentBrokerError, match=r"enrollment\.dynsec_username"):
        await production.issue_token(TECHNICIAN, village)
