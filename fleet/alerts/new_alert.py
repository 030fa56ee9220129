"""An alert about to be stored, raised by a gateway (an :class:`~protocol.messages.Alert` message) or by the fleet."""

import uuid
from dataclasses import dataclass, field
from typing import Any, Final

from fleet.alerts.kinds import AnyAlertKind
from fleet.alerts.rules.model import DEFAULT_SEVERITY
from protocol.messages import Alert, FleetAlertKind, Severity

GATEWAY_DEVICE: Final = "gateway"
"""The device a fleet-raised alert about the gateway itself names."""


@dataclass(frozen=True, slots=True)
class NewAlert:
    event_id: str
    """Unique per alert message: a redelivery with the same id is not stored twice."""
    village_id: str
    gateway_id: str
    device_id: str
    kind: AnyAlertKind
    severity: Severity
    raised_at_ms: int
    raised_by: str
    summary: str = ""
    grid_id: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    seq: int = 0

    @classmethod
    def from_gateway(cls, village_id: str, alert: Alert) -> "NewAlert":
        return cls(
            event_id=str(alert.event_id),
            village_id=village_id,
            gateway_id=alert.gateway_id,
            device_id=alert.device_id,
            kind=alert.kind,
            severity=alert.severity,
            raised_at_ms=alert.ts,
            raised_by=f"gateway {alert.gateway_id}",
            summary=alert.summary,
            grid_id=alert.grid_id,
            evidence=dict(alert.evidence),
            seq=alert.seq,
        )

    @classmethod
    def by_fleet(
        cls,
        village_id: str,
        gateway_id: str,
        kind: FleetAlertKind,
        summary: str,
        at_ms: int,
        *,
        device_id: str = GATEWAY_DEVICE,
        evidence: dict[str, Any] | None = None,
    ) -> "NewAlert":
        """An alert the fleet raises at the kind's default severity (the village's rules may set another)."""
        return cls(
            event_id=str(uuid.uuid4()),
            village_id=village_id,
            gateway_id=gateway_id,
            device_id=device_id,
            kind=kind,
            severity=DEFAULT_SEVERITY[kind],
            raised_at_ms=at_ms,
            raised_by="fleet",
            summary=summary[:256],
            evidence=evidence or {},
        )
