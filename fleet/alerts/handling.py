"""What people do to alerts: acknowledge, note, cancel, resolve.

Each step is checked against the lifecycle (:func:`fleet.alerts.lifecycle.after`; an illegal one is a
409 naming the states it is allowed from) and written in one transaction with its transition (who, when,
why) and its audit entry. Taking an alert on stops its escalation; the escalator is woken so its next
deadline is the right one.
"""

import logging
from collections.abc import Callable
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.access.audit import Change, record, snapshot
from fleet.access.roles import Actor
from fleet.alerts.history import NOTE, record_step, transition_of
from fleet.alerts.lifecycle import Step, after, escalates
from fleet.alerts.outbox import Outbox
from fleet.db.engine import database_errors
from fleet.db.schema import AlertRow, AlertTransitionRow
from fleet.errors import InvalidRequestError, NotFoundError
from protocol.notifications import AlertState

logger = logging.getLogger(__name__)

STAFF_STEPS: Final = frozenset({Step.ACKNOWLEDGE, Step.CANCEL, Step.RESOLVE})
"""Steps people take through the API; dispatch and close come from the governance platform."""


class AlertHandling:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], int],
        on_taken_on: Callable[[], None] = lambda: None,
        *,
        outbox: Outbox | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._on_taken_on = on_taken_on
        self._outbox = outbox or Outbox()

    async def take(self, actor: Actor, alert_id: str, step: Step, reason: str | None = None) -> AlertRow:
        """``actor`` takes ``step`` on the alert (a reason is required to cancel); the alert as it is now."""
        if step not in STAFF_STEPS:
            raise InvalidRequestError(f"{step} comes from the governance platform, not from a person")
        if step is Step.CANCEL and not reason:
            raise InvalidRequestError("cancelling an alert needs the reason (e.g. why it was a false alarm)")
        now = self._clock()
        with database_errors(f"{step} alert {alert_id}"):
            async with self._sessions.begin() as session:
                row = await self._alert(session, alert_id)
                before = snapshot(row)
                state = after(AlertState(row.state), step)
                await record_step(session, self._outbox, row, step, state, actor.name, reason, now)
                row.state, row.state_changed_ms = state, now
                if step is Step.ACKNOWLEDGE:
                    row.acknowledged_by = actor.name
                if not escalates(state):
                    row.escalate_at_ms = None
                record(session, actor, Change(f"alert.{step}", "alert", alert_id, before, snapshot(row)), now)
        logger.info("%s: alert %s %s by %s%s", step, alert_id, state, actor.name, f" ({reason})" if reason else "")
        self._on_taken_on()
        return row

    async def note(self, actor: Actor, alert_id: str, text: str) -> AlertTransitionRow:
        """Add ``actor``'s note to the alert's history; its state does not change."""
        now = self._clock()
        with database_errors(f"note on alert {alert_id}"):
            async with self._sessions.begin() as session:
                row = await self._alert(session, alert_id)
                note = transition_of(row, NOTE, AlertState(row.state), actor.name, text, now)
                session.add(note)
                record(session, actor, Change("alert.note", "alert", alert_id, None, {"note": text}), now)
        return note

    async def history(self, alert_id: str) -> list[AlertTransitionRow]:
        """Every step and note of the alert, oldest first."""
        query = select(AlertTransitionRow).where(AlertTransitionRow.alert_id == alert_id)
        with database_errors(f"read the history of alert {alert_id}"):
            async with self._sessions() as session:
                await self._alert(session, alert_id)
                return list((await session.scalars(query.order_by(AlertTransitionRow.id))).all())

    @staticmethod
    async def _alert(session: AsyncSession, alert_id: str) -> AlertRow:
        row = await session.get(AlertRow, alert_id)
        if row is None:
            raise NotFoundError(f"no alert {alert_id!r}")
        return row
