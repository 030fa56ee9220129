"""The platform's ceiling for a storm's delivery: cases opened one after another by the fleet's own client.

``python -m bench.alerts_bare_cases URL COUNT`` opens ``COUNT`` ``gateway_offline`` cases on the governance
platform at ``URL`` with :class:`~fleet.governance.client.GovernanceClient` (the development token and
signing secret, as the fleet in the bench uses them), one request at a time as a delivery worker sends
them, and prints ``{"seconds": S}``: how long they took from the first request to the last receipt. It
leaves out everything else the fleet does for a case: MQTT, presence, the alert and outbox transactions,
the outbox query, marking each delivered. Run in a process of its own, as the fleet is.
"""

import asyncio
import json
import sys
import time
import uuid

from pydantic import AnyHttpUrl

from bench.fleet_gateways import village_id
from fleet.governance.client import GovernanceClient
from fleet.settings import GovernanceSettings
from protocol.clock import utc_now_ms
from protocol.governance import CaseRequest
from protocol.messages import FleetAlertKind, Severity


def _case(index: int) -> CaseRequest:
    return CaseRequest(
        alert_id=uuid.uuid4(), kind=FleetAlertKind.GATEWAY_OFFLINE, severity=Severity.MAJOR,
        village_id=village_id(index), gateway_id=f"bare-gw-{index:04d}", device_id="gateway", grid_id=None,
        raised_at=utc_now_ms(), summary=f"gateway bare-gw-{index:04d} offline (lost)",
        evidence={"reason": "lost", "missed_heartbeats": 1.0},
    )  # fmt: skip


async def main(url: str, count: int) -> None:
    client = GovernanceClient(GovernanceSettings(url=AnyHttpUrl(url)))
    cases = [_case(index) for index in range(count)]
    try:
        started = time.perf_counter()
        for case in cases:
            await client.open_case(case)
        elapsed = time.perf_counter() - started
    finally:
        await client.close()
    print(json.dumps({"seconds": elapsed}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
