"""What the fleet tells people about an alert, one message per step it takes: :class:`AlertNotification`.

The same payload goes to every people-facing channel: POSTed as JSON to a deployment's webhook (with the
``notification_id`` as its ``Idempotency-Key`` and the HMAC headers of :mod:`protocol.request_signing`),
and published at QoS 1 on the village's notify topic (:func:`protocol.topics.village_notify_topic`) for
its village centre.

Delivery is at least once and in order per alert: a receiver de-duplicates on ``notification_id`` (a
retry or a QoS 1 redelivery repeats it) and shows ``step`` in arrival order. ``state``, ``level``,
``occurrences``, ``case_id`` and ``assignee`` describe the alert when the message was sent, which may be
past ``step`` (a ``raise`` delivered after an outage of the receiver may already say ``cancelled``).
The model is strict, frozen, refuses unknown fields and carries ``schema_version``; any change of shape
bumps it.
"""

from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, StringConstraints

from protocol.identifiers import DeviceId, EpochMillis, GatewayId, GridId, ShortText, VillageId
from protocol.messages import AlertKind, Evidence, FleetAlertKind, Severity, WireModel

NotifiedCaseId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
"""A case id as the governance platform issued it (its receipts allow any text of this size)."""


class AlertStep(StrEnum):
    """The step of an alert's life a notification follows: raised, escalated, or a lifecycle step."""

    RAISE = "raise"
    ESCALATE = "escalate"  # nobody acknowledged it in time: it went up a level
    ACKNOWLEDGE = "acknowledge"
    DISPATCH = "dispatch"  # the governance platform assigned an officer
    RESOLVE = "resolve"
    CLEAR = "clear"  # the condition went away before anyone was dispatched
    CANCEL = "cancel"  # a false alarm, with its reason
    CLOSE = "close"


class AlertState(StrEnum):
    """Where an alert stands: raised, acknowledged, dispatched, resolved; closed, cleared and cancelled are final."""

    RAISED = "raised"
    ACKNOWLEDGED = "acknowledged"
    DISPATCHED = "dispatched"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CLEARED = "cleared"
    CANCELLED = "cancelled"


class AlertLevel(StrEnum):
    """Who must act on an alert: the village's centre first, then the town's, then the county's."""

    VILLAGE = "village"
    TOWN = "town"
    COUNTY = "county"


class AlertNotification(WireModel):
    """One step of one alert, for people: what happened, to which alert, and where the alert stands."""

    schema_version: Literal[1] = 1
    notification_id: UUID = Field(
        description="Unique per notification, the same on every attempt (also the Idempotency-Key header): "
        "de-duplicate on it."
    )
    step: AlertStep = Field(description="What the alert just went through.")
    alert_id: UUID = Field(description="The Outpost alert's id (the governance platform's case names it too).")
    kind: AlertKind | FleetAlertKind = Field(description="Raised by a gateway (panic, ...) or by the fleet about one.")
    severity: Severity
    state: AlertState = Field(description="The alert's state when this was sent (it may be past step).")
    level: AlertLevel = Field(description="Who must act on the alert when this was sent: village, town or county.")
    village_id: VillageId
    gateway_id: GatewayId
    device_id: DeviceId
    grid_id: GridId | None = None
    summary: ShortText = ""
    reason: ShortText | None = Field(
        default=None, description="Why the step was taken (a cancellation's reason, an escalation's delay)."
    )
    raised_at: EpochMillis = Field(description="When the gateway (or the fleet) raised the alert (UTC epoch ms).")
    occurred_at: EpochMillis = Field(description="When the alert took this step in Outpost (UTC epoch ms).")
    occurrences: int = Field(ge=1, lt=2**31, description="How many times its condition was reported while open.")
    case_id: NotifiedCaseId | None = Field(default=None, description="The governance platform's case, once opened.")
    assignee: ShortText | None = Field(default=None, description="The officer the platform dispatched, if any.")
    evidence: Evidence = Field(default_factory=dict)
