"""Opens the fleet database and brings its schema to the newest Alembic migration."""

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event
from sqlalchemy.exc import DisconnectionError, IntegrityError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from fleet.errors import DatabaseRefusedError, DatabaseUnavailableError, DataIntegrityError, MigrationError

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


@contextlib.contextmanager
def database_errors(what: str) -> Iterator[None]:
    """Translate SQLAlchemy's errors while doing ``what``: the database not answering becomes
    DatabaseUnavailableError (worth retrying); a refusal of the data or statement is permanent."""
    try:
        yield
    except (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError) as exc:
        raise DatabaseUnavailableError(f"cannot {what}: {exc}"[:500]) from exc
    except (OSError, TimeoutError) as exc:  # the driver could not reach the server (asyncpg: connection refused)
        raise DatabaseUnavailableError(f"cannot {what}: {type(exc).__name__}: {exc}"[:500]) from exc
    except IntegrityError as exc:
        raise DataIntegrityError(f"cannot {what}: {exc.orig}"[:500]) from exc
    except SQLAlchemyError as exc:
        raise DatabaseRefusedError(f"cannot {what}: {exc}"[:500]) from exc


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def create_engine(database_url: str) -> AsyncEngine:
    engine = create_async_engine(database_url)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def migrate(engine: AsyncEngine) -> None:
    """Apply every pending migration (idempotent)."""
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade)
    except SQLAlchemyError as exc:
        raise MigrationError(f"cannot migrate {engine.url.render_as_string(hide_password=True)}: {exc}") from exc
    logger.info("database %s is at the newest schema", engine.url.render_as_string(hide_password=True))
