"""API tokens: created with a role, shown once, stored only as a SHA-256 of the secret, revocable.

A token reads ``opt_`` and 256 random bits (:mod:`fleet.access.bearer_secrets`).
The fleet's bootstrap admin token (``api.admin_token`` in the settings) is accepted as well,
so the first real tokens can be created.
"""

import hmac
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.access.audit import Change, record, snapshot
from fleet.access.bearer_secrets import new_secret, secret_digest
from fleet.access.roles import Actor, Role
from fleet.access.scope import PlaceKind, PlaceScope
from fleet.db.engine import database_errors
from fleet.db.schema import ApiTokenRow
from fleet.errors import ConflictError, NotAuthenticatedError, NotFoundError

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "opt_"  # noqa: S105 - a prefix, not a secret
BOOTSTRAP_ACTOR = "bootstrap-admin"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new token: ``secret`` is shown to its owner once and never stored."""

    row: ApiTokenRow
    secret: str


class TokenStore:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Callable[[], int], bootstrap_secret: str | None
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._bootstrap_digest = secret_digest(bootstrap_secret) if bootstrap_secret else None

    async def issue(
        self, actor: Actor, name: str, role: Role, ttl_s: int | None = None, scope: PlaceScope | None = None
    ) -> IssuedToken:
        """A new token with ``role``, reaching ``scope`` only (None: the whole fleet)."""
        now = self._clock()
        secret = new_secret(TOKEN_PREFIX)
        row = ApiTokenRow(
            id=str(uuid.uuid4()),
            name=name,
            role=role.value,
            secret_sha256=secret_digest(secret),
            created_ms=now,
            expires_ms=now + ttl_s * 1000 if ttl_s is not None else None,
            revoked_ms=None,
            scope_kind=scope.kind.value if scope is not None else None,
            scope_id=scope.id if scope is not None else None,
        )
        with database_errors(f"create token {name}"):
            async with self._sessions.begin() as session:
                if await session.scalar(select(ApiTokenRow.id).where(ApiTokenRow.name == name)) is not None:
                    raise ConflictError(f"a token named {name!r} exists already")
                session.add(row)
                await session.flush()
                record(session, actor, Change("token.create", "token", name, None, _public(row)), now)
        logger.info("%s created %s token %s", actor.name, role.value, name)
        return IssuedToken(row, secret)

    async def revoke(self, actor: Actor, name: str) -> ApiTokenRow:
        now = self._clock()
        with database_errors(f"revoke token {name}"):
            async with self._sessions.begin() as session:
                row = await session.scalar(select(ApiTokenRow).where(ApiTokenRow.name == name))
                if row is None:
                    raise NotFoundError(f"no token named {name!r}")
                before = _public(row)
                if row.revoked_ms is None:
                    row.revoked_ms = now
                    record(session, actor, Change("token.revoke", "token", name, before, _public(row)), now)
        logger.info("%s revoked token %s", actor.name, name)
        return row

    async def tokens(self) -> list[ApiTokenRow]:
        with database_errors("list tokens"):
            async with self._sessions() as session:
                return list((await session.scalars(select(ApiTokenRow).order_by(ApiTokenRow.name))).all())

    async def authenticate(self, secret: str) -> Actor:
        """The actor a bearer token stands for; raises :class:`NotAuthenticatedError` for any bad token."""
        digest = secret_digest(secret)
        if self._bootstrap_digest is not None and hmac.compare_digest(digest, self._bootstrap_digest):
            return Actor(BOOTSTRAP_ACTOR, Role.ADMIN)
        if not secret.startswith(TOKEN_PREFIX):
            raise NotAuthenticatedError("not an Outpost API token")
        with database_errors("check a token"):
            async with self._sessions() as session:
                row = await session.scalar(select(ApiTokenRow).where(ApiTokenRow.secret_sha256 == digest))
        now = self._clock()
        if row is None:
            raise NotAuthenticatedError("unknown token")
        if row.revoked_ms is not None:
            raise NotAuthenticatedError(f"token {row.name!r} was revoked")
        if row.expires_ms is not None and row.expires_ms <= now:
            raise NotAuthenticatedError(f"token {row.name!r} expired")
        return Actor(row.name, Role(row.role), scope_of(row))


def scope_of(row: ApiTokenRow) -> PlaceScope | None:
    """The place a token is scoped to, as its row records it (None: the whole fleet)."""
    return PlaceScope(PlaceKind(row.scope_kind), row.scope_id) if row.scope_kind and row.scope_id else None


def _public(row: ApiTokenRow) -> dict[str, Any] | None:
    """The token's row for the audit log, without its digest."""
    columns = snapshot(row)
    if columns is not None:
        columns.pop("secret_sha256", None)
    return columns
