"""The fleet manager's settings, built once at start-up and injected.

Each setting comes from the first of these that gives it, as for the gateway (edge/settings.py, which also
reads a TOML file below the environment):

1. keyword arguments (tests, simulators);
2. ``OUTPOST_FLEET_*`` environment variables, nested with ``__`` (``OUTPOST_FLEET_BROKER__HOST``);
3. the defaults.

Unknown keys are refused, in the environment too: an ``OUTPOST_FLEET_*`` variable that names no setting (a
typo) stops the start with its name and the closest setting's. Outside development every secret must be set
explicitly.
"""

from pathlib import Path
from typing import Any, Final, Literal, Self

from pydantic import (
    AnyHttpUrl,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from protocol.codec import DEFAULT_MAX_PAYLOAD_BYTES
from protocol.gateway_config import MAX_REVOKED_KEYS
from protocol.hosts import is_loopback_host
from protocol.identifiers import KeyId
from protocol.mqtt_tls import MqttTlsSettings
from protocol.notifications import AlertStep
from protocol.releases import MAX_RELEASE_FILE_BYTES
from protocol.settings_env import KnownVariablesOnly

DEVELOPMENT_GOVERNANCE_TOKEN = "outpost-dev-token"  # noqa: S105 - refused outside development
DEVELOPMENT_GOVERNANCE_SIGNING_SECRET = "outpost-dev-signing-secret"  # noqa: S105 - refused outside development
DEVELOPMENT_ADMIN_TOKEN = "outpost-dev-admin"  # noqa: S105 - refused outside development


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BrokerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = Field(
        default=None,
        description="The login of the fleet's ingest sessions: receive only (and of the downlink "
        "too when downlink_username is unset, development only).",
    )
    password: SecretStr | None = None
    downlink_username: str | None = Field(
        default=None,
        min_length=1,
        description="The downlink publisher's own login: the only fleet login that may publish to gateways and "
        "village centres (required in production); created by the fleet like the ingest login.",
    )
    downlink_password: SecretStr | None = None
    client_id: str = Field(default="outpost-fleet", min_length=1, max_length=64)
    keepalive_s: int = Field(default=30, ge=5, le=600)
    tls: MqttTlsSettings | None = Field(
        default=None,
        description="TLS for every fleet session (ingest, downlink, dynamic-security administrator): the county "
        "CA, and the fleet's client certificate when the broker requires one. Required in production unless "
        "the broker is on this host (loopback).",
    )

    mqtt_version: Literal["5", "3.1.1"] = Field(
        default="5",
        description=(
            "MQTT 5 gives ingest its Receive Maximum and session expiry; 3.1.1 is for brokers without it "
            "(the demo's embedded broker), where the broker's own in-flight limit applies."
        ),
    )

    @model_validator(mode="after")
    def _downlink_login_whole(self) -> Self:
        if (self.downlink_username is None) != (self.downlink_password is None):
            raise ValueError("set both broker.downlink_username and broker.downlink_password, or neither")
        return self

    def downlink(self) -> "BrokerSettings":
        """These settings with the downlink's own login, when it has one."""
        if self.downlink_username is None:
            return self
        return self.model_copy(update={"username": self.downlink_username, "password": self.downlink_password})


class InfluxSettings(_Section):
    """An InfluxDB write API, v2 (InfluxDB 2.x/3.x, or VictoriaMetrics which accepts the same writes) or
    v1 (InfluxDB 1.x), and how the fleet reads health history back from the same server
    (fleet/timeseries/history.py)."""

    url: AnyHttpUrl
    token: SecretStr = Field(
        description=(
            "The API token; with influxql_username, that user's password. Always required, so no default "
            "reaches production: an InfluxDB 1.x with auth disabled ignores it (any value does)."
        ),
    )
    org: str = "outpost"
    bucket: str = "outpost"
    timeout_s: float = Field(default=10.0, gt=0)
    write_api: Literal["v2", "v1"] = Field(
        default="v2",
        description=(
            "How points are written: v2 (/api/v2/write to org and bucket: InfluxDB 2.x/3.x and VictoriaMetrics) "
            "or v1 (POST /write?db=&precision=ms to influxql_database, else the bucket's name: InfluxDB 1.x, "
            "which has no v2 API before 1.8), authenticated as influxql_username says."
        ),
    )
    query_language: Literal["promql", "influxql"] = Field(
        default="promql",
        description=(
            "How history is read: promql (VictoriaMetrics' /api/v1/query_range, the tested server) or "
            "influxql (InfluxDB's v1 /query: 1.x, 2.x through its v1 compatibility API, 3.x)."
        ),
    )
    influxql_database: str | None = Field(
        default=None,
        description=(
            "InfluxQL database, also the v1 write API's; unset: the bucket's name (2.x maps it with a DBRP "
            "mapping, 3.x names it so)."
        ),
    )
    influxql_username: str | None = Field(
        default=None,
        description=(
            "InfluxQL and v1 writes: Basic auth with this user and the token as password (1.x with auth, 2.x "
            "v1 authorizations); unset: `Authorization: Token <token>`."
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
    verify_tls: bool = True
    keepalive_expiry_s: float = Field(
        default=2.0,
        gt=0,
        le=300,
        description="Close a pooled connection idle this long; keep it under the platform's own idle timeout "
        "(uvicorn's timeout_keep_alive: 5 s by default), so a rare press never meets a connection just closed.",
    )


class DeliverySettings(_Section):
    """How every alert channel's outbox is delivered (fleet/alerts/delivery.py): a failed message is retried
    after retry_base_s, doubling up to retry_cap_s, and dead-lettered after max_attempts (visible under
    /deliveries, raising a delivery_failed alert, put back in line with POST /deliveries/retry). While a
    channel cannot take anything (down, or refusing the fleet's settings) it pauses as a whole."""

    max_attempts: int = Field(
        default=300,
        ge=1,
        le=10_000,
        description="Dead-letter a message after this many failed attempts (300 at the 300 s cap: about a day; a "
        "panic case must outlast a long platform outage). Refusals of the fleet itself do not count.",
    )
    retry_base_s: float = Field(default=1.0, gt=0, description="The wait after a message's first failure.")
    retry_cap_s: float = Field(default=300.0, gt=0, description="The longest wait between two attempts.")
    pause_cap_s: float = Field(
        default=10.0,
        gt=0,
        description="While a channel takes nothing it is tried again after retry_base_s, doubling up to this: a "
        "platform back from an outage gets its cases within about this long.",
    )
    batch: int = Field(default=100, ge=1, le=10_000, description="Messages read per look at a channel's outbox.")
    in_flight: int = Field(
        default=8, ge=1, le=100, description="Messages of different alerts sent to one channel at once."
    )

    @model_validator(mode="after")
    def _cap_at_least_base(self) -> Self:
        for cap in ("retry_cap_s", "pause_cap_s"):
            if getattr(self, cap) < self.retry_base_s:
                raise ValueError(f"{cap} must be at least retry_base_s")
        return self


class AlertSettings(_Section):
    """Alerting (fleet/alerts): the base rules every village runs by under its county, town and village rule
    layers (fleet/alerts/rules: escalation deadlines per severity, hold-offs, quiet hours, rate limits), and
    how much the timers apply per transaction."""

    rules: dict[str, Any] = Field(
        default_factory=dict,
        description="The base layer under every county's: the keys of an alert rules layer (fleet/alerts/rules/"
        "model.py), checked at start, e.g. OUTPOST_FLEET_ALERTS__RULES__ACK_DEADLINE_S__CRITICAL=120",
    )
    sweep_limit: int = Field(default=100, ge=1, description="Alerts escalated or cleared per transaction.")
    rules_refresh_s: float = Field(
        default=30.0, gt=0, description="How often rule layers are reread (a village moved town, another writer)."
    )
    source_max_age_s: float = Field(
        default=7 * 86_400.0,
        ge=0,
        le=365 * 86_400.0,
        description="A gateway's alert time is believed this far back (its buffer replaying an outage); an older "
        "one is taken as a skewed clock and replaced by the time of receipt.",
    )
    source_max_ahead_s: float = Field(
        default=300.0,
        ge=0,
        le=86_400.0,
        description="A gateway's alert time is believed this far ahead of the fleet's clock; beyond it, the time of "
        "receipt is used.",
    )


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
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="The largest request body of a caller with a token.",
    )
    max_public_body_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="The largest request body of the routes anyone may call (POST /enroll, governance callbacks).",
    )
    max_import_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        le=256 * 1024 * 1024,
        description="The largest site list POST /sites/import takes (a city of 6,600 grids is about 1 MB).",
    )
    public_rate_per_s: float = Field(
        default=5.0,
        gt=0,
        le=10_000,
        description="Refused requests a second one client address may make to the routes anyone may call (a bad "
        "enrollment token, a bad callback signature), after a burst of public_burst; then every call is answered "
        "429 until it has waited. Successful calls cost nothing. Behind a TLS proxy on loopback, the "
        "X-Forwarded-For address.",
    )
    public_burst: int = Field(default=50, ge=1, le=100_000)

    @model_validator(mode="after")
    def _tls_cert_and_key_together(self) -> Self:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set both api.tls_cert_file and api.tls_key_file, or neither")
        return self


class IngestSettings(_Section):
    """How ingest takes uplink traffic from the broker (see docs/SCALING.md and fleet.ingest.subscriptions).

    Each lane has its own MQTT session: alerts, control (presence, heartbeat, config/reported,
    command/response) and bulk (telemetry, event). The alerts and control lanes are taken by the ``fleet
    run`` process alone, which owns presence and alert delivery; the bulk lane is subscribed through the
    shared subscription ``$share/{share_group}/…``, so every ingest worker in the group takes a share."""

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
    hold_bound_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="How long one message may hold back the acknowledgement of others (retried while storage "
        "fails, or waiting to be stored) before it is dead-lettered. The bulk lane's wait for the time-series "
        "store is exempt: that is its back-pressure.",
    )
    dead_letter_payload_bytes: int = Field(
        default=2048, ge=0, le=65_536, description="How much of a dead-lettered message's payload is kept."
    )
    dead_letters_kept: int = Field(
        default=10_000, ge=100, le=10_000_000, description="Dead-letter rows kept (the most recently seen)."
    )
    stuck_after_s: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="/healthz calls an alerts or control lane stuck when a message waits unacknowledged this long "
        "(and the fleet raises an ingest_stuck alert about the gateway whose message it is).",
    )
    quarantine_after: int = Field(
        default=200,
        ge=0,
        le=1_000_000,
        description="Dead letters from one gateway on one channel within quarantine_window_s that quarantine it: the "
        "broker denies it that channel for quarantine_s (needs enrollment.dynsec_username). 0: never.",
    )
    quarantine_window_s: float = Field(default=10.0, gt=0, le=3600)
    quarantine_s: float = Field(
        default=300.0, gt=0, le=86_400, description="How long a flooding gateway is denied the channel it flooded."
    )
    dead_letter_quiet_s: float = Field(
        default=600.0,
        gt=0,
        le=86_400,
        description="A gateway's messages_dead_lettered alert ends after this long without another dead letter.",
    )


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
    gateway_ca_cert_file: Path | None = Field(
        default=None,
        description="The CA (PEM) that issues gateways their TLS client certificates at enrollment, from the request "
        "each sends; with gateway_ca_key_file. Unset: gateways get no certificate (issue them by hand).",
    )
    gateway_ca_key_file: Path | None = None
    gateway_cert_days: int = Field(default=365, ge=1, le=825, description="How long an issued certificate is valid.")
    gateway_cert_renew_days: int = Field(
        default=30,
        ge=1,
        description="Renew a gateway's certificate (same key, sent as a signed install_certificate command) once it "
        "expires within this many days; fewer than gateway_cert_days.",
    )
    gateway_cert_check_interval_s: float = Field(
        default=3600.0, gt=0, description="How often the fleet looks for certificates to renew."
    )
    public_url: AnyHttpUrl | None = Field(
        default=None, description="The fleet's URL as gateways reach it; when set, new tokens come with their code."
    )

    @model_validator(mode="after")
    def _gateway_ca_whole(self) -> Self:
        if (self.gateway_ca_cert_file is None) != (self.gateway_ca_key_file is None):
            raise ValueError("set both enrollment.gateway_ca_cert_file and enrollment.gateway_ca_key_file, or neither")
        if self.gateway_cert_renew_days >= self.gateway_cert_days:
            raise ValueError(
                f"enrollment.gateway_cert_renew_days ({self.gateway_cert_renew_days}) must be fewer than "
                f"enrollment.gateway_cert_days ({self.gateway_cert_days}), or every certificate is renewed at once"
            )
        return self

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
    signing_key_not_after: AwareDatetime | None = Field(
        default=None,
        description="When the signing key stops being trusted: written into the key file of every gateway enrolled "
        "from now on (a `# not-after:` line), and the fleet refuses to start with the key past it.",
    )
    revoked_key_ids: list[KeyId] = Field(
        default_factory=list,
        max_length=MAX_REVOKED_KEYS,
        description="Key ids of earlier signing keys no gateway may trust again (a key rotated out, or stolen): every "
        "config the fleet pushes names them, and a gateway that accepts one keeps the revocation for good.",
    )
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


class ReleaseSettings(_Section):
    """Releases the fleet stores and serves to gateways (fleet/releases): where, and whose signatures it trusts."""

    directory: Path = Field(
        default=Path("outpost-releases"),
        description="Where uploaded releases are kept (a directory per kind and version).",
    )
    trusted_keys_file: Path | None = Field(
        default=None,
        description="The release keys' public halves (PEM or base64, one or more: `outpost release keygen` makes "
        "them). A release signed by none of them is refused; unset: no release can be uploaded.",
    )
    max_file_bytes: int = Field(
        default=512 * 1024 * 1024,
        ge=1024,
        le=MAX_RELEASE_FILE_BYTES,
        description="The largest file of a release an upload may send (a dependency wheel).",
    )


class JobSettings(_Section):
    """Jobs (fleet/jobs): how often the engine looks at them."""

    tick_s: float = Field(
        default=1.0, gt=0, le=60, description="How often open jobs are advanced (reports read, waves opened, sends)."
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


class RetentionSettings(_Section):
    """How long the fleet keeps what it need not keep forever (fleet/retention.py); 0 keeps it forever."""

    snapshot_days: int = Field(
        default=30, ge=0, le=3650, description="A fetched snapshot's JPEG (the command that fetched it stays)."
    )
    audit_days: int = Field(default=400, ge=0, le=36500, description="Audit log entries.")
    command_days: int = Field(default=90, ge=0, le=3650, description="Finished commands to gateways.")
    outbox_days: int = Field(
        default=30, ge=0, le=3650, description="Delivered outbox messages (dead ones wait for someone)."
    )
    interval_s: float = Field(default=3600.0, ge=60.0, le=86_400.0, description="How often the purge runs.")
    batch: int = Field(default=500, ge=1, le=100_000, description="Rows deleted per transaction.")


# --- state export ---


class StateExportSettings(_Section):
    """The fleet's own state written as time series for dashboards (fleet/state_export): registry, open
    alerts, deliveries and ingest every ``interval_s``, and every alert step as it is recorded, so that
    dashboards read only the time-series server and the gauges keep their history."""

    enabled: bool = Field(default=True, description="Write the fleet's state as time series.")
    interval_s: float = Field(
        default=15.0, ge=1.0, le=3600.0, description="How often the gauges are written (and new alert steps read)."
    )
    instance: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="The `instance` tag of the fleet's ingest figures; unset: broker.client_id.",
    )
    watermark_file: Path | None = Field(
        default=None,
        description="Where the id of the last alert step written is kept across restarts; unset: "
        "outpost-state-export.json next to a SQLite database, or in the working directory.",
    )


# --- channel settings ---


WEBHOOK_DEFAULT_STEPS: tuple[AlertStep, ...] = (
    AlertStep.RAISE,
    AlertStep.ESCALATE,
    AlertStep.CANCEL,
    AlertStep.CLEAR,
    AlertStep.RESOLVE,
)
"""What a webhook hears of by default: what needs someone to act, and what ends it."""


class WebhookSettings(_Section):
    """A deployment's own receiver of alert notifications (fleet/alerts/channels/webhook.py): each step in
    ``steps`` is POSTed to ``url`` as an AlertNotification (protocol/notifications.py), signed with ``secret``
    like the fleet's governance requests (protocol/request_signing.py), with its notification id as the
    Idempotency-Key. There is no default secret: the receiver must be given the same one, so a URL without
    a secret is refused (in development too)."""

    url: AnyHttpUrl | None = Field(default=None, description="Where notifications are POSTed; unset: no webhook.")
    secret: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 secret shared with the receiver; required with url."
    )
    steps: list[AlertStep] = Field(
        default_factory=lambda: list(WEBHOOK_DEFAULT_STEPS),
        min_length=1,
        description='The steps notified, e.g. ["raise", "escalate", "cancel"] (raise, escalate, '
        "acknowledge, dispatch, resolve, clear, cancel, close).",
    )
    timeout_s: float = Field(default=5.0, gt=0, description="How long the receiver may take to answer one.")
    verify_tls: bool = Field(default=True, description="Check an https receiver's certificate (keep it on).")
    keepalive_expiry_s: float = Field(
        default=2.0,
        gt=0,
        le=300,
        description="Close a pooled connection idle this long; keep it under the receiver's own idle timeout.",
    )
    ca_file: Path | None = Field(
        default=None, description="PEM CA(s) the receiver's certificate is checked against; unset: the system's."
    )

    @model_validator(mode="after")
    def _secret_with_url(self) -> Self:
        if self.url is not None and (self.secret is None or not self.secret.get_secret_value()):
            raise ValueError("webhook.url needs webhook.secret, the HMAC secret its receiver verifies with")
        if self.ca_file is not None and not self.verify_tls:
            raise ValueError("webhook.ca_file is for checking the receiver's certificate: it needs verify_tls")
        return self


class VillageNotifySettings(_Section):
    """Alert notifications for village centres (fleet/alerts/channels/village_notify.py): each step in
    ``steps`` is published as an AlertNotification at QoS 1, not retained, on the alert's village topic
    (protocol.topics.village_notify_topic), through the fleet's broker connection. Every step by default:
    the centre's console mirrors its alerts, and an acknowledgement may come from the town or county."""

    enabled: bool = Field(default=False, description="Publish notifications for village centres.")
    steps: list[AlertStep] = Field(default_factory=lambda: list(AlertStep), min_length=1)
    publish_timeout_s: float = Field(default=10.0, gt=0, description="How long the broker may take to accept one.")


class FleetSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OUTPOST_FLEET_", env_nested_delimiter="__", extra="forbid")

    environment: Literal["development", "production"] = Field(
        default="production",
        description="production (the default) refuses public secrets and links without TLS; development must be "
        "asked for, runs with the documented development secrets and listens on loopback only.",
    )
    database_url: str = "sqlite+aiosqlite:///outpost-fleet.db"
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    timeseries: TimeSeriesSettings = Field(default_factory=TimeSeriesSettings)
    governance: GovernanceSettings = Field(default_factory=GovernanceSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    # --- channels (webhook, village notify) ---
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    village_notify: VillageNotifySettings = Field(default_factory=VillageNotifySettings)
    presence: PresenceSettings = Field(default_factory=PresenceSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    enrollment: EnrollmentSettings = Field(default_factory=EnrollmentSettings)
    configs: ConfigPushSettings = Field(default_factory=ConfigPushSettings)
    commands: CommandSettings = Field(default_factory=CommandSettings)
    releases: ReleaseSettings = Field(default_factory=ReleaseSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    state_export: StateExportSettings = Field(default_factory=StateExportSettings)  # --- state export ---
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    max_payload_bytes: int = Field(default=DEFAULT_MAX_PAYLOAD_BYTES, ge=1024, le=DEFAULT_MAX_PAYLOAD_BYTES)
    registry_flush_interval_s: float = Field(default=1.0, gt=0)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then the environment (known variables only)."""
        return init_settings, KnownVariablesOnly(settings_cls, NOT_SETTINGS)

    @model_validator(mode="after")
    def _development_stays_on_this_host(self) -> Self:
        if self.environment == "development" and not is_loopback_host(self.api.host):
            raise ValueError(
                f"development mode listens on loopback only (api.host is {self.api.host!r}): its secrets are public; "
                "set environment = production to serve beyond this host"
            )
        return self

    @model_validator(mode="after")
    def _no_default_secrets_in_production(self) -> Self:
        if self.environment != "production":
            return self
        missing = []
        if self.broker.username is None or self.broker.password is None:
            missing.append("broker.username/broker.password")
        if self.broker.downlink_username is None:
            missing.append("broker.downlink_username/broker.downlink_password")
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

    @model_validator(mode="after")
    def _tls_on_every_link_in_production(self) -> Self:
        """Production refuses every link that would cross a network in the clear or unverified; a link to this
        host (loopback: a broker or reverse proxy beside the fleet) never leaves it."""
        if self.environment != "production":
            return self
        plain = [name for name, url in self._urls() if url is not None and not _encrypted(url)]
        if self.broker.tls is None and not is_loopback_host(self.broker.host):
            plain.append("broker (set broker.tls)")
        if self.api.tls_cert_file is None and not is_loopback_host(self.api.host):
            plain.append("api (set api.tls_cert_file/tls_key_file, or listen on loopback behind a TLS proxy)")
        if not self.enrollment.broker.tls:
            plain.append("enrollment.broker (gateways must connect with tls)")
        unverified = [
            name
            for name, off in (
                ("governance.verify_tls", not self.governance.verify_tls),
                ("webhook.verify_tls", not self.webhook.verify_tls),
                ("broker.tls.check_hostname", self.broker.tls is not None and not self.broker.tls.check_hostname),
            )
            if off
        ]
        if plain or unverified:
            problems = ([f"TLS for: {', '.join(plain)}"] if plain else []) + (
                [f"verification on: {', '.join(unverified)}"] if unverified else []
            )
            raise ValueError(f"production needs {'; and '.join(problems)}")
        return self

    def _urls(self) -> list[tuple[str, AnyHttpUrl | None]]:
        influx = self.timeseries.influx
        return [
            ("governance.url", self.governance.url),
            ("webhook.url", self.webhook.url),
            ("enrollment.public_url", self.enrollment.public_url),
            ("timeseries.influx.url", influx.url if influx is not None else None),
        ]


def _encrypted(url: AnyHttpUrl) -> bool:
    """An https URL, or one to this host (which never crosses a network)."""
    return url.scheme == "https" or is_loopback_host(url.host or "")


NOT_SETTINGS: Final = frozenset({"OUTPOST_FLEET_URL"})
"""Variables with the settings' prefix that are no settings: the API's URL for the fleet's CLI client
(fleet/cli/client.py), which a technician's shell exports next to ``fleet run``."""
