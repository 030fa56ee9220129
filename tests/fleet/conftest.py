"""Fixtures for the fleet's unit tests: a real, migrated SQLite database in the test's temporary directory."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from fleet.db.engine import create_engine, migrate, session_factory
from tests.fleet.helpers import FakeClock, database_url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url(tmp_path))
    await migrate(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
async def any_engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A migrated database of each kind the fleet supports: SQLite (the default) and PostgreSQL (production)."""
    url = database_url(tmp_path) if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    await migrate(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def any_sessions(any_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(any_engine)
