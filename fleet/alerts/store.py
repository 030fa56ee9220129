"""Stores alerts with their delivery state: the alert row is the outbox of its case.

An alert is written once (its event id is the primary key, so a redelivered message is a no-op)
in state ``pending``; the delivery worker moves it to ``delivered`` with the platform's case id,
or to ``dead`` after the configured number of attempts.

In the same transaction the alert enters its lifecycle (:mod:`fleet.alerts.lifecycle`): ``raised`` at
the village level, its first escalation deadline set (:class:`~fleet.alerts.deadlines.EscalationPolicy`)
and a ``raise`` transition recorded. :meth:`AlertStore.escalate_due` is the escalator's one query.
"""

import logging
from collections.abc import Callable
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.alerts.correlation import CLEARED_BY, condition_key
from fleet.alerts.deadlines import EscalationPolicy
from fleet.alerts.filters import AlertFilter
from fleet.alerts.lifecycle import AlertState, Level, Step, after, allowed_steps, next_level
from fleet.db.engine import database_errors
from fleet.db.schema import AlertRepeatRow, AlertRow, AlertTransitionRow, DeliveryState
from fleet.errors import DataIntegrityError
from protocol.messages import Alert, DeviceEvent, Severity

ESCALATE: Final = "escalate"
RAISE: Final = "raise"
NOTE: Final = "note"
FLEET_ACTOR: Final = "fleet"
_DEDUPLICATED: Final = frozenset({AlertState.RAISED, AlertState.ACKNOWLEDGED, AlertState.DISPATCHED})
"""An alert in these states takes its condition's repeats; after it, a new alert opens a new case."""
_NEWEST: Final = AlertFilter()
"""No filter: the newest alerts."""
_CLEARABLE: Final = frozenset(state for state in AlertState if Step.CLEAR in allowed_steps(state))

logger = logging.getLogger(__name__)


def transition_of(
    row: AlertRow, step: str, to_state: str, actor: str, reason: str | None, at_ms: int
) -> AlertTransitionRow:
    """The record of ``row`` taking ``step`` (or a note) from its current state and level."""
    return AlertTransitionRow(
        alert_id=row.id,
        step=step,
        from_state=row.state,
        to_state=to_state,
        level=row.level,
        actor=actor,
        reason=reason,
        at_ms=at_ms,
    )


class AlertStore:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], int],
        escalation: EscalationPolicy,
        *,
        clear_hold_s: float = 60.0,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._escalation = escalation
        self._clear_hold_ms = round(clear_hold_s * 1000)

    async def record(self, village_id: str, alert: Alert) -> bool:
        """Store a new alert as pending delivery; False when it opens no new case: this alert id was stored
        before, or its condition already has an open alert, which counts the repeat instead."""
        now = self._clock()
        key = condition_key(alert.gateway_id, alert.device_id, alert.kind)
        try:
            with database_errors(f"store alert {alert.event_id}"):
                async with self._sessions.begin() as session:
                    event_id = str(alert.event_id)
                    stored = await session.get(AlertRow, event_id) is not None
                    if stored or await session.get(AlertRepeatRow, event_id) is not None:
                        logger.debug("alert %s already stored", alert.event_id)
                        return False
                    open_alert = await session.scalar(
                        select(AlertRow)
                        .where(AlertRow.condition_key == key, AlertRow.state.in_(_DEDUPLICATED))
                        .order_by(AlertRow.raised_at_ms.desc())
                        .limit(1)
                    )
                    if open_alert is not None:
                        open_alert.occurrences += 1
                        open_alert.last_seen_ms = max(open_alert.last_seen_ms, alert.ts)
                        open_alert.clear_at_ms = None  # back before its clear: flapping, one alert
                        session.add(
                            AlertRepeatRow(
                                event_id=event_id, alert_id=open_alert.id, raised_at_ms=alert.ts, received_at_ms=now
                            )
                        )
                        logger.info(
                            "alert %s repeats %s (%d times)", alert.event_id, open_alert.id, open_alert.occurrences
                        )
                        return False
                    row = self._new_row(village_id, alert, key, now)
                    session.add(row)
                    await session.flush()  # the alert first: its transition refers to it
                    session.add(self._raised(row, alert, now))
        except DataIntegrityError:
            if await self.get(str(alert.event_id)) is None:
                raise  # not a repeat: the alert names something the registry does not hold
            return False
        logger.info("alert %s %s from %s/%s", alert.event_id, alert.kind, alert.gateway_id, alert.device_id)
        return True

    def _new_row(self, village_id: str, alert: Alert, key: str, now: int) -> AlertRow:
        return AlertRow(
            id=str(alert.event_id),
            gateway_id=alert.gateway_id,
            village_id=village_id,
            device_id=alert.device_id,
            grid_id=alert.grid_id,
            kind=alert.kind.value,
            severity=alert.severity.value,
            summary=alert.summary,
            evidence=dict(alert.evidence),
            seq=alert.seq,
            raised_at_ms=alert.ts,
            received_at_ms=now,
            delivery_state=DeliveryState.PENDING,
            delivery_attempts=0,
            next_attempt_ms=now,
            state=AlertState.RAISED,
            level=Level.VILLAGE,
            state_changed_ms=now,
            escalate_at_ms=self._escalation.deadline_ms(alert.severity, Level.VILLAGE, alert.ts),
            condition_key=key,
            occurrences=1,
            last_seen_ms=alert.ts,
        )

    @staticmethod
    def _raised(row: AlertRow, alert: Alert, now: int) -> AlertTransitionRow:
        return AlertTransitionRow(
            alert_id=row.id,
            step=RAISE,
            from_state=None,
            to_state=AlertState.RAISED,
            level=Level.VILLAGE,
            actor=f"gateway {alert.gateway_id}"[:64],
            reason=alert.summary or None,
            at_ms=now,
        )

    async def condition_ended(self, event: DeviceEvent) -> int:
        """The gateway reports a condition over (a device back online, a door closed): its open alerts that
        nobody acts on yet clear after the hold-off unless it comes back; how many will."""
        kinds = CLEARED_BY.get(event.kind, frozenset())
        if not kinds:
            return 0
        keys = [condition_key(event.gateway_id, event.device_id, kind) for kind in kinds]
        now = self._clock()
        query = select(AlertRow).where(AlertRow.condition_key.in_(keys), AlertRow.state.in_(_DEDUPLICATED))
        with database_errors(f"note that {event.device_id} of {event.gateway_id} is {event.kind}"):
            async with self._sessions.begin() as session:
                rows = list((await session.scalars(query)).all())
                for row in rows:
                    if Step.CLEAR not in allowed_steps(AlertState(row.state)):
                        session.add(
                            transition_of(row, NOTE, row.state, FLEET_ACTOR, f"condition ended ({event.kind})", now)
                        )
                    elif row.clear_at_ms is None:
                        row.clear_at_ms = now + self._clear_hold_ms
        return sum(1 for row in rows if row.clear_at_ms is not None)

    async def clear_due(self, now_ms: int, limit: int) -> int:
        """Clear every alert whose condition stayed away past its hold-off (at most ``limit``); how many."""
        query = (
            select(AlertRow)
            .where(AlertRow.state.in_(_CLEARABLE), AlertRow.clear_at_ms <= now_ms)
            .order_by(AlertRow.clear_at_ms)
            .limit(limit)
        )
        with database_errors("clear alerts whose condition ended"):
            async with self._sessions.begin() as session:
                rows = list((await session.scalars(query)).all())
                for row in rows:
                    state = after(AlertState(row.state), Step.CLEAR)
                    session.add(
                        transition_of(
                            row, Step.CLEAR, state, FLEET_ACTOR, "the condition ended and stayed away", now_ms
                        )
                    )
                    row.state, row.state_changed_ms = state, now_ms
                    row.clear_at_ms = row.escalate_at_ms = None
        for row in rows:
            logger.info("alert %s (%s on %s) cleared", row.id, row.kind, row.device_id)
        return len(rows)

    async def due(self, now_ms: int, limit: int = 50) -> list[AlertRow]:
        """Pending alerts whose next delivery attempt is due, oldest first."""
        query = (
            select(AlertRow)
            .where(AlertRow.delivery_state == DeliveryState.PENDING, AlertRow.next_attempt_ms <= now_ms)
            .order_by(AlertRow.raised_at_ms)
            .limit(limit)
        )
        with database_errors("find alerts due for delivery"):
            async with self._sessions() as session:
                return list((await session.scalars(query)).all())

    async def next_due_ms(self) -> int | None:
        query = select(AlertRow.next_attempt_ms).where(AlertRow.delivery_state == DeliveryState.PENDING)
        with database_errors("find the next delivery time"):
            async with self._sessions() as session:
                return await session.scalar(query.order_by(AlertRow.next_attempt_ms).limit(1))

    async def mark_delivered(self, alert_id: str, case_id: str, at_ms: int) -> None:
        with database_errors(f"mark alert {alert_id} delivered"):
            async with self._sessions.begin() as session:
                row = await session.get(AlertRow, alert_id)
                if row is not None:
                    row.delivery_state = DeliveryState.DELIVERED
                    row.delivery_attempts += 1
                    row.case_id = case_id
                    row.delivered_at_ms = at_ms
                    row.last_error = None

    async def mark_failed(self, alert_id: str, error: str, next_attempt_ms: int | None) -> None:
        """Record a failed attempt; ``next_attempt_ms=None`` gives up (dead letter)."""
        with database_errors(f"record a failed delivery of alert {alert_id}"):
            async with self._sessions.begin() as session:
                row = await session.get(AlertRow, alert_id)
                if row is not None:
                    row.delivery_attempts += 1
                    row.last_error = error[:512]
                    if next_attempt_ms is None:
                        row.delivery_state = DeliveryState.DEAD
                    else:
                        row.next_attempt_ms = next_attempt_ms

    async def escalate_due(self, now_ms: int, limit: int) -> int:
        """Move up one level every raised alert whose deadline passed (at most ``limit``, earliest first),
        each with its next deadline and an ``escalate`` transition, in one transaction; how many."""
        query = (
            select(AlertRow)
            .where(AlertRow.state == AlertState.RAISED, AlertRow.escalate_at_ms <= now_ms)
            .order_by(AlertRow.escalate_at_ms)
            .limit(limit)
        )
        with database_errors("escalate overdue alerts"):
            async with self._sessions.begin() as session:
                rows = list((await session.scalars(query)).all())
                for row in rows:
                    level = next_level(Level(row.level)) or Level.COUNTY
                    overdue_s = (now_ms - (row.escalate_at_ms or now_ms)) / 1000
                    row.level = level
                    row.escalate_at_ms = self._escalation.deadline_ms(Severity(row.severity), level, now_ms)
                    reason = f"not acknowledged in time ({overdue_s:.1f} s past the deadline)"
                    session.add(transition_of(row, ESCALATE, row.state, FLEET_ACTOR, reason, now_ms))
        for row in rows:
            logger.warning("alert %s (%s, %s) escalated to the %s", row.id, row.kind, row.severity, row.level)
        return len(rows)

    async def next_deadline_ms(self) -> int | None:
        """The earliest escalation or clear still to apply, if any."""
        escalation = select(func.min(AlertRow.escalate_at_ms)).where(AlertRow.state == AlertState.RAISED)
        clearing = select(func.min(AlertRow.clear_at_ms)).where(AlertRow.state.in_(_CLEARABLE))
        with database_errors("find the next alert deadline"):
            async with self._sessions() as session:
                deadlines = [await session.scalar(escalation), await session.scalar(clearing)]
        return min((deadline for deadline in deadlines if deadline is not None), default=None)

    async def list(self, where: AlertFilter = _NEWEST) -> list[AlertRow]:
        """The alerts ``where`` selects, newest first."""
        with database_errors("list alerts"):
            async with self._sessions() as session:
                return list((await session.scalars(where.query())).all())

    async def get(self, alert_id: str) -> AlertRow | None:
        with database_errors(f"read alert {alert_id}"):
            async with self._sessions() as session:
                return await session.get(AlertRow, alert_id)
