"""An alert as the fleet's channels read it: built once from its row, every field typed.

The row keeps kinds, severities, states, levels and ids as text (the database's types); a channel that had to
parse them itself would parse them again at every step and could disagree with another channel about a value it
does not know. :meth:`AlertRecord.of` reads them once, and refuses a row the contract cannot carry (a kind a
newer fleet wrote, say) with :class:`ValueError`: its message is then a dead letter, never a stuck worker.
"""

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from fleet.alerts.kinds import AnyAlertKind, kind_of
from fleet.db.schema import AlertRow
from protocol.messages import Severity
from protocol.notifications import AlertLevel, AlertState


@dataclass(frozen=True, slots=True)
class AlertRecord:
    id: UUID
    kind: AnyAlertKind
    severity: Severity
    state: AlertState
    level: AlertLevel
    village_id: str
    gateway_id: str
    device_id: str
    grid_id: str | None
    summary: str
    evidence: dict[str, Any]
    """As stored: the contract's models check it where it leaves the fleet."""
    raised_at_ms: int
    occurrences: int
    case_id: str | None
    assignee: str | None

    @classmethod
    def of(cls, row: AlertRow) -> "AlertRecord":
        """``row`` read once; :class:`ValueError` naming what the contract cannot carry."""
        try:
            return cls(
                id=UUID(row.id),
                kind=kind_of(row.kind),
                severity=Severity(row.severity),
                state=AlertState(row.state),
                level=AlertLevel(row.level),
                village_id=row.village_id,
                gateway_id=row.gateway_id,
                device_id=row.device_id,
                grid_id=row.grid_id,
                summary=row.summary,
                evidence=dict(row.evidence),
                raised_at_ms=row.raised_at_ms,
                occurrences=row.occurrences,
                case_id=row.case_id,
                assignee=row.assignee,
            )
        except ValueError as exc:
            raise ValueError(f"alert {row.id} cannot be read: {exc}") from None
