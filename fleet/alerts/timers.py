"""The alerts' stored deadlines, applied on time: escalations and clears after their hold-off.

Escalation: an alert nobody acknowledged goes up a level when its deadline passes, village → town →
county. A deadline runs from when the alert was raised at the source (one a gateway held while offline,
past its village deadline when it arrives, goes to the town at once); each next one from the escalation.
Clearing: a condition that ended (:mod:`fleet.alerts.correlation`) clears its alert once its hold-off
passed without the condition coming back.

Both are columns of the alert (``escalate_at_ms``, ``clear_at_ms``), written in the transaction that sets
them, never in-memory timers: a fleet restarted meanwhile finds every deadline where it left it, and an
overdue one is applied at once. :class:`AlertTimers` sleeps until the earliest deadline (woken early when
an alert arrives, is taken on or its condition ends) and applies everything due then in one transaction
per kind, each step recorded with actor ``fleet``: within the sweep's wake-up latency, well inside a
second.
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

_IDLE_CHECK_S: Final = 10.0
"""With nothing due, look again this often: ingest workers may have set a clear meanwhile."""


class AlertTimers:
    def __init__(self, store: AlertStore, clock: Callable[[], int], *, batch: int = 500) -> None:
        self._store = store
        self._clock = clock
        self._batch = batch
        self._wake = asyncio.Event()
        self._backoff = Backoff(base_s=0.5, cap_s=10.0)
        self.escalated = 0
        self.cleared = 0

    def wake(self) -> None:
        """An alert arrived, was taken on or its condition ended: the earliest deadline may have changed."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                now = self._clock()
                escalated = await self._store.escalate_due(now, self._batch)
                self.escalated += escalated
                cleared = await self._store.clear_due(now, self._batch)
                self.cleared += cleared
                next_ms = await self._store.next_deadline_ms()
            except TransientError as exc:
                delay = self._backoff.next_delay()
                logger.warning("alert deadlines postponed %.1f s: %s", delay, exc)
                await asyncio.sleep(delay)
                continue
            self._backoff.reset()
            if self._batch in (escalated, cleared):
                continue  # more may be due at once
            wait_s = _IDLE_CHECK_S if next_ms is None else max(0.0, (next_ms - self._clock()) / 1000)
            with contextlib.suppress(TimeoutError):
                # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation that arrives
                # as the wake-up does, and the task would outlive the fleet's shutdown.
                async with asyncio.timeout(min(wait_s, _IDLE_CHECK_S)):
                    await self._wake.wait()
