"""Helpers shared by the fleet's unit tests."""

import uuid
from pathlib import Path
from typing import Any

from fleet.alerts.deadlines import EscalationPolicy
from fleet.settings import AlertSettings
from protocol.messages import Alert, AlertKind, Severity

RAISED_MS = 1_699_999_999_000


class FakeClock:
    """Epoch milliseconds that only move when a test moves them."""

    def __init__(self, now_ms: int = 1_700_000_000_000) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def database_url(directory: Path) -> str:
    """A SQLite file in ``directory``, opened through the fleet's async driver."""
    return f"sqlite+aiosqlite:///{directory / 'fleet.db'}"


def make_alert(**changes: Any) -> Alert:
    """A critical panic alert from gw-01's panic-1, raised at RAISED_MS; ``changes`` override fields."""
    fields: dict[str, Any] = {
        "gateway_id": "gw-01",
        "seq": 41,
        "event_id": uuid.uuid4(),
        "ts": RAISED_MS,
        "device_id": "panic-1",
        "kind": AlertKind.PANIC,
        "severity": Severity.CRITICAL,
        "grid_id": "grid-7",
        "evidence": {"held_ms": 800},
        "summary": "panic button panic-1 pressed",
    }
    fields.update(changes)
    return Alert(**fields)


def default_escalation() -> EscalationPolicy:
    """The fleet's default escalation deadlines (critical: 120 s per level)."""
    return EscalationPolicy(AlertSettings().ack_deadline_s)
