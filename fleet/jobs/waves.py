"""Which wave each gateway of a job is in: a canary first, then growing shares, spread across villages.

The order is a hash of the job's id and the gateway's, so each job draws its own canaries, the same ones however
often it is computed, and neither the gateways' names nor their villages decide who goes first.
"""

import hashlib
import math
from collections.abc import Sequence

from fleet.jobs.spec import Waves


def assign_waves(job_id: str, gateway_ids: Sequence[str], waves: Waves) -> dict[str, int]:
    """The wave (0: the canary) of each gateway; as many waves as needed, none empty."""
    order = sorted(gateway_ids, key=lambda gateway: hashlib.sha256(f"{job_id}/{gateway}".encode()).digest())
    total = len(order)
    ends = [min(waves.canary, total)]
    for share in waves.steps:
        end = max(math.ceil(share * total), ends[-1])
        if end > ends[-1]:
            ends.append(end)
    assigned: dict[str, int] = {}
    start = 0
    for wave, end in enumerate(ends):
        for gateway in order[start:end]:
            assigned[gateway] = wave
        start = end
    return assigned
