"""The HTTP contract between Outpost's governance connector and the upstream command platform.

The fleet POSTs a :class:`CaseRequest` to ``{platform}/api/v1/cases`` with a bearer token and an
``Idempotency-Key`` header (the alert's id); the platform answers with a :class:`CaseReceipt`:
``201`` for a new case, ``200`` with the same case id when the key was seen before.
"""

from enum import StrEnum
from typing import Final, Literal
from uuid import UUID

from pydantic import Field

from protocol.identifiers import DeviceId, EpochMillis, GatewayId, GridId, ShortText, VillageId
from protocol.messages import AlertKind, Evidence, Severity, WireModel

CASES_PATH: Final = "/api/v1/cases"
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"


class CaseStatus(StrEnum):
    """The platform's closed loop: received -> dispatched -> resolved -> closed (with feedback)."""

    RECEIVED = "received"
    DISPATCHED = "dispatched"
    RESOLVED = "resolved"
    CLOSED = "closed"


class CaseRequest(WireModel):
    schema_version: Literal[1] = 1
    alert_id: UUID = Field(description="The Outpost alert's id; also sent as the Idempotency-Key header.")
    kind: AlertKind
    severity: Severity
    village_id: VillageId
    gateway_id: GatewayId
    device_id: DeviceId
    grid_id: GridId | None = None
    raised_at: EpochMillis = Field(description="When the gateway raised the alert (UTC epoch ms).")
    summary: ShortText = ""
    evidence: Evidence = Field(default_factory=dict)


class CaseReceipt(WireModel):
    schema_version: Literal[1] = 1
    case_id: str = Field(min_length=1, max_length=64)
    alert_id: UUID
    status: CaseStatus
    received_at: EpochMillis
    duplicate: bool = False
