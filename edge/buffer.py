"""The gateway's store-and-forward buffer: every event, alert and telemetry batch is written to a
SQLite file (WAL, ``synchronous=FULL``) before it is published, and removed only after the broker
acknowledged it (PUBACK).

- **Durable before accepted.** :meth:`StoreAndForwardBuffer.put` returns once the rows are
  committed and fsynced; concurrent puts share one commit (group commit), so the rate scales with
  load instead of paying one fsync per message. A power cut loses nothing ``put`` returned for.
- **Ordered.** Rows are taken oldest first, so every stream is replayed in the order it was
  written, with its original sequence numbers and timestamps: the fleet de-duplicates by event id.
- **Bounded in bytes.** Past ``max_bytes`` the oldest telemetry is deleted first, then other kinds;
  alerts are never dropped (the buffer overruns its bound rather than lose one). Every drop is
  counted by channel.

The contract has the shape of thingsboard-gateway's storage (put, take a batch, confirm the batch):
:meth:`take` hands out rows in order and marks them in flight, :meth:`confirm` deletes them,
:meth:`release` makes every unconfirmed row pending again (after a lost connection).
"""

import asyncio
import logging
import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

from edge.errors import EdgeError
from edge.outgoing import Outgoing
from protocol.topics import Channel

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_SCHEMA: Final = """
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
_TALLY: Final = "SELECT COUNT(*), COALESCE(SUM(LENGTH(topic) + LENGTH(payload)), 0) FROM outbox"
_ROW_OVERHEAD_BYTES: Final = 64  # what a row costs beyond its topic and payload, roughly
# Dropped first to last when the buffer is full; alerts never.
_EVICTION_ORDER: Final = (
    Channel.TELEMETRY,
    Channel.HEARTBEAT,
    Channel.EVENT,
    Channel.CONFIG_REPORTED,
    Channel.COMMAND_RESPONSE,
    Channel.PRESENCE,
)


class BufferStorageError(EdgeError):
    """The buffer's file could not be opened or written (disk full, read-only, corrupt)."""


@dataclass(frozen=True, slots=True)
class Stored:
    id: int
    item: Outgoing


def _size(item: Outgoing) -> int:
    return len(item.topic) + len(item.payload) + _ROW_OVERHEAD_BYTES


class StoreAndForwardBuffer:
    def __init__(self, path: Path, max_bytes: int) -> None:
        self._path = path
        self._max_bytes = max_bytes
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-buffer")
        self._db: sqlite3.Connection | None = None
        self._bytes = 0
        self._rows = 0
        self._cursor = 0  # rows with id <= cursor are handed out and not yet confirmed
        self._pending: list[tuple[Sequence[Outgoing], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._wake_writer = asyncio.Event()
        self._has_pending = asyncio.Event()
        self._empty = asyncio.Event()
        self.dropped: Counter[Channel] = Counter()

    # --- life cycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        await self._run(self._open)
        self._writer = asyncio.create_task(self._write_loop(), name="edge-buffer-writer")
        self._has_pending.set()
        self._signal()
        logger.info("buffer %s holds %d messages (%d bytes)", self._path, self._rows, self._bytes)

    def _open(self) -> None:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
            self._rows, self._bytes = self._count(db)
        except (sqlite3.Error, OSError) as exc:
            raise BufferStorageError(f"cannot open the buffer {self._path}: {exc}") from exc
        self._db = db

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None
        if self._pending:
            await self._run(self._insert, [item for items, _ in self._pending for item in items])
            for _, future in self._pending:
                if not future.done():
                    future.set_result(None)
            self._pending = []
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._executor.shutdown(wait=True)

    async def _run(self, function: Callable[..., _T], *args: object) -> _T:
        # Every database call runs on the buffer's one thread, in submission order.
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    # --- writing --------------------------------------------------------------------------------

    def submit(self, *items: Outgoing) -> "asyncio.Future[None]":
        """Queue ``items`` for the next group commit; the future completes once they are durable."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((items, future))
        self._empty.clear()
        self._wake_writer.set()
        return future

    async def put(self, items: Sequence[Outgoing]) -> None:
        """Store ``items``; return once they are committed to disk."""
        await self.submit(*items)

    async def _write_loop(self) -> None:
        while True:
            await self._wake_writer.wait()
            self._wake_writer.clear()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            try:
                await self._run(self._insert, [item for items, _ in batch for item in items])
            except BufferStorageError as exc:
                logger.error("%s", exc)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)
            self._has_pending.set()
            self._signal()

    def _insert(self, items: list[Outgoing]) -> None:
        db = self._connection()
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT INTO outbox (channel, topic, payload, qos, retain) VALUES (?, ?, ?, ?, ?)",
                [(i.channel.value, i.topic, i.payload, i.qos, int(i.retain)) for i in items],
            )
            self._rows += len(items)
            self._bytes += sum(_size(item) for item in items)
            self._evict(db)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._rows, self._bytes = self._count(db)
            raise BufferStorageError(f"cannot write to the buffer {self._path}: {exc}") from exc

    def _evict(self, db: sqlite3.Connection) -> None:
        """Delete the oldest rows of the least important kinds until the buffer fits its bound."""
        for channel in _EVICTION_ORDER:
            while self._bytes > self._max_bytes:
                victims = db.execute(
                    "SELECT id, LENGTH(topic) + LENGTH(payload) FROM outbox WHERE channel = ? ORDER BY id LIMIT 256",
                    (channel.value,),
                ).fetchall()
                if not victims:
                    break
                needed = self._bytes - self._max_bytes
                chosen: list[int] = []
                for row_id, size in victims:
                    chosen.append(row_id)
                    needed -= size + _ROW_OVERHEAD_BYTES
                    if needed <= 0:
                        break
                db.executemany("DELETE FROM outbox WHERE id = ?", [(row_id,) for row_id in chosen])
                freed = sum(size + _ROW_OVERHEAD_BYTES for _, size in victims[: len(chosen)])
                self._rows -= len(chosen)
                self._bytes -= freed
                self.dropped[channel] += len(chosen)
                logger.warning(
                    "buffer over %d bytes: dropped the %d oldest %s messages (%d so far)",
                    self._max_bytes,
                    len(chosen),
                    channel,
                    self.dropped[channel],
                )
        if self._bytes > self._max_bytes:
            logger.warning(
                "buffer holds %d bytes of alerts, over its %d byte bound: kept", self._bytes, self._max_bytes
            )

    def _count(self, db: sqlite3.Connection) -> tuple[int, int]:
        rows, size = db.execute(_TALLY).fetchone()
        return rows, size + rows * _ROW_OVERHEAD_BYTES

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise BufferStorageError("the buffer is not open")
        return self._db

    # --- forwarding -----------------------------------------------------------------------------

    async def take(self, limit: int) -> list[Stored]:
        """The oldest rows not yet handed out (at most ``limit``); waits while there are none."""
        while True:
            await self._has_pending.wait()
            rows = await self._run(self._select, self._cursor, limit)
            if rows:
                self._cursor = rows[-1].id
                return rows
            self._has_pending.clear()

    def _select(self, after: int, limit: int) -> list[Stored]:
        db = self._connection()
        try:
            rows = db.execute(
                "SELECT id, channel, topic, payload, qos, retain FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                (after, limit),
            ).fetchall()
        except sqlite3.Error as exc:
            raise BufferStorageError(f"cannot read the buffer {self._path}: {exc}") from exc
        return [
            Stored(row_id, Outgoing(Channel(channel), topic, bytes(payload), qos, bool(retain)))
            for row_id, channel, topic, payload, qos, retain in rows
        ]

    async def confirm(self, batch: Sequence[Stored]) -> None:
        """The broker acknowledged every row of ``batch`` (as :meth:`take` returned it): delete them."""
        if batch:
            await self._run(self._delete, batch[0].id, batch[-1].id)
            self._signal()

    def _delete(self, first: int, last: int) -> None:
        # A batch is every row between its first and last id: take() hands them out in id order.
        db = self._connection()
        try:
            db.execute("BEGIN IMMEDIATE")
            rows, size = db.execute(_TALLY + " WHERE id BETWEEN ? AND ?", (first, last)).fetchone()
            db.execute("DELETE FROM outbox WHERE id BETWEEN ? AND ?", (first, last))
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise BufferStorageError(f"cannot confirm messages {first}..{last} in {self._path}: {exc}") from exc
        self._rows -= rows
        self._bytes -= size + rows * _ROW_OVERHEAD_BYTES

    def release(self) -> None:
        """Every row handed out and not confirmed is pending again (the connection was lost)."""
        self._cursor = 0
        self._has_pending.set()

    # --- state ----------------------------------------------------------------------------------

    def _signal(self) -> None:
        if self._rows == 0 and not self._pending:
            self._empty.set()
        else:
            self._empty.clear()

    @property
    def depth(self) -> int:
        """Messages stored and not yet acknowledged by the broker."""
        return self._rows + sum(len(items) for items, _ in self._pending)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    async def drained(self) -> None:
        """Wait until every stored message has been acknowledged."""
        await self._empty.wait()
