"""Inserting a row unless its key exists, in one statement, on every database the fleet supports.

Several ingest processes may meet a new gateway at the same moment; "read, then insert if missing" races
(one of them fails on the primary key). ``INSERT … ON CONFLICT DO NOTHING`` cannot: the database itself
decides, and the statement says whether it inserted.
"""

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.expression import Executable


async def insert_if_missing(session: AsyncSession, row_class: type[DeclarativeBase], values: dict[str, Any]) -> bool:
    """Insert ``values`` as a row of ``row_class`` unless one with its primary key exists; True if inserted."""
    dialect = session.get_bind().dialect.name
    statement: Executable
    if dialect == "sqlite":
        statement = sqlite.insert(row_class).values(**values).on_conflict_do_nothing()
    elif dialect == "postgresql":
        statement = postgresql.insert(row_class).values(**values).on_conflict_do_nothing()
    else:
        raise NotImplementedError(f"the fleet supports SQLite and PostgreSQL, not {dialect}")
    result = await session.execute(statement)
    assert isinstance(result, CursorResult)
    return result.rowcount == 1
