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
from protocol.messages import Severity

DEVELOPMENT_GOVERNANCE_TOKEN = "outpost-dev-token"  # noqa: S105 - refused outside development
DEVELOPMENT_GOVERNANCE_SIGNING_SECRET = "outpost-dev-signing-secret"  # noqa: S105 - refused outside development
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
    """An InfluxDB v2 write API (InfluxDB 2.x/3.x, or VictoriaMetrics which accepts the same writes),
    and how the fleet reads health history back from the same server (fleet/timeseries/history.py)."""

    url: AnyHttpUrl
    token: SecretStr
    org: str = "outpost"
    bucket: str = "outpost"
    timeout_s: float = Field(default=10.0, gt=0)
    query_language: Literal["promql", "influxql"] = Field(
        default="promql",
        description=(
            "How history is read: promql (VictoriaMetrics' /api/v1/query_range, the tested server) or "
            "influxql (InfluxDB's v1 /query: 1.x, 2.x through its v1 compatibility API, 3.x)."
        ),
    )
    influxql_database: str | None = Field(
        default=None,
        description="InfluxQL database; unset: the bucket's name (2.x maps it with a DBRP mapping, 3.x names it so).",
    )
    influxql_username: str | None = Field(
        default=None,
        description=(
            "InfluxQL: Basic auth with this user and the token as password (1.x with auth, 2.x v1 "
            "authorizations); unset: `Authorization: Token <token>`."
        ),
    )


class TimeSeriesSettings(_Section):
    influx: InfluxSettings | None = Field(default=None, description="When unset, the embedded store is used.")
    embedded_path: Path = Path("outpost-timeseries.db")
    batch_points: int = Field(default=5_000, ge=1, description="Points per write; a full batch goes out at once.")
    flush_interval_s: float = Field(default=0.5, gt=0, description="The longest a point waits for a batch to fill.")
    idle_flush_s: float = Field(
        default=0.05, gt=0, description="A partial batch goes out once nothing was added for this long."
    )
    buffer_points: int = Field(default=500_000, ge=1, description="Points held while the server is down.")


class GovernanceSettings(_Section):
    url: AnyHttpUrl | None = Field(default=None, description="The platform's base URL; unset: cases stay pending.")
    token: SecretStr = SecretStr(DEVELOPMENT_GOVERNANCE_TOKEN)
    signing_secrets: list[SecretStr] = Field(
        default_factory=lambda: [SecretStr(DEVELOPMENT_GOVERNANCE_SIGNING_SECRET)],
        min_length=1,
        max_length=4,
        description="HMAC-SHA256 secrets shared with the platform: the first signs the fleet's requests, any of "
        "them verifies the platform's callbacks (two during a rotation).",
    )
    timeout_s: float = Field(default=5.0, gt=0)
    max_attempts: int | None = Field(
        default=None,
        ge=1,
        description="Dead-letter a case after this many failed attempts; unset: retry until delivered.",
    )
    verify_tls: bool = True


class AlertSettings(_Section):
    """Alert deadlines (fleet/alerts): how long an alert may wait unacknowledged at one level (village,
    then town) before it goes up, counted from when it was raised at the source and then from each
    escalation (a severity left out never escalates); and how long a condition must stay away before
    its alert clears (a flapping device keeps one alert)."""

    ack_deadline_s: dict[Severity, float] = Field(
        default_factory=lambda: {
            Severity.CRITICAL: 120.0,
            Severity.MAJOR: 600.0,
            Severity.MINOR: 1800.0,
            Severity.WARNING: 3600.0,
        },
        description='Seconds per severity, e.g. {"critical": 120}; one left out never escalates.',
    )
    clear_hold_s: float = Field(
        default=60.0, ge=0, description="A condition that ended clears its alert after staying away this long."
    )
    sweep_limit: int = Field(default=500, ge=1, description="Alerts escalated or cleared per transaction.")

    @model_validator(mode="after")
    def _positive_deadlines(self) -> Self:
        for severity, deadline_s in self.ack_deadline_s.items():
            if deadline_s <= 0:
                raise ValueError(f"ack_deadline_s.{severity} must be positive")
        return self


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
    tls_cert_file: Path | None = Field(
        default=None, description="Serve HTTPS with this PEM certificate (chain) and tls_key_file; unset: plain HTTP."
    )
    tls_key_file: Path | None = None

    @model_validator(mode="after")
    def _tls_cert_and_key_together(self) -> Self:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set both api.tls_cert_file and api.tls_key_file, or neither")
        return self


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


class GatewayBrokerSettings(_Section):
    """The broker address an enrolled gateway is told (it may differ from the fleet's own, e.g. a public name)."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    tls: bool = Field(default=False, description="Gateways connect with TLS (verified against ca_file if set).")
    ca_file: Path | None = Field(
        default=None, description="PEM CA that signed the broker's certificate, handed to gateways (implies tls)."
    )


class EnrollmentSettings(_Section):
    """Gateway enrollment: the broker gateways are told, and the dynamic security administrator the fleet
    provisions their credentials with (on the broker in ``broker.host``/``broker.port``).

    Without ``dynsec_username``/``dynsec_password`` a development fleet enrolls gateways with no broker
    credentials (and says so); a production fleet then refuses to enroll."""

    broker: GatewayBrokerSettings = Field(default_factory=GatewayBrokerSettings)
    dynsec_username: str | None = Field(default=None, min_length=1)
    dynsec_password: SecretStr | None = None
    dynsec_timeout_s: float = Field(default=5.0, gt=0)
    token_ttl_s: int = Field(default=1800, ge=60, le=7 * 86400, description="Default enrollment token lifetime.")
    public_url: AnyHttpUrl | None = Field(
        default=None, description="The fleet's URL as gateways reach it; when set, new tokens come with their code."
    )

    @model_validator(mode="after")
    def _dynsec_username_and_password_together(self) -> Self:
        if (self.dynsec_username is None) != (self.dynsec_password is None):
            raise ValueError("set both enrollment.dynsec_username and enrollment.dynsec_password, or neither")
        return self


class ConfigPushSettings(_Section):
    """Config pushed to gateways (see fleet/configs): the fleet's signing key and how it fans configs out."""

    signing_key_file: Path | None = Field(
        default=None,
        description="The fleet's Ed25519 config-signing key (PEM PKCS#8, or the raw seed in base64). Required in "
        "production; in development, unset: generated on first start next to the SQLite database and kept.",
    )
    signing_key_password: SecretStr | None = Field(default=None, description="For an encrypted PEM key.")
    publish_concurrency: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Desired configs published at once, each awaiting its PUBACK (the downlink allows 100 in flight).",
    )
    batch_size: int = Field(default=500, ge=1, le=10_000, description="Gateways read, signed and marked per batch.")
    publish_timeout_s: float = Field(default=10.0, gt=0, description="How long the broker may take to accept one.")
    reconcile_interval_s: float = Field(
        default=30.0,
        gt=0,
        description="How often every gateway's config is recomputed: catches gateways registered, moved or "
        "removed, and villages or towns moved, since the last layer change.",
    )


class CommandSettings(_Section):
    """Commands to gateways (see fleet/commands): how long they may take and how often expiry is checked."""

    default_timeout_s: float = Field(
        default=30.0, gt=0, le=3600, description="A command's deadline when the caller names none."
    )
    publish_timeout_s: float = Field(
        default=5.0, gt=0, description="How long the broker may take to accept a command before it is undeliverable."
    )
    sweep_interval_s: float = Field(default=1.0, gt=0, description="How often commands past their deadline expire.")
    max_wait_s: float = Field(
        default=120.0, gt=0, description="The longest an API call with wait=true holds on before answering 202."
    )


class FleetSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OUTPOST_FLEET_", env_nested_delimiter="__", extra="forbid")

    environment: Literal["development", "production"] = "development"
    database_url: str = "sqlite+aiosqlite:///outpost-fleet.db"
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    timeseries: TimeSeriesSettings = Field(default_factory=TimeSeriesSettings)
    governance: GovernanceSettings = Field(default_factory=GovernanceSettings)
    presence: PresenceSettings = Field(default_factory=PresenceSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    enrollment: EnrollmentSettings = Field(default_factory=EnrollmentSettings)
    configs: ConfigPushSettings = Field(default_factory=ConfigPushSettings)
    commands: CommandSettings = Field(default_factory=CommandSettings)
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
        if any(s.get_secret_value() == DEVELOPMENT_GOVERNANCE_SIGNING_SECRET for s in self.governance.signing_secrets):
            missing.append("governance.signing_secrets")
        if self.timeseries.influx is None:
            missing.append("timeseries.influx")
        if self.api.admin_token.get_secret_value() == DEVELOPMENT_ADMIN_TOKEN:
            missing.append("api.admin_token")
        if self.configs.signing_key_file is None:
            missing.append("configs.signing_key_file")
        if missing:
            raise ValueError(f"production needs explicit settings for: {', '.join(missing)}")
        return self
