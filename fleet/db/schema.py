"""The registry's tables (SQLAlchemy 2 typed mappings). Changes here need an Alembic migration."""

from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}  # noqa: RUF012 - SQLAlchemy reads it as a class attribute


# SQLite numbers rows automatically only for an INTEGER PRIMARY KEY.
_SERIAL = BigInteger().with_variant(Integer(), "sqlite")


class DeliveryState(StrEnum):
    """Where one outbox message stands (fleet.alerts.outbox); on an alert, where its case's opening stands."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"
    SKIPPED = "skipped"  # nothing left to deliver: the withdrawal of a case that was never opened
    UNROUTED = "unrouted"  # an alert no case is opened for: no platform configured, or its rules keep it local


class CountyRow(Base):
    __tablename__ = "counties"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    created_ms: Mapped[int] = mapped_column(BigInteger)


class TownRow(Base):
    __tablename__ = "towns"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    county_id: Mapped[str] = mapped_column(ForeignKey("counties.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    created_ms: Mapped[int] = mapped_column(BigInteger)


class VillageRow(Base):
    """A village; ``town_id`` is unset for a village first heard of from a gateway's traffic."""

    __tablename__ = "villages"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    first_seen_ms: Mapped[int] = mapped_column(BigInteger)
    town_id: Mapped[str | None] = mapped_column(ForeignKey("towns.id"), index=True)
    latitude: Mapped[float | None]
    longitude: Mapped[float | None]


class GridRow(Base):
    """A grid of a village: its id is unique within the village (alerts name it with the village)."""

    __tablename__ = "grids"

    village_id: Mapped[str] = mapped_column(ForeignKey("villages.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    created_ms: Mapped[int] = mapped_column(BigInteger)


class GatewayRow(Base):
    __tablename__ = "gateways"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    village_id: Mapped[str] = mapped_column(ForeignKey("villages.id"), index=True)
    first_seen_ms: Mapped[int] = mapped_column(BigInteger)
    online: Mapped[bool] = mapped_column(default=False)
    presence_reason: Mapped[str] = mapped_column(String(32), default="never_connected")
    presence_changed_ms: Mapped[int | None] = mapped_column(BigInteger)
    last_seen_ms: Mapped[int | None] = mapped_column(BigInteger)
    agent_version: Mapped[str | None] = mapped_column(String(64))
    heartbeat_interval_s: Mapped[float | None]
    last_health: Mapped[dict[str, Any] | None]
    last_health_ms: Mapped[int | None] = mapped_column(BigInteger)
    name: Mapped[str | None] = mapped_column(String(128))
    # enrollment: the key the gateway enrolled with, when and from which host; revoked: its broker login is disabled
    public_key_pem: Mapped[str | None] = mapped_column(String(512))
    public_key_sha256: Mapped[str | None] = mapped_column(String(64))
    enrolled_ms: Mapped[int | None] = mapped_column(BigInteger)
    enrolled_hostname: Mapped[str | None] = mapped_column(String(256))
    revoked_ms: Mapped[int | None] = mapped_column(BigInteger)
    # the TLS client certificate the fleet's gateway CA issued it last (at enrollment or renewal), and its expiry
    tls_cert_pem: Mapped[str | None] = mapped_column(Text)
    tls_cert_not_after_ms: Mapped[int | None] = mapped_column(BigInteger)


class DeviceRow(Base):
    """A device wired to a gateway; its id is unique on that gateway, its grid is one of the gateway's village."""

    __tablename__ = "devices"

    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(128))
    grid_id: Mapped[str | None] = mapped_column(String(64))
    created_ms: Mapped[int] = mapped_column(BigInteger)


class ApiTokenRow(Base):
    """An API token: only the SHA-256 of its secret is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    expires_ms: Mapped[int | None] = mapped_column(BigInteger)
    revoked_ms: Mapped[int | None] = mapped_column(BigInteger)
    scope_kind: Mapped[str | None] = mapped_column(String(16))  # county, town, village; unset: the whole fleet
    scope_id: Mapped[str | None] = mapped_column(String(64))


class AuditRow(Base):
    """One mutating call: who (token name and role), what (action, target), when, the state before and after."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(_SERIAL, primary_key=True, autoincrement=True)
    at_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(160), index=True)
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]


class AlertRow(Base):
    __tablename__ = "alerts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the gateway's event id
    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"), index=True)
    village_id: Mapped[str] = mapped_column(ForeignKey("villages.id"), index=True)
    device_id: Mapped[str] = mapped_column(String(64))
    grid_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(String(256))
    evidence: Mapped[dict[str, Any]]
    seq: Mapped[int] = mapped_column(BigInteger)
    raised_at_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    received_at_ms: Mapped[int] = mapped_column(BigInteger)
    # Where the opening of its case stands: a copy of its governance outbox message's state (fleet.alerts.outbox).
    delivery_state: Mapped[str] = mapped_column(String(16), default=DeliveryState.PENDING, index=True)
    delivery_attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(512))
    case_id: Mapped[str | None] = mapped_column(String(64))
    delivered_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    # The lifecycle (fleet.alerts.lifecycle): where it stands, who must act, and when it escalates next.
    state: Mapped[str] = mapped_column(String(16), default="raised", index=True)
    level: Mapped[str] = mapped_column(String(16), default="village")
    state_changed_ms: Mapped[int] = mapped_column(BigInteger)
    escalate_at_ms: Mapped[int | None] = mapped_column(BigInteger, index=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    assignee: Mapped[str | None] = mapped_column(String(128))
    feedback_rating: Mapped[int | None] = mapped_column(Integer)
    feedback_comment: Mapped[str | None] = mapped_column(String(512))
    # Correlation (fleet.alerts.correlation): one open alert per condition, repeats counted on it, and a
    # clear that waits out a hold-off so a flapping device keeps one alert.
    condition_key: Mapped[str] = mapped_column(String(200), index=True)
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    last_seen_ms: Mapped[int] = mapped_column(BigInteger)
    clear_at_ms: Mapped[int | None] = mapped_column(BigInteger, index=True)
    case_sequence: Mapped[int] = mapped_column(Integer, default=0)
    """The sequence number of the platform's last callback taken for this alert's case (fleet.alerts.callbacks)."""


class AlertRepeatRow(Base):
    """A later alert message for a condition that already had an open alert: counted on it, kept here by
    its own event id so that a redelivery of it is not counted again (fleet.alerts.correlation)."""

    __tablename__ = "alert_repeats"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id"), index=True)
    raised_at_ms: Mapped[int] = mapped_column(BigInteger)
    received_at_ms: Mapped[int] = mapped_column(BigInteger)


class GovernanceCallbackRow(Base):
    """A status callback from the governance platform, kept by its id: a repeat of it is answered, not applied
    again (fleet.alerts.callbacks)."""

    __tablename__ = "governance_callbacks"

    callback_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id"), index=True)
    case_id: Mapped[str] = mapped_column(String(64))
    sequence: Mapped[int] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16))  # applied, refused (illegal for the alert's state), stale
    detail: Mapped[str | None] = mapped_column(String(512))
    sent_at_ms: Mapped[int] = mapped_column(BigInteger)
    received_at_ms: Mapped[int] = mapped_column(BigInteger)


class AlertTransitionRow(Base):
    """One step in an alert's life, or a note on it: who, when, why (fleet.alerts.handling)."""

    __tablename__ = "alert_transitions"

    id: Mapped[int] = mapped_column(_SERIAL, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id"), index=True)
    step: Mapped[str] = mapped_column(String(16))  # a lifecycle step, or raise / escalate / note
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(512))
    at_ms: Mapped[int] = mapped_column(BigInteger)


class OutboxRow(Base):
    """One message about an alert for one channel (open or withdraw its case, notify people), written in the
    transaction of the step it follows and delivered at least once by that channel's worker (fleet.alerts.outbox).
    ``key`` is the idempotency key the channel sends, the same on every attempt."""

    __tablename__ = "alert_outbox"
    __table_args__ = (Index("ix_alert_outbox_due", "channel", "state", "next_attempt_ms"),)

    id: Mapped[int] = mapped_column(_SERIAL, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id"), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))  # open_case, withdraw_case, notify
    step: Mapped[str] = mapped_column(String(16))  # the lifecycle step (or raise / escalate) it follows
    reason: Mapped[str | None] = mapped_column(String(512))
    key: Mapped[str] = mapped_column(String(36), unique=True)
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    next_attempt_ms: Mapped[int] = mapped_column(BigInteger)
    delivered_ms: Mapped[int | None] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(String(512))
    result: Mapped[str | None] = mapped_column(String(64))  # what the channel answered (the case id)


# --- enrollment ---


class EnrollmentTokenRow(Base):
    """A single-use enrollment token for a village (and optionally one gateway id): only the SHA-256 of its
    secret is stored. ``used_ms`` is set by the one redemption that wins (see fleet.enrollment.tokens)."""

    __tablename__ = "enrollment_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    # No foreign keys: a token may name a gateway to be, and used tokens must not keep a village from being removed.
    village_id: Mapped[str] = mapped_column(String(64), index=True)
    gateway_id: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(64))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    expires_ms: Mapped[int] = mapped_column(BigInteger)
    used_ms: Mapped[int | None] = mapped_column(BigInteger)
    enrolled_gateway_id: Mapped[str | None] = mapped_column(String(64))
    revoked_ms: Mapped[int | None] = mapped_column(BigInteger)


# --- config push ---


class LayerColumns(Base):
    """A layer's columns (fleet.layers): keyed by scope and id, the site it names checked when it is written (no
    foreign key to the site tables)."""

    __abstract__ = True

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    scope_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    overrides: Mapped[dict[str, Any]]
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    updated_by: Mapped[str] = mapped_column(String(64))


class ConfigLayerRow(LayerColumns):
    """Part of a gateway config set for a county, town, village or one gateway (fleet.configs.layers)."""

    __tablename__ = "config_layers"


class GatewayConfigRow(Base):
    """A gateway's desired config (resolved from the layers, versioned, signed when published) and its report.

    No foreign key to ``gateways``: a removed gateway leaves this row, which the next reconciliation drops.
    """

    __tablename__ = "gateway_configs"

    gateway_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    village_id: Mapped[str | None] = mapped_column(String(64))  # the village the desired config is signed for
    version: Mapped[int] = mapped_column(BigInteger, default=0)  # 0: no desired config (no layer applies)
    config: Mapped[dict[str, Any] | None]
    config_sha256: Mapped[str | None] = mapped_column(String(64))
    changed_ms: Mapped[int | None] = mapped_column(BigInteger)
    invalid: Mapped[str | None] = mapped_column(String(1024))  # why the layers no longer resolve for it
    signature: Mapped[str | None] = mapped_column(String(128))
    key_id: Mapped[str | None] = mapped_column(String(16))
    published_ms: Mapped[int | None] = mapped_column(BigInteger, index=True)
    reported_version: Mapped[int | None] = mapped_column(BigInteger)
    reported_status: Mapped[str | None] = mapped_column(String(16))
    reported_error: Mapped[str | None] = mapped_column(String(256))
    reported_ms: Mapped[int | None] = mapped_column(BigInteger)


# --- commands ---


class CommandState(StrEnum):
    """Where a command to a gateway stands (see :mod:`fleet.commands`)."""

    PENDING = "pending"  # recorded, not yet acknowledged by the broker
    SENT = "sent"  # the broker took it (PUBACK): the gateway gets it now, or when it reconnects
    SUCCEEDED = "succeeded"  # the gateway answered ok
    FAILED = "failed"  # the gateway answered with an error (refused, or it failed)
    TIMED_OUT = "timed_out"  # no answer by the deadline (a late answer is kept, the state stays)
    UNDELIVERABLE = "undeliverable"  # the broker did not take it in time


class CommandRow(Base):
    """One command to a gateway and its outcome. ``id`` numbers commands in order: it is the message's ``seq``.

    No foreign key to ``gateways``: like the audit log, a gateway's command history outlives its record.
    The attachment (a fetched snapshot) is deferred, so listing commands never loads it.
    """

    __tablename__ = "commands"
    __table_args__ = (
        Index("ix_commands_state_deadline", "state", "deadline_ms"),
        Index("ix_commands_gateway_created", "gateway_id", "created_ms"),
    )

    id: Mapped[int] = mapped_column(_SERIAL, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(36), unique=True)
    gateway_id: Mapped[str] = mapped_column(String(64))
    village_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(32))
    args: Mapped[dict[str, Any]]
    requested_by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(256))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    deadline_ms: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16))
    sent_ms: Mapped[int | None] = mapped_column(BigInteger)
    result: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(String(512))
    responded_ms: Mapped[int | None] = mapped_column(BigInteger)
    answered_late: Mapped[bool] = mapped_column(default=False)
    argument: Mapped[bytes | None] = mapped_column(deferred=True)  # the command's own attachment (a certificate)
    attachment: Mapped[bytes | None] = mapped_column(deferred=True)  # bytes map to LargeBinary
    attachment_bytes: Mapped[int | None]
    attachment_content_type: Mapped[str | None] = mapped_column(String(64))


# --- alert rules ---


class AlertRuleLayerRow(LayerColumns):
    """Part of the alert rules set for a county, town or village (fleet.alerts.rules.layers)."""

    __tablename__ = "alert_rule_layers"


# --- ingest dead letters ---


class IngestDeadLetterRow(Base):
    """An inbound message ingest could not process, kept for people to see (fleet.ingest.dead_letters).

    One row per distinct message (``key``: the SHA-256 of its topic and payload), counted each time it comes
    back (a retained message after every restart, a gateway repeating itself); a flood of distinct messages
    from one source is folded into one row per source, channel and reason (its ``key`` says so)."""

    __tablename__ = "ingest_dead_letters"

    id: Mapped[int] = mapped_column(_SERIAL, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(160), unique=True)
    topic: Mapped[str] = mapped_column(String(300))
    channel: Mapped[str | None] = mapped_column(String(32))
    village_id: Mapped[str | None] = mapped_column(String(64))
    gateway_id: Mapped[str | None] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(String(32), index=True)
    error: Mapped[str] = mapped_column(String(512))
    payload: Mapped[str] = mapped_column(Text)  # the first bytes, undecodable ones as \\x escapes
    payload_bytes: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(BigInteger)
    first_ms: Mapped[int] = mapped_column(BigInteger)
    last_ms: Mapped[int] = mapped_column(BigInteger, index=True)


class ReleaseRow(Base):
    """A release the fleet keeps (its files under ``releases.directory``): uploading until every file the signed
    manifest lists has arrived whole and hashes right, ready from then on."""

    __tablename__ = "releases"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(16))
    signed: Mapped[str] = mapped_column(Text)  # release.json as uploaded: the manifest and its signature
    file_count: Mapped[int] = mapped_column(Integer)
    total_size: Mapped[int] = mapped_column(BigInteger)
    created_ms: Mapped[int] = mapped_column(BigInteger)  # when it was built (the manifest's)
    uploaded_ms: Mapped[int] = mapped_column(BigInteger)
    uploaded_by: Mapped[str] = mapped_column(String(64))
    ready_ms: Mapped[int | None] = mapped_column(BigInteger)


class JobRow(Base):
    """A job: an agent update or a bulk command to many gateways, in waves (fleet/jobs)."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    version: Mapped[str | None] = mapped_column(String(64))  # update_agent: the release
    request: Mapped[dict[str, Any]]  # the JobRequest as asked (target, waves, abort policy, timeouts, reason)
    state: Mapped[str] = mapped_column(String(16), index=True)  # running, paused, done, aborted, cancelled
    state_reason: Mapped[str | None] = mapped_column(String(256))
    wave: Mapped[int] = mapped_column(Integer, default=0)  # the furthest wave opened
    waves: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(64))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    deadline_ms: Mapped[int] = mapped_column(BigInteger)
    finished_ms: Mapped[int | None] = mapped_column(BigInteger)


class JobTargetRow(Base):
    """One gateway of a job: its wave, where it stands, and the command that carried the job to it."""

    __tablename__ = "job_targets"
    __table_args__ = (Index("ix_job_targets_job_state", "job_id", "state"),)

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    gateway_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    village_id: Mapped[str] = mapped_column(String(64))
    wave: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(256))
    from_version: Mapped[str | None] = mapped_column(String(64))  # the agent it ran when targeted
    request_id: Mapped[str | None] = mapped_column(String(36))  # the last command sent for it
    sent_ms: Mapped[int | None] = mapped_column(BigInteger)
    changed_ms: Mapped[int] = mapped_column(BigInteger)
