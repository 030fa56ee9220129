"""The gateway agent's settings: identity, broker, local paths and its devices.

Built once at start-up and injected into the agent. Each setting comes from the first of these that gives it:

1. keyword arguments (tests, simulators);
2. the environment, ``OUTPOST_EDGE_*``, nested with ``__`` (``OUTPOST_EDGE_BROKER__HOST``), so a systemd
   drop-in (``Environment=``) or a container overrides the file;
3. the TOML file (``outpost gateway run --config``), merged key by key with the environment;
4. the defaults.

Unknown keys are refused, in the file and in the environment: an ``OUTPOST_EDGE_*`` variable that names no
setting (a typo) stops the start with its name and the closest setting's.
"""

import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from edge.errors import EdgeConfigError
from protocol.gateway_config import DeviceSpec, GatewayConfig
from protocol.hosts import is_loopback_host
from protocol.identifiers import GatewayId, VillageId
from protocol.mqtt_tls import MqttTlsSettings
from protocol.settings_env import KnownVariablesOnly


class BrokerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    client_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="The MQTT client id, as the fleet bound the login to it at enrollment (unguessable, so no "
        "other client can take over the gateway's session); unset: outpost-gw-{gateway_id} (development).",
    )
    keepalive_s: int = Field(default=30, ge=5, le=600, description="MQTT keep-alive; the Last Will fires after 1.5x.")
    tls: MqttTlsSettings | None = None
    refused_retry_base_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="After a refusal (credentials, authorisation, an untrusted certificate) the uplink retries "
        "after this, doubling per refusal up to refused_retry_cap_s; the agent runs on meanwhile.",
    )
    refused_retry_cap_s: float = Field(default=600.0, gt=0, le=86_400)


class UpdateSettings(BaseModel):
    """Agent updates from the fleet (edge/updates): where releases come from, whose signature they need, and the
    two slots they are installed into. Written at enrollment; without them the gateway refuses update commands."""

    model_config = ConfigDict(extra="forbid")

    fleet_url: AnyHttpUrl = Field(description="The fleet's API as this gateway reaches it (https in production).")
    fleet_ca: Path | None = Field(default=None, description="The CA of the fleet's HTTPS certificate (PEM).")
    identity_key: Path = Field(description="The gateway's own Ed25519 key (enrollment's gateway-key.pem).")
    release_keys: Path = Field(description="The release keys' public halves: a release must be signed by one.")
    root: Path = Field(default=Path("/opt/outpost"), description="Where the slots and the current link are.")
    gate_s: float = Field(
        default=300.0, ge=10, le=3600, description="How long a new agent has to pass its health gate."
    )
    max_boots: int = Field(default=3, ge=1, le=20, description="Starts a new agent gets before it is rolled back.")
    defer_max_s: float = Field(
        default=6 * 3600.0,
        ge=0,
        le=7 * 86_400,
        description="How long an update waits while the gateway is in alarm (a critical alert in the last 10 "
        "minutes; its siren sounds for the first of them); the fleet's jobs also wait for a village's unacknowledged "
        "critical alerts.",
    )


class EdgeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OUTPOST_EDGE_", env_nested_delimiter="__", extra="forbid")

    environment: Literal["development", "production"] = Field(
        default="production",
        description="production (the default) needs broker credentials, the config-signing key and TLS to any "
        "broker off this host; development (asked for) runs without them.",
    )
    village_id: VillageId
    gateway_id: GatewayId
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    local_broker: BrokerSettings | None = Field(
        default=None,
        description="The village's local broker (usually on the gateway): sensor nodes, alerts for the village centre.",
    )
    state_dir: Path = Path("outpost-edge-state")
    config_signing_key: Path | None = Field(
        default=None,
        description="File with the fleet's config-signing public key (Ed25519, PEM), written at enrollment; "
        "pushed configs must carry a signature that verifies with it. Required in production; without it "
        "(development only) configs are not checked.",
    )
    config: GatewayConfig = Field(
        default_factory=GatewayConfig,
        description="Intervals (and devices) to run until the fleet pushes a config.",
    )
    devices: list[DeviceSpec] = Field(
        default_factory=list, description="The devices to run until the fleet pushes a config (or config.devices)."
    )
    updates: UpdateSettings | None = Field(default=None, description="Agent updates; unset: none are taken.")
    buffer_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=64 * 1024,
        description="Store-and-forward bound; telemetry goes first, alerts never.",
    )

    @model_validator(mode="after")
    def _one_device_list(self) -> Self:
        if self.devices and self.config.devices:
            raise ValueError("declare the devices either as [[devices]] or as config.devices, not both")
        if self.devices:
            self.config = self.config.model_copy(update={"devices": self.devices})
            GatewayConfig.model_validate(self.config.model_dump(mode="json"))  # the devices must agree
        self.devices = list(self.config.devices)
        return self

    @model_validator(mode="after")
    def _production_needs_credentials(self) -> Self:
        if self.environment == "production" and (self.broker.username is None or self.broker.password is None):
            raise ValueError("production gateways need broker.username and broker.password")
        if self.environment == "production" and self.broker.client_id is None:
            raise ValueError("production gateways need broker.client_id, the client id enrollment wrote")
        local = self.local_broker
        if (
            self.environment == "production"
            and local is not None
            and (local.username is None or local.password is None)
        ):
            raise ValueError(
                "production gateways log in to the village broker: set local_broker.username and password "
                "(outpost gateway village-broker makes the logins)"
            )
        return self

    @model_validator(mode="after")
    def _production_needs_the_config_signing_key(self) -> Self:
        if self.environment == "production" and self.config_signing_key is None:
            raise ValueError(
                "production gateways need config_signing_key, the file holding the fleet's config-signing "
                "public key (written at enrollment)"
            )
        return self

    @model_validator(mode="after")
    def _production_brokers_over_verified_tls(self) -> Self:
        if self.environment != "production":
            return self
        for setting, broker in (("broker", self.broker), ("local_broker", self.local_broker)):
            if broker is None:
                continue
            if broker.tls is None and not is_loopback_host(broker.host):
                raise ValueError(f"production gateways reach {setting} {broker.host} over TLS: set {setting}.tls")
            if broker.tls is not None and not broker.tls.check_hostname:
                raise ValueError(f"production gateways check the broker's name: remove {setting}.tls.check_hostname")
        url = self.updates.fleet_url if self.updates is not None else None
        if url is not None and url.scheme != "https" and not is_loopback_host(url.host or ""):
            raise ValueError(f"production gateways fetch updates over https, not {url}: fix updates.fleet_url")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then the environment (known variables only), then the TOML file :meth:`load` read."""
        return init_settings, KnownVariablesOnly(settings_cls), _FileValues(settings_cls, _FILE_VALUES.get())

    @classmethod
    def load(cls, config_file: Path | None = None) -> Self:
        """Settings from ``OUTPOST_EDGE_*`` variables over those of the TOML file ``config_file``, if any."""
        if config_file is None:
            return cls()
        try:
            values = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise EdgeConfigError(f"cannot read {config_file}: {exc}") from exc
        reading = _FILE_VALUES.set(values)
        try:
            return cls()
        finally:
            _FILE_VALUES.reset(reading)


_FILE_VALUES: ContextVar[Mapping[str, Any] | None] = ContextVar("_FILE_VALUES", default=None)
"""The TOML file :meth:`EdgeSettings.load` is building settings from."""


class _FileValues(PydanticBaseSettingsSource):
    """A TOML file's values, as read (unknown keys included, for validation to refuse)."""

    def __init__(self, settings_cls: type[BaseSettings], values: Mapping[str, Any] | None) -> None:
        super().__init__(settings_cls)
        self._values = dict(values or {})

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)
