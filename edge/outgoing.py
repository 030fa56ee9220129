"""An encoded message ready for the uplink: where it goes and how."""

from dataclasses import dataclass

from protocol.codec import encode
from protocol.messages import Message, channel_of
from protocol.topics import Channel, gateway_topic


@dataclass(frozen=True, slots=True)
class Outgoing:
    channel: Channel
    topic: str
    payload: bytes
    qos: int
    retain: bool


def outgoing(village_id: str, gateway_id: str, message: Message) -> Outgoing:
    """Encode ``message`` for its channel's topic, QoS (heartbeats 0, everything else 1) and retain flag."""
    channel = channel_of(message)
    qos = 0 if channel is Channel.HEARTBEAT else 1
    return Outgoing(channel, gateway_topic(village_id, gateway_id, channel), encode(message), qos, channel.retained)
