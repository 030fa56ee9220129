"""Jobs' progress (:data:`~protocol.series.JOB_TARGETS`): per job, how many of its gateways stand in each state.

Open jobs and those that ended in the last day are written, counted in SQL (one row per job and state), so a
dashboard shows a job's waves advancing and how it ended without reading the fleet's database.
"""

from typing import Final

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from fleet.db.schema import JobRow, JobTargetRow
from fleet.jobs.states import JobState
from fleet.state_export.series_point import series_point
from fleet.timeseries.points import Point
from protocol.series import JOB_TARGETS

ENDED_SHOWN_MS: Final = 86_400_000
"""How long after it ended a job is still written."""


async def job_points(connection: AsyncConnection, now_ms: int) -> list[Point]:
    query = (
        select(JobRow.id, JobRow.kind, JobRow.version, JobTargetRow.state, func.count())
        .join(JobTargetRow, JobTargetRow.job_id == JobRow.id)
        .where(
            or_(
                JobRow.state.in_([JobState.RUNNING.value, JobState.PAUSED.value]),
                JobRow.finished_ms > now_ms - ENDED_SHOWN_MS,
            )
        )
        .group_by(JobRow.id, JobRow.kind, JobRow.version, JobTargetRow.state)
    )
    return [
        series_point(
            JOB_TARGETS,
            {"job": job, "kind": kind, "version": version or "none", "state": state},
            {"count": count},
            now_ms,
        )
        for job, kind, version, state, count in await connection.execute(query)
    ]
