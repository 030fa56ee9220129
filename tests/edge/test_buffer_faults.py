"""The buffer when its disk fails: a full disk evicts telemetry, then snapshots, then other kinds, never
alerts; a corrupt file is moved aside for inspection and a fresh one started; no file at all leaves it in memory.

The disk is filled for real: ``max_pages`` is SQLite's ``PRAGMA max_page_count``, past which SQLite
itself answers SQLITE_FULL ("database or disk is full"), as it does on ENOSPC.
"""

import os
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edge.buffer import BufferFullError, StoreAndForwardBuffer
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
from edge.snapshots import SnapshotStore
from protocol.gateway_config import SnapshotPolicy
from protocol.topics import Channel
from tests.edge.disk import read_only_directory
from tests.edge.helpers import FakeClock
from tests.edge.test_buffer import alert, event, telemetry

MAX_PAGES = 48  # 4 KiB pages: about 170 KiB of rows
BIG_BOUND = 64 * 1024 * 1024  # the byte bound never bites here: only the disk does
FORWARDED = 200  # rows confirmed to make room: whole pages must come free for new (higher) ids


def _full_buffer(
    tmp_path: Path, faults: GatewayFaults, snapshots: SnapshotStore | None = None
) -> StoreAndForwardBuffer:
    return StoreAndForwardBuffer(
        tmp_path / "buffer.db",
        BIG_BOUND,
        faults=faults,
        free_room=(lambda: snapshots.evict_oldest(1)) if snapshots is not None else None,
        max_pages=MAX_PAGES,
    )


async def _fill(buffer: StoreAndForwardBuffer, make: Callable[[], Outgoing], until_dropped: Channel) -> int:
    """Put messages from ``make`` until the buffer first had to drop ``until_dropped``; how many were put."""
    put = 0
    while buffer.dropped[until_dropped] == 0:
        await buffer.put([make()])
        put += 1
        assert put < 10_000, "the disk never filled"
    return put


async def _fill_with_alerts(buffer: StoreAndForwardBuffer) -> int:
    """Put alerts until one fails with BufferFullError (alerts are never evicted); how many were stored."""
    stored = 0
    while True:
        try:
            await buffer.put([alert()])
        except BufferFullError:
            return stored
        stored += 1
        assert stored < 10_000, "the disk never filled"


async def _channels(buffer: StoreAndForwardBuffer) -> list[Channel]:
    taken = await buffer.take(100_000)
    buffer.release()
    return [stored.item.channel for stored in taken]


async def test_a_full_disk_evicts_the_oldest_telemetry_and_stores_the_alert(tmp_path: Path) -> None:
    faults = GatewayFaults()
    buffer = _full_buffer(tmp_path, faults)
    await buffer.open()
    try:
        await _fill(buffer, telemetry, until_dropped=Channel.TELEMETRY)
        telemetry_dropped = buffer.dropped[Channel.TELEMETRY]
        alerts = 0
        while buffer.dropped[Channel.TELEMETRY] == telemetry_dropped:  # alerts until they need telemetry's room
            await buffer.put([alert()])
            alerts += 1
        channels = await _channels(buffer)
    finally:
        await buffer.close()

    assert channels.count(Channel.ALERT) == alerts
    assert buffer.dropped[Channel.ALERT] == 0
    assert faults.counts[STORE_RECOVERED] >= 2  # the fill's own first eviction, and the alert's
    assert faults.counts[STORE_FAILED] == 0
    assert faults.reason(STORE) is None


def _snapshot_store(tmp_path: Path, count: int) -> SnapshotStore:
    clock = FakeClock(1_795_000_000_000)
    store = SnapshotStore(tmp_path / "snapshots", SnapshotPolicy(enabled=True, min_interval_s=1), clock)
    frame = np.full((120, 160, 3), 90, np.uint8)
    for index in range(count):
        clock.now_ms += 2_000
        assert store.keep("cam-1", frame, clock.now_ms, f"motion {index}") is not None
    return store


async def test_once_telemetry_is_gone_snapshots_go_then_events_and_never_alerts(tmp_path: Path) -> None:
    faults = GatewayFaults()
    snapshots = _snapshot_store(tmp_path, count=3)
    buffer = _full_buffer(tmp_path, faults, snapshots)
    await buffer.open()
    try:
        await buffer.put([telemetry(), telemetry(), alert()])
        await _fill(buffer, event, until_dropped=Channel.EVENT)
        channels = await _channels(buffer)
    finally:
        await buffer.close()

    assert buffer.dropped[Channel.TELEMETRY] == 2  # first
    assert snapshots.count == 0  # then every snapshot (freeing files does not grow SQLite's page limit)
    assert faults.counts[STORE_EVICTED_SNAPSHOTS] == 3
    assert buffer.dropped[Channel.EVENT] >= 1  # and only then events
    assert channels.count(Channel.ALERT) == 1
    assert Channel.TELEMETRY not in channels


async def test_an_alert_that_cannot_fit_fails_and_the_store_reports_why_until_it_recovers(tmp_path: Path) -> None:
    faults = GatewayFaults()
    buffer = _full_buffer(tmp_path, faults)
    await buffer.open()
    try:
        stored = await _fill_with_alerts(buffer)
        with pytest.raises(BufferFullError, match="database or disk is full"):
            await buffer.put([alert()])
        assert faults.counts[STORE_FAILED] == 2
        assert "database or disk is full" in (faults.reason(STORE) or "")

        await buffer.confirm(await buffer.take(FORWARDED))  # the uplink forwarded some: room again
        await buffer.put([alert()])
        depth = buffer.depth
    finally:
        await buffer.close()

    assert buffer.dropped[Channel.ALERT] == 0
    assert depth == stored - FORWARDED + 1
    assert faults.reason(STORE) is None


async def test_in_a_full_group_commit_the_alert_is_stored_before_the_rest(tmp_path: Path) -> None:
    """Alerts only, some confirmed, then a telemetry batch bigger than the whole file and an alert in one
    group commit: the batch cannot fit (nothing is left to evict but alerts), the alert, tried alone first, can."""
    faults = GatewayFaults()
    buffer = _full_buffer(tmp_path, faults)
    await buffer.open()
    try:
        await _fill_with_alerts(buffer)
        await buffer.confirm(await buffer.take(FORWARDED))
        batch = buffer.submit(*[telemetry(points=1_000) for _ in range(4)])  # more than the whole file
        single = buffer.submit(alert())
        with pytest.raises(BufferFullError):
            await batch
        await single
        channels = await _channels(buffer)
    finally:
        await buffer.close()

    assert Channel.TELEMETRY not in channels
    assert faults.counts[STORE_FAILED] >= 2


def _corrupt_names(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir() if ".corrupt-" in path.name)


async def _open_put_take(path: Path, faults: GatewayFaults) -> list[Outgoing]:
    buffer = StoreAndForwardBuffer(path, BIG_BOUND, faults=faults)
    await buffer.open()
    try:
        item = alert()
        await buffer.put([item])
        return [stored.item for stored in await buffer.take(10)]
    finally:
        await buffer.close()


async def test_a_file_of_garbage_is_moved_aside_with_its_wal_and_a_fresh_buffer_starts(tmp_path: Path) -> None:
    path = tmp_path / "buffer.db"
    garbage = os.urandom(16 * 1024)
    path.write_bytes(garbage)
    (tmp_path / "buffer.db-wal").write_bytes(b"wal of the corrupt file")
    (tmp_path / "buffer.db-shm").write_bytes(b"shm of the corrupt file")
    faults = GatewayFaults()

    items = await _open_put_take(path, faults)

    assert [item.channel for item in items] == [Channel.ALERT]
    [kept, kept_shm, kept_wal] = _corrupt_names(tmp_path)
    assert re.fullmatch(r"buffer\.db\.corrupt-\d{8}T\d{6}Z", kept)
    assert (kept_shm, kept_wal) == (f"{kept}-shm", f"{kept}-wal")
    assert (tmp_path / kept).read_bytes() == garbage  # kept for inspection, untouched
    assert (tmp_path / kept_wal).read_bytes() == b"wal of the corrupt file"
    assert faults.counts[BUFFER_RESET_CORRUPT] == 1


async def test_a_database_with_damaged_pages_fails_its_check_and_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "buffer.db"
    first = StoreAndForwardBuffer(path, BIG_BOUND)
    await first.open()
    await first.put([telemetry(200) for _ in range(20)])
    await first.close()
    with sqlite3.connect(path) as db:  # fold the WAL into the file, so the damage below is what SQLite reads
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    assert len(data) > 8 * 4096
    data[2 * 4096 : 6 * 4096] = os.urandom(4 * 4096)  # the header page stays valid: only a check finds this
    path.write_bytes(bytes(data))
    faults = GatewayFaults()

    items = await _open_put_take(path, faults)

    assert [item.channel for item in items] == [Channel.ALERT]  # a fresh file: the damaged rows are not replayed
    assert len([name for name in _corrupt_names(tmp_path) if not name.endswith(("-wal", "-shm"))]) == 1
    assert faults.counts[BUFFER_RESET_CORRUPT] == 1


async def test_a_read_only_state_directory_leaves_the_buffer_in_memory(tmp_path: Path) -> None:
    faults = GatewayFaults()
    with read_only_directory(tmp_path / "state") as state:
        items = await _open_put_take(state / "buffer.db", faults)

    assert [item.channel for item in items] == [Channel.ALERT]
    assert faults.counts[BUFFER_IN_MEMORY] == 1
    assert "buffering in memory" in (faults.reason(STORE) or "")
