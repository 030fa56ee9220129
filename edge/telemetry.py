"""Collects measurements into telemetry batches that respect the contract's limits.

A batch holds at most MAX_BATCH_POINTS points and, by a conservative estimate of its JSON size,
fits well within the fleet's payload limit, so the fleet never refuses a batch as oversize.
"""

import logging
import math
from typing import Final

from edge.adapters.base import Measured
from edge.envelope import EnvelopeStamper
from protocol.codec import DEFAULT_MAX_PAYLOAD_BYTES
from protocol.messages import MAX_BATCH_POINTS, TelemetryBatch, TelemetryPoint

logger = logging.getLogger(__name__)

_ENVELOPE_BYTES: Final = 256  # schema_version, gateway_id, seq, event_id, ts and the brackets
_POINT_OVERHEAD_BYTES: Final = 96  # keys, quotes, a float and an epoch-ms timestamp


def point_size_bound(point: TelemetryPoint) -> int:
    """An upper bound of the encoded size of one point inside a batch."""
    return len(point.device_id) + len(point.metric) + _POINT_OVERHEAD_BYTES


class TelemetryBatcher:
    def __init__(
        self,
        stamper: EnvelopeStamper,
        max_points: int = MAX_BATCH_POINTS,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        self._stamper = stamper
        self._max_points = max_points
        self._budget = max_payload_bytes - _ENVELOPE_BYTES
        self._points: list[TelemetryPoint] = []
        self.skipped_non_finite = 0

    def __len__(self) -> int:
        return len(self._points)

    def add(self, measured: Measured) -> None:
        if not math.isfinite(measured.value):  # JSON and the contract have no NaN or infinity
            self.skipped_non_finite += 1
            logger.warning("skipped non-finite %s of %s: %r", measured.metric, measured.device_id, measured.value)
            return
        self._points.append(
            TelemetryPoint(device_id=measured.device_id, metric=measured.metric, value=measured.value, ts=measured.ts)
        )

    def drain(self) -> list[TelemetryBatch]:
        """Every pending point, as batches in arrival order; empty when nothing is pending."""
        points, self._points = self._points, []
        batches: list[TelemetryBatch] = []
        chunk: list[TelemetryPoint] = []
        size = 0
        for point in points:
            cost = point_size_bound(point)
            if chunk and (len(chunk) >= self._max_points or size + cost > self._budget):
                batches.append(TelemetryBatch(**self._stamper.stamp(), points=chunk))
                chunk, size = [], 0
            chunk.append(point)
            size += cost
        if chunk:
            batches.append(TelemetryBatch(**self._stamper.stamp(), points=chunk))
        return batches
