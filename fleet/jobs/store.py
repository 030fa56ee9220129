"""Jobs and their targets in the fleet database: created with their audit entry, read, and moved along.

Everything a job needs to go on after a fleet restart is here: the request as asked, the wave it has opened,
every gateway's state, and the command that carried the job to it.
"""

import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

from sqlalchemy import ColumnElement, CursorResult, and_, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.access.audit import Change, record, snapshot
from fleet.access.roles import Actor
from fleet.db.in_lists import in_chunks
from fleet.db.schema import AlertRow, DeviceRow, GatewayRow, JobRow, JobTargetRow, TownRow, VillageRow
from fleet.errors import ConflictError, InvalidRequestError, NotFoundError
from fleet.jobs.spec import MAX_TARGETS, JobKind, JobRequest, Selector
from fleet.jobs.states import JobState, TargetState
from fleet.jobs.waves import assign_waves
from fleet.sites.records import Records
from protocol.notifications import AlertState


@dataclass(frozen=True, slots=True)
class TargetChange:
    """A target to move to ``state`` (with ``values`` for its other columns); :meth:`JobStore.apply` moves it only
    if it is not in one of the states it is given as final, so a report that arrives late never moves a finished
    target back."""

    job_id: str
    gateway_id: str
    state: TargetState
    reason: str | None = None
    values: dict[str, Any] | None = None


class JobStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Callable[[], int]) -> None:
        self._records = Records(sessions, clock)
        self._clock = clock

    # --- creating ----------------------------------------------------------------------------

    async def create(self, actor: Actor, request: JobRequest) -> JobRow:
        """Record a job for every gateway ``request.target`` selects, each in its wave; refused when it selects
        none or more than :data:`MAX_TARGETS`."""
        job_id = f"job-{secrets.token_hex(4)}"
        now = self._clock()
        async with self._records.write(f"create job {job_id}") as session:
            gateways = list((await session.execute(_selected(request.target))).all())
            if not gateways:
                raise InvalidRequestError("the target selects no enrolled, unrevoked gateway")
            if len(gateways) > MAX_TARGETS:
                raise InvalidRequestError(f"the target selects {len(gateways)} gateways, more than {MAX_TARGETS}")
            assigned = assign_waves(job_id, [gateway_id for gateway_id, _, _ in gateways], request.waves)
            job = JobRow(
                id=job_id,
                kind=request.kind.value,
                version=request.version,
                request=request.model_dump(mode="json"),
                state=JobState.RUNNING.value,
                state_reason=None,
                wave=0,
                waves=max(assigned.values()) + 1,
                created_by=actor.name,
                created_ms=now,
                deadline_ms=now + request.deadline_s * 1000,
                finished_ms=None,
            )
            session.add(job)
            await session.flush()
            for gateway_id, village_id, agent_version in gateways:
                done = request.kind is JobKind.UPDATE_AGENT and agent_version == request.version
                session.add(
                    JobTargetRow(
                        job_id=job_id,
                        gateway_id=gateway_id,
                        village_id=village_id,
                        wave=assigned[gateway_id],
                        state=(TargetState.SUCCEEDED if done else TargetState.QUEUED).value,
                        reason=f"runs agent {agent_version} already" if done else None,
                        from_version=agent_version,
                        request_id=None,
                        sent_ms=None,
                        changed_ms=now,
                    )
                )
            audited = snapshot(job) or {}
            audited["targets"] = len(gateways)
            record(session, actor, Change("job.create", "job", job_id, None, audited), now)
        return job

    # --- reading -----------------------------------------------------------------------------

    async def job(self, job_id: str) -> JobRow:
        async with self._records.read(f"read job {job_id}") as session:
            row = await session.get(JobRow, job_id)
        if row is None:
            raise NotFoundError(f"no job {job_id!r}")
        return row

    async def jobs(self, *, open_only: bool = False, limit: int = 100) -> list[JobRow]:
        query = select(JobRow).order_by(JobRow.created_ms.desc()).limit(limit)
        if open_only:
            query = query.where(JobRow.state.in_([JobState.RUNNING.value, JobState.PAUSED.value]))
        return await self._records.all(query, "list jobs")

    async def targets(
        self, job_id: str, state: TargetState | None = None, limit: int | None = None
    ) -> list[JobTargetRow]:
        query = (
            select(JobTargetRow)
            .where(JobTargetRow.job_id == job_id)
            .order_by(JobTargetRow.wave, JobTargetRow.gateway_id)
            .limit(limit)
        )
        if state is not None:
            query = query.where(JobTargetRow.state == state.value)
        return await self._records.all(query, f"list the targets of job {job_id}")

    async def online(self, gateway_ids: Iterable[str]) -> set[str]:
        """Which of these gateways are online now."""
        found: set[str] = set()
        async with self._records.read("read which gateways are online") as session:
            for chunk in in_chunks(list(gateway_ids)):
                rows = await session.scalars(select(GatewayRow.id).where(GatewayRow.id.in_(chunk), GatewayRow.online))
                found.update(rows)
        return found

    async def in_alarm(self) -> set[str]:
        """Villages with a critical alert nobody has acknowledged yet: no job disturbs them."""
        query = (
            select(AlertRow.village_id)
            .where(AlertRow.severity == "critical", AlertRow.state == AlertState.RAISED.value)
            .distinct()
        )
        async with self._records.read("read the villages in alarm") as session:
            return set(await session.scalars(query))

    # --- moving along ------------------------------------------------------------------------

    async def apply(self, changes: Sequence[TargetChange], *, final: Iterable[TargetState]) -> int:
        """Move each target as ``changes`` say unless it is already in one of ``final``; how many moved."""
        if not changes:
            return 0
        kept = [state.value for state in final]
        now = self._clock()
        moved = 0
        async with self._records.write(f"move {len(changes)} job targets") as session:
            for change in changes:
                values = {
                    "state": change.state.value,
                    "reason": change.reason,
                    "changed_ms": now,
                    **(change.values or {}),
                }
                result = await session.execute(
                    update(JobTargetRow)
                    .where(
                        JobTargetRow.job_id == change.job_id,
                        JobTargetRow.gateway_id == change.gateway_id,
                        JobTargetRow.state.not_in(kept),
                    )
                    .values(**values)
                )
                moved += cast("CursorResult[Any]", result).rowcount
        return moved

    async def set_state(self, job_id: str, state: JobState, reason: str | None) -> JobRow | None:
        """The engine ending or moving a job: only one still open (staff may have cancelled it meanwhile); the row
        afterwards, or None when it had ended."""
        now = self._clock()
        async with self._records.write(f"set job {job_id} {state}") as session:
            row = await session.get(JobRow, job_id)
            if row is None:
                raise NotFoundError(f"no job {job_id!r}")
            if not JobState(row.state).open:
                return None
            _move(row, state, reason, now)
        return row

    async def open_wave(self, job_id: str, wave: int) -> None:
        async with self._records.write(f"open wave {wave} of job {job_id}") as session:
            await session.execute(update(JobRow).where(JobRow.id == job_id, JobRow.wave < wave).values(wave=wave))

    async def control(self, actor: Actor, job_id: str, state: JobState, reason: str | None) -> JobRow:
        """Staff pausing, resuming or cancelling a job, in one transaction with its audit entry (and, for a cancel,
        every gateway not yet sent the job skipped); refused for a job that has ended."""
        now = self._clock()
        async with self._records.write(f"{_VERBS[state]} job {job_id}") as session:
            row = await session.get(JobRow, job_id)
            if row is None:
                raise NotFoundError(f"no job {job_id!r}")
            current = JobState(row.state)
            if not current.open:
                raise ConflictError(f"job {job_id} is {current}: it cannot be {_PARTICIPLES[state]}")
            if state is current:
                return row
            before = snapshot(row)
            _move(row, state, reason, now)
            record(session, actor, Change(f"job.{_VERBS[state]}", "job", job_id, before, snapshot(row)), now)
            if state is JobState.CANCELLED:
                await session.execute(
                    update(JobTargetRow)
                    .where(JobTargetRow.job_id == job_id, JobTargetRow.state == TargetState.QUEUED.value)
                    .values(state=TargetState.SKIPPED.value, reason=f"job cancelled by {actor.name}", changed_ms=now)
                )
        return row

    async def counts(self, job_ids: Sequence[str]) -> dict[str, dict[TargetState, int]]:
        """How many gateways of each job stand in each state, counted by the database."""
        found: dict[str, dict[TargetState, int]] = {job_id: {} for job_id in job_ids}
        query = (
            select(JobTargetRow.job_id, JobTargetRow.state, func.count())
            .where(JobTargetRow.job_id.in_(list(job_ids)))
            .group_by(JobTargetRow.job_id, JobTargetRow.state)
        )
        async with self._records.read("count the gateways of jobs") as session:
            for job_id, state, count in await session.execute(query):
                found[job_id][TargetState(state)] = count
        return found


def _move(row: JobRow, state: JobState, reason: str | None, now: int) -> None:
    row.state = state.value
    row.state_reason = reason
    if not state.open and row.finished_ms is None:
        row.finished_ms = now


_VERBS: Final = {JobState.PAUSED: "pause", JobState.RUNNING: "resume", JobState.CANCELLED: "cancel"}
_PARTICIPLES: Final = {JobState.PAUSED: "paused", JobState.RUNNING: "resumed", JobState.CANCELLED: "cancelled"}


def _selected(target: Selector) -> Any:
    """(gateway id, village id, agent version) of every enrolled, unrevoked gateway ``target`` selects."""
    conditions: list[ColumnElement[bool]] = [GatewayRow.public_key_pem.is_not(None), GatewayRow.revoked_ms.is_(None)]
    places: list[ColumnElement[bool]] = []
    if target.villages:
        places.append(GatewayRow.village_id.in_(target.villages))
    if target.towns:
        places.append(VillageRow.town_id.in_(target.towns))
    if target.counties:
        places.append(TownRow.county_id.in_(target.counties))
    if target.gateways:
        places.append(GatewayRow.id.in_(target.gateways))
    if places:
        conditions.append(or_(*places))
    if target.agent_versions:
        conditions.append(GatewayRow.agent_version.in_(target.agent_versions))
    if target.device_kind is not None:
        has_kind = exists().where(DeviceRow.gateway_id == GatewayRow.id, DeviceRow.kind == target.device_kind.value)
        conditions.append(has_kind)
    return (
        select(GatewayRow.id, GatewayRow.village_id, GatewayRow.agent_version)
        .join(VillageRow, VillageRow.id == GatewayRow.village_id)
        .outerjoin(TownRow, TownRow.id == VillageRow.town_id)
        .where(and_(*conditions))
        .order_by(GatewayRow.id)
    )
