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

- **Never in the way of an alert.** On a full disk (``SQLITE_FULL``, ``ENOSPC``) a write evicts the
  oldest telemetry, then asks for room (the agent deletes the oldest evidence snapshots), then
  evicts the other kinds but alerts, retrying after each step; what still does not fit fails with
  :class:`BufferFullError`, alerts tried first on their own (the agent then hands them to the
  uplink's memory). A corrupt file (at open, by ``PRAGMA quick_check``, or when a statement says so)
  is moved aside (:func:`edge.buffer_file.move_aside`) and a fresh one started; a file that cannot be
  opened at all leaves the buffer in memory. Each is counted and its reason kept in
  :class:`~edge.faults.GatewayFaults`.

The contract has the shape of thingsboard-gateway's storage (put, take a batch, confirm the batch):
:meth:`take` hands out rows in order and marks them in flight, :meth:`confirm` deletes them,
:meth:`release` makes every unconfirmed row pending again (after a lost connection).
"""

import asyncio
import contextlib
import logging
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Final, TypeVar

from edge.buffer_file import IN_MEMORY, CorruptDatabaseError, is_corrupt, is_disk_full, move_aside, open_database
from edge.errors import EdgeError
from edge.faults import (
    BUFFER_IN_MEMORY,
    BUFFER_RESET_CORRUPT,
    STORE,
    STORE_EVICTED_SNAPSHOTS,
    STORE_FAILED,
    STORE_RECOVERED,
    GatewayFaults,
)
from edge.outgoing import Outgoing
from protocol.topics import Channel

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

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


_ROOM_STEP_BYTES: Final = 64 * 1024  # at least this much is evicted per step on a full disk
_FreeRoom = Callable[[], int]
"""Deletes something else on the buffer's disk (the oldest snapshot); returns how many went (0: nothing left)."""


class BufferStorageError(EdgeError):
    """The buffer's file could not be opened or written (disk full, read-only, corrupt)."""


class BufferFullError(BufferStorageError):
    """The disk stays full after evicting everything the buffer may evict: the message is not stored."""


@dataclass(frozen=True, slots=True)
class Stored:
    id: int
    item: Outgoing


def _size(item: Outgoing) -> int:
    return len(item.topic) + len(item.payload) + _ROW_OVERHEAD_BYTES


class StoreAndForwardBuffer:
    def __init__(
        self,
        path: Path,
        max_bytes: int,
        *,
        faults: GatewayFaults | None = None,
        free_room: _FreeRoom | None = None,
        max_pages: int | None = None,
    ) -> None:
        """``free_room`` is asked for room on a full disk once telemetry is gone (it runs on the buffer's
        thread); ``max_pages`` caps the file at that many SQLite pages (``PRAGMA max_page_count``): a
        file-level quota, and how the tests fill the disk for real."""
        self._path = path
        self._max_bytes = max_bytes
        self._faults = faults or GatewayFaults()
        self._free_room = free_room
        self._max_pages = max_pages
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-buffer")
        self._db: sqlite3.Connection | None = None
        self._bytes = 0
        self._rows = 0
        self._cursor = 0  # rows with id <= cursor are handed out and not yet confirmed
        self._highest_taken = 0  # a fresh file after a corrupt one numbers its rows above this
        self._pending: list[tuple[Sequence[Outgoing], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._wake_writer = asyncio.Event()
        self._has_pending = asyncio.Event()
        self._empty = asyncio.Event()
        self.dropped: Counter[Channel] = Counter()
        self.in_memory = False
        """The buffer runs in memory (no file could be opened): nothing it holds survives a restart."""

    # --- life cycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the file, moving a corrupt one aside; if no file can be used, run in memory. Never raises
        for the file's state: the agent runs on whatever the disk does."""
        await self._run(self._open)
        self._writer = asyncio.create_task(self._write_loop(), name="edge-buffer-writer")
        self._has_pending.set()
        self._signal()
        logger.info("buffer %s holds %d messages (%d bytes)", self._path, self._rows, self._bytes)

    def _open(self) -> None:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._open_file()
        except (sqlite3.Error, OSError, CorruptDatabaseError) as exc:
            self._open_in_memory(f"cannot open the buffer {self._path} ({exc})")
            return
        self._rows, self._bytes = self._count(self._db)

    def _open_file(self) -> sqlite3.Connection:
        try:
            return open_database(self._path, max_pages=self._max_pages)
        except CorruptDatabaseError as exc:
            self._move_corrupt_aside(exc, exc.connection)
            return open_database(self._path, max_pages=self._max_pages)

    def _move_corrupt_aside(self, reason: BaseException, connection: sqlite3.Connection | None) -> None:
        """Rename the corrupt file (and its -wal/-shm) for inspection, then close ``connection`` (closing
        first would make SQLite delete the -wal); the caller opens a fresh one."""
        if connection is self._db:
            self._db = None
        try:
            kept = move_aside(self._path)
        finally:
            if connection is not None:
                with contextlib.suppress(sqlite3.Error):
                    connection.close()
        self._faults.count(BUFFER_RESET_CORRUPT)
        logger.error(
            "buffer %s is corrupt (%s): moved aside as %s for inspection; starting a fresh buffer "
            "(what it held is not forwarded)",
            self._path,
            reason,
            kept.name,
        )

    def _open_in_memory(self, why: str) -> None:
        self._db = open_database(IN_MEMORY)
        self.in_memory = True
        self._rows = self._bytes = 0
        self._faults.count(BUFFER_IN_MEMORY)
        self._faults.failing(STORE, f"{why}: buffering in memory, lost on restart")

    def _reset_corrupt(self, reason: BaseException) -> None:
        """A statement found the open file corrupt: move it aside, start a fresh one numbered above
        every row handed out (so late confirmations cannot delete new rows), forget the old rows."""
        try:
            self._move_corrupt_aside(reason, self._db)
            self._db = open_database(self._path, max_pages=self._max_pages)
        except (sqlite3.Error, OSError, CorruptDatabaseError) as exc:
            self._open_in_memory(f"cannot start a fresh buffer {self._path} ({exc})")
        db = self._connection()
        if self._highest_taken:
            db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('outbox', ?)", (self._highest_taken,))
        self._rows, self._bytes = self._count(db)
        self._cursor = self._highest_taken

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None
        if self._pending:
            batch, self._pending = self._pending, []
            self._complete(batch, await self._run(self._write, [items for items, _ in batch]))
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._executor.shutdown(wait=True)

    async def _run(self, function: Callable[..., _T], *args: object) -> _T:
        # Every database call runs on the buffer's one thread, in submission order.
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    # --- writing --------------------------------------------------------------------------------

    def submit(self, *items: Outgoing) -> "asyncio.Future[None]":
        """Queue ``items`` for the next group commit; the future completes once they are durable, or
        fails with :class:`BufferStorageError` (:class:`BufferFullError` on a full disk) if they cannot be."""
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
            self._complete(batch, await self._run(self._write, [items for items, _ in batch]))
            self._has_pending.set()
            self._signal()

    @staticmethod
    def _complete(
        batch: list[tuple[Sequence[Outgoing], "asyncio.Future[None]"]], outcomes: list[BufferStorageError | None]
    ) -> None:
        for (_, future), failure in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if failure is None:
                future.set_result(None)
            else:
                future.set_exception(failure)

    def _write(self, submissions: list[Sequence[Outgoing]]) -> list[BufferStorageError | None]:
        """Store every submission in one transaction; on a full disk, one by one, alerts first. One outcome each."""
        try:
            self._insert_making_room([item for items in submissions for item in items])
            return [None] * len(submissions)
        except BufferFullError:
            pass
        except BufferStorageError as exc:
            self._faults.count(STORE_FAILED, sum(len(items) for items in submissions))
            self._faults.failing(STORE, str(exc))
            return [exc] * len(submissions)
        outcomes: list[BufferStorageError | None] = [None] * len(submissions)
        alerts_first = sorted(
            range(len(submissions)), key=lambda i: not any(item.channel is Channel.ALERT for item in submissions[i])
        )
        for index in alerts_first:
            try:
                self._insert_making_room(list(submissions[index]))
            except BufferStorageError as exc:
                outcomes[index] = exc
                self._faults.count(STORE_FAILED, len(submissions[index]))
                self._faults.failing(STORE, str(exc))
        return outcomes

    def _insert_making_room(self, items: list[Outgoing]) -> None:
        """Insert ``items``; while the disk is full, evict (telemetry, snapshots, then other kinds but
        alerts) and retry. Raises BufferFullError once nothing more can go, BufferStorageError otherwise."""
        room = self._make_room(max(_ROOM_STEP_BYTES, 2 * sum(_size(item) for item in items)))
        evicted = False
        while True:
            try:
                self._insert(items)
            except BufferFullError:
                if not next(room, False):
                    raise
                evicted = True
                continue
            if evicted:
                self._faults.count(STORE_RECOVERED)
                logger.warning("buffer %s: the disk was full; stored after evicting", self._path)
            if not self.in_memory:
                self._faults.recovered(STORE)
            return

    def _make_room(self, target: int) -> Iterator[bool]:
        """Free room on a full disk, least valuable first, about ``target`` bytes a step; yields after
        each step that freed something, ends when nothing more can go. Telemetry comes again after the
        snapshots: on a full file system, deleting rows may itself need the room the snapshots leave."""
        steps: list[Callable[[], bool]] = [
            partial(self._evict_oldest, Channel.TELEMETRY, target),
            self._snapshot_room,
            partial(self._evict_oldest, Channel.TELEMETRY, target),
            *[partial(self._evict_oldest, channel, target) for channel in _EVICTION_ORDER[1:]],
        ]
        for step in steps:
            while step():
                yield True

    def _snapshot_room(self) -> bool:
        if self._free_room is None:
            return False
        try:
            freed = self._free_room()
        except Exception:  # the room-maker belongs to another part; its failure must not lose the write
            logger.exception("freeing room for the buffer failed")
            return False
        self._faults.count(STORE_EVICTED_SNAPSHOTS, freed)
        if freed:
            logger.warning("buffer %s: the disk is full; deleted %d snapshots to make room", self._path, freed)
        return freed > 0

    def _evict_oldest(self, channel: Channel, target: int) -> bool:
        """Delete the oldest rows of ``channel`` not handed out, about ``target`` bytes; whether any went."""
        db = self._connection()
        try:
            db.execute("BEGIN IMMEDIATE")
            deleted, freed = _delete_oldest(db, channel, target, limit=4096)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if is_corrupt(exc):
                self._reset_corrupt(exc)
                return True
            # On a full file system deleting needs room too (the WAL grows): only freed files help then.
            logger.debug("buffer %s: cannot evict %s to make room: %s", self._path, channel, exc)
            return False
        if not deleted:
            return False
        self._dropped_oldest(channel, deleted, freed, f"the disk under {self._path} is full")
        return True

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
            if is_corrupt(exc):
                self._reset_corrupt(exc)
                self._insert(items)  # into the fresh file; a second corruption at once raises
                return
            self._rows, self._bytes = self._count(db)
            error = BufferFullError if is_disk_full(exc) else BufferStorageError
            raise error(f"cannot write to the buffer {self._path}: {exc}") from exc

    def _evict(self, db: sqlite3.Connection) -> None:
        """Delete the oldest rows of the least important kinds until the buffer fits its bound."""
        for channel in _EVICTION_ORDER:
            while self._bytes > self._max_bytes:
                deleted, freed = _delete_oldest(db, channel, self._bytes - self._max_bytes, limit=256)
                if not deleted:
                    break
                self._dropped_oldest(channel, deleted, freed, f"the buffer is over {self._max_bytes} bytes")
        if self._bytes > self._max_bytes:
            logger.warning(
                "buffer holds %d bytes of alerts, over its %d byte bound: kept", self._bytes, self._max_bytes
            )

    def _dropped_oldest(self, channel: Channel, count: int, freed: int, why: str) -> None:
        self._rows -= count
        self._bytes -= freed
        self.dropped[channel] += count
        logger.warning("%s: dropped the %d oldest %s messages (%d so far)", why, count, channel, self.dropped[channel])

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
            if is_corrupt(exc):
                self._reset_corrupt(exc)
                return []
            raise BufferStorageError(f"cannot read the buffer {self._path}: {exc}") from exc
        if rows:
            self._highest_taken = max(self._highest_taken, rows[-1][0])
        return [
            Stored(row_id, Outgoing(Channel(channel), topic, bytes(payload), qos, bool(retain)))
            for row_id, channel, topic, payload, qos, retain in rows
        ]

    async def confirm(self, batch: Sequence[Stored]) -> None:
        """The broker acknowledged every row of ``batch`` (as :meth:`take` returned it): delete them."""
        if batch:
            await self._run(self._delete, batch[0].id, batch[-1].id)
            self._signal()

    def _delete(self, first: int, last: int, *, retry_when_full: bool = True) -> None:
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
            if is_corrupt(exc):
                self._reset_corrupt(exc)  # the rows went with the corrupt file
                return
            if retry_when_full and is_disk_full(exc) and self._snapshot_room():
                self._delete(first, last, retry_when_full=False)
                return
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


def _delete_oldest(db: sqlite3.Connection, channel: Channel, target: int, *, limit: int) -> tuple[int, int]:
    """Delete the oldest rows of ``channel`` (of at most ``limit``) until about ``target`` bytes are freed;
    how many rows went and the bytes they held."""
    victims = db.execute(
        "SELECT id, LENGTH(topic) + LENGTH(payload) FROM outbox WHERE channel = ? ORDER BY id LIMIT ?",
        (channel.value, limit),
    ).fetchall()
    chosen: list[int] = []
    freed = 0
    for row_id, size in victims:
        chosen.append(row_id)
        freed += size + _ROW_OVERHEAD_BYTES
        if freed >= target:
            break
    db.executemany("DELETE FROM outbox WHERE id = ?", [(row_id,) for row_id in chosen])
    return len(chosen), freed
