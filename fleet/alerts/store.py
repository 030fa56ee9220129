"""Stores alerts with their delivery state: the alert row is the outbox of its case.

An alert is written once (its event id is the primary key, so a redelivered message is a no-op)
in state ``pending``; the delivery worker moves it to ``delivered`` with the platform's case id,
or to ``dead`` after the configured number of attempts.
"""

import logging
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.db.engine import database_errors
from fleet.db.schema import AlertRow, DeliveryState
from fleet.errors import DataIntegrityError
from protocol.messages import Alert

logger = logging.getLogger(__name__)


class AlertStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Callable[[], int]) -> None:
        self._sessions = sessions
        self._clock = clock

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
        )
        try:
            with database_errors(f"store alert {alert.event_id}"):
                async with self._sessions.begin() as session:
                    session.add(row)
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
