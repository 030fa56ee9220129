"""The :class:`~protocol.notifications.AlertNotification` a notify message becomes, the same for every
people-facing channel (webhook, village notify)."""

from uuid import UUID

from fleet.alerts.channels.base import Delivery
from fleet.alerts.outbox import Action
from fleet.errors import ChannelRejectedError, NothingToSendError
from protocol.identifiers import ShortText
from protocol.notifications import AlertNotification, AlertStep

_SHORT_TEXT_MAX = 256


def _short(text: str | None) -> ShortText | None:
    return text[:_SHORT_TEXT_MAX] if text else None


def notification_for(delivery: Delivery) -> AlertNotification:
    """``delivery`` as people are told of it: the step it follows and the alert as it is now.

    Raises :class:`NothingToSendError` for a message that is not a notification (a case to open goes
    to the platform), and :class:`ChannelRejectedError` when the stored alert does not fit the contract
    (no retry can change it: a dead letter, which raises a ``delivery_failed`` alert)."""
    if delivery.action is not Action.NOTIFY:
        raise NothingToSendError(f"people are notified of steps, not sent {delivery.action} messages")
    alert = delivery.alert
    try:
        return AlertNotification(
            notification_id=UUID(delivery.key),
            step=AlertStep(delivery.step),
            alert_id=alert.id,
            kind=alert.kind,
            severity=alert.severity,
            state=alert.state,
            level=alert.level,
            village_id=alert.village_id,
            gateway_id=alert.gateway_id,
            device_id=alert.device_id,
            grid_id=alert.grid_id,
            summary=alert.summary,
            reason=_short(delivery.reason),
            raised_at=alert.raised_at_ms,
            occurred_at=delivery.queued_at_ms,
            occurrences=alert.occurrences,
            case_id=alert.case_id,
            assignee=_short(alert.assignee),
            evidence=alert.evidence,
        )
    except ValueError as exc:  # pydantic's ValidationError: evidence, a case id, a bad notification key
        raise ChannelRejectedError(f"alert {alert.id} does not fit an AlertNotification: {exc}"[:400]) from exc
