"""The governance platform's status callbacks, moving alerts through their lifecycle.

Each callback is applied in one transaction with its record (``governance_callbacks``, keyed by its
``callback_id``) and the alert's transition (actor ``platform``):

- ``dispatched`` → the dispatch step, with the assignee; ``resolved`` → the resolve step, with the
  officer's note; ``feedback`` → the rating and comment on the resolved alert; ``closed`` (completed) →
  the close step. ``closed`` (withdrawn) answers the fleet's own withdrawal and is only noted.
- **Repeats**: a ``callback_id`` already taken is answered as before and changes nothing; so is a
  callback older than the last one taken for the case (``sequence`` at or below the alert's
  ``case_sequence``).
- **Order**: a callback that skips one (``sequence`` more than one past the last taken) is answered
  :class:`CallbackTooEarly` (503): the platform retries it, and by then the one before has arrived.
  Answering it with a 4xx would lose it, as the platform never resends those.
- **Refusals**: a callback for an alert or case the fleet does not know is
  :class:`~fleet.errors.NotFoundError` (404); one for an alert whose case the fleet has not recorded yet
  (its delivery's answer is still on the way) is too early (503). One the alert's state does not
  allow (a dispatch after staff cancelled the alert) is recorded as refused, noted in the alert's
  history, advances the case's sequence (so later callbacks are not held behind it) and is answered
  :class:`~fleet.errors.IllegalTransitionError` (409).
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.alerts.history import NOTE, record_step, transition_of
from fleet.alerts.lifecycle import Step, after
from fleet.alerts.outbox import Outbox
from fleet.db.engine import database_errors
from fleet.db.schema import AlertRow, GovernanceCallbackRow
from fleet.errors import IllegalTransitionError, NotFoundError, TransientError
from protocol.governance import (
    CaseCallback,
    CaseClosed,
    CaseDispatched,
    CaseFeedback,
    CaseResolved,
    CloseReason,
)
from protocol.notifications import AlertState

logger = logging.getLogger(__name__)

PLATFORM_ACTOR: Final = "platform"


class Outcome(StrEnum):
    APPLIED = "applied"
    REFUSED = "refused"
    STALE = "stale"  # older than what was taken already


class CallbackTooEarly(TransientError):
    """A callback arrived before one that comes before it: the platform is to send it again later."""


@dataclass(frozen=True, slots=True)
class Taken:
    """What became of a callback, and whether it was a repeat of one taken before."""

    outcome: Outcome
    repeat: bool
    state: AlertState


class CaseCallbacks:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], int],
        on_changed: Callable[[], None] = lambda: None,
        *,
        outbox: Outbox | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._on_changed = on_changed
        self._outbox = outbox or Outbox()

    async def take(self, callback: CaseCallback) -> Taken:
        """Apply ``callback`` (see the module); raises 404, 409 or :class:`CallbackTooEarly` as it says."""
        now = self._clock()
        with database_errors(f"take callback {callback.callback_id} for case {callback.case_id}"):
            async with self._sessions.begin() as session:
                row = await session.get(AlertRow, str(callback.alert_id))
                if row is None:
                    raise NotFoundError(f"no alert {callback.alert_id} (case {callback.case_id})")
                if row.case_id is None:  # the case was opened, the fleet has not recorded it yet
                    raise CallbackTooEarly(f"alert {row.id}'s case {callback.case_id} is not recorded yet")
                if row.case_id != callback.case_id:
                    raise NotFoundError(f"alert {row.id} has case {row.case_id}, not {callback.case_id}")
                seen = await session.get(GovernanceCallbackRow, str(callback.callback_id))
                if seen is not None:
                    return Taken(Outcome(seen.outcome), repeat=True, state=AlertState(row.state))
                if callback.sequence <= row.case_sequence:
                    self._record(session, callback, Outcome.STALE, f"after {row.case_sequence}", now)
                    return Taken(Outcome.STALE, repeat=False, state=AlertState(row.state))
                if callback.sequence > row.case_sequence + 1:
                    raise CallbackTooEarly(
                        f"callback {callback.sequence} of case {callback.case_id} before {row.case_sequence + 1}"
                    )
                row.case_sequence = callback.sequence
                refusal = await self._apply(session, row, callback, now)
                self._record(session, callback, Outcome.REFUSED if refusal else Outcome.APPLIED, refusal, now)
        if refusal is not None:
            logger.warning("callback %s for alert %s refused: %s", callback.event, row.id, refusal)
            raise IllegalTransitionError(refusal)
        logger.info("alert %s is %s (platform: %s)", row.id, row.state, callback.event)
        self._on_changed()
        return Taken(Outcome.APPLIED, repeat=False, state=AlertState(row.state))

    async def _apply(self, session: AsyncSession, row: AlertRow, callback: CaseCallback, now: int) -> str | None:
        """Change the alert as ``callback`` says; the reason it may not, noted in its history, else None."""
        match callback:
            case CaseDispatched(assignee=assignee):
                step: Step | None = Step.DISPATCH
                grid = f", grid {assignee.grid_id}" if assignee.grid_id else ""
                why = f"dispatched to {assignee.name} ({assignee.officer_id}{grid})"
            case CaseResolved(note=note):
                step, why = Step.RESOLVE, note or "resolved by the platform"
            case CaseFeedback(rating=rating, comment=comment):
                step, why = None, f"feedback {rating}/5" + (f": {comment}" if comment else "")
            case CaseClosed(reason=reason):
                step = Step.CLOSE if reason is CloseReason.COMPLETED else None
                why = f"case closed ({reason})"
        try:
            state = after(AlertState(row.state), step) if step is not None else AlertState(row.state)
        except IllegalTransitionError as exc:
            refusal = f"the platform's {callback.event} ({why}) does not fit: {exc}"
            session.add(transition_of(row, NOTE, row.state, PLATFORM_ACTOR, refusal[:512], now))
            return refusal
        if step is None:
            session.add(transition_of(row, NOTE, state, PLATFORM_ACTOR, why, now))
        else:
            await record_step(session, self._outbox, row, step, state, PLATFORM_ACTOR, why, now)
        if isinstance(callback, CaseDispatched):
            row.assignee = why.removeprefix("dispatched to ")[:128]
            row.escalate_at_ms = None
        if isinstance(callback, CaseFeedback):
            row.feedback_rating, row.feedback_comment = callback.rating, callback.comment or None
        if state != row.state:
            row.state, row.state_changed_ms = state, now
        return None

    @staticmethod
    def _record(session: AsyncSession, callback: CaseCallback, outcome: Outcome, detail: str | None, now: int) -> None:
        session.add(
            GovernanceCallbackRow(
                callback_id=str(callback.callback_id),
                alert_id=str(callback.alert_id),
                case_id=callback.case_id,
                sequence=callback.sequence,
                event=callback.event,
                outcome=outcome,
                detail=detail[:512] if detail else None,
                sent_at_ms=callback.sent_at,
                received_at_ms=now,
            )
        )
