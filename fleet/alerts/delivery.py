"""Delivers pending alerts to the governance platform as cases: at least once, never twice.

The alert id is the idempotency key, so a retry after a lost answer cannot open a second case.
Transient failures back off exponentially; after ``max_attempts`` (or a permanent refusal) the
alert is dead-lettered and stays visible in the API.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from uuid import UUID

from fleet.alerts.store import AlertStore
from fleet.db.schema import AlertRow
from fleet.errors import GovernanceRejectedError, GovernanceUnavailableError, TransientError
from fleet.governance.client import GovernanceClient
from protocol.governance import CaseRequest
from protocol.messages import AlertKind, Severity
from protocol.reconnect import Backoff

logger = logging.getLogger(__name__)

_IDLE_POLL_S = 5.0


def case_for(alert: AlertRow) -> CaseRequest:
    return CaseRequest(
        alert_id=UUID(alert.id),
        kind=AlertKind(alert.kind),
        severity=Severity(alert.severity),
        village_id=alert.village_id,
        gateway_id=alert.gateway_id,
        device_id=alert.device_id,
        grid_id=alert.grid_id,
        raised_at=alert.raised_at_ms,
        summary=alert.summary,
        evidence=alert.evidence,
    )


class DeliveryWorker:
    def __init__(
        self, store: AlertStore, client: GovernanceClient, clock: Callable[[], int], max_attempts: int
    ) -> None:
        self._store = store
        self._client = client
        self._clock = clock
        self._max_attempts = max_attempts
        self._wake = asyncio.Event()
        self.delivered = 0
        self.dead = 0

    def wake(self) -> None:
        """A new alert is pending: deliver it now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                for alert in await self._store.due(self._clock()):
                    await self._deliver(alert)
                next_due = await self._store.next_due_ms()
            except TransientError as exc:
                logger.warning("alert delivery paused: %s", exc)
                next_due = None
            wait_s = _IDLE_POLL_S if next_due is None else max(0.0, (next_due - self._clock()) / 1000)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(wait_s, _IDLE_POLL_S))

    async def _deliver(self, alert: AlertRow) -> None:
        try:
            receipt = await self._client.open_case(case_for(alert))
        except GovernanceUnavailableError as exc:
            attempt = alert.delivery_attempts + 1
            if attempt >= self._max_attempts:
                await self._give_up(alert, f"{exc} (after {attempt} attempts)")
                return
            delay_s = Backoff(base_s=1.0, cap_s=300.0, attempt=attempt - 1).next_delay()
            logger.warning(
                "case for alert %s not delivered (attempt %d): %s; retry in %.1f s", alert.id, attempt, exc, delay_s
            )
            await self._store.mark_failed(alert.id, str(exc), self._clock() + round(delay_s * 1000))
        except GovernanceRejectedError as exc:
            await self._give_up(alert, str(exc))
        else:
            await self._store.mark_delivered(alert.id, receipt.case_id, self._clock())
            self.delivered += 1
            logger.info("alert %s delivered as case %s", alert.id, receipt.case_id)

    async def _give_up(self, alert: AlertRow, error: str) -> None:
        await self._store.mark_failed(alert.id, error, None)
        self.dead += 1
        logger.error("alert %s dead-lettered: %s", alert.id, error)
