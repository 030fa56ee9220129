"""Outbox messages counted by channel and state (:data:`~protocol.series.DELIVERIES`): pending, delivered,
dead (dead-lettered), skipped. One GROUP BY, which the outbox's (channel, state, …) index answers."""

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from fleet.db.schema import OutboxRow
from fleet.state_export.series_point import series_point
from fleet.timeseries.points import Point
from protocol.series import DELIVERIES


async def delivery_points(connection: AsyncConnection, now_ms: int) -> list[Point]:
    query = select(OutboxRow.channel, OutboxRow.state, func.count()).group_by(OutboxRow.channel, OutboxRow.state)
    return [
        series_point(DELIVERIES, {"channel": channel, "state": state}, {"count": count}, now_ms)
        for channel, state, count in await connection.execute(query)
    ]
