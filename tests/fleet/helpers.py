"""Helpers shared by the fleet's unit tests."""

import json
import uuid
from pathlib import Path
from typing import Any

from fleet.alerts.rules.model import AlertRules, RulesFor, same_rules_everywhere
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


def default_escalation() -> RulesFor:
    """Every village runs by the default rules (escalation deadlines: critical 120 s per level)."""
    return same_rules_everywhere()


def rules_everywhere(**fields: Any) -> RulesFor:
    """Every village runs by the default rules with ``fields`` changed (e.g. ``clear_hold_s=5``)."""
    return same_rules_everywhere(rules_of({**AlertRules().model_dump(mode="json"), **fields}))


def rules_of(document: dict[str, Any]) -> AlertRules:
    """``document`` (as a rule layer is written, in JSON terms) as rules over the defaults."""
    return AlertRules.model_validate_json(json.dumps(document))
