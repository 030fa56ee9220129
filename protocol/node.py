"""The small protocol between MicroPython sensor nodes and their village gateway, on the gateway's local broker.

Topics are ``outpost-node/v1/{node}/{channel}``; nodes publish their status (retained, with an
``offline`` Last Will), heartbeats, events and the outcome of settings updates; the gateway
publishes each node's settings update on its ``config`` channel (retained, so a sleeping node gets
it when it wakes) and the node answers on ``config_result``. A node has no wall clock: every message carries the
node's ``boot`` counter and uptime, each event its own ``boot`` and ``seq`` (the gateway de-duplicates
QoS 1 redeliveries on them) and how long ago it happened (``age_ms``), unknown for an event kept on
flash across a reset. The gateway stamps wall-clock time on receipt.

The models are plain JSON on purpose: the firmware writes them with ``json.dumps`` of a dict.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal, Self

from pydantic import Field, ValidationError

from protocol.bounds import IntervalSeconds
from protocol.codec import Rejection, RejectionTally, RejectReason
from protocol.errors import TopicError
from protocol.identifiers import DeviceId, ShortText, is_identifier
from protocol.messages import WireModel

NODE_PREFIX: Final = "outpost-node/v1"
MAX_NODE_PAYLOAD_BYTES: Final = 2048
_PREFIX_LEVELS: Final = 2


class NodeChannel(StrEnum):
    STATUS = "status"  # retained; the node's Last Will says offline
    HEARTBEAT = "heartbeat"
    EVENT = "event"
    CONFIG_RESULT = "config_result"  # the node's answer to a settings update
    CONFIG = "config"  # gateway -> node, retained: a settings update


NODE_INBOUND_CHANNELS: Final = (
    NodeChannel.STATUS,
    NodeChannel.HEARTBEAT,
    NodeChannel.EVENT,
    NodeChannel.CONFIG_RESULT,
)


@dataclass(frozen=True, slots=True)
class NodeTopic:
    node_id: str
    channel: NodeChannel

    def __post_init__(self) -> None:
        if not is_identifier(self.node_id):
            raise TopicError(f"node id {self.node_id!r} is not a valid identifier (a-z, 0-9, '-', '_'; max 64)")

    def __str__(self) -> str:
        return f"{NODE_PREFIX}/{self.node_id}/{self.channel.value}"

    @classmethod
    def parse(cls, topic: str) -> Self:
        """Parse a concrete node topic; raise :class:`TopicError` if it is not one."""
        levels = topic.split("/", _PREFIX_LEVELS + 1)
        if len(levels) != _PREFIX_LEVELS + 2 or "/".join(levels[:_PREFIX_LEVELS]) != NODE_PREFIX:
            raise TopicError(f"not an {NODE_PREFIX} node topic: {topic[:200]!r}")
        try:
            channel = NodeChannel(levels[-1])
        except ValueError:
            raise TopicError(f"unknown node channel {levels[-1][:64]!r} in topic {topic[:200]!r}") from None
        return cls(levels[_PREFIX_LEVELS], channel)


def node_topic(node_id: str, channel: NodeChannel) -> str:
    """The topic on which node ``node_id`` publishes ``channel``."""
    return str(NodeTopic(node_id, channel))


def node_filters() -> list[str]:
    """What a gateway subscribes to on its local broker to hear every node."""
    return [f"{NODE_PREFIX}/+/{channel.value}" for channel in NODE_INBOUND_CHANNELS]


class NodeMessage(WireModel):
    schema_version: Literal[1] = 1
    node_id: DeviceId
    boot: int = Field(ge=0, lt=2**31, description="The node's boot counter, kept on its flash.")
    uptime_ms: int = Field(ge=0, lt=2**53, description="Milliseconds since this boot, when the message was sent.")


class NodeState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class NodeStatus(NodeMessage):
    """Retained: ``online`` on connect, ``offline`` as the node's Last Will."""

    state: NodeState


class NodeHeartbeat(NodeMessage):
    interval_s: IntervalSeconds = Field(description="Seconds until the next heartbeat.")
    battery_v: float | None = Field(default=None, ge=0, le=60, description="Unset on mains-powered nodes.")
    rssi_dbm: int | None = Field(default=None, ge=-150, le=0)
    reset_cause: ShortText = ""
    firmware: ShortText = ""
    queued: int = Field(default=0, ge=0, lt=2**31, description="Events waiting on the node to be sent.")


class NodeEventKind(StrEnum):
    PRESS = "press"
    LONG_PRESS = "long_press"
    MULTI_PRESS = "multi_press"  # ``count`` presses in quick succession
    DOOR_OPEN = "door_open"
    DOOR_CLOSED = "door_closed"
    DOOR_HELD_OPEN = "door_held_open"  # the node's own timer; ``held_ms`` says for how long
    MOTION = "motion"
    TAMPER = "tamper"  # enclosure opened or wire cut
    TAMPER_CLEARED = "tamper_cleared"


class NodeEvent(NodeMessage):
    """Something a node's input did; ``boot`` here is the boot the event happened in."""

    seq: int = Field(ge=0, lt=2**31, description="The event's number within its boot.")
    kind: NodeEventKind
    age_ms: int | None = Field(
        default=None, ge=0, lt=2**31, description="How long before sending it happened; unset if before a reset."
    )
    held_ms: int = Field(default=0, ge=0, lt=2**31, description="How long a button was held.")
    count: int = Field(default=1, ge=1, le=100, description="Presses in a multi_press.")


class NodeConfigResult(NodeMessage):
    """The node's answer to a settings update: applied, or refused with every problem it found."""

    revision: ShortText
    accepted: bool
    errors: list[ShortText] = Field(default_factory=list, max_length=16)


class NodeSettings(WireModel):
    """The firmware settings a gateway may change on a node: thresholds and timers only (identity,
    network and pins are set when the node is flashed). Unset: the node keeps its own. The ranges
    are the firmware's (``firmware/outpost_node/settings.py``); a contract test keeps them equal."""

    heartbeat_s: int | None = Field(default=None, ge=5, le=3600, description="Seconds between heartbeats.")
    confirm_ms: int | None = Field(default=None, ge=1, le=50, description="An input change must last this long.")
    settle_ms: int | None = Field(default=None, ge=5, le=2000, description="Contact bounce ignored after a change.")
    long_press_ms: int | None = Field(default=None, ge=300, le=60_000, description="A hold this long: long press.")
    multi_window_ms: int | None = Field(
        default=None, ge=150, le=5000, description="Presses this close together count as one multi-press."
    )
    held_open_s: int | None = Field(default=None, ge=0, le=86_400, description="Door held open after this; 0: off.")
    rearm_s: int | None = Field(default=None, ge=0, le=3600, description="A PIR's quiet time after a trigger.")
    sleep: Literal["none", "light", "deep"] | None = Field(
        default=None, description="Between events: light sleep wakes on the input; deep sleep resets the board."
    )


class NodeConfig(WireModel):
    """Gateway -> node: settings to change, under a ``revision`` the node reports back and
    remembers, so a retained update heard again is not applied twice."""

    schema_version: Literal[1] = 1
    node_id: DeviceId
    revision: str = Field(min_length=1, max_length=64)
    settings: NodeSettings

    def encode(self) -> bytes:
        """The payload, with unset settings left out (the node keeps its own for those)."""
        return self.model_dump_json(exclude_none=True).encode()


NodeInbound = NodeStatus | NodeHeartbeat | NodeEvent | NodeConfigResult

MODEL_FOR_NODE_CHANNEL: Final[dict[NodeChannel, type[NodeInbound]]] = {
    NodeChannel.STATUS: NodeStatus,
    NodeChannel.HEARTBEAT: NodeHeartbeat,
    NodeChannel.EVENT: NodeEvent,
    NodeChannel.CONFIG_RESULT: NodeConfigResult,
}


@dataclass(frozen=True, slots=True)
class NodeReceived:
    topic: NodeTopic
    message: NodeInbound


class NodeDecoder:
    """Decodes what nodes publish; refusals are counted and logged, never raised."""

    def __init__(self, max_payload_bytes: int = MAX_NODE_PAYLOAD_BYTES) -> None:
        self.max_payload_bytes = max_payload_bytes
        self.tally = RejectionTally()

    def decode(self, topic: str, payload: bytes) -> NodeReceived | Rejection:
        if len(payload) > self.max_payload_bytes:
            detail = f"{len(payload)} bytes > limit {self.max_payload_bytes}"
            return self.tally.reject(RejectReason.OVERSIZE, detail, topic=topic)
        try:
            parsed = NodeTopic.parse(topic)
        except TopicError as exc:
            return self.tally.reject(RejectReason.BAD_TOPIC, str(exc), topic=topic)
        model = MODEL_FOR_NODE_CHANNEL.get(parsed.channel)
        if model is None:
            return self.tally.reject(RejectReason.BAD_TOPIC, f"{parsed.channel} is not sent by nodes", topic=topic)
        try:
            message = model.model_validate_json(payload, strict=True)
        except ValidationError as exc:
            return self.tally.invalid(exc, topic=topic)
        if message.node_id != parsed.node_id:
            detail = f"payload names node {message.node_id!r}, topic names {parsed.node_id!r}"
            return self.tally.reject(RejectReason.NODE_MISMATCH, detail, topic=topic)
        return NodeReceived(parsed, message)
