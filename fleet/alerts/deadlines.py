"""How long an alert may wait unacknowledged at one level before it escalates (fleet.alerts.timers)."""

from collections.abc import Mapping

from fleet.alerts.lifecycle import Level
from protocol.messages import Severity


class EscalationPolicy:
    """How long an alert of each severity may wait unacknowledged at one level."""

    def __init__(self, ack_deadline_s: Mapping[Severity, float]) -> None:
        self._deadline_ms = {severity: round(seconds * 1000) for severity, seconds in ack_deadline_s.items()}

    def deadline_ms(self, severity: Severity, level: Level, since_ms: int) -> int | None:
        """When an alert of ``severity`` at ``level`` since ``since_ms`` escalates; None if it never does
        (its severity does not escalate, or it is at the county already)."""
        wait_ms = self._deadline_ms.get(severity)
        if wait_ms is None or level is Level.COUNTY:
            return None
        return since_ms + wait_ms
