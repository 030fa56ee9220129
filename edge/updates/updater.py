"""Agent updates on the gateway, from the fleet's ``update_agent`` command to the health gate of the new agent.

An update runs in the background of the agent, its state always in :attr:`AgentUpdater.report` (sent in every
heartbeat, and at once on each change):

1. ``deferred`` while a siren sounds or a critical alert is fresh (at most ``defer_max_s``): the village's alarm
   comes first;
2. ``downloading`` the release from the fleet (edge.updates.download), resumable, trusted only if the release key
   signed it; ``verifying`` every file again; ``installing`` it into the slot that is not running;
3. the trial is written, ``current`` switched to the new slot, and the agent restarts (systemd starts the new one);
4. the new agent, finding itself on trial, reports ``health_check`` and runs its health gate
   (edge.updates.health_gate): passed, the update ``succeeded``; failed, it points ``current`` back at the
   previous slot, records ``rolled_back`` with the reason and restarts into the old agent, which reports it.
   A new agent that cannot start at all, or hangs, is rolled back by the guard (``outpost-update-guard``).

Anything that fails before the switch leaves the running agent as it was: ``failed``, with the reason.
"""

import asyncio
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from edge.errors import UpdateError
from edge.settings import UpdateSettings
from edge.updates.download import DownloadProgress, FleetEndpoint, ReleaseDownload
from edge.updates.health_gate import GateSignals, health_gate
from edge.updates.install import install_release
from edge.updates.slots import SlotLayout
from edge.updates.trial import Trial, TrialFiles
from protocol.config_signing import load_private_key, load_public_keys
from protocol.errors import ReleaseError
from protocol.identifiers import is_identifier
from protocol.releases import RELEASE_FILE, SignedRelease, check_files
from protocol.updates import RELEASE_VERSION_RE, ReleaseKind, UpdateReport, UpdateState

logger = logging.getLogger(__name__)

DEFER_POLL_S: Final = 5.0
GUARD_MARGIN_S: Final = 30.0
"""The agent's health gate ends this long before the trial's deadline, when the guard's timer takes over."""
DOWNLOADS: Final = "releases"
"""Under the state directory: releases being downloaded or installed (one directory per version)."""


class AgentUpdater:
    def __init__(
        self,
        settings: UpdateSettings,
        gateway_id: str,
        state_dir: Path,
        current_version: str,
        *,
        alarm: Callable[[], str | None],
        on_report: Callable[[UpdateReport], None],
        request_restart: Callable[[], None],
        clock: Callable[[], int],
    ) -> None:
        self.settings = settings
        self.layout = SlotLayout(settings.root)
        self.files = TrialFiles(self.layout)
        self._gateway_id = gateway_id
        self._downloads = state_dir / DOWNLOADS
        self._current_version = current_version
        self._alarm = alarm
        self._on_report = on_report
        self._request_restart = request_restart
        self._clock = clock
        self.report: UpdateReport | None = None
        self._task: asyncio.Task[None] | None = None

    # --- at start: on trial, or reporting how the last update ended -----------------------------

    def trial_here(self) -> Trial | None:
        """The update this agent is on trial for, if it is the new agent of one (else None), and what the last
        update's outcome was is loaded into :attr:`report`."""
        try:
            trial = self.files.trial()
            if trial is not None and self.layout.running_here() and self.layout.target() == trial.slot:
                self._set(UpdateState.HEALTH_CHECK, trial.version, trial.job_id or None)
                return trial
            outcome = self.files.outcome()
            if outcome is not None and not outcome.state.final and trial is None:
                # The agent stopped in the middle of it (a kill, a power cut, a restart): nothing was switched.
                why = f"interrupted while {outcome.state} (the agent restarted); ask again to resume it"
                outcome = self._set(UpdateState.FAILED, outcome.version, outcome.job_id, why)
                self.files.record(outcome)
            self.report = outcome
        except (UpdateError, OSError) as exc:
            logger.error("cannot read the state of the last update: %s", exc)
        return None

    async def prove(self, trial: Trial, signals: GateSignals) -> None:
        """Run the health gate of the agent on trial: keep it (succeeded) or roll back and restart. The gate ends
        :data:`GUARD_MARGIN_S` before the trial's deadline, so the agent and the guard never both decide."""
        remaining_s = trial.deadline_s - self._clock() / 1000 - GUARD_MARGIN_S
        why = await health_gate(signals, min(self.settings.gate_s, remaining_s)) if remaining_s > 0 else "no time left"
        job = trial.job_id or None
        if why is None:
            if not await asyncio.to_thread(self._still_on, trial):
                logger.error("agent %s passed its gate after the guard had rolled it back", trial.version)
                return
            report = self._report(UpdateState.SUCCEEDED, trial.version, job)
            await asyncio.to_thread(self.files.finish, report)  # saved first, then told
            self._publish(report)
            logger.info("agent %s passed its health gate: the update is done", trial.version)
            return
        reason = f"the new agent {trial.version} failed its health gate: {why}"
        logger.error("%s; rolling back to %s", reason, trial.previous_version or trial.previous)
        report = self._report(UpdateState.ROLLED_BACK, trial.version, job, reason)
        await asyncio.to_thread(self.files.record, report)  # first: a power cut after the switch keeps the reason
        await asyncio.to_thread(self.layout.switch, trial.previous)
        await asyncio.to_thread(self.files.finish, report)
        self._publish(report)
        await self._when_quiet(trial.version, job, restarting=True)
        self._request_restart()

    def _still_on(self, trial: Trial) -> bool:
        """Whether ``trial`` is still this agent's (the guard has not ended it)."""
        return self.files.trial() is not None and self.layout.target() == trial.slot

    # --- an update asked for --------------------------------------------------------------------

    def start(self, version: str, job_id: str | None) -> str | None:
        """Begin updating to ``version`` in the background; why not (a refusal for the command's answer), or None."""
        refusal = self._refusal(version, job_id)
        if refusal is not None:
            return refusal
        if self._task is not None and not self._task.done():
            return None  # asked again for the update under way (a job re-sending): that is the answer
        if version == self._current_version:
            self._set(UpdateState.SUCCEEDED, version, job_id, f"agent {version} runs already")
        else:
            self._task = asyncio.get_running_loop().create_task(self._update(version, job_id), name="agent-update")
        return None

    def _refusal(self, version: str, job_id: str | None) -> str | None:
        if not RELEASE_VERSION_RE.fullmatch(version):
            return f"{version!r} is not a release version"
        if job_id is not None and not is_identifier(job_id):
            return f"{job_id!r} is not a job id"
        if not self.layout.running_here():
            return f"this agent does not run from {self.layout.current}: updates need the two slots (docs/UPDATES.md)"
        report = self.report
        busy = self._task is not None and not self._task.done()
        if busy and report is not None and (report.version, report.job_id) != (version, job_id):
            return f"an update to {report.version} is under way"
        if not busy and self.files.trial_path.exists():
            return "an update is on trial: wait for its health gate"
        return None

    async def _update(self, version: str, job_id: str | None) -> None:
        try:
            await self._when_quiet(version, job_id)
            into = self._downloads / version
            await asyncio.to_thread(_keep_only, self._downloads, version)
            await asyncio.to_thread(self.files.record, self._set(UpdateState.DOWNLOADING, version, job_id))
            release = await self._download(version, into)
            self._set(UpdateState.VERIFYING, version, job_id)
            await asyncio.to_thread(_only_the_release, into, release)
            self._set(UpdateState.INSTALLING, version, job_id)
            slot = self.layout.inactive()
            await install_release(into, release.manifest, self.layout.slot(slot))
            await self._when_quiet(version, job_id)  # an alarm during the install: the switch waits for it too
            await asyncio.to_thread(self._switch, f"slots/{slot}", version, job_id)
        except Exception as exc:  # the top of the update's task: whatever it was, the update failed, saying why
            reason = str(exc) if isinstance(exc, UpdateError | ReleaseError) else f"{type(exc).__name__}: {exc}"
            report = self._set(UpdateState.FAILED, version, job_id, reason)
            logger.error("update to agent %s failed: %s", version, reason, exc_info=not isinstance(exc, UpdateError))
            try:
                await asyncio.to_thread(self.files.record, report)
            except (UpdateError, OSError) as record_error:
                logger.error("cannot record the failed update: %s", record_error)
            return
        logger.warning("agent %s installed; restarting into it (health gate %.0f s)", version, self.settings.gate_s)
        await self._when_quiet(version, job_id, restarting=True)
        self._request_restart()

    async def _when_quiet(self, version: str, job_id: str | None, *, restarting: bool = False) -> None:
        """Wait while the village is in alarm. Before the update: at most ``defer_max_s``, then it fails. Before a
        restart that is already decided (a switch or a rollback made): at most ``defer_max_s``, then it restarts."""
        waited_from = time.monotonic()
        while (why := self._alarm()) is not None:
            if time.monotonic() - waited_from > self.settings.defer_max_s:
                if restarting:
                    logger.error("restarting for agent %s although %s: waited %.0f s", version, why,
                                 self.settings.defer_max_s)  # fmt: skip
                    return
                raise UpdateError(f"put off for {self.settings.defer_max_s:.0f} s and still {why}")
            if not restarting and (self.report is None or self.report.state is not UpdateState.DEFERRED):
                logger.warning("update to agent %s deferred: %s", version, why)
                self._set(UpdateState.DEFERRED, version, job_id, why)
            await asyncio.sleep(DEFER_POLL_S)

    async def _download(self, version: str, into: Path) -> SignedRelease:
        settings = self.settings
        identity = load_private_key(await asyncio.to_thread(settings.identity_key.read_bytes))
        trusted = load_public_keys(await asyncio.to_thread(settings.release_keys.read_bytes))
        endpoint = FleetEndpoint(str(settings.fleet_url), self._gateway_id, identity, settings.fleet_ca)
        last_percent = -1

        def progress(done: DownloadProgress) -> None:
            nonlocal last_percent
            percent = done.bytes_done * 100 // max(1, done.bytes_total)
            if percent // 10 != last_percent // 10:
                logger.info("agent %s: %d%% downloaded (%d of %d files)", version, percent, done.files_done,
                            done.files_total)  # fmt: skip
                last_percent = percent

        return await ReleaseDownload(endpoint, trusted).fetch(ReleaseKind.AGENT, version, into, progress)

    def _switch(self, slot: str, version: str, job_id: str | None) -> None:
        previous = self.layout.target() or "venv"
        trial = Trial(
            slot=slot,
            previous=previous,
            version=version,
            previous_version=self._current_version,
            job_id=job_id or "",
            deadline_s=int(self._clock() / 1000 + self.settings.gate_s * (self.settings.max_boots + 1)),
            max_boots=self.settings.max_boots,
        )
        self.files.begin(trial)  # first: the guard must know before current changes
        self.layout.switch(slot)

    def _report(self, state: UpdateState, version: str, job_id: str | None, reason: str | None = None) -> UpdateReport:
        return UpdateReport(
            job_id=job_id,
            kind=ReleaseKind.AGENT,
            version=version,
            state=state,
            reason=reason[:256] if reason else None,
            changed_ms=self._clock(),
        )

    def _publish(self, report: UpdateReport) -> None:
        self.report = report
        self._on_report(report)

    def _set(self, state: UpdateState, version: str, job_id: str | None, reason: str | None = None) -> UpdateReport:
        report = self._report(state, version, job_id, reason)
        self._publish(report)
        return report

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def _keep_only(downloads: Path, version: str) -> None:
    """Remove every release downloaded before but ``version`` (which a new attempt resumes)."""
    if not downloads.is_dir():
        return
    for entry in downloads.iterdir():
        if entry.name != version:
            shutil.rmtree(entry, ignore_errors=True)


def _only_the_release(into: Path, release: SignedRelease) -> None:
    """Check every file of the release again, and remove anything else from its directory (pip must see only what
    the release key signed: no leftover of an earlier attempt)."""
    listed = {RELEASE_FILE, *(file.path for file in release.manifest.files)}
    for path in sorted(into.rglob("*"), reverse=True):
        relative = path.relative_to(into).as_posix()
        if path.is_file() and relative not in listed:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    check_files(into, release.manifest)
