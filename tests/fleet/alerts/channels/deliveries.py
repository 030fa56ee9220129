"""Outbox messages as a channel's worker hands them over, about an alert held in memory."""

import uuid
from typing import Any

from fleet.alerts.channels.base import Delivery
from fleet.alerts.outbox import Action
from fleet.alerts.record import AlertRecord
from fleet.db.schema import AlertRow, DeliveryState
from tests.fleet.helpers import RAISED_MS

ALERT_ID = "00000000-0000-4000-8000-000000000001"


def alert_row(**changes: Any) -> AlertRow:
    """gw-01's panic-1 pressed in lakeside at RAISED_MS, still raised at village level."""
    fields: dict[str, Any] = {
        "id": ALERT_ID,
        "gateway_id": "gw-01",
        "village_id": "lakeside",
        "device_id": "panic-1",
        "grid_id": "grid-7",
        "kind": "panic",
        "severity": "critical",
        "summary": "panic button panic-1 pressed",
        "evidence": {"held_ms": 800},
        "seq": 41,
        "raised_at_ms": RAISED_MS,
        "received_at_ms": RAISED_MS + 5,
        "delivery_state": DeliveryState.UNROUTED,
        "delivery_attempts": 0,
        "state": "raised",
        "level": "village",
        "state_changed_ms": RAISED_MS + 5,
        "condition_key": "gw-01/panic-1/panic",
        "occurrences": 1,
        "last_seen_ms": RAISED_MS,
    }
    fields.update(changes)
    return AlertRow(**fields)


def delivery(
    step: str = "raise",
    *,
    reason: str | None = None,
    attempt: int = 1,
    key: str | None = None,
    action: Action = Action.NOTIFY,
    alert: AlertRow | None = None,
) -> Delivery:
    return Delivery(
        key=key or str(uuid.uuid4()),
        action=action,
        step=step,
        reason=reason,
        queued_at_ms=RAISED_MS + 5,
        attempt=attempt,
        alert=AlertRecord.of(alert or alert_row()),
    )
