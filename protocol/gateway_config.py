"""What a gateway runs: its devices and intervals, as the technician declares them and the fleet pushes them.

The edge validates a pushed config against these models before it applies it, and the fleet
validates against the same models before it publishes one, so both sides refuse the same mistakes.
"""

from enum import StrEnum
from typing import Annotated, Final, Self

from pydantic import BeforeValidator, Field, StringConstraints, model_validator

from protocol.bounds import IntervalSeconds, SafeInt, refuse_unsafe_integer
from protocol.config_model import ConfigModel
from protocol.detection import DetectionSettings
from protocol.identifiers import DeviceId, GridId, KeyId

MAX_DEVICES = 256
MAX_PARAMS = 64
"""Driver parameters of one device."""


class DeviceKind(StrEnum):
    PANIC_BUTTON = "panic_button"
    ACCESS_REQUEST = "access_request"  # a request-to-exit button, or an access controller's "granted" output
    DOOR_CONTACT = "door_contact"
    PIR_SENSOR = "pir_sensor"
    SIREN = "siren"
    CHECKPOINT_CAMERA = "checkpoint_camera"


class DriverKind(StrEnum):
    SIMULATED = "simulated"  # behind the real interface, driven by simulators and tests
    GPIO = "gpio"  # wired to the gateway's pins (gpiozero)
    CAMERA = "camera"  # RTSP stream, HTTP snapshot URL or video file (OpenCV)
    NODE = "node"  # a MicroPython sensor node on the village's local MQTT broker (protocol.node)


ParamName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ParamValue = Annotated[
    float | SafeInt | Annotated[str, StringConstraints(max_length=2_048)] | bool, BeforeValidator(refuse_unsafe_integer)
]
"""A driver parameter: a finite float, a safe integer, text up to 2 KiB (a camera URL) or a boolean."""


class DoorPolicy(ConfigModel):
    """What makes a door's opening an alert."""

    held_open_s: float | None = Field(
        default=120.0, gt=0, le=7 * 86_400, description="Alert when open longer (at most a week); unset: never."
    )
    authorised_by: list[DeviceId] = Field(
        default_factory=list,
        max_length=MAX_DEVICES,
        description="Access-request devices whose signal authorises an opening; with any, an opening "
        "without one within the window is 'door forced'.",
    )
    authorisation_window_s: float = Field(default=10.0, gt=0, le=600)


class DeviceSpec(ConfigModel):
    """One device wired to the gateway, as declared by the technician."""

    kind: DeviceKind
    id: DeviceId
    grid_id: GridId | None = None
    driver: DriverKind = DriverKind.SIMULATED
    params: dict[ParamName, ParamValue] = Field(
        default_factory=dict,
        max_length=MAX_PARAMS,
        description="Driver parameters; each adapter validates its own strictly.",
    )
    detection: DetectionSettings | None = Field(
        default=None, description="Cameras only: zones, the counting line and tamper thresholds."
    )
    door: DoorPolicy | None = Field(default=None, description="Door contacts only: held-open and forced rules.")

    @model_validator(mode="after")
    def _sections_match_the_kind(self) -> Self:
        if self.detection is not None and self.kind is not DeviceKind.CHECKPOINT_CAMERA:
            raise ValueError(f"device {self.id}: only cameras take detection settings")
        if self.door is not None and self.kind is not DeviceKind.DOOR_CONTACT:
            raise ValueError(f"device {self.id}: only door contacts take a door policy")
        return self


class SnapshotPolicy(ConfigModel):
    """Camera snapshots kept on the gateway, to be fetched only by an explicit, audited command.

    Frames never leave the gateway otherwise; a snapshot is a downscaled JPEG that fits one command
    response, deleted after ``retention_s`` or earlier when the snapshots outgrow ``max_bytes``.
    """

    enabled: bool = Field(default=True, description="Keep snapshots; disabling also deletes the ones kept.")
    retention_s: float = Field(
        default=24 * 3600.0, ge=60.0, le=30 * 24 * 3600.0, description="Seconds a snapshot is kept (default 24 h)."
    )
    max_bytes: int = Field(
        default=50 * 1024 * 1024,
        ge=1024 * 1024,
        le=4 * 1024 * 1024 * 1024,
        description="Disk space for snapshots (default 50 MiB); the oldest go first beyond it.",
    )
    max_width: int = Field(default=640, ge=160, le=1_920, description="Stored width in pixels at most (default 640).")
    jpeg_quality: int = Field(
        default=80, ge=30, le=95, description="JPEG quality to start from; lowered as needed to fit (default 80)."
    )
    min_interval_s: float = Field(
        default=30.0, ge=1.0, le=3_600.0, description="At most one snapshot per camera in this many seconds."
    )


MAX_REVOKED_KEYS: Final = 16


class GatewayConfig(ConfigModel):
    """Everything the fleet may change on a running gateway: intervals and the devices it serves."""

    heartbeat_interval_s: IntervalSeconds = 10.0
    telemetry_interval_s: IntervalSeconds = 5.0
    devices: list[DeviceSpec] = Field(default_factory=list, max_length=MAX_DEVICES)
    snapshots: SnapshotPolicy = Field(
        default=SnapshotPolicy(), description="Camera snapshots kept on the gateway for audited fetches."
    )
    revoked_signing_keys: list[KeyId] = Field(
        default_factory=list,
        max_length=MAX_REVOKED_KEYS,
        description="Fleet signing keys (key ids) the gateway must never trust again, from the fleet's "
        "configs.revoked_key_ids: kept on the gateway for good once a config naming them is accepted.",
    )

    @model_validator(mode="after")
    def _devices_agree(self) -> Self:
        ids = [device.id for device in self.devices]
        if len(ids) != len(set(ids)):
            raise ValueError("device ids must be unique on a gateway")
        kinds = {device.id: device.kind for device in self.devices}
        for device in self.devices:
            for authoriser in device.door.authorised_by if device.door else []:
                if kinds.get(authoriser) is not DeviceKind.ACCESS_REQUEST:
                    raise ValueError(f"door {device.id} is authorised by {authoriser!r}, not an access_request device")
        return self
