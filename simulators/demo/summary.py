"""What a demo run measured, printed as one JSON object with ``--json``."""

import statistics

from pydantic import BaseModel

from protocol.messages import AlertKind
from simulators.governance.recorder import RecordedCase


class DelayStats(BaseModel):
    count: int
    p50_ms: float | None
    max_ms: float | None


class DemoSummary(BaseModel):
    villages: int
    broker: str
    duration_s: float
    gateways_seen_online: int
    sensor_nodes: int
    """MicroPython nodes (the real firmware, simulated pins) on the villages' local brokers."""
    telemetry_points_stored: int
    panic_presses: int
    """On wired buttons and on nodes."""
    node_presses: int
    node_faults: dict[str, int]
    """Faults the demo put the nodes through (Wi-Fi lost, battery low, power cut), by kind."""
    alerts_raised: int
    alerts_by_kind: dict[str, int]
    presses_on_open_alerts: int
    """Presses of a button whose panic alert was still open: counted on that alert, not opening another case."""
    cases_delivered: int
    duplicate_case_requests: int
    rejected_messages: int
    press_to_case: DelayStats


def press_to_case(cases: list[RecordedCase]) -> DelayStats:
    """Delay from the press (the panic alert's source timestamp) to the platform receiving the case."""
    panics = [case for case in cases if case.request.kind == AlertKind.PANIC]
    delays = [float(case.received_at_ms - case.request.raised_at) for case in panics]
    if not delays:
        return DelayStats(count=0, p50_ms=None, max_ms=None)
    return DelayStats(count=len(delays), p50_ms=statistics.median(delays), max_ms=max(delays))
