"""Inserting a row unless its key exists (or merging into it), in one statement, on every database the fleet supports.

Several ingest processes may meet a new gateway at the same moment; "read, then insert if missing" races
(one of them fails on the primary key). ``INSERT … ON CONFLICT DO NOTHING`` cannot: the database itself
decides, and the statement says whether it inserted.
"""

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase


def _insert(session: AsyncSession, row_class: type[DeclarativeBase]) -> sqlite.Insert | postgresql.Insert:
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        return sqlite.insert(row_class)
    if dialect == "postgresql":
        return postgresql.insert(row_class)
    raise NotImplementedError(f"the fleet supports SQLite and PostgreSQL, not {dialect}")


def _insert_ignoring_conflicts(
    session: AsyncSession, row_class: type[DeclarativeBase]
) -> sqlite.Insert | postgresql.Insert:
    return _insert(session, row_class).on_conflict_do_nothing()


async def insert_if_missing(session: AsyncSession, row_class: type[DeclarativeBase], values: dict[str, Any]) -> bool:
    """Insert ``values`` as a row of ``row_class`` unless one with its primary key exists; True if inserted."""
    result = await session.execute(_insert_ignoring_conflicts(session, row_class).values(**values))
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


async def insert_all_missing(
    session: AsyncSession, row_class: type[DeclarativeBase], rows: list[dict[str, Any]]
) -> None:
    """Insert each of ``rows`` whose primary key does not exist yet, in one statement (executemany)."""
    if rows:
        await session.execute(_insert_ignoring_conflicts(session, row_class), rows)


async def insert_or_add(
    session: AsyncSession,
    row_class: type[DeclarativeBase],
    rows: list[dict[str, Any]],
    *,
    key: str,
    added: Sequence[str],
    replaced: Sequence[str],
) -> None:
    """Insert each of ``rows``; where one with the same ``key`` exists, add the ``added`` columns to it and
    overwrite the ``replaced`` ones, in one statement (executemany)."""
    if not rows:
        return
    statement = _insert(session, row_class)
    table = cast(Table, row_class.__table__)
    excluded = statement.excluded
    changes: dict[str, Any] = {name: table.c[name] + excluded[name] for name in added}
    changes.update({name: excluded[name] for name in replaced})
    await session.execute(statement.on_conflict_do_update(index_elements=[key], set_=changes), rows)
