"""What has gone wrong at the gateway beside the press path, and whether it still is: counters and current reasons.

The store (the buffer's disk, the sequence file), the uplink and the other supporting parts report
here instead of stopping anything. Each report is counted under a name that fits the heartbeat's
``health.dropped`` map (``store_failed``, ``alerts_unbuffered``, ``uplink_refused``…), and a part that
is currently failing keeps a one-line reason until it recovers. A reason is logged at ERROR when it
appears or changes, and its recovery at INFO: a gateway retrying every 30 s for a week writes one
line, not twenty thousand.
"""

import logging
from collections import Counter
from typing import Final

logger = logging.getLogger(__name__)

# Counter names (heartbeat ``health.dropped`` keys; MetricName: ^[a-z][a-z0-9_]{0,63}$).
STORE_FAILED: Final = "store_failed"
"""Messages that could not be written to the buffer (after evicting what could be evicted)."""
STORE_RECOVERED: Final = "store_recovered"
"""Writes that succeeded only after evicting telemetry or snapshots on a full disk."""
STORE_EVICTED_SNAPSHOTS: Final = "store_evicted_snapshots"
"""Snapshots deleted to make room for the buffer on a full disk."""
BUFFER_RESET_CORRUPT: Final = "buffer_reset_corrupt"
"""Times a corrupt buffer database was moved aside and a fresh one started."""
BUFFER_IN_MEMORY: Final = "buffer_in_memory"
"""Times the buffer had to run in memory because no database file could be opened."""
ALERTS_UNBUFFERED: Final = "alerts_unbuffered"
"""Alerts handed straight to the uplink, in memory, because the buffer could not store them."""
ALERTS_UNBUFFERED_DROPPED: Final = "alerts_unbuffered_dropped"
"""Unbuffered alerts pushed out of the uplink's bounded memory queue by newer ones."""
SEQUENCE_UNPERSISTED: Final = "sequence_unpersisted"
"""Sequence reservations that could not be written; numbers kept coming from memory."""
UPLINK_REFUSED: Final = "uplink_refused"
"""Connection attempts the broker refused (credentials, authorisation) or whose certificate failed."""
LOCAL_ACTION_FAILED: Final = "local_action_failed"
"""A step of a local rule (stamping, the village centre, buffering) that raised; the others still ran."""

# The parts that keep a current reason.
STORE: Final = "store"
SEQUENCE: Final = "sequence"
UPLINK: Final = "uplink"


class GatewayFaults:
    """Counters of failures and recoveries since start, and the current reason of each failing part."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._reasons: dict[str, str] = {}

    def count(self, name: str, amount: int = 1) -> None:
        if amount > 0:
            self.counts[name] += amount

    def failing(self, part: str, reason: str) -> None:
        """``part`` fails now, because of ``reason`` (one line); logged at ERROR when new or changed."""
        line = " ".join(reason.split())
        if self._reasons.get(part) != line:
            self._reasons[part] = line
            logger.error("%s failing: %s", part, line)

    def recovered(self, part: str) -> None:
        """``part`` works again; logged at INFO if it was failing."""
        previous = self._reasons.pop(part, None)
        if previous is not None:
            logger.info("%s works again (it failed: %s)", part, previous)

    @property
    def reasons(self) -> dict[str, str]:
        """The parts failing now and why, e.g. ``{"uplink": "broker 10.0.0.1:8883 refused …"}``."""
        return dict(self._reasons)

    def reason(self, part: str) -> str | None:
        return self._reasons.get(part)
