"""The fleet's own alerts about ingest trouble, judged once a second, raised through :class:`GatewayWatch`.

- ``messages_dead_lettered``: a registered gateway's messages were dead-lettered (refused by the contract or
  failed to process: :mod:`fleet.ingest.dead_letters`). More of them count on the open alert (its summary
  says how many so far, on which channels, and whether the gateway is quarantined for flooding:
  :mod:`fleet.ingest.quarantine`). The condition ends once none came for ``ingest.dead_letter_quiet_s``
  and the gateway is not quarantined.
- ``ingest_stuck``: a message has waited unacknowledged on the alerts or control lane longer than
  ``ingest.stuck_after_s`` (its storage does not answer, or the lane is wedged): the alert is about the
  gateway whose message waits longest, so its village learns that what it sends is not getting through.
  It ends when that lane is no longer stuck.

Dead letters from topics that name no registered gateway show in ``/healthz`` and the dead-letter list
only: an alert must name a gateway of the registry.
"""

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final, Protocol

from fleet.alerts.gateway_watch import GatewayWatch
from fleet.ingest.dead_letter_sources import SourceTally
from fleet.ingest.quarantine import Quarantine
from fleet.ingest.subscriptions import Lane
from protocol.errors import TopicError
from protocol.messages import FleetAlertKind
from protocol.topics import GatewayTopic

_TICK_S: Final = 1.0


class LaneView(Protocol):
    """What the watch reads of a lane (an :class:`~fleet.ingest.consumer.IngestConsumer`)."""

    @property
    def lane(self) -> Lane: ...

    @property
    def unacked(self) -> int: ...

    def oldest_unacked_age_s(self) -> float | None: ...

    def oldest_unacked_topic(self) -> str | None: ...


@dataclass(slots=True)
class _DeadLettered:
    village_id: str
    last_at: float
    by_channel: dict[str, int] = field(default_factory=dict)


class IngestWatch:
    def __init__(
        self,
        watch: GatewayWatch,
        sources: SourceTally,
        lanes: Iterable[LaneView],
        quarantine: Quarantine,
        *,
        knows: Callable[[str, str], bool],
        stuck_after_s: float,
        quiet_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``knows(gateway_id, village_id)``: whether the registry has that gateway in that village."""
        self._watch = watch
        self._sources = sources
        self._lanes = lanes
        self._quarantine = quarantine
        self._knows = knows
        self._stuck_after_s = stuck_after_s
        self._quiet_s = quiet_s
        self._monotonic = monotonic
        self._dead_lettered: dict[str, _DeadLettered] = {}
        self._stuck: set[str] = set()

    async def run(self) -> None:
        while True:
            self.judge()
            await asyncio.sleep(_TICK_S)

    def judge(self) -> None:
        """One look at the dead letters since the last and at the lanes (no I/O)."""
        self._judge_dead_letters(self._monotonic())
        self._judge_stuck_lanes()

    def _judge_dead_letters(self, now: float) -> None:
        for source, count in self._sources.take().items():
            gateway_id = source.gateway_id
            if not self._knows(gateway_id, source.village_id):
                continue
            entry = self._dead_lettered.setdefault(gateway_id, _DeadLettered(source.village_id, now))
            entry.last_at = now
            entry.by_channel[source.channel.value] = entry.by_channel.get(source.channel.value, 0) + count
            self._raise_dead_lettered(gateway_id, entry)
        for gateway_id, entry in list(self._dead_lettered.items()):
            if gateway_id in self._quarantine.active:
                self._raise_dead_lettered(gateway_id, entry)  # the summary says whether it is enforced yet
            elif now - entry.last_at >= self._quiet_s:
                del self._dead_lettered[gateway_id]
                why = f"no message dead-lettered for {self._quiet_s:.0f} s"
                self._watch.condition_over(gateway_id, FleetAlertKind.MESSAGES_DEAD_LETTERED, why)

    def _raise_dead_lettered(self, gateway_id: str, entry: _DeadLettered) -> None:
        total = sum(entry.by_channel.values())
        channels = ", ".join(f"{count} on {channel}" for channel, count in sorted(entry.by_channel.items()))
        summary = f"{total} messages from gateway {gateway_id} could not be processed ({channels})"
        evidence: dict[str, str | int | float] = {"dead_lettered": total, **entry.by_channel}
        quarantined = self._quarantine.active.get(gateway_id)
        if quarantined is not None:
            flooded = ", ".join(sorted(quarantined.channels))
            state = "quarantined" if quarantined.enforced else "flooding"
            summary = f"{state} ({flooded}): {summary}"
            evidence["quarantined"] = flooded if quarantined.enforced else ""
        self._watch.condition_holds(
            gateway_id, entry.village_id, FleetAlertKind.MESSAGES_DEAD_LETTERED, summary[:256], evidence
        )

    def _judge_stuck_lanes(self) -> None:
        stuck: set[str] = set()
        for consumer in self._lanes:
            if consumer.lane is Lane.BULK:
                continue
            oldest = consumer.oldest_unacked_topic()
            age = consumer.oldest_unacked_age_s()
            if oldest is None or age is None or age <= self._stuck_after_s:
                continue
            try:
                topic = GatewayTopic.parse(oldest)
            except TopicError:
                continue
            if not self._knows(topic.gateway_id, topic.village_id) or topic.gateway_id in stuck:
                continue
            stuck.add(topic.gateway_id)
            summary = (
                f"a {topic.channel} message from gateway {topic.gateway_id} has waited {age:.0f} s in the fleet's "
                f"{consumer.lane} lane ({consumer.unacked} messages unacknowledged there)"
            )
            evidence: dict[str, str | int | float] = {
                "lane": consumer.lane.value,
                "waited_s": round(age, 1),
                "unacked": consumer.unacked,
            }
            self._watch.condition_holds(
                topic.gateway_id, topic.village_id, FleetAlertKind.INGEST_STUCK, summary, evidence
            )
        for gateway_id in self._stuck - stuck:
            self._watch.condition_over(gateway_id, FleetAlertKind.INGEST_STUCK, "its lane is moving again")
        self._stuck = stuck
