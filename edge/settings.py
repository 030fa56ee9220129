"""The gateway agent's settings: identity, broker, local paths and its devices.

Built once at start-up (environment ``OUTPOST_EDGE_*``, nested with ``__``, or a TOML file) and
injected into the agent. Unknown keys are refused.
"""

import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from edge.detection.config import DetectionSettings
from edge.errors import EdgeConfigError
from protocol.identifiers import DeviceId, GatewayId, GridId, VillageId
from protocol.messages import GatewayConfig


class TlsSettings(BaseModel):
    """TLS to the broker: its CA, and a client certificate when the broker asks for one."""

    model_config = ConfigDict(extra="forbid")

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None
    check_hostname: bool = True


class BrokerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    keepalive_s: int = Field(default=30, ge=5, le=600, description="MQTT keep-alive; the Last Will fires after 1.5x.")
    tls: TlsSettings | None = None


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


ParamValue = float | int | str | bool


class DoorPolicy(BaseModel):
    """What makes a door's opening an alert."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    held_open_s: float | None = Field(default=120.0, gt=0, description="Alert when open longer; unset: never.")
    authorised_by: list[DeviceId] = Field(
        default_factory=list,
        description="Access-request devices whose signal authorises an opening; with any, an opening "
        "without one within the window is 'door forced'.",
    )
    authorisation_window_s: float = Field(default=10.0, gt=0, le=600)


class DeviceSpec(BaseModel):
    """One device wired to the gateway, as declared by the technician."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: DeviceKind
    id: DeviceId
    grid_id: GridId | None = None
    driver: DriverKind = DriverKind.SIMULATED
    params: dict[str, ParamValue] = Field(
        default_factory=dict, description="Driver parameters; each adapter validates its own strictly."
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


class EdgeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OUTPOST_EDGE_", env_nested_delimiter="__", extra="forbid")

    environment: Literal["development", "production"] = "development"
    village_id: VillageId
    gateway_id: GatewayId
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    state_dir: Path = Path("outpost-edge-state")
    config: GatewayConfig = Field(
        default_factory=GatewayConfig, description="Initial config until the fleet pushes one."
    )
    devices: list[DeviceSpec] = Field(default_factory=list)
    buffer_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=64 * 1024,
        description="Store-and-forward bound; telemetry goes first, alerts never.",
    )

    @field_validator("config", mode="before")
    @classmethod
    def _lax_local_config(cls, value: Any) -> Any:
        # The wire model is strict; locally typed settings (env strings, TOML) are validated laxly.
        return GatewayConfig.model_validate(value, strict=False) if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _production_needs_credentials(self) -> Self:
        if self.environment == "production" and (self.broker.username is None or self.broker.password is None):
            raise ValueError("production gateways need broker.username and broker.password")
        ids = [device.id for device in self.devices]
        if len(ids) != len(set(ids)):
            raise ValueError("device ids must be unique on a gateway")
        kinds = {device.id: device.kind for device in self.devices}
        for device in self.devices:
            for authoriser in device.door.authorised_by if device.door else []:
                if kinds.get(authoriser) is not DeviceKind.ACCESS_REQUEST:
                    raise ValueError(f"door {device.id} is authorised by {authoriser!r}, not an access_request device")
        return self

    @classmethod
    def load(cls, config_file: Path | None = None) -> "EdgeSettings":
        """Settings from ``OUTPOST_EDGE_*`` variables, and from a TOML file whose values win over them."""
        if config_file is None:
            return cls()
        try:
            values = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise EdgeConfigError(f"cannot read {config_file}: {exc}") from exc
        return cls(**values)
