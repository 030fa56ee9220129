"""The buffer's SQLite file: open and check it, tell a full disk from a corrupt file, move a corrupt one aside.

SQLite reports a full disk (``ENOSPC``, or a file at its ``max_page_count``) as ``SQLITE_FULL``
("database or disk is full"), and a damaged file as ``SQLITE_CORRUPT`` ("database disk image is
malformed") or ``SQLITE_NOTADB`` ("file is not a database"); ``PRAGMA quick_check`` at open finds
damage that the first statements would not touch. A corrupt file is renamed
``{name}.corrupt-{UTC time}`` together with its ``-wal`` and ``-shm`` (so it can still be opened for
inspection), never deleted.
"""

import errno
import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

logger = logging.getLogger(__name__)

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_outbox_channel ON outbox (channel, id);
"""
IN_MEMORY: Final = ":memory:"

_SQLITE_CORRUPT: Final = 11
_SQLITE_FULL: Final = 13
_SQLITE_NOTADB: Final = 26
_COMPANIONS: Final = ("-wal", "-shm")


class CorruptDatabaseError(Exception):
    """The file is not a usable SQLite database (internal to the buffer: it is moved aside, never raised on).

    ``connection`` is still open: close it only after the files were moved aside, since SQLite deletes
    the ``-wal`` and ``-shm`` of the last connection it closes."""

    def __init__(self, reason: str, connection: sqlite3.Connection | None = None) -> None:
        super().__init__(reason)
        self.connection = connection


def _primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def is_disk_full(exc: BaseException) -> bool:
    """SQLite's SQLITE_FULL ("database or disk is full") or an OSError ENOSPC."""
    if isinstance(exc, sqlite3.Error):
        return _primary_code(exc) == _SQLITE_FULL
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC


def is_corrupt(exc: BaseException) -> bool:
    """SQLite's SQLITE_CORRUPT ("database disk image is malformed") or SQLITE_NOTADB ("file is not a database")."""
    if isinstance(exc, CorruptDatabaseError):
        return True
    return isinstance(exc, sqlite3.Error) and _primary_code(exc) in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def open_database(path: Path | str, *, max_pages: int | None = None) -> sqlite3.Connection:
    """Open (or create) the buffer at ``path`` (or :data:`IN_MEMORY`), WAL and ``synchronous=FULL``, checked
    with ``PRAGMA quick_check`` and with its schema.

    Raises :class:`CorruptDatabaseError` (holding the connection) for a damaged file, :class:`sqlite3.Error`
    or :class:`OSError` otherwise.
    """
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        if max_pages is not None:
            db.execute(f"PRAGMA max_page_count={int(max_pages)}")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        problems = [row[0] for row in db.execute("PRAGMA quick_check").fetchall()]
        if problems != ["ok"]:
            raise CorruptDatabaseError("; ".join(str(problem) for problem in problems[:3]), db)
        db.executescript(SCHEMA)
    except sqlite3.Error as exc:
        if is_corrupt(exc):
            raise CorruptDatabaseError(str(exc), db) from exc
        db.close()
        raise
    return db


def move_aside(path: Path, now: datetime | None = None) -> Path:
    """Rename ``path`` and its ``-wal``/``-shm`` to ``{path}.corrupt-{UTC time}``; returns the new name.

    Raises OSError if the database itself cannot be renamed."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    suffix = 1
    while target.exists():
        suffix += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{suffix}")
    path.replace(target)
    for companion in _COMPANIONS:
        source = path.with_name(path.name + companion)
        try:
            source.replace(target.with_name(target.name + companion))
        except FileNotFoundError:
            pass
        except OSError as exc:
            logger.warning("cannot move %s aside (%s); deleting it so the fresh buffer starts clean", source, exc)
            source.unlink(missing_ok=True)
    return target
