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


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BrokerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    client_id: str = Field(default="outpost-fleet", min_length=1, max_length=64)
    keepalive_s: int = Field(default=30, ge=5, le=600)


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


class FleetSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OUTPOST_FLEET_", env_nested_delimiter="__", extra="forbid")

    environment: Literal["development", "production"] = "development"
    database_url: str = "sqlite+aiosqlite:///outpost-fleet.db"
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    timeseries: TimeSeriesSettings = Field(default_factory=TimeSeriesSettings)
    governance: GovernanceSettings = Field(default_factory=GovernanceSettings)
    presence: PresenceSettings = Field(default_factory=PresenceSettings)
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
        if missing:
            raise ValueError(f"production needs explicit settings for: {', '.join(missing)}")
        return self
