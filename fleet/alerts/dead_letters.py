"""A dead letter raises its own alert: someone must learn that a case or a notification never got through.

The alert (``delivery_failed``, about the gateway whose alert it was, its device the channel) opens no
case (:func:`fleet.alerts.outbox.case_route` keeps it local) and is correlated like any other: further dead
letters of the same channel for the same gateway count on it while it is open. A dead letter of a
``delivery_failed`` alert's own message is only logged, so a failing channel cannot feed itself.
"""

import logging
from collections.abc import Callable

from fleet.alerts.new_alert import NewAlert
from fleet.alerts.outbox_queue import Pending
from fleet.alerts.store import AlertStore
from protocol.messages import FleetAlertKind

logger = logging.getLogger(__name__)


class DeadLetterAlerts:
    def __init__(self, store: AlertStore, clock: Callable[[], int], on_raised: Callable[[], None]) -> None:
        self._store = store
        self._clock = clock
        self._on_raised = on_raised

    async def report(self, pending: Pending, error: str) -> None:
        message, alert = pending.message, pending.alert
        if alert.kind == FleetAlertKind.DELIVERY_FAILED:
            logger.error(
                "a delivery_failed alert's own %s message to %s failed: %s", message.action, message.channel, error
            )
            return
        summary = f"{message.channel} never took the {message.action} of the {alert.kind} alert {alert.id[:8]}"
        new = NewAlert.by_fleet(
            alert.village_id,
            alert.gateway_id,
            FleetAlertKind.DELIVERY_FAILED,
            summary,
            self._clock(),
            device_id=message.channel,
            evidence={
                "alert_id": alert.id,
                "channel": message.channel,
                "action": message.action,
                "attempts": message.attempts + 1,
                "error": error[:256],
            },
        )
        if await self._store.open(new):
            self._on_raised()
