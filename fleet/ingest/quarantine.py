"""A gateway flooding a channel with messages nobody can process is quarantined at the broker.

Fairness by sender (:mod:`fleet.ingest.fair_queue`) reorders only what the fleet has received; a gateway
publishing as fast as the broker takes it fills the broker's queue for that lane's session, and every other
gateway's messages on the lane wait behind the flood. So when a gateway's dead letters on one channel reach
``ingest.quarantine_after`` within ``ingest.quarantine_window_s``
(:class:`~fleet.ingest.dead_letter_sources.SourceTally`), the fleet tells the broker's dynamic security
plugin to deny that gateway publishing on that channel for ``ingest.quarantine_s``
(:meth:`~fleet.broker_access.BrokerAccess.quarantine`): a role of its own with a denying ACL, checked before
the gateway's role. The broker then drops the flood as it arrives, before it is queued for the fleet; what
was queued already drains at ingest's pace. The gateway stays connected and may go on using its other
channels; its revocation state is untouched. The fleet raises ``messages_dead_lettered`` about it
(:mod:`fleet.alerts.ingest_watch`), which says it is quarantined.

Quarantines end by themselves: the role is deleted ``quarantine_s`` after the last sign of the flood (its
queued backlog arriving extends it; a gateway that floods again is quarantined again at the threshold), and
at start the fleet deletes any it finds (a previous process's). Without a dynamic security administrator
(``enrollment.dynsec_username``) nothing can be enforced: the flood is only counted, logged and alerted on.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from fleet.enrollment.broker import BrokerProvisioner
from fleet.errors import BrokerAccessRefusedError, FleetError
from fleet.ingest.dead_letter_sources import Source
from protocol.reconnect import Backoff
from protocol.topics import Channel, gateway_topic

logger = logging.getLogger(__name__)

_TICK_S: Final = 1.0


@dataclass(slots=True)
class Quarantined:
    village_id: str
    channels: set[Channel] = field(default_factory=set)
    until: float = 0.0
    """Monotonic time its quarantine ends."""
    enforced: bool = False
    """Whether the broker denies it now (False while being applied, or with no administrator to apply it)."""


class Quarantine:
    def __init__(
        self,
        provisioner: BrokerProvisioner | None,
        *,
        duration_s: float = 300.0,
        release_leftovers: bool = True,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``release_leftovers``: end at start the quarantines an earlier process left (``fleet run`` only)."""
        self._provisioner = provisioner
        self._release_leftovers_at_start = release_leftovers
        self._duration_s = duration_s
        self._monotonic = monotonic
        self.active: dict[str, Quarantined] = {}
        """Gateways quarantined (or found flooding, where nothing can be enforced), by gateway id."""
        self._to_apply: set[str] = set()
        self._wake = asyncio.Event()
        self._backoff = Backoff(base_s=0.5, cap_s=30.0)
        self.applied = 0  # quarantines the broker took
        self.released = 0

    @property
    def enforceable(self) -> bool:
        return self._provisioner is not None

    def flooding(self, source: Source, count: int) -> None:
        """``source`` reached the threshold (``count`` dead letters in its window): quarantine it."""
        entry = self.active.setdefault(source.gateway_id, Quarantined(source.village_id))
        entry.until = self._monotonic() + self._duration_s
        if source.channel in entry.channels:
            return  # its queued backlog still arrives; the quarantine is extended, nothing more to ask
        entry.channels.add(source.channel)
        entry.enforced = False
        logger.error(
            "gateway %s floods its %s channel (%d dead letters in the window): %s for %.0f s",
            source.gateway_id,
            source.channel,
            count,
            "quarantining it" if self.enforceable else "cannot quarantine it (no broker administrator)",
            self._duration_s,
        )
        if self.enforceable:
            self._to_apply.add(source.gateway_id)
            self._wake.set()

    async def run(self) -> None:
        if self._release_leftovers_at_start:
            await self._release_leftovers()
        while True:
            try:
                await self._apply()
                await self._release_due()
            except FleetError as exc:  # the broker or its plugin is away: try again shortly
                delay = self._backoff.next_delay()
                logger.warning("quarantine postponed %.1f s: %s", delay, exc)
                await asyncio.sleep(delay)
                continue
            self._backoff.reset()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_TICK_S):  # not wait_for: see fleet.alerts.gateway_watch
                    await self._wake.wait()

    async def _release_leftovers(self) -> None:
        if self._provisioner is None:
            return
        try:
            async with self._provisioner.access() as access:
                for gateway_id in await access.quarantined():
                    await access.release(gateway_id)
                    logger.info("gateway %s's quarantine, left by an earlier fleet process, ended", gateway_id)
        except FleetError as exc:
            logger.warning("could not look for quarantines left by an earlier fleet process: %s", exc)

    async def _apply(self) -> None:
        if not self._to_apply or self._provisioner is None:
            return
        async with self._provisioner.access() as access:
            for gateway_id in sorted(self._to_apply):
                entry = self.active.get(gateway_id)
                if entry is not None:
                    channels = sorted(entry.channels)
                    topics = [gateway_topic(entry.village_id, gateway_id, channel) for channel in channels]
                    try:
                        await access.quarantine(gateway_id, topics)
                    except BrokerAccessRefusedError as exc:  # e.g. it has no login of its own: nothing to deny
                        logger.error("gateway %s cannot be quarantined: %s", gateway_id, exc)
                    else:
                        entry.enforced = True
                        self.applied += 1
                        logger.warning("gateway %s quarantined: the broker denies it %s", gateway_id, ", ".join(topics))
                self._to_apply.discard(gateway_id)

    async def _release_due(self) -> None:
        now = self._monotonic()
        due = [gateway_id for gateway_id, entry in self.active.items() if entry.until <= now]
        if not due:
            return
        if self._provisioner is not None:
            async with self._provisioner.access() as access:
                for gateway_id in due:
                    await access.release(gateway_id)
                    self._to_apply.discard(gateway_id)
                    del self.active[gateway_id]
                    self.released += 1
                    logger.warning("gateway %s's quarantine ended", gateway_id)
            return
        for gateway_id in due:
            del self.active[gateway_id]
