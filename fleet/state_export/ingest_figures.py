"""The fleet's own ingest as time series: :data:`~protocol.series.FLEET_INGEST` and
:data:`~protocol.series.FLEET_REJECTED`, from the figures ``/healthz`` shows.

Counters (``*_total``) count since the fleet started, as Prometheus counters do (``rate()`` handles the
reset at a restart). Every rejection reason is written, zero included, so a counter exists before its
first rejection and ``increase()`` sees that one too.
"""

from fleet.api.schemas import HealthReport
from fleet.state_export.series_point import series_point
from fleet.timeseries.points import Point
from protocol.codec import RejectReason
from protocol.series import FLEET_INGEST, FLEET_REJECTED


def ingest_points(health: HealthReport, instance: str, now_ms: int) -> list[Point]:
    """``points_dropped_total`` counts every point not stored: dropped, or refused for good by the server."""
    ingest, timeseries = health.ingest, health.timeseries
    fields = {
        "received_total": ingest.received,
        "duplicates_total": ingest.duplicates,
        "points_written_total": timeseries.written_points,
        "points_dropped_total": timeseries.dropped_points + timeseries.rejected_points,
        "points_buffered": timeseries.buffered_points,
        "unacked": ingest.unacked,
        "oldest_unacked_s": ingest.oldest_unacked_s or 0.0,
        "connected": 1 if ingest.connected else 0,
    }
    points = [series_point(FLEET_INGEST, {"instance": instance}, fields, now_ms)]
    reasons = dict.fromkeys((reason.value for reason in RejectReason), 0) | ingest.rejected
    points += (
        series_point(FLEET_REJECTED, {"instance": instance, "reason": reason}, {"total": count}, now_ms)
        for reason, count in sorted(reasons.items())
    )
    return points
