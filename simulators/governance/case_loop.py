"""Drives each new case through the platform's loop and tells the fleet at every step.

For every case it opens, the platform waits ``dispatch_after_s`` and assigns it to the grid officer
of the alert's grid (a village duty officer when it has none), waits ``resolve_after_s`` and
resolves it, waits ``feedback_after_s`` and records the reporter's rating, waits ``close_after_s``
and closes it as completed. Each step is a callback sent to the fleet; a case's callbacks go out
one at a time, in sequence order (unless a ``reorder`` fault says otherwise), and the next delay
starts once the previous callback was taken or refused, as an officer acts on a case they were told
about. A withdrawal from the fleet stops the case's loop and sends ``closed``/``withdrawn`` after
whatever callback is in flight.
"""

import asyncio
import contextlib
import logging
import zlib
from dataclasses import dataclass
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from protocol.governance import Assignee, CaseCallback, CaseClosed, CaseEvent, CloseReason
from simulators.governance.callbacks import CallbackSender
from simulators.governance.faults import CallbackFaultKind, Faults
from simulators.governance.recorder import CaseLedger, CaseTransitionError, RecordedCase

logger = logging.getLogger(__name__)

_OFFICER_NAMES: Final = (
    "Li Wei",
    "Wang Fang",
    "Zhang Min",
    "Liu Yang",
    "Chen Jing",
    "Yang Tao",
    "Zhao Lei",
    "Huang Li",
)


class CaseLoopSettings(BaseModel):
    """How the platform's staff work a case; every delay is in seconds, counted from the step before."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dispatch_after_s: float = Field(default=1.0, ge=0)
    resolve_after_s: float = Field(default=2.0, ge=0)
    feedback_after_s: float = Field(default=1.0, ge=0)
    close_after_s: float = Field(default=0.0, ge=0)
    rating: int = Field(default=5, ge=1, le=5)
    comment: str = Field(default="handled promptly, thank you", max_length=256)
    callback_timeout_s: float = Field(default=5.0, gt=0)
    retry_base_s: float = Field(default=0.5, gt=0)
    retry_cap_s: float = Field(default=30.0, gt=0)
    max_attempts: int | None = Field(default=None, ge=1, description="Per callback; None retries until stopped.")


def officer_for(case: RecordedCase) -> Assignee:
    """The grid officer on duty for the case's grid (the same officer every time, so tests can predict it)."""
    request = case.request
    grid = request.grid_id
    name = _OFFICER_NAMES[zlib.crc32(f"{request.village_id}/{grid}".encode()) % len(_OFFICER_NAMES)]
    officer_id = f"{request.village_id}-{grid or 'duty'}-officer"[:64]
    return Assignee(officer_id=officer_id, name=name, grid_id=grid)


@dataclass(slots=True)
class _Drive:
    """One case's loop: its task, a withdrawal waiting to be sent, a callback held back by ``reorder``."""

    task: "asyncio.Task[None] | None" = None
    withdrawn: CaseClosed | None = None
    wake: asyncio.Event | None = None
    held: CaseCallback | None = None


class CaseLoop:
    """Runs one task per open case; :meth:`stop` cancels them (unsent callbacks count as abandoned)."""

    def __init__(self, ledger: CaseLedger, sender: CallbackSender, faults: Faults, settings: CaseLoopSettings) -> None:
        self._ledger = ledger
        self._sender = sender
        self._faults = faults
        self.settings = settings
        self._drives: dict[str, _Drive] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def sender(self) -> CallbackSender:
        return self._sender

    def opened(self, case: RecordedCase) -> None:
        """A new case: start its loop."""
        drive = _Drive(wake=asyncio.Event())
        self._drives[case.case_id] = drive
        self._idle.clear()
        drive.task = asyncio.create_task(self._run(case, drive), name=f"case-loop-{case.case_id}")

    def withdrawn(self, closed: CaseClosed) -> None:
        """The fleet withdrew the case and the ledger closed it: send ``closed`` after anything in flight."""
        drive = self._drives.get(closed.case_id)
        if drive is None or drive.task is None or drive.task.done():
            self._drives[closed.case_id] = drive = _Drive(wake=asyncio.Event(), withdrawn=closed)
            self._idle.clear()
            drive.task = asyncio.create_task(self._send_withdrawal(drive), name=f"case-withdrawn-{closed.case_id}")
            return
        drive.withdrawn = closed
        assert drive.wake is not None
        drive.wake.set()

    async def settled(self) -> None:
        """Return once every case's loop has finished (all its callbacks taken, refused or abandoned)."""
        await self._idle.wait()

    async def stop(self) -> None:
        tasks = [d.task for d in self._drives.values() if d.task is not None and not d.task.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, case: RecordedCase, drive: _Drive) -> None:
        settings = self.settings
        assignee = officer_for(case)
        steps = (
            (settings.dispatch_after_s, lambda: self._ledger.dispatch(case.case_id, assignee)),
            (settings.resolve_after_s, lambda: self._ledger.resolve(case.case_id, _resolution_note(case, assignee))),
            (settings.feedback_after_s, lambda: self._ledger.rate(case.case_id, settings.rating, settings.comment)),
            (settings.close_after_s, lambda: self._ledger.close(case.case_id, CloseReason.COMPLETED)),
        )
        try:
            for delay_s, step in steps:
                if await self._withdrawn_within(drive, delay_s):
                    break
                try:
                    callback: CaseCallback = step()
                except CaseTransitionError as exc:  # closed by a withdrawal between our checks
                    logger.info("%s stops: %s", case.case_id, exc)
                    break
                await self._emit(drive, callback)
            await self._send_withdrawal(drive)
        finally:
            self._finished()

    async def _send_withdrawal(self, drive: _Drive) -> None:
        try:
            if drive.withdrawn is not None:
                closed, drive.withdrawn = drive.withdrawn, None
                await self._emit(drive, closed)
            if drive.held is not None:
                held, drive.held = drive.held, None
                await self._send(held)
        finally:
            self._finished()

    def _finished(self) -> None:
        current = asyncio.current_task()
        running = [
            d for d in self._drives.values() if d.task is not None and d.task is not current and not d.task.done()
        ]
        if not running:
            self._idle.set()

    async def _withdrawn_within(self, drive: _Drive, delay_s: float) -> bool:
        assert drive.wake is not None
        if drive.withdrawn is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(drive.wake.wait(), delay_s)
        return drive.withdrawn is not None

    async def _emit(self, drive: _Drive, callback: CaseCallback) -> None:
        """Send ``callback``, or hold it back for a ``reorder`` fault and send it after the next one."""
        holdable = drive.held is None and callback.event is not CaseEvent.CLOSED
        if holdable and self._faults.take_callback_fault(CallbackFaultKind.REORDER):
            logger.info("holding back %s of %s (reorder fault)", callback.event, callback.case_id)
            drive.held = callback
            return
        if drive.held is None:
            await self._send(callback)
            return
        held, drive.held = drive.held, None
        await self._send_ahead_of(callback, held)

    async def _send_ahead_of(self, callback: CaseCallback, held: CaseCallback) -> None:
        """Send ``callback``, then ``held`` as soon as ``callback``'s first attempt was answered, not once it was
        taken: a fleet that takes callbacks only in order answers the first one "too early" (503) until ``held``
        arrives, so waiting for it to be taken would wait for ever."""
        tried = asyncio.Event()
        ahead = asyncio.create_task(self._send(callback, tried=tried), name=f"case-callback-{callback.callback_id}")
        first_answer = asyncio.create_task(tried.wait())
        try:
            await asyncio.wait({ahead, first_answer}, return_when=asyncio.FIRST_COMPLETED)
            await self._send(held)
            await ahead
        except asyncio.CancelledError:
            ahead.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ahead
            raise
        finally:
            first_answer.cancel()

    async def _send(self, callback: CaseCallback, *, tried: asyncio.Event | None = None) -> None:
        delivery = await self._sender.deliver(callback, tried=tried)
        if self._faults.take_callback_fault(CallbackFaultKind.DUPLICATE):
            logger.info(
                "sending %s of %s again (duplicate fault, first %s)", callback.event, callback.case_id, delivery.outcome
            )
            await self._sender.deliver(callback, repeat=True)


def _resolution_note(case: RecordedCase, assignee: Assignee) -> str:
    place = case.request.village_id + (f"/{case.request.grid_id}" if case.request.grid_id else "")
    return f"{assignee.name} attended the {case.request.kind} alert at {place} and resolved it"[:256]
