"""The embedded time-series store: a SQLite file, for the demo and single-machine trials.

Chosen because SQLite is already the registry's default engine (no extra server or dependency),
durable, and queryable with plain SQL. It is not built for county-scale volumes: production
deployments configure an InfluxDB-compatible server (InfluxDB, VictoriaMetrics).
"""

import json
from collections.abc import Sequence
from pathlib import Path

import aiosqlite

from fleet.errors import TimeSeriesUnavailableError
from fleet.timeseries.points import Points

_SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    measurement TEXT NOT NULL,
    tags TEXT NOT NULL,
    field TEXT NOT NULL,
    value REAL NOT NULL,
    ts_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_points_series ON points (measurement, field, ts_ms);
"""


class EmbeddedSink:
    name = "embedded"

    def __init__(self, path: Path) -> None:
        self._path = path
        self._db: aiosqlite.Connection | None = None

    async def _connection(self) -> aiosqlite.Connection:
        if self._db is None:
            try:
                db = await aiosqlite.connect(self._path)
            except aiosqlite.Error as exc:
                raise TimeSeriesUnavailableError(f"cannot open {self._path}: {exc}") from exc
            try:
                await db.execute("PRAGMA journal_mode=WAL")
                await db.executescript(_SCHEMA)
            except aiosqlite.Error as exc:
                await db.close()
                raise TimeSeriesUnavailableError(f"cannot open {self._path}: {exc}") from exc
            self._db = db
        return self._db

    async def write(self, batch: Sequence[Points]) -> None:
        db = await self._connection()
        rows = [
            (point.measurement, json.dumps(dict(point.tags), sort_keys=True), field, value, point.ts_ms)
            for chunk in batch
            for point in chunk.rows()
            for field, value in point.fields
        ]
        try:
            await db.executemany("INSERT INTO points VALUES (?, ?, ?, ?, ?)", rows)
            await db.commit()
        except aiosqlite.Error as exc:
            raise TimeSeriesUnavailableError(f"cannot write to {self._path}: {exc}") from exc

    async def series(self, measurement: str, field: str, since_ms: int = 0) -> list[tuple[dict[str, str], float, int]]:
        """Stored values of one field since ``since_ms``: (tags, value, ts_ms), oldest first."""
        db = await self._connection()
        cursor = await db.execute(
            "SELECT tags, value, ts_ms FROM points WHERE measurement = ? AND field = ? AND ts_ms >= ? ORDER BY ts_ms",
            (measurement, field, since_ms),
        )
        return [(json.loads(tags), value, ts_ms) for tags, value, ts_ms in await cursor.fetchall()]

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None
