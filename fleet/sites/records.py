"""Audited changes to registry records: each change one transaction that carries its audit entry.

Shared by the site hierarchy and the gateway inventory, so every mutating call is recorded the
same way (who, what, when, the row before and after) and refused the same way.
"""

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, func, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.access.audit import Change, record, snapshot
from fleet.access.roles import Actor
from fleet.db.engine import database_errors
from fleet.db.schema import AlertRuleLayerRow, Base, ConfigLayerRow
from fleet.errors import ConflictError, NotFoundError

logger = logging.getLogger(__name__)

_Row = TypeVar("_Row", bound=Base)

# What refers to a row: (table, condition on that table's column naming the row, what to call them).
Dependents = Sequence[tuple[type[Base], Callable[[str], ColumnElement[bool]], str]]


async def require(session: AsyncSession, cls: type[_Row], key: Any, label: str) -> _Row:
    """The row of ``cls`` with primary key ``key``, or :class:`NotFoundError` naming it as ``label``."""
    row = await session.get(cls, key)
    if row is None:
        raise NotFoundError(f"no {label}")
    return row


async def refuse_if_used(session: AsyncSession, label: str, key: str, dependents: Dependents) -> None:
    """Raise :class:`ConflictError` if anything in ``dependents`` still refers to ``key``."""
    for table, refers, what in dependents:
        count = await session.scalar(select(func.count()).select_from(table).where(refers(key)))
        if count:
            raise ConflictError(f"{label} still has {count} {what}: move or remove them first")


class Records:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Callable[[], int]) -> None:
        self._sessions = sessions
        self.clock = clock

    @contextlib.asynccontextmanager
    async def read(self, what: str) -> AsyncIterator[AsyncSession]:
        with database_errors(what):
            async with self._sessions() as session:
                yield session

    @contextlib.asynccontextmanager
    async def write(self, what: str) -> AsyncIterator[AsyncSession]:
        """One transaction for ``what``, committed if the block succeeds."""
        with database_errors(what):
            async with self._sessions.begin() as session:
                yield session

    @contextlib.asynccontextmanager
    async def transaction(self, what: str, *, commit: bool) -> AsyncIterator[AsyncSession]:
        """Like :meth:`write`, but rolled back at the end unless ``commit`` (a dry run sees its own changes)."""
        with database_errors(what):
            async with self._sessions() as session, session.begin() as transaction:
                yield session
                if not commit:
                    await transaction.rollback()

    async def all(self, query: Any, what: str) -> list[Any]:
        async with self.read(what) as session:
            return list((await session.scalars(query)).all())

    async def add(self, session: AsyncSession, actor: Actor, row: Base, kind: str, key: str) -> None:
        if await session.get(type(row), inspect(row).mapper.primary_key_from_instance(row)) is not None:
            raise ConflictError(f"{kind} {key!r} exists already")
        self.add_new(session, actor, row, kind, key)

    def add_new(
        self, session: AsyncSession, actor: Actor, row: Base, kind: str, key: str, *, logged: bool = True
    ) -> None:
        """Add ``row``, known by the caller not to exist, with its audit entry (and a log line, if ``logged``:
        a bulk import logs its own)."""
        session.add(row)
        record(session, actor, Change(f"{kind}.create", kind, key, None, snapshot(row)), self.clock())
        if logged:
            logger.info("%s created %s %s", actor.name, kind, key)

    def change(
        self,
        session: AsyncSession,
        actor: Actor,
        row: Base,
        kind: str,
        key: str,
        changes: dict[str, Any],
        *,
        logged: bool = True,
    ) -> bool:
        """Apply ``changes`` to ``row``; record the change and return True if anything actually changed."""
        before = snapshot(row)
        for name, value in changes.items():
            setattr(row, name, value)
        after = snapshot(row)
        if after != before:
            record(session, actor, Change(f"{kind}.update", kind, key, before, after), self.clock())
            if logged:
                logger.info("%s changed %s %s", actor.name, kind, key)
            return True
        return False

    async def remove(self, session: AsyncSession, actor: Actor, row: Base, kind: str, key: str) -> None:
        before = snapshot(row)
        await session.delete(row)
        record(session, actor, Change(f"{kind}.delete", kind, key, before, None), self.clock())
        logger.info("%s removed %s %s", actor.name, kind, key)

    async def remove_config_layer(self, session: AsyncSession, actor: Actor, kind: str, key: str) -> None:
        """Remove the config layer (and the alert rules layer) of the county, town, village or gateway ``key``
        being removed (``kind`` is its layer scope): one created later with the same id must not inherit them."""
        layer = await session.get(ConfigLayerRow, (kind, key))
        if layer is not None:
            await self.remove(session, actor, layer, "config_layer", f"{kind}/{key}")
        rules = await session.get(AlertRuleLayerRow, (kind, key)) if kind != "gateway" else None
        if rules is not None:
            await self.remove(session, actor, rules, "alert_rule_layer", f"{kind}/{key}")
