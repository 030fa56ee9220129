"""Delivers pending alerts to the governance platform as cases: at least once, never twice.

The alert id is the idempotency key, so a retry after a lost answer cannot open a second case.
While the platform is unreachable, or refuses the fleet's URL/token, delivery backs off as a whole
and every alert stays pending (``blocked`` says why); an alert is dead-lettered, and stays visible
in the API, when the platform refuses its content, or after ``max_attempts`` if that is set.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from uuid import UUID

from fleet.alerts.store import AlertStore
from fleet.db.schema import AlertRow
from fleet.errors import (
    GovernanceRejectedError,
    GovernanceSettingsError,
    GovernanceUnavailableError,
    TransientError,
)
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
        self,
        store: AlertStore,
        client: GovernanceClient,
        clock: Callable[[], int],
        max_attempts: int | None,
        backoff: Backoff | None = None,
    ) -> None:
        self._store = store
        self._client = client
        self._clock = clock
        self._max_attempts = max_attempts
        self._backoff = backoff or Backoff(base_s=1.0, cap_s=60.0)
        self._wake = asyncio.Event()
        self.delivered = 0
        self.dead = 0
        self.blocked: str | None = None  # why delivery cannot proceed (platform down, settings wrong)

    def wake(self) -> None:
        """A new alert is pending: deliver it now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                flowing = await self._deliver_due()
                next_due = await self._store.next_due_ms()
            except TransientError as exc:
                logger.warning("alert delivery paused: %s", exc)
                self.blocked = str(exc)
                flowing, next_due = False, None
            if not flowing:
                # The platform (or the database) is down or refuses the fleet: every alert would fail
                # the same way, so back off as a whole rather than hammer it alert by alert.
                await asyncio.sleep(self._backoff.next_delay())
                continue
            self._backoff.reset()
            wait_s = _IDLE_POLL_S if next_due is None else max(0.0, (next_due - self._clock()) / 1000)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(wait_s, _IDLE_POLL_S))

    async def _deliver_due(self) -> bool:
        """Deliver every due alert, oldest first; False as soon as the platform cannot take one."""
        for alert in await self._store.due(self._clock()):
            if not await self._deliver(alert):
                return False
        return True

    async def _deliver(self, alert: AlertRow) -> bool:
        try:
            receipt = await self._client.open_case(case_for(alert))
        except (GovernanceUnavailableError, GovernanceSettingsError) as exc:
            attempt = alert.delivery_attempts + 1
            self.blocked = str(exc)
            if isinstance(exc, GovernanceSettingsError):
                logger.error("cases cannot be delivered: %s", exc)
            else:
                logger.warning("case for alert %s not delivered (attempt %d): %s", alert.id, attempt, exc)
            if self._max_attempts is not None and attempt >= self._max_attempts:
                await self._give_up(alert, f"{exc} (after {attempt} attempts)")
            else:
                await self._store.mark_failed(alert.id, str(exc), self._clock())
            return False
        except GovernanceRejectedError as exc:
            await self._give_up(alert, str(exc))
            return True
        await self._store.mark_delivered(alert.id, receipt.case_id, self._clock())
        self.delivered += 1
        self.blocked = None
        logger.info("alert %s delivered as case %s", alert.id, receipt.case_id)
        return True

    async def _give_up(self, alert: AlertRow, error: str) -> None:
        await self._store.mark_failed(alert.id, error, None)
        self.dead += 1
        logger.error("alert %s dead-lettered: %s", alert.id, error)
