"""Runs jobs: opens their waves, sends their commands within their limits, follows every gateway, aborts and
reverts, and finishes them. Every decision is made from the database, so a fleet restart picks up where it stood.

Each tick (``tick_s``), for every open job (and every aborted one still reverting):

1. the gateways' own word moves their targets: the update report in their heartbeats (:meth:`JobEngine.observe`,
   kept in memory between ticks, latest per gateway) and the outcome of the command that carried the job;
2. a target busy longer than the job's ``step_timeout_s`` has failed; past the job's deadline, one never sent is
   skipped (its gateway stayed offline);
3. the abort policy is checked: past it the job is aborted, nothing more is sent, and (``abort.revert``) every
   gateway it updated is sent its earlier version back;
4. a running job opens its next wave once every gateway of the ones open has finished, or waits offline (those
   get the job when they come back, until the deadline); it sends to queued gateways of open waves that are online
   and not in alarm (a village with a critical alert nobody acknowledged waits), at most ``max_in_flight`` busy
   at once and ``per_second`` a second;
5. a job whose every gateway finished is done.
"""

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Final

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.access.roles import Actor, Role
from fleet.commands.dispatcher import CommandDispatcher
from fleet.commands.store import FINAL as COMMAND_FINAL
from fleet.commands.store import NewCommand
from fleet.db.in_lists import in_chunks
from fleet.db.schema import CommandRow, CommandState, JobRow, JobTargetRow
from fleet.errors import FleetError, TransientError
from fleet.jobs.spec import JobKind, JobRequest
from fleet.jobs.states import BUSY, FAILURES, FINAL, JobState, TargetState, from_report
from fleet.jobs.store import JobStore, TargetChange
from fleet.releases.store import ReleaseStore
from protocol.messages import CommandName, EvidenceValue
from protocol.updates import ReleaseKind, UpdateReport

logger = logging.getLogger(__name__)

COMMAND_TIMEOUT_S: Final = 120.0
"""How long a gateway has to answer a job's command (an update answers at once and reports in its heartbeats)."""
_COMMANDS: Final = {
    JobKind.UPDATE_AGENT: CommandName.UPDATE_AGENT,
    JobKind.RESTART_AGENT: CommandName.RESTART_AGENT,
    JobKind.DIAGNOSTICS: CommandName.DIAGNOSTICS,
}
_SEND_CONCURRENCY: Final = 50


class JobEngine:
    def __init__(
        self,
        store: JobStore,
        sessions: async_sessionmaker[AsyncSession],
        commands: CommandDispatcher,
        releases: ReleaseStore,
        clock: Callable[[], int],
        *,
        tick_s: float = 1.0,
    ) -> None:
        self.store = store
        self._sessions = sessions
        self._commands = commands
        self._releases = releases
        self._clock = clock
        self.tick_s = tick_s
        self._reports: dict[str, UpdateReport] = {}
        self._tokens: dict[str, float] = {}
        self._last_tick = time.monotonic()
        self.wake = asyncio.Event()

    def observe(self, gateway_id: str, report: UpdateReport | None) -> None:
        """A gateway's update report from its heartbeat (the ingest router's hook): kept until the next tick."""
        if report is not None and report.job_id is not None:
            self._reports[gateway_id] = report

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except TransientError as exc:
                logger.warning("jobs wait for the database: %s", exc)
            except FleetError:
                logger.exception("a job step failed; trying again next tick")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.tick_s):
                    await self.wake.wait()
            self.wake.clear()

    async def tick(self) -> None:
        reports, self._reports = self._reports, {}
        elapsed = time.monotonic() - self._last_tick
        self._last_tick = time.monotonic()
        in_alarm: set[str] | None = None
        for job in await self._jobs():
            if in_alarm is None:
                in_alarm = await self.store.in_alarm()
            await self._advance(job, reports, in_alarm, elapsed)

    async def _jobs(self) -> list[JobRow]:
        """Open jobs; aborted ones with gateways still busy (with the job, or reverting it) or updated and not yet put
        back (those that got there after it aborted); cancelled ones with gateways still busy with it."""
        updated_not_reverted = and_(
            JobTargetRow.state == TargetState.SUCCEEDED.value,
            JobTargetRow.from_version != JobRow.version,
            JobRow.request["abort"]["revert"].as_boolean(),
        )
        busy = JobTargetRow.state.in_([s.value for s in BUSY])
        still_busy = (
            select(JobRow.id)
            .join(JobTargetRow, JobTargetRow.job_id == JobRow.id)
            .where(
                or_(
                    and_(JobRow.state == JobState.ABORTED.value, or_(busy, updated_not_reverted)),
                    and_(JobRow.state == JobState.CANCELLED.value, busy),
                )
            )
            .distinct()
        )
        reverting = select(JobRow).where(JobRow.id.in_(still_busy))  # no DISTINCT over JSON (PostgreSQL has no =)
        async with self._sessions() as session:
            aborted = list((await session.scalars(reverting)).all())
        return [*await self.store.jobs(open_only=True, limit=1_000), *aborted]

    # --- one job -----------------------------------------------------------------------------

    async def _advance(self, job: JobRow, reports: dict[str, UpdateReport], in_alarm: set[str], elapsed: float) -> None:
        request = JobRequest.model_validate(job.request)
        targets = await self.store.targets(job.id)
        now = self._clock()
        if await self._apply(self._from_reports(job, targets, reports) + await self._from_commands(job, targets)):
            targets = await self.store.targets(job.id)
        if await self._apply(_timed_out(targets, request, now)):  # after the gateways' own word of this tick
            targets = await self.store.targets(job.id)
        state = JobState(job.state)
        if state is JobState.CANCELLED:
            return  # followed only while gateways it reached are still busy
        if state is JobState.ABORTED:  # gateways still busy when it aborted: put back those that got there
            if request.kind is JobKind.UPDATE_AGENT and request.abort.revert:
                await self._revert(job, [t for t in targets if t.state == TargetState.SUCCEEDED and t.from_version])
            return
        why = _abort_reason(request, targets)
        if why is not None:
            await self._abort(job, request, targets, why)
            return
        if now > job.deadline_ms:
            skipped = [
                TargetChange(job.id, t.gateway_id, TargetState.SKIPPED, "offline until the job's deadline")
                for t in targets
                if t.state == TargetState.QUEUED
            ]
            if await self._apply(skipped):
                targets = await self.store.targets(job.id)
        if all(TargetState(t.state) in FINAL for t in targets):
            counts = Counter(t.state for t in targets)
            summary = ", ".join(f"{count} {name}" for name, count in sorted(counts.items()))
            if await self.store.set_state(job.id, JobState.DONE, summary) is not None:
                logger.info("job %s done: %s", job.id, summary)
            return
        if state is not JobState.RUNNING:
            return
        online = await self.store.online(t.gateway_id for t in targets if t.state == TargetState.QUEUED)
        wave = _open_wave(job.wave, job.waves, targets, online)
        if wave != job.wave:
            await self.store.open_wave(job.id, wave)
            logger.info("job %s opens wave %d of %d", job.id, wave + 1, job.waves)
        await self._send(job, request, targets, wave, online, in_alarm, elapsed)

    def _from_reports(
        self, job: JobRow, targets: Sequence[JobTargetRow], reports: dict[str, UpdateReport]
    ) -> list[TargetChange]:
        changes = []
        for target in targets:
            report = reports.get(target.gateway_id)
            state = TargetState(target.state)
            if report is None or report.job_id != job.id or report.kind is not ReleaseKind.AGENT:
                continue
            reverting = state is TargetState.REVERTING
            expected = target.from_version if reverting else job.version
            if report.version != expected or (state in FINAL and not reverting):
                continue
            moved = from_report(report.state, reverting=reverting)
            if moved is not state or report.reason != target.reason:
                changes.append(TargetChange(job.id, target.gateway_id, moved, report.reason))
        return changes

    async def _from_commands(self, job: JobRow, targets: Sequence[JobTargetRow]) -> list[TargetChange]:
        """Targets whose command failed (refused, undeliverable, unanswered), or succeeded for a plain command."""
        waiting = {t.request_id: t for t in targets if t.state == TargetState.SENT and t.request_id is not None}
        if not waiting:
            return []
        changes = []
        async with self._sessions() as session:
            for chunk in in_chunks(list(waiting)):
                rows = await session.scalars(select(CommandRow).where(CommandRow.request_id.in_(chunk)))
                for command in rows:
                    outcome = CommandState(command.state)
                    if outcome not in COMMAND_FINAL:
                        continue
                    target = waiting[command.request_id]
                    if outcome is CommandState.SUCCEEDED:
                        if job.kind != JobKind.UPDATE_AGENT:
                            changes.append(TargetChange(job.id, target.gateway_id, TargetState.SUCCEEDED))
                        continue
                    if outcome is CommandState.TIMED_OUT and job.kind == JobKind.UPDATE_AGENT:
                        continue  # its answer may be late (a slow link): its reports decide, until the step timeout
                    reason = command.error or f"the command {outcome}"
                    changes.append(TargetChange(job.id, target.gateway_id, TargetState.FAILED, reason[:256]))
        return changes

    async def _apply(self, changes: list[TargetChange], *, reverting: bool = False) -> int:
        """Move targets as ``changes`` say, never one that has finished (``reverting``: but a succeeded one)."""
        return await self.store.apply(changes, final=FINAL - {TargetState.SUCCEEDED} if reverting else FINAL)

    # --- sending -----------------------------------------------------------------------------

    async def _send(
        self,
        job: JobRow,
        request: JobRequest,
        targets: Sequence[JobTargetRow],
        wave: int,
        online: set[str],
        in_alarm: set[str],
        elapsed: float,
    ) -> None:
        """Send the job to queued gateways of open waves that are ``online`` (of the queued, read this tick) and not
        in alarm, within the job's limits."""
        tokens = min(
            self._tokens.get(job.id, 0.0) + elapsed * request.waves.per_second,
            max(1.0, request.waves.per_second),
        )
        busy = sum(1 for t in targets if TargetState(t.state) in BUSY)
        room = min(request.waves.max_in_flight - busy, int(tokens))
        if room <= 0:
            self._tokens[job.id] = tokens
            return
        due = [t for t in targets if t.state == TargetState.QUEUED and t.wave <= wave and t.village_id not in in_alarm]
        chosen = [t for t in due if t.gateway_id in online][:room]
        self._tokens[job.id] = tokens - len(chosen)
        if not chosen:
            return
        name = _COMMANDS[JobKind(job.kind)]
        args: dict[str, EvidenceValue] = {"version": job.version, "job_id": job.id} if job.version else {}
        await self._dispatch(job, chosen, name, args, TargetState.SENT)

    async def _dispatch(
        self,
        job: JobRow,
        chosen: Sequence[JobTargetRow],
        name: CommandName,
        args: dict[str, EvidenceValue],
        state: TargetState,
    ) -> None:
        """Send ``name`` to each of ``chosen`` and move it to ``state`` (a revert moves succeeded targets too)."""
        actor = Actor(f"job:{job.id}", Role.ADMIN)
        limit = asyncio.Semaphore(_SEND_CONCURRENCY)

        async def send(target: JobTargetRow) -> TargetChange:
            command = NewCommand(target.gateway_id, target.village_id, name, args, f"job {job.id}", COMMAND_TIMEOUT_S)
            async with limit:
                row = await self._commands.send(actor, command)
            values = {"request_id": row.request_id, "sent_ms": self._clock()}
            return TargetChange(job.id, target.gateway_id, state, None, values)

        outcomes = await asyncio.gather(*(send(target) for target in chosen), return_exceptions=True)
        sent = [outcome for outcome in outcomes if isinstance(outcome, TargetChange)]
        await self._apply(sent, reverting=state is TargetState.REVERTING)  # the rest stay as they were: next tick
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        for failure in failures[:1]:
            logger.warning("job %s could not send %s to %d gateways (%s); next tick", job.id, name, len(failures),
                           failure)  # fmt: skip
        logger.info("job %s sent %s to %d gateways", job.id, name, len(sent))

    # --- aborting ----------------------------------------------------------------------------

    async def _abort(self, job: JobRow, request: JobRequest, targets: Sequence[JobTargetRow], why: str) -> None:
        if await self.store.set_state(job.id, JobState.ABORTED, why) is None:
            return  # staff ended it meanwhile
        logger.error("job %s aborted: %s", job.id, why)
        skipped = [
            TargetChange(job.id, t.gateway_id, TargetState.SKIPPED, f"job aborted: {why}"[:256])
            for t in targets
            if t.state == TargetState.QUEUED
        ]
        await self._apply(skipped)
        if request.kind is JobKind.UPDATE_AGENT and request.abort.revert:
            await self._revert(job, [t for t in targets if t.state == TargetState.SUCCEEDED and t.from_version])

    async def _revert(self, job: JobRow, updated: Sequence[JobTargetRow]) -> None:
        """Send each gateway the job updated its earlier version back, where the fleet keeps that release."""
        by_version: dict[str, list[JobTargetRow]] = {}
        for target in updated:
            if target.from_version != job.version and target.from_version is not None:
                by_version.setdefault(target.from_version, []).append(target)
        for version, targets in by_version.items():
            ready = {release.row.version for release in await self._releases.list(ReleaseKind.AGENT) if release.ready}
            if version not in ready:
                reason = f"agent {version} is no release the fleet keeps: it cannot be put back"
                await self._apply(
                    [TargetChange(job.id, t.gateway_id, TargetState.REVERT_FAILED, reason) for t in targets]
                )
                continue
            args: dict[str, EvidenceValue] = {"version": version, "job_id": job.id}
            await self._dispatch(job, targets, CommandName.UPDATE_AGENT, args, TargetState.REVERTING)


def _open_wave(wave: int, waves: int, targets: Sequence[JobTargetRow], online: set[str]) -> int:
    """The furthest wave that may be open: the next opens once every gateway of the open ones has finished or is
    queued offline (it gets the job when it returns)."""
    while wave < waves - 1:
        holding = [
            t
            for t in targets
            if t.wave <= wave
            and TargetState(t.state) not in FINAL
            and not (t.state == TargetState.QUEUED and t.gateway_id not in online)
        ]
        if holding:
            break
        wave += 1
    return wave


def _timed_out(targets: Sequence[JobTargetRow], request: JobRequest, now: int) -> list[TargetChange]:
    limit_ms = request.step_timeout_s * 1000
    return [
        TargetChange(
            t.job_id,
            t.gateway_id,
            TargetState.REVERT_FAILED if t.state == TargetState.REVERTING else TargetState.FAILED,
            f"no outcome within {request.step_timeout_s} s of sending (last: {t.state})",
        )
        for t in targets
        if TargetState(t.state) in BUSY and now - (t.sent_ms or t.changed_ms) > limit_ms
    ]


def _abort_reason(request: JobRequest, targets: Sequence[JobTargetRow]) -> str | None:
    policy = request.abort
    failed = sum(1 for t in targets if TargetState(t.state) in FAILURES)
    finished = sum(1 for t in targets if TargetState(t.state) in FINAL and t.state != TargetState.SKIPPED)
    if policy.failures is not None and failed >= policy.failures:
        return f"{failed} gateways failed (abort.failures {policy.failures})"
    share = policy.failure_share
    if share is not None and finished >= policy.min_finished and failed / finished >= share:
        return f"{failed} of {finished} finished gateways failed (abort.failure_share {share:g})"
    return None
