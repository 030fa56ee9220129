"""Enrollment tokens: issued for a village (and optionally one gateway id), short-lived, single use.

A token reads ``oet_`` and 256 random bits; only its SHA-256 is stored (:mod:`fleet.access.bearer_secrets`),
as for API tokens (:mod:`fleet.access.tokens`). Redeeming a token is one conditional ``UPDATE`` (unused,
unrevoked, unexpired → used) inside the enrollment's transaction: the database lets exactly one of two
concurrent redemptions change the row (PostgreSQL's row lock, SQLite's write lock), the other finds it
used. If the enrollment fails later in that transaction, the claim is rolled back with it and the token
can be used again.
"""

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.access.audit import Change, record, snapshot
from fleet.access.bearer_secrets import new_secret, secret_digest
from fleet.access.roles import Actor, Permission
from fleet.db.engine import database_errors
from fleet.db.schema import EnrollmentTokenRow, GatewayRow, VillageRow
from fleet.errors import ConflictError, EnrollmentTokenError, NotFoundError, PermissionDeniedError
from protocol.enrollment import ENROLLMENT_TOKEN_PREFIX

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IssuedEnrollmentToken:
    """A new enrollment token: ``secret`` is shown to the technician once and never stored."""

    row: EnrollmentTokenRow
    secret: str


class EnrollmentTokenStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Callable[[], int]) -> None:
        self._sessions = sessions
        self._clock = clock

    async def issue(self, actor: Actor, village_id: str, gateway_id: str | None, ttl_s: int) -> IssuedEnrollmentToken:
        """A token that enrolls a new gateway in ``village_id`` or, with ``gateway_id``, that gateway: a
        new one of that id, or the existing one again (re-enrollment, replaced hardware)."""
        now = self._clock()
        secret = new_secret(ENROLLMENT_TOKEN_PREFIX)
        row = EnrollmentTokenRow(
            id=str(uuid.uuid4()),
            secret_sha256=secret_digest(secret),
            village_id=village_id,
            gateway_id=gateway_id,
            created_by=actor.name,
            created_ms=now,
            expires_ms=now + ttl_s * 1000,
        )
        with database_errors(f"create an enrollment token for {village_id}"):
            async with self._sessions.begin() as session:
                if await session.get(VillageRow, village_id) is None:
                    raise NotFoundError(f"no village {village_id!r}")
                if gateway_id is not None:
                    gateway = await session.get(GatewayRow, gateway_id)
                    if gateway is not None and gateway.village_id != village_id:
                        raise ConflictError(
                            f"gateway {gateway_id!r} stands in village {gateway.village_id!r}, not {village_id!r}: "
                            "move it first, or issue the token for its village"
                        )
                    if (
                        gateway is not None
                        and gateway.revoked_ms is not None
                        and not actor.may(Permission.RESTORE_GATEWAYS)
                    ):  # enrolling it again would lift the revocation
                        raise PermissionDeniedError(
                            f"gateway {gateway_id!r} was revoked: only an admin may enroll it again"
                        )
                session.add(row)
                await session.flush()
                created = Change("enrollment_token.create", "enrollment_token", row.id, None, public(row))
                record(session, actor, created, now)
        logger.info("%s issued enrollment token %s for %s", actor.name, row.id, gateway_id or village_id)
        return IssuedEnrollmentToken(row, secret)

    async def tokens(self, *, include_inactive: bool = False, limit: int = 100) -> list[EnrollmentTokenRow]:
        """Tokens, newest first; only those still usable unless ``include_inactive``."""
        query = select(EnrollmentTokenRow).order_by(EnrollmentTokenRow.created_ms.desc()).limit(limit)
        if not include_inactive:
            query = query.where(
                EnrollmentTokenRow.used_ms.is_(None),
                EnrollmentTokenRow.revoked_ms.is_(None),
                EnrollmentTokenRow.expires_ms > self._clock(),
            )
        with database_errors("list enrollment tokens"):
            async with self._sessions() as session:
                return list((await session.scalars(query)).all())

    async def revoke(self, actor: Actor, token_id: str) -> EnrollmentTokenRow:
        """Make a token unusable at once (a used one stays as it is); it stays listed."""
        now = self._clock()
        with database_errors(f"revoke enrollment token {token_id}"):
            async with self._sessions.begin() as session:
                row = await session.get(EnrollmentTokenRow, token_id)
                if row is None:
                    raise NotFoundError(f"no enrollment token {token_id!r}")
                before = public(row)
                if row.revoked_ms is None and row.used_ms is None:
                    row.revoked_ms = now
                    change = Change("enrollment_token.revoke", "enrollment_token", token_id, before, public(row))
                    record(session, actor, change, now)
        logger.info("%s revoked enrollment token %s", actor.name, token_id)
        return row

    async def usable(self, secret: str) -> EnrollmentTokenRow:
        """The token ``secret`` stands for, if it is usable now; :class:`EnrollmentTokenError` says why not.

        Only a look: :meth:`claim` decides, in the enrollment's transaction."""
        with database_errors("check an enrollment token"):
            async with self._sessions() as session:
                row = await _by_secret(session, secret)
        _raise_unless_usable(row, self._clock())
        assert row is not None
        return row

    async def claim(self, session: AsyncSession, secret: str) -> EnrollmentTokenRow:
        """Mark the token used in ``session``'s transaction, if no other redemption did; raise
        :class:`EnrollmentTokenError` otherwise. Run it first in the transaction (SQLite then waits for
        a concurrent claim's transaction to end instead of failing on a stale snapshot)."""
        now = self._clock()
        digest = secret_digest(secret)
        result = await session.execute(
            update(EnrollmentTokenRow)
            .where(
                EnrollmentTokenRow.secret_sha256 == digest,
                EnrollmentTokenRow.used_ms.is_(None),
                EnrollmentTokenRow.revoked_ms.is_(None),
                EnrollmentTokenRow.expires_ms > now,
            )
            .values(used_ms=now)
            .execution_options(synchronize_session=False)
        )
        claimed = isinstance(result, CursorResult) and result.rowcount == 1
        row = await _by_secret(session, secret)
        if not claimed:
            _raise_unless_usable(row, now)
            raise EnrollmentTokenError("enrollment token was used already")  # usable a moment ago: lost the race
        assert row is not None
        return row


async def _by_secret(session: AsyncSession, secret: str) -> EnrollmentTokenRow | None:
    if not secret.startswith(ENROLLMENT_TOKEN_PREFIX):
        return None
    return await session.scalar(
        select(EnrollmentTokenRow).where(EnrollmentTokenRow.secret_sha256 == secret_digest(secret))
    )


def _raise_unless_usable(row: EnrollmentTokenRow | None, now: int) -> None:
    if row is None:
        raise EnrollmentTokenError("unknown enrollment token (mistyped, or not from this fleet)")
    if row.used_ms is not None:
        raise EnrollmentTokenError("enrollment token was used already: ask for a new one")
    if row.revoked_ms is not None:
        raise EnrollmentTokenError("enrollment token was revoked: ask for a new one")
    if row.expires_ms <= now:
        raise EnrollmentTokenError("enrollment token expired: ask for a new one")


def public(row: EnrollmentTokenRow) -> dict[str, Any] | None:
    """The token's row for the audit log, without its digest."""
    columns = snapshot(row)
    if columns is not None:
        columns.pop("secret_sha256", None)
    return columns
