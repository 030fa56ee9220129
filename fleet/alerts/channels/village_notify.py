"""Village centres as a channel: every step they hear of is published on the alert's village notify topic.

The :class:`~protocol.notifications.AlertNotification` goes out at QoS 1, not retained (a console that
connects later reads the alerts from the API, not a stale last message), on
:func:`~protocol.topics.village_notify_topic` of the alert's village, through the fleet's publishing
connection; :meth:`VillageNotifyChannel.deliver` returns once the broker acknowledged it (PUBACK), so the
outbox marks delivered only what the broker took. A QoS 1 redelivery or a retry after a lost PUBACK
repeats the ``notification_id``: subscribers de-duplicate on it.
"""

from typing import Final, Protocol

from fleet.alerts.channels.base import Delivery
from fleet.alerts.channels.notification import notification_for
from fleet.alerts.outbox import Route, notify_route
from fleet.errors import ChannelUnavailableError, DownlinkUnavailableError
from fleet.settings import VillageNotifySettings
from protocol.topics import village_notify_topic

VILLAGE_NOTIFY_CHANNEL: Final = "village_notify"


class Publisher(Protocol):
    """The fleet's publishing connection (:class:`~fleet.mqtt.downlink.Downlink`), as this channel uses it."""

    async def publish_raw(self, topic: str, payload: bytes, *, retain: bool, timeout_s: float) -> None:
        """Publish at QoS 1 and return once the broker acknowledged it; raise
        :class:`~fleet.errors.DownlinkUnavailableError` when it did not within ``timeout_s``."""
        ...


class VillageNotifyChannel:
    def __init__(self, publisher: Publisher, settings: VillageNotifySettings) -> None:
        self._publisher = publisher
        self._timeout_s = settings.publish_timeout_s
        self._route = notify_route(VILLAGE_NOTIFY_CHANNEL, settings.steps)

    @property
    def name(self) -> str:
        return VILLAGE_NOTIFY_CHANNEL

    @property
    def route(self) -> Route:
        return self._route

    async def deliver(self, delivery: Delivery) -> str | None:
        notification = notification_for(delivery)
        topic = village_notify_topic(notification.village_id)  # an identifier: the model checked it
        try:
            await self._publisher.publish_raw(
                topic, notification.model_dump_json().encode(), retain=False, timeout_s=self._timeout_s
            )
        except DownlinkUnavailableError as exc:
            raise ChannelUnavailableError(f"village notify: {exc}") from exc
        return None

    async def close(self) -> None:
        """Nothing to close: the publishing connection belongs to the fleet service."""
