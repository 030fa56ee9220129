"""Ingest's counters and lag in the form ``/healthz`` shows them."""

from fleet.api.schemas import IngestStatus
from fleet.ingest.consumer import IngestConsumer
from fleet.ingest.router import IngestRouter
from fleet.timeseries.writer import BatchingWriter


def ingest_status(consumer: IngestConsumer, router: IngestRouter, writer: BatchingWriter) -> IngestStatus:
    """Ingest's counters and lag, for /healthz and the standalone worker's log."""
    age = consumer.oldest_unacked_age_s()
    return IngestStatus(
        connected=consumer.connected.is_set(),
        received=consumer.received,
        rejected={reason.value: count for reason, count in consumer.decoder.rejections.items()},
        duplicates=router.recent.duplicates,
        stalls=consumer.stalls,
        handler_errors=consumer.handler_errors,
        unacked=consumer.unacked,
        oldest_unacked_s=None if age is None else round(age, 3),
        buffered_points=writer.buffered,
        paused=consumer.paused,
        pauses=consumer.pauses,
    )
