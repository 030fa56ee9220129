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
    """Encode ``message`` for its channel's topic, at QoS 1 (heartbeats too: their PUBACK times the
    uplink's round trip), with the channel's retain flag."""
    channel = channel_of(message)
    return Outgoing(channel, gateway_topic(village_id, gateway_id, channel), encode(message), 1, channel.retained)
