"""Acts on each decoded uplink message: presence, registry, time series and alerts.

:meth:`IngestRouter.handle` says when the message may be acknowledged to the broker: at once (None)
when everything it caused is already durable or is not part of the record, or when the returned
future completes. The record is the time series of telemetry and events (a ticket from the batching
writer), a config report (a completion from its batching recorder) and the alert row (committed before
``handle`` returns). Last-seen times and health go to the registry in memory and are written in batches by
its flush, and a heartbeat's health point to the time-series writer: that is last-known state, refreshed
by the next heartbeat, not the record, so a heartbeat is acknowledged without waiting for either.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable

from fleet.alerts.correlation import CLEARED_BY
from fleet.alerts.store import AlertStore
from fleet.gateways.presence import OfflineReason, PresenceTracker
from fleet.gateways.registry import Registry
from fleet.ingest.dedupe import RecentIds
from fleet.timeseries.points import PointList, camera_health_points, event_point, health_point, telemetry_points
from fleet.timeseries.writer import BatchingWriter
from protocol.codec import Inbound
from protocol.messages import (
    Alert,
    CommandResponse,
    ConfigReported,
    DeviceEvent,
    Heartbeat,
    Presence,
    PresenceReason,
    PresenceState,
    TelemetryBatch,
)

logger = logging.getLogger(__name__)

Completion = asyncio.Future[None]
ConfigReportedHandler = Callable[[str, ConfigReported], Completion]
"""Takes a gateway's config report (village id, report) at once; the completion says when it is stored."""
CommandResponseHandler = Callable[[str, CommandResponse], Awaitable[None]]
"""Takes a gateway's answer to a command (village id, response); returns once it is stored."""


class IngestRouter:
    """Routes decoded messages. ``presence`` is None in a standalone ingest worker: presence is owned
    by the ``fleet run`` process, which takes every presence and heartbeat message."""

    def __init__(
        self,
        registry: Registry,
        presence: PresenceTracker | None,
        writer: BatchingWriter,
        alerts: AlertStore,
        on_alert: Callable[[], None],
        clock: Callable[[], int],
        *,
        on_config_reported: ConfigReportedHandler | None = None,
        on_command_response: CommandResponseHandler | None = None,
        on_heartbeat: Callable[[str, Heartbeat], None] = lambda village_id, heartbeat: None,
    ) -> None:
        self._registry = registry
        self._on_heartbeat = on_heartbeat
        self._on_config_reported = on_config_reported
        self._on_command_response = on_command_response
        self._presence = presence
        self._writer = writer
        self._alerts = alerts
        self._on_alert = on_alert
        self._clock = clock
        self.recent = RecentIds()
        self.alerts_raised = 0
        self.stale_retained = 0
        """Retained state messages of gateways not held in their village, ignored (:meth:`handle`)."""

    async def handle(self, inbound: Inbound, *, retained: bool = False) -> Completion | None:
        """Act on one message; return None when it may be acknowledged now, else a future completed
        once it may. Raises on failure, before the message counts as handled, so that the caller can
        retry it; a repeat of a handled message is a no-op (a repeat of a pending one shares its future).

        ``retained``: it came with the retain flag, a copy the broker kept. A retained presence or config report
        of a gateway the registry does not hold in that village is ignored: it may be the last word of a gateway
        deleted or moved since, and only live traffic registers or moves a gateway."""
        if (
            retained
            and inbound.topic.channel.retained
            and not self._registry.knows(inbound.message.gateway_id, inbound.topic.village_id)
        ):
            self.stale_retained += 1
            logger.info(
                "retained %s of gateway %s in %s ignored: the registry does not hold it there (deleted or moved "
                "since?); its next live message registers it",
                inbound.topic.channel.value, inbound.message.gateway_id, inbound.topic.village_id,
            )  # fmt: skip
            return None
        event_id = inbound.message.event_id
        if self.recent.seen(event_id):
            return None
        pending = self.recent.pending(event_id)
        if pending is not None:
            return pending
        completion = await self._dispatch(inbound)
        if completion is None or completion.done():
            self.recent.remember(event_id)
            return None
        self.recent.remember_when_done(event_id, completion)
        return completion

    async def _dispatch(self, inbound: Inbound) -> Completion | None:
        message = inbound.message
        village_id = inbound.topic.village_id
        bulk = isinstance(message, TelemetryBatch | DeviceEvent)  # registered by the registry's next flush
        if not bulk and not self._registry.knows(message.gateway_id, village_id):
            agent_version = message.agent_version if isinstance(message, Presence) else None
            await self._registry.register(village_id, message.gateway_id, agent_version)
        now = self._clock()
        completion: Completion | None = None
        match message:
            case Presence():
                await self._on_presence(village_id, message, now)
                return None
            case Heartbeat():
                self._registry.note_heartbeat(village_id, message, now)
                self._on_heartbeat(village_id, message)
                # Health is last-known state: acknowledged without waiting for the time-series store.
                points = (health_point(village_id, message), *camera_health_points(village_id, message))
                self._writer.add_unawaited(PointList(points))
                interval: float | None = message.interval_s
            case TelemetryBatch():
                self._registry.note_seen(message.gateway_id, village_id, now)
                completion = self._writer.add(telemetry_points(village_id, message))
                interval = None
            case DeviceEvent():
                self._registry.note_seen(message.gateway_id, village_id, now)
                if message.kind in CLEARED_BY and await self._alerts.condition_ended(message):
                    self._on_alert()  # a clear to apply after its hold-off
                completion = self._writer.add(PointList((event_point(village_id, message),)))
                interval = None
            case Alert():
                self._registry.note_seen(message.gateway_id, village_id, now)
                if await self._alerts.record(village_id, message):
                    self.alerts_raised += 1
                    self._on_alert()
                interval = None
            case ConfigReported() | CommandResponse():
                self._registry.note_seen(message.gateway_id, village_id, now)
                completion = await self._on_reply(village_id, message)
                interval = None
            case _:
                logger.debug("no handler yet for %s from %s", inbound.topic.channel, message.gateway_id)
                return None
        if self._presence is not None:
            transition = self._presence.seen(message.gateway_id, village_id, now, interval, sent_ms=message.ts)
            if transition is not None:
                self._registry.apply([transition])
        return completion

    async def _on_reply(self, village_id: str, message: ConfigReported | CommandResponse) -> Completion | None:
        """A config report is stored in batches (its completion says when); a command's answer at once."""
        if isinstance(message, ConfigReported):
            return self._on_config_reported(village_id, message) if self._on_config_reported is not None else None
        if self._on_command_response is not None:
            await self._on_command_response(village_id, message)
        return None

    async def _on_presence(self, village_id: str, presence: Presence, now: int) -> None:
        self._registry.note_agent_version(presence.gateway_id, village_id, presence.agent_version, now)
        if self._presence is None:
            return
        if presence.state is PresenceState.ONLINE:
            transition = self._presence.announced_online(presence.gateway_id, village_id, presence.seq, now)
        else:
            reason = OfflineReason.LOST if presence.reason is PresenceReason.LOST else OfflineReason.SHUTDOWN
            transition = self._presence.went_offline(presence.gateway_id, village_id, reason, presence.seq, now)
        if transition is not None:
            self._registry.apply([transition])
