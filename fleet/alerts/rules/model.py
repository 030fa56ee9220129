"""The alert rules model: what one village's alerting runs by, once its layers are merged.

Every field has a default, so an empty set of layers is a working rule set; a layer names only what it
changes (``{"kinds": {"camera_offline": {"severity": "minor"}}}``). A layer is validated strictly when it is
written (unknown keys, wrong types, out-of-range numbers and unknown time zones are refused).

- ``kinds``: per alert kind, whether it becomes an alert at all, its severity (instead of the one it was
  raised with), how long a condition the fleet watches must hold before it is raised, how long an ended
  condition must stay away before its alert clears, and a rate limit per village.
- ``ack_deadline_s``: how long an alert may wait unacknowledged at one level before it escalates
  (village → town → county), per severity; a severity set to null (a layer's way to turn it off) or left
  out never escalates.
- ``quiet_hours``: notifications to people (not cases) of the listed severities raised or escalated in
  the window are held until it ends; critical alerts are never held unless listed.
- ``watch``: the thresholds of the conditions the fleet raises alerts for itself.
"""

import re
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Final, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from fleet.alerts.kinds import AnyAlertKind
from protocol.messages import FleetAlertKind, Severity
from protocol.notifications import AlertLevel

_CLOCK_TIME: Final = r"^([01]\d|2[0-3]):[0-5]\d$"


class _Rules(BaseModel):
    # Lax here, so the fleet's settings can give base rules from the environment ("1" for 1); every layer
    # is validated strictly as JSON when written (fleet.alerts.rules.layers.validated).
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateLimit(_Rules):
    """At most ``max_alerts`` new alerts of one kind per village within ``per_s``; beyond it, a new alert
    counts as a repeat on the newest open alert of that kind in the village (nothing lost, nobody flooded)."""

    max_alerts: int = Field(ge=1, le=100_000)
    per_s: float = Field(gt=0, le=7 * 24 * 3600)


class KindRule(_Rules):
    enabled: bool = Field(default=True, description="False: this detection is kept as an event, never an alert.")
    severity: Severity | None = Field(default=None, description="Instead of the severity it was raised with.")
    hold_off_s: float = Field(
        default=0.0,
        ge=0,
        le=24 * 3600,
        description="For conditions the fleet watches (disk, temperature, buffer): how long it must hold before "
        "the alert is raised. A gateway's own detections arrive after its detection config's hold-off.",
    )
    clear_hold_s: float | None = Field(
        default=None, ge=0, le=24 * 3600, description="An ended condition clears its alert after this long away."
    )
    rate_limit: RateLimit | None = None


class QuietHours(_Rules):
    start: Annotated[str, StringConstraints(pattern=_CLOCK_TIME)] = Field(description='Local time, "22:00".')
    end: Annotated[str, StringConstraints(pattern=_CLOCK_TIME)] = Field(description='Local time, "06:30".')
    timezone: str = Field(default="UTC", description='An IANA time zone, e.g. "Asia/Shanghai".')
    hold: frozenset[Severity] = Field(
        default=frozenset({Severity.MINOR, Severity.WARNING, Severity.INFO}),
        description="The severities whose notifications wait for the end of quiet hours.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.start == self.end:
            raise ValueError("quiet hours start and end at the same time")
        return self

    def held_until_ms(self, at_ms: int, severity: Severity) -> int | None:
        """When a notification of ``severity`` due at ``at_ms`` may go: the end of the quiet hours it falls
        in, or None when it may go now."""
        if severity not in self.hold:
            return None
        zone = ZoneInfo(self.timezone)
        local = datetime.fromtimestamp(at_ms / 1000, UTC).astimezone(zone)
        start, end = _clock(self.start), _clock(self.end)
        now = local.time()
        inside = start <= now < end if start < end else now >= start or now < end
        if not inside:
            return None
        ends = datetime.combine(local.date(), end, tzinfo=zone)
        if ends <= local:
            ends += timedelta(days=1)
        return round(ends.timestamp() * 1000)


class WatchLimits(_Rules):
    """When the fleet raises its own alerts about a gateway."""

    offline_after_missed_heartbeats: float = Field(
        default=2.0, ge=1, le=1000, description="gateway_offline once it has been silent this many intervals."
    )
    back_after_clean_stop_s: float = Field(
        default=300.0,
        ge=0,
        le=86_400,
        description="A gateway that stopped cleanly (it said goodbye: a restart, an update, staff) is expected back "
        "within this long; gateway_offline only if it is not.",
    )
    disk_percent: float = Field(default=95.0, gt=0, le=100, description="disk_critical at or above this.")
    temperature_c: float = Field(default=80.0, gt=0, le=150, description="temperature_critical at or above this.")
    buffer_depth: int = Field(
        default=10_000, ge=1, description="buffer_overflowing at this many messages held, or when it drops any."
    )


DEFAULT_SEVERITY: Final[dict[FleetAlertKind, Severity]] = {
    FleetAlertKind.GATEWAY_OFFLINE: Severity.MAJOR,
    FleetAlertKind.DISK_CRITICAL: Severity.MAJOR,
    FleetAlertKind.TEMPERATURE_CRITICAL: Severity.MAJOR,
    FleetAlertKind.CONFIG_REJECTED: Severity.MINOR,
    FleetAlertKind.BUFFER_OVERFLOWING: Severity.MAJOR,
    FleetAlertKind.DELIVERY_FAILED: Severity.MAJOR,
    FleetAlertKind.MESSAGES_DEAD_LETTERED: Severity.MINOR,
    FleetAlertKind.INGEST_STUCK: Severity.MAJOR,
}
"""The severity of the fleet's own alerts unless a rule sets one."""

_NO_RULE: Final = KindRule()
_DEFAULT_DEADLINES_S: Final[dict[Severity, float | None]] = {
    Severity.CRITICAL: 120.0,
    Severity.MAJOR: 600.0,
    Severity.MINOR: 1800.0,
    Severity.WARNING: 3600.0,
}


class AlertRules(_Rules):
    kinds: dict[AnyAlertKind, KindRule] = Field(default_factory=dict)
    ack_deadline_s: dict[Severity, Annotated[float, Field(gt=0, le=7 * 24 * 3600)] | None] = Field(
        default_factory=lambda: dict(_DEFAULT_DEADLINES_S),
        description='Seconds per severity, e.g. {"critical": 120}; null (or left out) never escalates.',
    )
    quiet_hours: QuietHours | None = None
    watch: WatchLimits = Field(default_factory=WatchLimits)
    clear_hold_s: float = Field(
        default=60.0, ge=0, le=24 * 3600, description="An ended condition clears its alert after this long away."
    )

    def rule(self, kind: AnyAlertKind) -> KindRule:
        return self.kinds.get(kind, _NO_RULE)

    def severity_of(self, kind: AnyAlertKind, raised: Severity | None = None) -> Severity:
        """The severity an alert of ``kind`` gets: its rule's, else the one it was raised with, else the fleet's."""
        ruled = self.rule(kind).severity
        if ruled is not None:
            return ruled
        if raised is not None:
            return raised
        return DEFAULT_SEVERITY.get(FleetAlertKind(kind), Severity.MAJOR)

    def clear_hold_ms(self, kind: AnyAlertKind) -> int:
        hold_s = self.rule(kind).clear_hold_s
        return round((self.clear_hold_s if hold_s is None else hold_s) * 1000)

    def notifications_held_until_ms(self, at_ms: int, severity: Severity) -> int | None:
        """When people may be told of an alert of ``severity`` at ``at_ms``: the end of the quiet hours it falls
        in, or None when at once (no quiet hours, outside them, or a severity they do not hold)."""
        return self.quiet_hours.held_until_ms(at_ms, severity) if self.quiet_hours else None

    def escalates_at_ms(self, severity: Severity, level: AlertLevel, since_ms: int) -> int | None:
        """When an alert of ``severity`` waiting at ``level`` since ``since_ms`` goes up a level; None if it
        never does (its severity does not escalate, or it is at the county already)."""
        wait_s = self.ack_deadline_s.get(severity)
        if wait_s is None or level is AlertLevel.COUNTY:
            return None
        return since_ms + round(wait_s * 1000)


def _clock(value: str) -> time:
    match = re.fullmatch(r"(\d\d):(\d\d)", value)
    if match is None:  # the field's pattern already refused it
        raise ValueError(f"not a clock time: {value!r}")
    return time(int(match.group(1)), int(match.group(2)))


DEFAULT_RULES: Final = AlertRules()
"""What a village with no rule layers runs by, unless the fleet's settings give other base rules."""

RulesFor = Callable[[str], AlertRules]
"""The rules a village (by id) runs by now."""


def same_rules_everywhere(rules: AlertRules = DEFAULT_RULES) -> RulesFor:
    """Every village runs by ``rules`` (no layers: an ingest worker, a test)."""
    return lambda village_id: rules
