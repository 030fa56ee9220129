"""Acts on each decoded uplink message: presence, registry, time series and alerts."""

import logging
from collections.abc import Callable

from fleet.alerts.store import AlertStore
from fleet.ingest.dedupe import RecentIds
from fleet.presence import OfflineReason, PresenceTracker
from fleet.registry import Registry
from fleet.timeseries.points import event_point, health_point, telemetry_points
from fleet.timeseries.writer import BatchingWriter
from protocol.codec import Inbound
from protocol.messages import Alert, DeviceEvent, Heartbeat, Presence, PresenceReason, PresenceState, TelemetryBatch

logger = logging.getLogger(__name__)


class IngestRouter:
    def __init__(
        self,
        registry: Registry,
        presence: PresenceTracker,
        writer: BatchingWriter,
        alerts: AlertStore,
        on_alert: Callable[[], None],
        clock: Callable[[], int],
    ) -> None:
        self._registry = registry
        self._presence = presence
        self._writer = writer
        self._alerts = alerts
        self._on_alert = on_alert
        self._clock = clock
        self.recent = RecentIds()
        self.alerts_raised = 0

    async def handle(self, inbound: Inbound) -> None:
        """Act on one message. Raises on failure, before the message counts as handled, so that the
        caller can retry it; a repeat of a handled message is a no-op."""
        message = inbound.message
        if self.recent.seen(message.event_id):
            return
        await self._dispatch(inbound)
        self.recent.remember(message.event_id)

    async def _dispatch(self, inbound: Inbound) -> None:
        message = inbound.message
        village_id = inbound.topic.village_id
        if not self._registry.knows(message.gateway_id, village_id):
            agent_version = message.agent_version if isinstance(message, Presence) else None
            await self._registry.register(village_id, message.gateway_id, agent_version)
        now = self._clock()
        match message:
            case Presence():
                await self._on_presence(village_id, message, now)
                return
            case Heartbeat():
                self._registry.note_heartbeat(message, now)
                self._writer.add([health_point(village_id, message)])
                interval: float | None = message.interval_s
            case TelemetryBatch():
                self._registry.note_seen(message.gateway_id, now)
                self._writer.add(telemetry_points(village_id, message))
                interval = None
            case DeviceEvent():
                self._registry.note_seen(message.gateway_id, now)
                self._writer.add([event_point(village_id, message)])
                interval = None
            case Alert():
                self._registry.note_seen(message.gateway_id, now)
                if await self._alerts.record(village_id, message):
                    self.alerts_raised += 1
                    self._on_alert()
                interval = None
            case _:
                logger.debug("no handler yet for %s from %s", inbound.topic.channel, message.gateway_id)
                return
        transition = self._presence.seen(message.gateway_id, village_id, now, interval)
        if transition is not None:
            await self._registry.apply([transition])

    async def _on_presence(self, village_id: str, presence: Presence, now: int) -> None:
        self._registry.note_agent_version(presence.gateway_id, presence.agent_version, now)
        if presence.state is PresenceState.ONLINE:
            transition = self._presence.announced_online(presence.gateway_id, village_id, presence.seq, now)
        else:
            reason = OfflineReason.LOST if presence.reason is PresenceReason.LOST else OfflineReason.SHUTDOWN
            transition = self._presence.went_offline(presence.gateway_id, village_id, reason, presence.seq, now)
        if transition is not None:
            await self._registry.apply([transition])
