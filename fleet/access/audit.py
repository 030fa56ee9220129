"""The audit log: every mutating call, written in the same transaction as the change it records."""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.access.roles import Actor
from fleet.db.engine import database_errors
from fleet.db.schema import AuditRow, Base


def snapshot(row: Base | None) -> dict[str, Any] | None:
    """A row's columns as JSON-ready values: the before/after of an audit entry."""
    if row is None:
        return None
    return {attribute.key: getattr(row, attribute.key) for attribute in inspect(row).mapper.column_attrs}


@dataclass(frozen=True, slots=True)
class Change:
    """One audited change: ``action`` (e.g. ``village.update``) of ``target_type``/``target_id``."""

    action: str
    target_type: str
    target_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


def record(session: AsyncSession, actor: Actor, change: Change, at_ms: int) -> None:
    """Add the audit entry for ``change`` to ``session``'s transaction (committed with the change or not at all)."""
    session.add(
        AuditRow(
            at_ms=at_ms,
            actor=actor.name,
            role=actor.role.value,
            action=change.action,
            target_type=change.target_type,
            target_id=change.target_id,
            before=change.before,
            after=change.after,
        )
    )


class AuditLog:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def entries(
        self,
        *,
        actor: str | None = None,
        target_type: str | None = None,
        target_id: str | None = None,
        since_ms: int | None = None,
        limit: int = 100,
    ) -> list[AuditRow]:
        """Entries, newest first, filtered by any of the arguments."""
        query = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
        if actor is not None:
            query = query.where(AuditRow.actor == actor)
        if target_type is not None:
            query = query.where(AuditRow.target_type == target_type)
        if target_id is not None:
            query = query.where(AuditRow.target_id == target_id)
        if since_ms is not None:
            query = query.where(AuditRow.at_ms >= since_ms)
        with database_errors("read the audit log"):
            async with self._sessions() as session:
                return list((await session.scalars(query)).all())
