"""Which uplink channels each ingest lane subscribes to, and how.

Ingest takes the uplink on separate MQTT sessions, one per lane, so that no kind of traffic can hold back
another: acknowledgements leave a session in receive order (MQTT 5 §4.6), and a session whose Receive
Maximum is full gets nothing more from the broker.

- **alerts**: the alert channel alone. Nothing but the registry database stands between an alert and its
  case: no other channel's acknowledgement, no time-series write.
- **control**: presence, heartbeat, config/reported, command/response. Last-known state and replies,
  acknowledged once the database has them (heartbeats at once: their health is last-known state too).
  Presence by silence needs every heartbeat of a gateway in one tracker, presence is retained (a shared
  subscription gets no retained messages), so this lane stays with one process, ``fleet run``.
- **bulk**: telemetry and events, nearly all the volume, acknowledged once the time-series store has their
  points. Subscribed through a shared subscription (``$share/{group}/…``) so that every ingest worker in
  the group takes a share, each message going to one of them.

Retained messages: only ``presence`` and ``config/reported`` are retained by contract (``Channel.retained``), and
each subscription takes theirs (state: who said goodbye, what each gateway runs). A gateway may still publish
retained on its other channels (the broker's access control cannot refuse the flag on a topic the gateway may
publish on); such a message would come back at every subscription, after every restart and reconnect. So the
other channels are subscribed without retained messages (MQTT 5 Retain Handling 2) and with the retain flag as
published: the consumer takes the message once, as it arrived live, and counts it
(:mod:`fleet.ingest.consumer`).
"""

from enum import StrEnum
from typing import Final

from fleet.mqtt.ingest_session import Subscription
from protocol.topics import Channel, fleet_filter, shared_filter


class Lane(StrEnum):
    ALERTS = "alerts"
    CONTROL = "control"
    BULK = "bulk"


LANE_CHANNELS: Final[dict[Lane, tuple[Channel, ...]]] = {
    Lane.ALERTS: (Channel.ALERT,),
    Lane.CONTROL: (Channel.PRESENCE, Channel.HEARTBEAT, Channel.CONFIG_REPORTED, Channel.COMMAND_RESPONSE),
    Lane.BULK: (Channel.TELEMETRY, Channel.EVENT),
}


def lane_filters(lane: Lane, share_group: str | None) -> list[str]:
    """The filters a lane subscribes to: plain, or shared (bulk, when a group is set)."""
    plain = [fleet_filter(channel) for channel in LANE_CHANNELS[lane]]
    if lane is Lane.BULK and share_group is not None:
        return [shared_filter(share_group, topic_filter) for topic_filter in plain]
    return plain


def lane_subscriptions(lane: Lane, share_group: str | None) -> list[Subscription]:
    """:func:`lane_filters`, each with whether its channel is retained by contract (if not, the broker sends
    none of its retained messages at subscribe)."""
    filters = lane_filters(lane, share_group)
    return [
        Subscription(topic_filter, retained=channel.retained)
        for channel, topic_filter in zip(LANE_CHANNELS[lane], filters, strict=True)
    ]


def lane_client_id(base: str, lane: Lane) -> str:
    """The MQTT client id of ``fleet run``'s session for ``lane``: the control lane keeps the fleet's own id."""
    return base if lane is Lane.CONTROL else f"{base}-{lane.value}"


def worker_client_id(base: str, index: int) -> str:
    """A standalone worker's client id: stable per index, so a restarted worker resumes its own session."""
    return f"{base}-ingest-{index}"
