"""Routes for jobs: create one (an agent update or a bulk command to many gateways, in waves), list them, read one
with where each gateway stands, and pause, resume or cancel it. Creating and controlling need an admin token and
are audited; reading needs the read permission."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, status
from pydantic import BaseModel

from fleet.api.context import CALLER_RESPONSES, Administrator, Context, FleetReader, IdPath
from fleet.api.schemas import Refusal
from fleet.db.schema import JobRow, JobTargetRow
from fleet.errors import InvalidRequestError
from fleet.jobs.spec import MAX_TARGETS, JobKind, JobRequest, Reason
from fleet.jobs.states import JobState, TargetState
from protocol.updates import ReleaseKind

router = APIRouter(tags=["jobs"], responses=CALLER_RESPONSES)
_UNKNOWN: dict[int | str, dict[str, Any]] = {404: {"description": "No such job"}}


class JobPublic(BaseModel):
    id: str
    kind: JobKind
    version: str | None
    state: JobState
    state_reason: str | None
    wave: int
    """The furthest wave opened (0: the canary)."""
    waves: int
    created_by: str
    created_ms: int
    deadline_ms: int
    finished_ms: int | None
    reason: str
    counts: dict[TargetState, int]
    """How many gateways stand where."""

    @classmethod
    def of(cls, row: JobRow, counts: dict[TargetState, int]) -> "JobPublic":
        return cls(
            id=row.id,
            kind=JobKind(row.kind),
            version=row.version,
            state=JobState(row.state),
            state_reason=row.state_reason,
            wave=row.wave,
            waves=row.waves,
            created_by=row.created_by,
            created_ms=row.created_ms,
            deadline_ms=row.deadline_ms,
            finished_ms=row.finished_ms,
            reason=str(row.request.get("reason", "")),
            counts=counts,
        )


class JobTargetPublic(BaseModel):
    gateway_id: str
    village_id: str
    wave: int
    state: TargetState
    reason: str | None
    from_version: str | None
    request_id: str | None
    sent_ms: int | None
    changed_ms: int

    @classmethod
    def of(cls, row: JobTargetRow) -> "JobTargetPublic":
        return cls(
            gateway_id=row.gateway_id,
            village_id=row.village_id,
            wave=row.wave,
            state=TargetState(row.state),
            reason=row.reason,
            from_version=row.from_version,
            request_id=row.request_id,
            sent_ms=row.sent_ms,
            changed_ms=row.changed_ms,
        )


class JobDetail(JobPublic):
    request: dict[str, Any]
    targets: list[JobTargetPublic]


class JobControl(BaseModel):
    action: Literal["pause", "resume", "cancel"]
    reason: Reason | None = None


_ACTION_STATE = {"pause": JobState.PAUSED, "resume": JobState.RUNNING, "cancel": JobState.CANCELLED}


@router.post(
    "/jobs",
    status_code=status.HTTP_201_CREATED,
    responses={422: {"model": Refusal, "description": "Nothing to do, or no ready release of that version"}},
)
async def create_job(ctx: Context, actor: Administrator, request: JobRequest) -> JobPublic:
    """Start a job on every enrolled gateway the target selects, wave by wave (audited). An update needs a ready
    release of that version; gateways already on it count as succeeded at once."""
    if request.version is not None:
        ready = {r.row.version for r in await ctx.releases.list(ReleaseKind.AGENT) if r.ready}
        if request.version not in ready:
            raise InvalidRequestError(f"the fleet keeps no ready agent release {request.version}: upload it first")
    row = await ctx.jobs.store.create(actor, request)
    ctx.jobs.wake.set()
    return JobPublic.of(row, (await ctx.jobs.store.counts([row.id]))[row.id])


@router.get("/jobs")
async def list_jobs(
    ctx: Context, _: FleetReader, open_only: bool = False, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[JobPublic]:
    """Jobs, newest first, with how many gateways stand where."""
    rows = await ctx.jobs.store.jobs(open_only=open_only, limit=limit)
    counts = await ctx.jobs.store.counts([row.id for row in rows])
    return [JobPublic.of(row, counts[row.id]) for row in rows]


@router.get("/jobs/{job_id}", responses=_UNKNOWN)
async def read_job(
    ctx: Context,
    _: FleetReader,
    job_id: IdPath,
    state: TargetState | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_TARGETS)] = 2_000,
) -> JobDetail:
    """A job, what was asked, its counts, and its gateways in wave order (``state=`` only those; at most ``limit``)."""
    row = await ctx.jobs.store.job(job_id)
    shown = await ctx.jobs.store.targets(job_id, state, limit)
    public = JobPublic.of(row, (await ctx.jobs.store.counts([job_id]))[job_id])
    return JobDetail(**public.model_dump(), request=row.request, targets=[JobTargetPublic.of(t) for t in shown])


@router.post("/jobs/{job_id}/control", responses={**_UNKNOWN, 409: {"description": "The job has ended"}})
async def control_job(ctx: Context, actor: Administrator, job_id: IdPath, control: JobControl) -> JobPublic:
    """Pause (nothing new is sent; what was sent goes on), resume, or cancel (nothing more is sent; gateways not
    reached are skipped). Audited."""
    row = await ctx.jobs.store.control(actor, job_id, _ACTION_STATE[control.action], control.reason)
    ctx.jobs.wake.set()
    return JobPublic.of(row, (await ctx.jobs.store.counts([job_id]))[job_id])
