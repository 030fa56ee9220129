"""Health history from the embedded SQLite store (:mod:`fleet.timeseries.embedded`), read with SQL.

The store keeps one row per field (``measurement, tags, field, value, ts_ms``) with the tags as
sorted JSON, so the gateway is matched with ``json_extract(tags, '$.gateway')``. The reader uses a
connection of its own for each query: SQLite in WAL mode lets it read while the writer writes.
"""

from collections import defaultdict
from pathlib import Path
from typing import Final

import aiosqlite

from fleet.errors import TimeSeriesUnavailableError
from fleet.timeseries.history import HEALTH_FIELDS, HealthPage, HealthQuery, page_of
from fleet.timeseries.points import GATEWAY_HEALTH

_FIELDS: Final = ", ".join("?" for _ in HEALTH_FIELDS)
_OF_GATEWAY: Final = (
    f"measurement = ? AND json_extract(tags, '$.gateway') = ? AND field IN ({_FIELDS}) AND ts_ms >= ? AND ts_ms < ?"
)
# The first ``limit + 1`` distinct instants, then every field at them: a sample is a heartbeat, not a row.
# Only constants are interpolated into these statements; every value is a bound parameter.
_RAW: Final = (
    f"WITH instants AS (SELECT DISTINCT ts_ms FROM points WHERE {_OF_GATEWAY} ORDER BY ts_ms LIMIT ?) "  # noqa: S608
    f"SELECT ts_ms, field, value FROM points JOIN instants USING (ts_ms) WHERE {_OF_GATEWAY} ORDER BY ts_ms"
)
_STEPPED: Final = (
    f"SELECT (ts_ms - ?) / ? AS slot, field, AVG(value) FROM points WHERE {_OF_GATEWAY} "  # noqa: S608
    "GROUP BY slot, field"
)


class SqlHealthHistory:
    name = "embedded"

    def __init__(self, path: Path) -> None:
        self._path = path

    async def health(self, query: HealthQuery) -> HealthPage:
        if not self._path.exists():  # nothing written yet
            return HealthPage([], truncated=False)
        where = (GATEWAY_HEALTH, query.gateway_id, *HEALTH_FIELDS, query.since_ms, query.until_ms)
        values: dict[int, dict[str, float]] = defaultdict(dict)
        try:
            async with aiosqlite.connect(f"{self._path.resolve().as_uri()}?mode=ro", uri=True) as db:
                if not await _has_points(db):
                    return HealthPage([], truncated=False)
                if query.step_ms is None:
                    rows = await db.execute_fetchall(_RAW, (*where, query.limit + 1, *where))
                    for ts_ms, field, value in rows:
                        values[ts_ms][field] = value
                else:
                    rows = await db.execute_fetchall(_STEPPED, (query.since_ms, query.step_ms, *where))
                    for slot, field, value in rows:
                        values[query.since_ms + slot * query.step_ms][field] = value
        except aiosqlite.Error as exc:
            raise TimeSeriesUnavailableError(f"cannot read {self._path}: {exc}") from exc
        return page_of(values, query)


async def _has_points(db: aiosqlite.Connection) -> bool:
    """Whether the store has its table: the writer creates it on its first write."""
    rows = await db.execute_fetchall("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'points'")
    return bool(list(rows))
