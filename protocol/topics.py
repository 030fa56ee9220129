"""The Outpost topic scheme: ``outpost/v1/{village}/{gateway}/{channel}``.

Every topic is built by :func:`gateway_topic` (or :meth:`GatewayTopic.__str__`) and parsed by
:meth:`GatewayTopic.parse`; no other module splits or formats topic strings.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Self

from protocol.errors import TopicError
from protocol.identifiers import is_identifier

ROOT: Final = "outpost"
TOPIC_VERSION: Final = "v1"
PREFIX: Final = f"{ROOT}/{TOPIC_VERSION}"
_PREFIX_LEVELS: Final = 2
_ID_LEVELS: Final = 2


class Direction(StrEnum):
    """Who publishes on a channel."""

    UPLINK = "uplink"  # gateway -> fleet
    DOWNLINK = "downlink"  # fleet -> gateway


class Channel(StrEnum):
    """The kinds of traffic a gateway exchanges with the fleet; the value is the topic suffix."""

    PRESENCE = "presence"
    HEARTBEAT = "heartbeat"
    TELEMETRY = "telemetry"
    EVENT = "event"
    ALERT = "alert"
    CONFIG_DESIRED = "config/desired"
    CONFIG_REPORTED = "config/reported"
    COMMAND = "command"
    COMMAND_RESPONSE = "command/response"

    @property
    def direction(self) -> Direction:
        return Direction.DOWNLINK if self in _DOWNLINK else Direction.UPLINK

    @property
    def retained(self) -> bool:
        """Whether messages on this channel are published with the MQTT retain flag."""
        return self in _RETAINED


_DOWNLINK: Final = frozenset({Channel.CONFIG_DESIRED, Channel.COMMAND})
_RETAINED: Final = frozenset({Channel.PRESENCE, Channel.CONFIG_DESIRED, Channel.CONFIG_REPORTED})
_CHANNELS_BY_SUFFIX: Final = {channel.value: channel for channel in Channel}


def _require_identifier(kind: str, value: str) -> None:
    if not is_identifier(value):
        raise TopicError(f"{kind} {value!r} is not a valid identifier (a-z, 0-9, '-', '_'; max 64)")


@dataclass(frozen=True, slots=True)
class GatewayTopic:
    """One gateway's topic for one channel, validated on construction."""

    village_id: str
    gateway_id: str
    channel: Channel

    def __post_init__(self) -> None:
        _require_identifier("village id", self.village_id)
        _require_identifier("gateway id", self.gateway_id)

    def __str__(self) -> str:
        return f"{PREFIX}/{self.village_id}/{self.gateway_id}/{self.channel.value}"

    @classmethod
    def parse(cls, topic: str) -> Self:
        """Parse a concrete topic; raise :class:`TopicError` if it is not an Outpost gateway topic."""
        levels = topic.split("/", _PREFIX_LEVELS + _ID_LEVELS)
        if len(levels) != _PREFIX_LEVELS + _ID_LEVELS + 1 or "/".join(levels[:_PREFIX_LEVELS]) != PREFIX:
            raise TopicError(f"not an {PREFIX} gateway topic: {topic[:200]!r}")
        village_id, gateway_id, suffix = levels[_PREFIX_LEVELS:]
        channel = _CHANNELS_BY_SUFFIX.get(suffix)
        if channel is None:
            raise TopicError(f"unknown channel {suffix[:64]!r} in topic {topic[:200]!r}")
        return cls(village_id, gateway_id, channel)


def gateway_topic(village_id: str, gateway_id: str, channel: Channel) -> str:
    """The concrete topic on which ``gateway_id`` of ``village_id`` uses ``channel``."""
    return str(GatewayTopic(village_id, gateway_id, channel))


def fleet_filter(channel: Channel | None = None, *, village_id: str | None = None) -> str:
    """A subscription filter for one channel (or all) of every gateway (of one village, or all)."""
    if village_id is not None:
        _require_identifier("village id", village_id)
    village = village_id if village_id is not None else "+"
    suffix = channel.value if channel is not None else "#"
    return f"{PREFIX}/{village}/+/{suffix}"


def uplink_filters() -> list[str]:
    """The filters a fleet consumer subscribes to in order to receive every gateway's uplink traffic."""
    return [fleet_filter(channel) for channel in Channel if channel.direction is Direction.UPLINK]


def gateway_filters(village_id: str, gateway_id: str) -> list[str]:
    """The filters a gateway subscribes to: its own downlink channels, nothing else."""
    return [
        gateway_topic(village_id, gateway_id, channel) for channel in Channel if channel.direction is Direction.DOWNLINK
    ]


def shared_filter(group: str, topic_filter: str) -> str:
    """An MQTT 5 / Mosquitto shared subscription, so several consumers split one filter's load."""
    _require_identifier("share group", group)
    return f"$share/{group}/{topic_filter}"


# Access control: what each party may publish and receive, for the broker's per-client ACLs.
#
# A gateway's ACLs are concrete topics, not patterns with a %u (username) placeholder: the village id is
# part of every topic and is not the username, so a pattern like outpost/v1/+/%u/alert would let a gateway
# publish under any village; concrete topics pin both ids. (Mosquitto 2.0's dynamic security plugin does
# not substitute %u/%c at all.)


def gateway_publish_topics(village_id: str, gateway_id: str) -> list[str]:
    """The concrete topics ``gateway_id`` of ``village_id`` publishes on (its uplink channels), and no others."""
    return [
        gateway_topic(village_id, gateway_id, channel) for channel in Channel if channel.direction is Direction.UPLINK
    ]


def gateway_receive_topics(village_id: str, gateway_id: str) -> list[str]:
    """The concrete topics whose messages ``gateway_id`` of ``village_id`` receives (its downlink channels).

    They are the same strings as its subscription filters, :func:`gateway_filters`, which hold no wildcard.
    """
    return gateway_filters(village_id, gateway_id)


def fleet_publish_filters() -> list[str]:
    """Filters matching every topic the fleet publishes on: each downlink channel of every gateway."""
    return [fleet_filter(channel) for channel in Channel if channel.direction is Direction.DOWNLINK]


# --- village notify ---
#
# The fleet tells a village's centre about its alerts (protocol.notifications.AlertNotification, QoS 1, not
# retained) on outpost/v1/_notify/{village}. A level starting with '_' is no identifier, so no village is
# named so: the topic can never equal a gateway's, GatewayTopic.parse refuses it, and being one level short
# of a gateway topic it matches no outpost/v1/+/+/{channel} subscription.

VILLAGE_NOTIFY_LEVEL: Final = "_notify"


def village_notify_topic(village_id: str) -> str:
    """Where the fleet publishes notifications about the alerts of ``village_id`` for its village centre."""
    _require_identifier("village id", village_id)
    return f"{PREFIX}/{VILLAGE_NOTIFY_LEVEL}/{village_id}"


def village_notify_filter(village_id: str | None = None) -> str:
    """What a village centre subscribes to (its own village), or a town or county console (every village);
    also what the fleet's broker role must be allowed to publish on."""
    if village_id is not None:
        return village_notify_topic(village_id)
    return f"{PREFIX}/{VILLAGE_NOTIFY_LEVEL}/+"


def sender_of(topic: str) -> str:
    """The gateway id level of an uplink ``topic``, unvalidated (cheap, for sharing ingest fairly between
    senders); ``""`` for a topic of any other shape."""
    levels = topic.split("/", _PREFIX_LEVELS + _ID_LEVELS)
    return levels[_PREFIX_LEVELS + 1] if len(levels) == _PREFIX_LEVELS + _ID_LEVELS + 1 else ""
