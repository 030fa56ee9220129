"""Collects measurements into telemetry batches of at most MAX_BATCH_POINTS points."""

from edge.adapters.base import Measured
from edge.envelope import EnvelopeStamper
from protocol.messages import MAX_BATCH_POINTS, TelemetryBatch, TelemetryPoint


class TelemetryBatcher:
    def __init__(self, stamper: EnvelopeStamper, max_points: int = MAX_BATCH_POINTS) -> None:
        self._stamper = stamper
        self._max_points = max_points
        self._points: list[TelemetryPoint] = []

    def __len__(self) -> int:
        return len(self._points)

    def add(self, measured: Measured) -> None:
        self._points.append(
            TelemetryPoint(device_id=measured.device_id, metric=measured.metric, value=measured.value, ts=measured.ts)
        )

    def drain(self) -> list[TelemetryBatch]:
        """Every pending point, as batches in arrival order; empty when nothing is pending."""
        points, self._points = self._points, []
        return [
            TelemetryBatch(**self._stamper.stamp(), points=points[start : start + self._max_points])
            for start in range(0, len(points), self._max_points)
        ]
