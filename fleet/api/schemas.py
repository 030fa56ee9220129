"""What the API shows: public views of registry rows, never the rows themselves."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fleet.alerts.kinds import AnyAlertKind
from fleet.db.schema import AlertRow, AlertTransitionRow, DeliveryState, GatewayRow, OutboxRow
from protocol.messages import GatewayHealth, Severity
from protocol.notifications import AlertLevel, AlertState


class _Public(BaseModel):
    model_config = ConfigDict(frozen=True)


class GatewayPublic(_Public):
    id: str
    village_id: str
    name: str | None
    online: bool
    presence_reason: str
    presence_changed_ms: int | None
    last_seen_ms: int | None
    agent_version: str | None
    heartbeat_interval_s: float | None
    health: GatewayHealth | None
    health_ms: int | None

    @classmethod
    def of(cls, row: GatewayRow) -> "GatewayPublic":
        return cls(
            id=row.id,
            village_id=row.village_id,
            name=row.name,
            online=row.online,
            presence_reason=row.presence_reason,
            presence_changed_ms=row.presence_changed_ms,
            last_seen_ms=row.last_seen_ms,
            agent_version=row.agent_version,
            heartbeat_interval_s=row.heartbeat_interval_s,
            health=GatewayHealth.model_validate(row.last_health, strict=False) if row.last_health else None,
            health_ms=row.last_health_ms,
        )


class AlertPublic(_Public):
    id: str
    kind: AnyAlertKind
    severity: Severity
    village_id: str
    gateway_id: str
    device_id: str
    grid_id: str | None
    summary: str
    evidence: dict[str, Any]
    raised_at_ms: int
    received_at_ms: int
    delivery_state: DeliveryState
    delivery_attempts: int
    last_error: str | None
    case_id: str | None
    delivered_at_ms: int | None
    state: AlertState
    level: AlertLevel = Field(
        description="Who must act: the village's centre, or the town's or county's after escalation."
    )
    state_changed_ms: int
    escalate_at_ms: int | None = Field(description="When it escalates unless taken on; None when it will not.")
    acknowledged_by: str | None
    assignee: str | None
    feedback_rating: int | None
    feedback_comment: str | None
    occurrences: int = Field(description="How often its condition was raised while it was open (repeats counted).")
    last_seen_ms: int = Field(description="When its condition was last raised at the source.")

    @classmethod
    def of(cls, row: AlertRow) -> "AlertPublic":
        return cls.model_validate(row, from_attributes=True)


class DeliveryPublic(_Public):
    """One outbox message: what a channel is to be told about an alert, and what came of it."""

    id: int
    alert_id: str
    channel: str
    action: str = Field(description="open_case, withdraw_case or notify.")
    step: str = Field(description="The alert's step it follows: raise, escalate, acknowledge, cancel, ...")
    reason: str | None
    state: DeliveryState
    attempts: int
    created_ms: int
    next_attempt_ms: int = Field(description="When it is tried next, while pending.")
    delivered_ms: int | None
    last_error: str | None
    result: str | None = Field(description="What the channel answered worth keeping (the case id).")

    @classmethod
    def of(cls, row: OutboxRow) -> "DeliveryPublic":
        return cls.model_validate(row, from_attributes=True)


class ChannelCountsPublic(_Public):
    channel: str
    pending: int
    delivered: int
    dead: int


class AlertStepPublic(_Public):
    """One step in an alert's life (``raise``, ``escalate``, a lifecycle step) or a note."""

    step: str
    from_state: AlertState | None
    to_state: AlertState
    level: AlertLevel
    actor: str
    reason: str | None
    at_ms: int

    @classmethod
    def of(cls, row: AlertTransitionRow) -> "AlertStepPublic":
        return cls.model_validate(row, from_attributes=True)


class TimeSeriesStatus(_Public):
    sink: str
    healthy: bool
    written_points: int
    buffered_points: int
    dropped_points: int
    rejected_points: int


class IngestLaneStatus(_Public):
    """One ingest lane (its own MQTT session): alerts, control or bulk."""

    lane: str
    connected: bool
    received: int
    stalls: int
    handler_errors: int
    dead_lettered: int
    unacked: int  # received from the broker, not yet acknowledged
    oldest_unacked_s: float | None  # how long the oldest of them has waited
    paused: bool  # not taking messages: the time-series buffer is at its bound (bulk lane)
    stuck: bool = Field(description="A message has waited unacknowledged past ingest.stuck_after_s (alerts, control).")


class DeadLetterStatus(_Public):
    """Inbound messages dead-lettered since the fleet started (``GET /ingest/dead-letters`` lists them)."""

    recorded: int
    waiting: int = Field(description="Dead letters not stored yet: their messages wait unacknowledged.")
    recent: bool = Field(description="Whether any was recorded in the last five minutes.")
    by_reason: dict[str, int]


class QuarantineStatus(_Public):
    """A gateway flooding a channel with messages nobody can process: the broker denies it that channel."""

    gateway_id: str
    village_id: str
    channels: list[str]
    enforced: bool = Field(description="Whether the broker denies it now (false: no broker administrator, or pending).")
    ends_in_s: float


class IngestStatus(_Public):
    connected: bool  # every lane's session is up
    received: int
    rejected: dict[str, int]
    duplicates: int
    stalls: int
    handler_errors: int
    unacked: int = 0  # received from the broker, not yet acknowledged, over every lane
    oldest_unacked_s: float | None = None  # how long the oldest of them has waited
    buffered_points: int = 0  # time-series points waiting to be written
    paused: bool = False  # the bulk lane takes nothing: the time-series buffer is at its bound
    pauses: int = 0
    lanes: list[IngestLaneStatus] = Field(default_factory=list)
    dead_letters: DeadLetterStatus | None = None
    quarantined: list[QuarantineStatus] = Field(default_factory=list)
    retained: dict[str, int] = Field(
        default_factory=dict,
        description="Messages that came retained on a channel the contract never retains (alert, heartbeat, …), by "
        "channel: a gateway published them retained. Handled as any other.",
    )


class ChannelStatus(_Public):
    """One alert channel's delivery worker since the fleet started."""

    name: str
    delivered: int
    dead: int
    blocked: str | None = Field(
        description="Why the channel takes nothing now (down, settings wrong); null if it does."
    )


class AlertDeliveryStatus(_Public):
    """Alerts raised since the fleet started, and their messages over every channel."""

    raised: int
    delivered: int
    dead: int
    blocked: str | None
    channels: list[ChannelStatus] = []


class HealthReport(_Public):
    status: str = Field(description="ok, or degraded when anything in problems stands in the way.")
    problems: list[str] = Field(default_factory=list, description="What is wrong, in words; empty when ok.")
    gateways_online: int
    ingest: IngestStatus
    timeseries: TimeSeriesStatus
    alerts: AlertDeliveryStatus


class ProblemEntry(BaseModel):
    """Where and why a request does not validate (FastAPI's own shape, as fleet/api/limits.py answers it)."""

    loc: list[str | int]
    msg: str
    type: str


class Refusal(BaseModel):
    """A 422: either the fleet's reason in words (a request well formed but refused, e.g. a release no trusted key
    signed) or, for a request that does not validate, where and why."""

    detail: str | list[ProblemEntry]
