"""Open alerts counted by place, severity, state and level (:data:`~protocol.series.ALERTS_OPEN`), in SQL.

"Open" is what still needs someone: raised, acknowledged, dispatched (as correlation counts it). A resolved
alert waits only to be closed; cleared, cancelled and closed ones are over. ``overdue`` counts the alerts
nobody acknowledged by their first deadline: those that escalated (level above the village), and a raised
one whose deadline passed before the timers moved it (e.g. while the fleet was down).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from fleet.db.schema import AlertRow
from fleet.state_export.cooperative import in_slices
from fleet.state_export.places import Place, unplaced
from fleet.state_export.series_point import series_point
from fleet.timeseries.points import Point
from protocol.messages import Severity
from protocol.notifications import AlertLevel, AlertState
from protocol.series import ALERTS_OPEN

OPEN: Final = (AlertState.RAISED, AlertState.ACKNOWLEDGED, AlertState.DISPATCHED)


@dataclass(frozen=True, slots=True)
class OpenAlerts:
    """One group of open alerts: a village, a severity, a state and a level, and how many (overdue)."""

    village: str
    severity: str
    state: str
    level: str
    count: int
    overdue: int


async def read_open_alerts(connection: AsyncConnection, now_ms: int) -> list[OpenAlerts]:
    """The open alerts' groups (one GROUP BY over the alerts' state index, no alert loaded)."""
    overdue = or_(
        AlertRow.level != AlertLevel.VILLAGE,
        and_(AlertRow.state == AlertState.RAISED, AlertRow.escalate_at_ms <= now_ms),
    )
    keys = (AlertRow.village_id, AlertRow.severity, AlertRow.state, AlertRow.level)
    query = (
        select(*keys, func.count(), func.sum(case((overdue, 1), else_=0)))
        .where(AlertRow.state.in_(OPEN))
        .group_by(*keys)
    )
    return [
        OpenAlerts(village, severity, state, level, count, int(overdue_count or 0))
        for village, severity, state, level, count, overdue_count in await connection.execute(query)
    ]


async def open_alert_points(groups: Sequence[OpenAlerts], places: Mapping[str, Place], now_ms: int) -> list[Point]:
    def point(group: OpenAlerts) -> Point:
        return series_point(
            ALERTS_OPEN,
            places.get(group.village, unplaced(group.village)).tags()
            | {"severity": group.severity, "state": group.state, "level": group.level},
            {"count": group.count, "overdue": group.overdue},
            now_ms,
        )

    return await in_slices(groups, point)


@dataclass(slots=True)
class VillageAlerts:
    """A village's open alerts, for its :data:`~protocol.series.VILLAGE_STATE`."""

    open: int = 0
    critical: int = 0


def alerts_by_village(groups: Sequence[OpenAlerts]) -> dict[str, VillageAlerts]:
    villages: dict[str, VillageAlerts] = {}
    for group in groups:
        village = villages.setdefault(group.village, VillageAlerts())
        village.open += group.count
        if group.severity == Severity.CRITICAL:
            village.critical += group.count
    return villages
