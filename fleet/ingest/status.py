"""Ingest's counters, lag and problems in the form ``/healthz`` shows them."""

import time
from collections import Counter
from typing import Final

from fleet.api.schemas import DeadLetterStatus, IngestLaneStatus, IngestStatus, QuarantineStatus
from fleet.ingest.consumer import IngestConsumer
from fleet.ingest.dead_letters import DeadLetters
from fleet.ingest.lanes import IngestLanes
from fleet.ingest.quarantine import Quarantine
from fleet.ingest.router import IngestRouter
from fleet.ingest.subscriptions import Lane
from fleet.timeseries.writer import BatchingWriter

RECENT_DEAD_LETTERS_S: Final = 300.0


def _lane_status(consumer: IngestConsumer, stuck_after_s: float) -> IngestLaneStatus:
    age = consumer.oldest_unacked_age_s()
    return IngestLaneStatus(
        lane=consumer.lane.value,
        connected=consumer.connected.is_set(),
        received=consumer.received,
        stalls=consumer.stalls,
        handler_errors=consumer.handler_errors,
        dead_lettered=consumer.dead_lettered,
        unacked=consumer.unacked,
        oldest_unacked_s=None if age is None else round(age, 3),
        paused=consumer.paused,
        stuck=consumer.lane is not Lane.BULK and (consumer.session.saturated or (age or 0.0) > stuck_after_s),
    )


def _dead_letter_status(dead_letters: DeadLetters) -> DeadLetterStatus:
    last = dead_letters.last_recorded_at
    return DeadLetterStatus(
        recorded=dead_letters.recorded,
        waiting=dead_letters.waiting,
        recent=last is not None and time.monotonic() - last < RECENT_DEAD_LETTERS_S,
        by_reason=dict(dead_letters.by_reason),
    )


def _quarantine_status(quarantine: Quarantine) -> list[QuarantineStatus]:
    now = time.monotonic()
    return [
        QuarantineStatus(
            gateway_id=gateway_id,
            village_id=entry.village_id,
            channels=sorted(entry.channels),
            enforced=entry.enforced,
            ends_in_s=round(max(0.0, entry.until - now), 1),
        )
        for gateway_id, entry in sorted(quarantine.active.items())
    ]


def ingest_status(
    lanes: IngestLanes,
    router: IngestRouter,
    writer: BatchingWriter,
    dead_letters: DeadLetters,
    quarantine: Quarantine | None = None,
    *,
    stuck_after_s: float = 10.0,
) -> IngestStatus:
    """Ingest's counters and lag over every lane, for /healthz and the standalone worker's log."""
    consumers = list(lanes)
    ages = [age for age in (consumer.oldest_unacked_age_s() for consumer in consumers) if age is not None]
    return IngestStatus(
        connected=lanes.connected,
        received=sum(consumer.received for consumer in consumers),
        rejected={reason.value: count for reason, count in lanes.decoder.rejections.items()},
        duplicates=router.recent.duplicates,
        stalls=sum(consumer.stalls for consumer in consumers),
        handler_errors=sum(consumer.handler_errors for consumer in consumers),
        unacked=sum(consumer.unacked for consumer in consumers),
        oldest_unacked_s=round(max(ages), 3) if ages else None,
        buffered_points=writer.buffered,
        paused=any(consumer.paused for consumer in consumers),
        pauses=sum(consumer.pauses for consumer in consumers),
        lanes=[_lane_status(consumer, stuck_after_s) for consumer in consumers],
        dead_letters=_dead_letter_status(dead_letters),
        quarantined=_quarantine_status(quarantine) if quarantine is not None else [],
        retained=dict(sum((consumer.retained for consumer in consumers), Counter[str]())),
    )


def ingest_problems(status: IngestStatus) -> list[str]:
    """What in ingest's status stands in the way, in words (empty when nothing does)."""
    problems = [f"ingest {lane.lane} lane not connected to the broker" for lane in status.lanes if not lane.connected]
    problems += [
        f"ingest {lane.lane} lane stuck: {lane.unacked} messages unacknowledged, oldest {lane.oldest_unacked_s} s"
        for lane in status.lanes
        if lane.stuck
    ]
    letters = status.dead_letters
    if letters is not None and letters.recent:
        problems.append(
            f"inbound messages dead-lettered in the last {RECENT_DEAD_LETTERS_S:.0f} s (GET /ingest/dead-letters)"
        )
    problems += [
        f"gateway {each.gateway_id} floods {', '.join(each.channels)}: "
        + ("quarantined at the broker" if each.enforced else "not quarantined (no broker administrator, or pending)")
        for each in status.quarantined
    ]
    if letters is not None and letters.waiting:
        problems.append(f"{letters.waiting} dead letters wait to be stored (is the database answering?)")
    return problems
