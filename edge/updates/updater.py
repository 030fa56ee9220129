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
from protocol.errors import ReleaseError, SigningKeyError
from protocol.releases import SignedRelease, check_files
from protocol.updates import RELEASE_VERSION_RE, ReleaseKind, UpdateReport, UpdateState

logger = logging.getLogger(__name__)

DEFER_POLL_S: Final = 5.0
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
            self.report = self.files.outcome()
        except (UpdateError, OSError) as exc:
            logger.error("cannot read the state of the last update: %s", exc)
        return None

    async def prove(self, trial: Trial, signals: GateSignals) -> None:
        """Run the health gate of the agent on trial: keep it (succeeded) or roll back and restart."""
        remaining_s = max(10.0, trial.deadline_s - self._clock() / 1000)
        why = await health_gate(signals, min(self.settings.gate_s, remaining_s))
        job = trial.job_id or None
        if why is None:
            report = self._set(UpdateState.SUCCEEDED, trial.version, job)
            await asyncio.to_thread(self.files.finish, report)
            logger.info("agent %s passed its health gate: the update is done", trial.version)
            return
        reason = f"the new agent {trial.version} failed its health gate: {why}"
        logger.error("%s; rolling back to %s", reason, trial.previous_version or trial.previous)
        report = self._set(UpdateState.ROLLED_BACK, trial.version, job, reason)
        await asyncio.to_thread(self.files.record, report)  # first: a power cut after the switch keeps the reason
        await asyncio.to_thread(self.layout.switch, trial.previous)
        await asyncio.to_thread(self.files.finish, report)
        self._request_restart()

    # --- an update asked for --------------------------------------------------------------------

    def start(self, version: str, job_id: str | None) -> str | None:
        """Begin updating to ``version`` in the background; why not (a refusal for the command's answer), or None."""
        if not RELEASE_VERSION_RE.fullmatch(version):
            return f"{version!r} is not a release version"
        if self._task is not None and not self._task.done():
            running = self.report.version if self.report is not None else "?"
            return f"an update to {running} is under way"
        if self.files.trial_path.exists():
            return "an update is on trial: wait for its health gate"
        if version == self._current_version:
            self._set(UpdateState.SUCCEEDED, version, job_id, f"agent {version} runs already")
            return None
        self._task = asyncio.get_running_loop().create_task(self._update(version, job_id), name="agent-update")
        return None

    async def _update(self, version: str, job_id: str | None) -> None:
        try:
            await self._when_quiet(version, job_id)
            into = self._downloads / version
            self._set(UpdateState.DOWNLOADING, version, job_id)
            release = await self._download(version, into)
            self._set(UpdateState.VERIFYING, version, job_id)
            await asyncio.to_thread(check_files, into, release.manifest)
            self._set(UpdateState.INSTALLING, version, job_id)
            slot = self.layout.inactive()
            await install_release(into, release.manifest, self.layout.slot(slot))
            await self._when_quiet(version, job_id)  # an alarm during the install: the switch waits for it too
            await asyncio.to_thread(self._switch, f"slots/{slot}", version, job_id)
        except (UpdateError, ReleaseError, SigningKeyError, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}" if isinstance(exc, OSError) else str(exc)
            report = self._set(UpdateState.FAILED, version, job_id, reason)
            logger.error("update to agent %s failed: %s", version, reason)
            try:
                await asyncio.to_thread(self.files.record, report)
            except (UpdateError, OSError) as record_error:
                logger.error("cannot record the failed update: %s", record_error)
            return
        logger.warning("agent %s installed; restarting into it (health gate %.0f s)", version, self.settings.gate_s)
        self._request_restart()

    async def _when_quiet(self, version: str, job_id: str | None) -> None:
        waited_from = time.monotonic()
        while (why := self._alarm()) is not None:
            if time.monotonic() - waited_from > self.settings.defer_max_s:
                raise UpdateError(f"put off for {self.settings.defer_max_s:.0f} s and still {why}")
            if self.report is None or self.report.state is not UpdateState.DEFERRED:
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

    def _set(self, state: UpdateState, version: str, job_id: str | None, reason: str | None = None) -> UpdateReport:
        report = UpdateReport(
            job_id=job_id,
            kind=ReleaseKind.AGENT,
            version=version,
            state=state,
            reason=reason[:256] if reason else None,
            changed_ms=self._clock(),
        )
        self.report = report
        self._on_report(report)
        return report

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
