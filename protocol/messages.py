"""Payload models for every channel of the topic scheme.

Every message carries the same envelope: ``schema_version``, the ``gateway_id`` it is from (uplink)
or for (downlink), a per-gateway monotonic ``seq``, a unique ``event_id`` consumers de-duplicate on,
and ``ts``, the UTC instant in epoch milliseconds taken where the message originated.
Models are frozen, strict (no type coercion), refuse unknown fields and non-finite numbers (JSON has
no NaN or infinity): any change to a payload's shape bumps :data:`protocol.SCHEMA_VERSION`.
"""

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Final, Literal, Self
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from protocol.bounds import (
    ByteCount,
    Celsius,
    Count,
    FrameAgeSeconds,
    FrameRate,
    IntervalSeconds,
    Percent,
    RoundTripMillis,
    SafeInt,
    SafeNatural,
    UptimeSeconds,
    refuse_unsafe_integer,
)
from protocol.gateway_config import GatewayConfig
from protocol.identifiers import (
    KEY_ID_PATTERN,
    DeviceId,
    EpochMillis,
    FirmwareVersion,
    GatewayId,
    GridId,
    MetricName,
    ShortText,
)
from protocol.topics import Channel
from protocol.updates import UpdateReport

MAX_BATCH_POINTS: Final = 1_000
MAX_ATTACHMENT_BYTES: Final = 40_000
"""Base64 makes it ~53 KB on the wire, inside the decoder's 64 KiB default."""
MAX_COMMAND_ATTACHMENT_BYTES: Final = 16_384
"""A command's binary argument: a certificate chain in PEM is a few kilobytes."""
SIGNATURE_PATTERN: Final = r"^[A-Za-z0-9_-]{86}$"
"""A 64-byte Ed25519 signature in base64url without padding (made and checked by protocol.config_signing)."""
EvidenceValue = Annotated[float | SafeInt | bool | ShortText, BeforeValidator(refuse_unsafe_integer)]
"""A finite float, an integer within ±(2**53 - 1) (never an out-of-range one taken as a float), a boolean or text."""
Evidence = Annotated[dict[MetricName, EvidenceValue], Field(max_length=32)]


class WireModel(BaseModel):
    """Base of every wire model: frozen, strict, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


class Envelope(WireModel):
    """The fields every message carries."""

    schema_version: Literal[1] = 1
    gateway_id: GatewayId
    seq: SafeNatural = Field(description="Per-gateway monotonic sequence number.")
    event_id: UUID = Field(description="Unique id of this message; consumers de-duplicate on it.")
    ts: EpochMillis = Field(description="UTC epoch milliseconds, taken at the source.")


# --- presence and health ---------------------------------------------------------------------


class PresenceState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class PresenceReason(StrEnum):
    CONNECTED = "connected"
    SHUTDOWN = "shutdown"  # clean stop, published by the agent
    LOST = "lost"  # the Last Will: the broker saw the connection die


class Presence(Envelope):
    """Retained on the presence channel; the Last Will carries ``offline``/``lost``."""

    state: PresenceState
    reason: PresenceReason
    agent_version: ShortText


class AdapterState(StrEnum):
    RUNNING = "running"
    OFFLINE = "offline"  # the device itself is unreachable (stream lost, node silent)
    RESTARTING = "restarting"  # the adapter failed and waits to be restarted


class CameraHealth(WireModel):
    """What a camera adapter saw since the agent started, so a technician can tell a healthy camera from a
    dark, frozen or failing one without looking at a single frame."""

    analysed_fps: FrameRate = Field(description="Frames analysed a second, over the last heartbeat interval.")
    stream_fps: FrameRate | None = Field(default=None, description="The stream's own rate, where it says.")
    last_frame_age_s: FrameAgeSeconds | None = Field(
        default=None, description="Seconds since the last frame arrived; null before the first."
    )
    frames: Count = Field(default=0, description="Frames analysed since start.")
    decode_errors: Count = Field(default=0, description="Frames grabbed that could not be decoded.")
    reconnects: Count = Field(default=0, description="Times the source was opened again after a failure.")
    reason: ShortText | None = Field(default=None, description="Why it is offline now; null while it is online.")


class GatewayHealth(WireModel):
    cpu_percent: Percent
    memory_percent: Percent
    disk_percent: Percent
    uptime_s: UptimeSeconds = Field(description="Seconds since the agent started.")
    temperature_c: Celsius | None = Field(default=None, description="SoC temperature, where the board reports it.")
    uplink_rtt_ms: RoundTripMillis | None = Field(default=None, description="PUBACK time of the previous heartbeat.")
    buffer_depth: Count = Field(default=0, description="Messages stored and not yet acknowledged by the broker.")
    buffer_bytes: ByteCount = 0
    dropped: Annotated[dict[MetricName, Count], Field(max_length=32)] = Field(
        default_factory=dict, description="Messages dropped since start, by channel (and non_finite readings)."
    )
    adapters: Annotated[dict[DeviceId, AdapterState], Field(max_length=256)] = Field(default_factory=dict)
    device_firmware: Annotated[dict[DeviceId, FirmwareVersion], Field(max_length=256)] = Field(
        default_factory=dict, description="Firmware version each sensor node last reported, by device id."
    )
    cameras: Annotated[dict[DeviceId, CameraHealth], Field(max_length=64)] = Field(
        default_factory=dict, description="Each camera's frames, errors and last frame, by device id."
    )
    update: UpdateReport | None = Field(default=None, description="The gateway's latest update and where it stands.")


class Heartbeat(Envelope):
    """Periodic proof of life with basic health; ``interval_s`` tells the fleet when to expect the next."""

    interval_s: IntervalSeconds
    health: GatewayHealth


# --- telemetry, events, alerts ---------------------------------------------------------------


class TelemetryPoint(WireModel):
    device_id: DeviceId
    metric: MetricName
    value: float
    ts: EpochMillis


class TelemetryBatch(Envelope):
    points: list[TelemetryPoint] = Field(min_length=1, max_length=MAX_BATCH_POINTS)


class EventKind(StrEnum):
    BUTTON_PRESSED = "button_pressed"
    DOOR_OPENED = "door_opened"
    DOOR_CLOSED = "door_closed"
    MOTION = "motion"
    LINE_CROSSING = "line_crossing"
    CAMERA_TAMPER = "camera_tamper"
    DEVICE_TAMPER = "device_tamper"
    DEVICE_OFFLINE = "device_offline"
    DEVICE_ONLINE = "device_online"
    LOW_BATTERY = "low_battery"  # a sensor node's battery below its threshold
    NODE_CONFIG_REJECTED = "node_config_rejected"  # a sensor node refused the settings its gateway pushed
    SNAPSHOT_FETCHED = "snapshot_fetched"  # the audit record of a snapshot leaving the gateway


class DeviceEvent(Envelope):
    """Something a device or a local detector saw; it may or may not become an alert."""

    device_id: DeviceId
    kind: EventKind
    evidence: Evidence = Field(default_factory=dict)


class AlertKind(StrEnum):
    """What a gateway raises an alert for (the fleet raises its own: :class:`FleetAlertKind`)."""

    PANIC = "panic"
    DOOR_FORCED = "door_forced"
    DOOR_HELD_OPEN = "door_held_open"
    CAMERA_TAMPER = "camera_tamper"
    CAMERA_OFFLINE = "camera_offline"
    DEVICE_TAMPER = "device_tamper"
    NODE_SILENT = "node_silent"
    INTRUSION = "intrusion"


class FleetAlertKind(StrEnum):
    """What the fleet manager raises an alert for, about a gateway it watches; never sent by a gateway."""

    GATEWAY_OFFLINE = "gateway_offline"  # silent past its rule's hold-off (missed heartbeats)
    DISK_CRITICAL = "disk_critical"  # its heartbeat's disk_percent at or over the rule's limit
    TEMPERATURE_CRITICAL = "temperature_critical"  # its heartbeat's temperature_c at or over the rule's limit
    CONFIG_REJECTED = "config_rejected"  # it refused the config the fleet published
    BUFFER_OVERFLOWING = "buffer_overflowing"  # its store-and-forward buffer filling or dropping messages
    DELIVERY_FAILED = "delivery_failed"  # a message about one of its alerts was dead-lettered by a channel
    MESSAGES_DEAD_LETTERED = "messages_dead_lettered"  # messages it sent could not be processed (ingest dead letters)
    INGEST_STUCK = "ingest_stuck"  # its messages wait in the fleet's alerts or control lane past the stuck bound


class Severity(StrEnum):
    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    WARNING = "warning"
    INFO = "info"


class Alert(Envelope):
    """Something a person must act on, raised at the gateway and published at QoS 1."""

    device_id: DeviceId
    kind: AlertKind
    severity: Severity
    grid_id: GridId | None = None
    evidence: Evidence = Field(default_factory=dict)
    summary: ShortText = ""


# --- configuration and commands ----------------------------------------------------------------


class SignedByTheFleet(Envelope):
    """A fleet -> gateway message the fleet signs (Ed25519, its config-signing key): ``signature`` and the id of the
    key that made it, both or neither. What it covers is the message's own: :mod:`protocol.config_signing` for a
    config, :mod:`protocol.command_signing` for a command. A gateway holding the fleet's key refuses the message
    without a signature that verifies."""

    signature: str | None = Field(
        default=None, pattern=SIGNATURE_PATTERN, description="The fleet's Ed25519 signature (base64url, no padding)."
    )
    key_id: str | None = Field(
        default=None, pattern=KEY_ID_PATTERN, description="Fingerprint of the fleet key that signed it."
    )

    @model_validator(mode="after")
    def _signed_with_a_named_key(self) -> Self:
        if (self.signature is None) != (self.key_id is None):
            raise ValueError("signature and key_id come together")
        return self


class ConfigDesired(SignedByTheFleet):
    """Retained, fleet -> gateway: the configuration the gateway should run, signed by the fleet.

    ``signature`` is the fleet's Ed25519 signature over this gateway, its village, the version and the
    config (:mod:`protocol.config_signing`); ``key_id`` names the key that made it. A gateway that holds
    the fleet's public key refuses a config without a signature or with one that does not verify.
    """

    version: SafeNatural
    config: GatewayConfig


class ConfigStatus(StrEnum):
    APPLIED = "applied"
    REJECTED = "rejected"


class ConfigReported(Envelope):
    """Retained, gateway -> fleet: which configuration version runs, or why a version was refused."""

    version: SafeNatural
    status: ConfigStatus
    error: ShortText | None = None


class CommandName(StrEnum):
    RESTART_AGENT = "restart_agent"
    DIAGNOSTICS = "diagnostics"
    LIST_SNAPSHOTS = "list_snapshots"
    FETCH_SNAPSHOT = "fetch_snapshot"  # audited: needs requested_by and reason
    INSTALL_CERTIFICATE = "install_certificate"  # the attachment: the gateway's renewed TLS client certificate (PEM)
    UPDATE_AGENT = "update_agent"  # fetch, install and switch to an agent release; progress in health.update


COMMAND_ARGS: Final[Mapping[CommandName, frozenset[str]]] = {
    CommandName.RESTART_AGENT: frozenset(),
    CommandName.DIAGNOSTICS: frozenset(),
    CommandName.LIST_SNAPSHOTS: frozenset({"device_id", "before_ts"}),  # both optional (paging)
    CommandName.FETCH_SNAPSHOT: frozenset({"snapshot_id"}),
    CommandName.INSTALL_CERTIFICATE: frozenset(),
    CommandName.UPDATE_AGENT: frozenset({"version", "job_id"}),  # job_id optional
}
"""The arguments each command takes: the fleet refuses others before sending, the gateway again on receipt."""


class Command(SignedByTheFleet):
    """Fleet -> gateway request; the gateway answers on the command response channel."""

    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    request_id: UUID
    name: CommandName
    args: Evidence = Field(default_factory=dict)
    requested_by: ShortText | None = Field(default=None, description="The fleet user behind it, for the audit trail.")
    reason: ShortText | None = Field(default=None, description="Why, for commands that are audited.")
    timeout_s: float = Field(default=30.0, gt=0, le=3600)
    attachment: bytes | None = Field(
        default=None,
        max_length=MAX_COMMAND_ATTACHMENT_BYTES,
        description="Binary argument (install_certificate: the certificate's PEM), base64 in JSON.",
    )


class CommandResponse(Envelope):
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    request_id: UUID
    ok: bool
    result: Evidence = Field(default_factory=dict)
    attachment: bytes | None = Field(
        default=None,
        max_length=MAX_ATTACHMENT_BYTES,
        description="Binary result (a fetched snapshot's JPEG), base64 in JSON.",
    )
    error: ShortText | None = None


Message = (
    Presence
    | Heartbeat
    | TelemetryBatch
    | DeviceEvent
    | Alert
    | ConfigDesired
    | ConfigReported
    | Command
    | CommandResponse
)

MODEL_FOR_CHANNEL: Final[dict[Channel, type[Message]]] = {
    Channel.PRESENCE: Presence,
    Channel.HEARTBEAT: Heartbeat,
    Channel.TELEMETRY: TelemetryBatch,
    Channel.EVENT: DeviceEvent,
    Channel.ALERT: Alert,
    Channel.CONFIG_DESIRED: ConfigDesired,
    Channel.CONFIG_REPORTED: ConfigReported,
    Channel.COMMAND: Command,
    Channel.COMMAND_RESPONSE: CommandResponse,
}
CHANNEL_FOR_MODEL: Final[dict[type[Message], Channel]] = {
    model: channel for channel, model in MODEL_FOR_CHANNEL.items()
}


def channel_of(message: Message) -> Channel:
    """The channel a message is published on."""
    return CHANNEL_FOR_MODEL[type(message)]
