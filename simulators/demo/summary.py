"""What a demo run measured, printed as one JSON object with ``--json``."""

import statistics

from pydantic import BaseModel

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
    telemetry_points_stored: int
    panic_presses: int
    alerts_raised: int
    presses_on_open_alerts: int
    """Presses of a button whose alert was still open: counted on that alert, not opening another case."""
    cases_delivered: int
    duplicate_case_requests: int
    rejected_messages: int
    press_to_case: DelayStats


def press_to_case(cases: list[RecordedCase]) -> DelayStats:
    """Delay from the press (the alert's source timestamp) to the platform receiving the case."""
    delays = [float(case.received_at_ms - case.request.raised_at) for case in cases]
    if not delays:
        return DelayStats(count=0, p50_ms=None, max_ms=None)
    return DelayStats(count=len(delays), p50_ms=statistics.median(delays), max_ms=max(delays))
