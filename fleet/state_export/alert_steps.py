"""Every step in an alert's life as an :data:`~protocol.series.ALERT_STEP` point at the step's own time,
read from ``alert_transitions`` in id order behind a watermark (:mod:`fleet.state_export.watermark`).

**One point per step, unless steps coincide.** Steps of one place, kind, severity, step and level in the
same millisecond (a storm of gateways going offline opened in one transaction, the timers escalating
several alerts at once) would be the same series at the same timestamp, and the server would keep only
the last: they are one point, ``count`` of them, ``since_raised_s`` their mean. Such steps are written in
one transaction, so they are read together; a batch that ends inside a millisecond is cut before it.

**The watermark only passes steps that are written and cannot be followed by an earlier one.** Ids are
handed out when a step is inserted, not when its transaction commits: on PostgreSQL a step can become
visible after a higher id was read (SQLite's single writer commits ids in order). So the watermark stops
at a gap in the ids, and every round reads again from it, writing the steps beyond the gap again (the
same points: nothing changes on the server) until the gap fills. A gap that does not fill, a rolled-back
transaction's id, is passed once the step after it is :data:`GAP_GRACE_MS` old, or has been waited on that
long. Notes are read (their ids count) but not exported: they are not steps.
"""

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.alerts.history import NOTE
from fleet.db.engine import database_errors
from fleet.db.schema import AlertRow, AlertTransitionRow
from fleet.state_export.cooperative import in_slices
from fleet.state_export.places import Place, read_places, unplaced
from fleet.state_export.series_point import series_point
from fleet.state_export.watermark import BEGINNING, Watermark
from fleet.timeseries.points import Point
from protocol.series import ALERT_STEP

logger = logging.getLogger(__name__)

GAP_GRACE_MS: Final = 60_000
"""Far longer than any alert transaction stays open; an id missing for longer was rolled back."""
DEFAULT_BATCH: Final = 1_000


@dataclass(frozen=True, slots=True)
class StepRow:
    id: int
    alert_id: str
    step: str
    level: str
    at_ms: int
    raised_at_ms: int
    kind: str
    severity: str
    village: str


@dataclass(frozen=True, slots=True)
class StepBatch:
    """Points for the steps read after ``after_id``; once they are written, ``settled`` may be kept.
    ``last_id`` is where the next batch of the same round starts; ``more``: the batch was full."""

    points: list[Point]
    last_id: int
    settled: Watermark
    more: bool


class AlertSteps:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], int],
        *,
        batch: int = DEFAULT_BATCH,
        gap_grace_ms: int = GAP_GRACE_MS,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._batch = batch
        self._gap_grace_ms = gap_grace_ms
        self._gaps_seen: dict[int, int] = {}  # the first id missing -> when this process first saw it missing

    async def verify(self, mark: Watermark) -> Watermark:
        """``mark`` if this database holds the step it names, else :data:`BEGINNING` (a restored or another
        database: steps under those ids were never written)."""
        if mark.transition_id == 0:
            return mark
        query = select(AlertTransitionRow.alert_id, AlertTransitionRow.at_ms).where(
            AlertTransitionRow.id == mark.transition_id
        )
        with database_errors("check the alert-step watermark"):
            async with self._sessions() as session:
                found = (await session.execute(query)).one_or_none()
        if found is None or tuple(found) != (mark.alert_id, mark.at_ms):
            logger.warning(
                "state export: this database does not hold the last alert step written (%d); exporting alert "
                "steps from the beginning",
                mark.transition_id,
            )
            return BEGINNING
        return mark

    async def read(self, settled: Watermark, after_id: int) -> StepBatch:
        """The next batch after ``after_id`` (``settled.transition_id`` for a round's first batch)."""
        query = (
            select(
                AlertTransitionRow.id,
                AlertTransitionRow.alert_id,
                AlertTransitionRow.step,
                AlertTransitionRow.level,
                AlertTransitionRow.at_ms,
                AlertRow.raised_at_ms,
                AlertRow.kind,
                AlertRow.severity,
                AlertRow.village_id,
            )
            .join(AlertRow, AlertRow.id == AlertTransitionRow.alert_id)
            .where(AlertTransitionRow.id > after_id)
            .order_by(AlertTransitionRow.id)
            .limit(self._batch)
        )
        with database_errors("read alert steps for export"):
            async with self._sessions() as session:
                connection = await session.connection()
                rows = [StepRow(*row) for row in await connection.execute(query)]
                places = await read_places(connection) if rows else {}
        full = len(rows) == self._batch
        if full:
            rows = _cut_before_last_millisecond(rows)
        last_id = rows[-1].id if rows else after_id
        if settled.transition_id == after_id:
            settled = self._advance(settled, rows)
        return StepBatch(await step_points(rows, places), last_id, settled, full)

    def _advance(self, mark: Watermark, rows: Sequence[StepRow]) -> Watermark:
        """How far the watermark may go over ``rows`` (in id order, all after ``mark``)."""
        now = self._clock()
        for row in rows:
            missing = mark.transition_id + 1
            if row.id != missing:
                first_seen = self._gaps_seen.setdefault(missing, now)
                if row.at_ms > now - self._gap_grace_ms and now - first_seen < self._gap_grace_ms:
                    break
                logger.info("state export: alert steps %d-%d never appeared; passing them", missing, row.id - 1)
            mark = Watermark(row.id, row.alert_id, row.at_ms)
        self._gaps_seen = {first: seen for first, seen in self._gaps_seen.items() if first > mark.transition_id}
        return mark


def _cut_before_last_millisecond(rows: list[StepRow]) -> list[StepRow]:
    """A full batch without its last millisecond's steps, which the next batch reads with the rest of that
    millisecond; all of it when the whole batch is one millisecond (nothing else would ever move on)."""
    last_ms = rows[-1].at_ms
    end = len(rows)
    while end and rows[end - 1].at_ms == last_ms:
        end -= 1
    return rows[:end] if end else rows


async def step_points(rows: Sequence[StepRow], places: Mapping[str, Place]) -> list[Point]:
    """One point per (place, kind, severity, step, level, millisecond) of ``rows``, notes left out."""
    groups: dict[tuple[str, str, str, str, str, int], list[float]] = {}
    for row in rows:
        if row.step == NOTE:
            continue
        key = (row.village, row.kind, row.severity, row.step, row.level, row.at_ms)
        groups.setdefault(key, []).append((row.at_ms - row.raised_at_ms) / 1000)

    def point(group: tuple[tuple[str, str, str, str, str, int], list[float]]) -> Point:
        (village, kind, severity, step, level, at_ms), since = group
        return series_point(
            ALERT_STEP,
            places.get(village, unplaced(village)).tags()
            | {"kind": kind, "severity": severity, "step": step, "level": level},
            {"count": len(since), "since_raised_s": sum(since) / len(since)},
            at_ms,
        )

    return await in_slices(list(groups.items()), point)
