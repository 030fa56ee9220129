"""A case request as the fleet sends it, for the reference platform's tests."""

from typing import Any
from uuid import UUID, uuid4

from protocol.governance import CaseRequest
from protocol.messages import AlertKind, Severity


def make_request(alert_id: UUID | None = None, **changes: Any) -> CaseRequest:
    fields: dict[str, Any] = {
        "alert_id": alert_id or uuid4(),
        "kind": AlertKind.PANIC,
        "severity": Severity.CRITICAL,
        "village_id": "lakeside",
        "gateway_id": "gw-01",
        "device_id": "panic-3",
        "grid_id": "grid-7",
        "raised_at": 1_700_000_000_000,
        "summary": "panic button pressed at the school gate",
        "evidence": {"battery_v": 3.1, "presses": 2},
    }
    fields.update(changes)
    return CaseRequest(**fields)
