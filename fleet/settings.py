"""The fleet manager's settings, built once at start-up and injected.

Read from ``OUTPOST_FLEET_*`` environment variables (nested with ``__``, e.g.
``OUTPOST_FLEET_BROKER__HOST``). Unknown keys are refused; outside development every secret must
be set explicitly.
"""

from pathlib import Path
from typing import Literal, Self

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from protocol.codec import DEFAULT_MAX_PAYLOAD_BYTES

DEVELOPMENT_GOVERNANCE_TOKEN = "outpost-dev-token"  # noqa: S105 - refused outside development
DEVELOPMENT_ADMIN_TOKEN = "outpost-dev-admin"  # noqa: S105 - refused outside development


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BrokerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    client_id: str = Field(default="outpost-fleet", min_length=1, max_length=64)
    keepalive_s: int = Field(default=30, ge=5, le=600)
    mqtt_version: Literal["5", "3.1.1"] = Field(
        default="5",
        description=(
            "MQTT 5 gives ingest its Receive Maximum and session expiry; 3.1.1 is for brokers without it "
            "(the demo's embedded broker), where the broker's own in-flight limit applies."
        ),
    )


class InfluxSettings(_Section):
    """An InfluxDB v2 write API (InfluxDB 2.x/3.x, or VictoriaMetrics which accepts the same writes)."""

    url: AnyHttpUrl
    token: SecretStr
    org: str = "outpost"
    bucket: str = "outpost"
    timeout_s: float = Field(default=10.0, gt=0)


class TimeSeriesSettings(_Section):
    influx: InfluxSettings | None = Field(default=None, description="When unset, the embedded store is used.")
    embedded_path: Path = Path("outpost-timeseries.db")
    batch_points: int = Field(default=5_000, ge=1)
    flush_interval_s: float = Field(default=0.5, gt=0)
    buffer_points: int = Field(default=500_000, ge=1, description="Points held while the server is down.")


class GovernanceSettings(_Section):
    url: AnyHttpUrl | None = Field(default=None, description="The platform's base URL; unset: cases stay pending.")
    token: SecretStr = SecretStr(DEVELOPMENT_GOVERNANCE_TOKEN)
    timeout_s: float = Field(default=5.0, gt=0)
    max_attempts: int | None = Field(
        default=None,
        ge=1,
        description="Dead-letter a case after this many failed attempts; unset: retry until delivered.",
    )
    verify_tls: bool = True


class PresenceSettings(_Section):
    missed_heartbeats: float = Field(default=3.0, ge=1.0, description="Offline after this many intervals of silence.")
    default_interval_s: float = Field(default=10.0, gt=0, description="Assumed until a gateway's first heartbeat.")
    sweep_interval_s: float = Field(default=0.25, gt=0)


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    admin_token: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_ADMIN_TOKEN),
        description="Bootstrap admin bearer token, to create the real tokens; its default is refused in production.",
    )


class IngestSettings(_Section):
    """How ingest takes uplink traffic from the broker (see docs/SCALING.md).

    Bulk channels (telemetry, event) are subscribed through the shared subscription
    ``$share/{share_group}/…``, so every ingest worker in the group takes a share; the control channels
    (presence, heartbeat, alert, config/reported, command/response) are taken by the ``fleet run``
    process alone, which owns presence and alert delivery."""

    share_group: str | None = Field(
        default="outpost-ingest",
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
        description="Share group for the bulk channels; unset: plain subscriptions (one ingest process only).",
    )
    in_process: bool = Field(default=True, description="Whether `fleet run` also takes a share of the bulk channels.")
    receive_maximum: int = Field(
        default=10_000,
        ge=1,
        le=65_535,
        description="MQTT 5 Receive Maximum: messages the broker may send before ingest acknowledges them.",
    )
    session_expiry_s: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        description="How long the broker keeps a disconnected worker's session and queued messages.",
    )
    drain_timeout_s: float = Field(
        default=5.0, ge=0, description="On stop, how long to wait for pending messages to be stored and acked."
    )
    lag_log_interval_s: float = Field(default=10.0, gt=0, description="How often a lagging ingest logs its lag.")


# --- enrollment settings sections ---

# --- config push settings sections ---

# --- command settings sections ---


class FleetSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OUTPOST_FLEET_", env_nested_delimiter="__", extra="forbid")

    environment: Literal["development", "production"] = "development"
    database_url: str = "sqlite+aiosqlite:///outpost-fleet.db"
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    timeseries: TimeSeriesSettings = Field(default_factory=TimeSeriesSettings)
    governance: GovernanceSettings = Field(default_factory=GovernanceSettings)
    presence: PresenceSettings = Field(default_factory=PresenceSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    # --- enrollment settings fields ---
    # --- config push settings fields ---
    # --- command settings fields ---
    max_payload_bytes: int = Field(default=DEFAULT_MAX_PAYLOAD_BYTES, ge=1024)
    registry_flush_interval_s: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _no_default_secrets_in_production(self) -> Self:
        if self.environment != "production":
            return self
        missing = []
        if self.broker.username is None or self.broker.password is None:
            missing.append("broker.username/broker.password")
        if self.governance.url is None:
            missing.append("governance.url")
        if self.governance.token.get_secret_value() == DEVELOPMENT_GOVERNANCE_TOKEN:
            missing.append("governance.token")
        if self.timeseries.influx is None:
            missing.append("timeseries.influx")
        if self.api.admin_token.get_secret_value() == DEVELOPMENT_ADMIN_TOKEN:
            missing.append("api.admin_token")
        if missing:
            raise ValueError(f"production needs explicit settings for: {', '.join(missing)}")
        return self
