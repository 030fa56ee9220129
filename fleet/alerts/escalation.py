"""Escalation: an alert nobody acknowledged goes up a level when its deadline passes, village → town → county.

The deadline is a column of the alert (``escalate_at_ms``), written with the alert and with each
escalation, never an in-memory timer: a fleet restarted mid-escalation finds every deadline where it left
it, and an overdue one escalates at once. :class:`Escalator` sleeps until the earliest deadline (woken
early when an alert arrives or is taken on) and escalates every alert due then in one transaction, each
with its transition recorded (actor ``fleet``), so escalations land within the sweep's wake-up latency
of their deadline, well inside a second.

A deadline runs from when the alert was raised at the source: one a gateway held while offline, past its
village deadline when it arrives, goes to the town at once; each next deadline runs from the escalation.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Final

from fleet.alerts.store import AlertStore
from fleet.errors import TransientError
from protocol.reconnect import Backoff

logger = logging.getLogger(__name__)

_IDLE_CHECK_S: Final = 60.0
"""With nothing due, look again this often (another fleet process may have stored alerts)."""


class Escalator:
    def __init__(self, store: AlertStore, clock: Callable[[], int], *, batch: int = 500) -> None:
        self._store = store
        self._clock = clock
        self._batch = batch
        self._wake = asyncio.Event()
        self._backoff = Backoff(base_s=0.5, cap_s=10.0)
        self.escalated = 0

    def wake(self) -> None:
        """An alert arrived or was taken on: the earliest deadline may have changed."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                escalated = await self._store.escalate_due(self._clock(), self._batch)
                next_ms = await self._store.next_escalation_ms()
            except TransientError as exc:
                delay = self._backoff.next_delay()
                logger.warning("escalation postponed %.1f s: %s", delay, exc)
                await asyncio.sleep(delay)
                continue
            self._backoff.reset()
            self.escalated += escalated
            if escalated == self._batch:
                continue  # more may be due at once
            wait_s = _IDLE_CHECK_S if next_ms is None else max(0.0, (next_ms - self._clock()) / 1000)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(wait_s, _IDLE_CHECK_S))
