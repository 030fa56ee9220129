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

from fleet.alerts.deadlines import EscalationPolicy
from fleet.alerts.lifecycle import AlertState, Level, next_level
from fleet.db.engine import database_errors
from fleet.db.schema import AlertRow, AlertTransitionRow, DeliveryState
from fleet.errors import DataIntegrityError
from protocol.messages import Alert, Severity

ESCALATE: Final = "escalate"
RAISE: Final = "raise"
FLEET_ACTOR: Final = "fleet"

logger = logging.getLogger(__name__)


class AlertStore:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Callable[[], int], escalation: EscalationPolicy
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._escalation = escalation

    async def record(self, village_id: str, alert: Alert) -> bool:
        """Store a new alert as pending delivery; False when this alert id was stored before."""
        now = self._clock()
        row = AlertRow(
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
        )
        raised = AlertTransitionRow(
            alert_id=row.id,
            step=RAISE,
            from_state=None,
            to_state=AlertState.RAISED,
            level=Level.VILLAGE,
            actor=f"gateway {alert.gateway_id}"[:64],
            reason=alert.summary or None,
            at_ms=now,
        )
        try:
            with database_errors(f"store alert {alert.event_id}"):
                async with self._sessions.begin() as session:
                    session.add(row)
                    await session.flush()  # the alert first: its transition refers to it
                    session.add(raised)
        except DataIntegrityError:
            if await self.get(row.id) is None:
                raise  # not a repeat: the alert names something the registry does not hold
            logger.debug("alert %s already stored", alert.event_id)
            return False
        logger.info("alert %s %s from %s/%s", alert.event_id, alert.kind, alert.gateway_id, alert.device_id)
        return True

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
                    session.add(
                        AlertTransitionRow(
                            alert_id=row.id,
                            step=ESCALATE,
                            from_state=row.state,
                            to_state=row.state,
                            level=level,
                            actor=FLEET_ACTOR,
                            reason=f"not acknowledged in time ({overdue_s:.1f} s past the deadline)",
                            at_ms=now_ms,
                        )
                    )
        for row in rows:
            logger.warning("alert %s (%s, %s) escalated to the %s", row.id, row.kind, row.severity, row.level)
        return len(rows)

    async def next_escalation_ms(self) -> int | None:
        """The earliest deadline of an alert still waiting to be acknowledged, if any."""
        query = select(func.min(AlertRow.escalate_at_ms)).where(AlertRow.state == AlertState.RAISED)
        with database_errors("find the next escalation"):
            async with self._sessions() as session:
                return await session.scalar(query)

    async def list(
        self, *, village_id: str | None = None, state: DeliveryState | None = None, limit: int = 100
    ) -> list[AlertRow]:
        query = select(AlertRow).order_by(AlertRow.raised_at_ms.desc()).limit(limit)
        if village_id is not None:
            query = query.where(AlertRow.village_id == village_id)
        if state is not None:
            query = query.where(AlertRow.delivery_state == state)
        with database_errors("list alerts"):
            async with self._sessions() as session:
                return list((await session.scalars(query)).all())

    async def get(self, alert_id: str) -> AlertRow | None:
        with database_errors(f"read alert {alert_id}"):
            async with self._sessions() as session:
                return await session.get(AlertRow, alert_id)
