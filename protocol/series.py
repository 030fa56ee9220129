"""Time-series names: what the fleet writes and what the dashboards read, agreed in one place.

The fleet writes InfluxDB line protocol: a point is a measurement, tags and fields. InfluxQL reads
``SELECT "field" FROM "measurement" WHERE "tag" = '…'``; VictoriaMetrics (and so PromQL) stores each
field as the series ``{measurement}_{field}`` with the point's tags as labels, e.g.
``gateway_health_cpu_percent{gateway="gw-1",village="xihe"}`` (:meth:`Field.prom_name`).

Two kinds of measurement:

- **from the gateways' messages**, one point per message or reading, at the source's time:
  :data:`TELEMETRY`, :data:`GATEWAY_HEALTH`, :data:`CAMERA_HEALTH`, :data:`DEVICE_EVENT`;
- **from the fleet's own state** (registry, alerts, deliveries, ingest), written by the fleet's
  state export every few seconds, so dashboards need no access to the fleet's database:
  :data:`VILLAGE_STATE`, :data:`GATEWAY_STATE`, :data:`DEVICE_FIRMWARE`, :data:`ALERTS_OPEN`,
  :data:`DELIVERIES`, :data:`FLEET_INGEST`, :data:`FLEET_REJECTED`, :data:`JOB_TARGETS`; and one
  :data:`ALERT_STEP` point per step in an alert's life, at the step's time.

A tag with no value (a village in no town yet) is written as :data:`UNASSIGNED`: line protocol
has no empty tag values, and a dashboard should show the gap rather than drop the series.
"""

from dataclasses import dataclass
from typing import Final

UNASSIGNED: Final = "unassigned"


@dataclass(frozen=True, slots=True)
class Measurement:
    """A measurement, its tags, and its fields; ``open_fields``: any field name may occur (telemetry metrics)."""

    name: str
    tags: tuple[str, ...]
    fields: tuple[str, ...]
    open_fields: bool = False

    def field(self, name: str) -> "Field":
        """One of its fields; ValueError for a field it does not have (a typo in a dashboard, caught at build)."""
        if name not in self.fields and not self.open_fields:
            raise ValueError(f"measurement {self.name} has no field {name!r} (it has {', '.join(self.fields)})")
        return Field(self, name)

    def has_tag(self, tag: str) -> bool:
        return tag in self.tags


@dataclass(frozen=True, slots=True)
class Field:
    measurement: Measurement
    name: str

    @property
    def prom_name(self) -> str:
        """The series name VictoriaMetrics gives this field: ``{measurement}_{field}``."""
        return f"{self.measurement.name}_{self.name}"


# --- from the gateways' messages ---------------------------------------------------------------------

TELEMETRY: Final = Measurement(
    "telemetry",
    tags=("device", "gateway", "village"),
    fields=("line_in", "line_out", "battery_v", "rssi_dbm"),
    open_fields=True,  # a classifier adds line_in_person, line_out_vehicle, ...
)
"""A device's readings: checkpoint line crossings (counts per telemetry interval), node battery and signal."""

GATEWAY_HEALTH: Final = Measurement(
    "gateway_health",
    tags=("gateway", "village"),
    fields=(
        "cpu_percent",
        "memory_percent",
        "disk_percent",
        "uptime_s",
        "buffer_depth",
        "buffer_bytes",
        "dropped_total",
        "adapters_not_running",
        "temperature_c",
        "uplink_rtt_ms",
    ),
)
"""A gateway's heartbeat; ``temperature_c`` and ``uplink_rtt_ms`` only where measured."""

CAMERA_HEALTH: Final = Measurement(
    "camera_health",
    tags=("device", "gateway", "village"),
    fields=("analysed_fps", "frames", "decode_errors", "reconnects", "online", "last_frame_age_s"),
)
"""Each camera as the gateway's heartbeat tells it: frames analysed a second, counters since start, ``online``
1 or 0, and ``last_frame_age_s`` once a frame arrived."""

DEVICE_EVENT: Final = Measurement("device_event", tags=("device", "gateway", "kind", "village"), fields=("count",))
"""One point (``count`` = 1) per device event: presses, doors, motion, tamper, online/offline, ..."""

# --- from the fleet's own state ------------------------------------------------------------------------

_PLACE: Final = ("county", "town", "village")

VILLAGE_STATE: Final = Measurement(
    "village_state",
    tags=(*_PLACE, "latitude", "longitude"),
    fields=("gateways_online", "gateways_offline", "gateways_total", "alerts_open", "alerts_critical_open", "status"),
)
"""Per village: its gateways and open alerts; ``status`` 0 all well, 1 attention (a gateway offline or an
alert open), 2 act now (a critical alert open, or every gateway offline). The coordinates are tags (for
the map), as the registry has them, with 5 decimals; a village without coordinates has none."""

GATEWAY_STATE: Final = Measurement(
    "gateway_state",
    tags=(*_PLACE, "gateway", "agent_version", "config_status"),
    fields=("online", "config_in_sync", "seen_age_s"),
)
"""Per gateway: ``online`` 1/0; ``config_in_sync`` 1 when it reports the config version the fleet wants
applied (also 1 for a gateway no config layer reaches: the fleet wants nothing of it); ``config_status`` the
state of its last report (applied, rejected, ..., or ``none``). ``seen_age_s`` is left out for a gateway
never heard from."""

DEVICE_FIRMWARE: Final = Measurement(
    "device_firmware",
    tags=(*_PLACE, "gateway", "device", "firmware"),
    fields=("count",),
)
"""Per sensor node its gateway last heard from: ``count`` 1, tagged with the firmware version its
heartbeat reported (from the gateway's health), so dashboards count nodes by firmware version."""

ALERTS_OPEN: Final = Measurement(
    "alerts_open",
    tags=(*_PLACE, "severity", "state", "level"),
    fields=("count", "overdue"),
)
"""Alerts not yet resolved, closed, cleared or cancelled, counted by place, severity, state and level;
``overdue`` of them: nobody acknowledged them by their first deadline (they escalated)."""

ALERT_STEP: Final = Measurement(
    "alert_step",
    tags=(*_PLACE, "kind", "severity", "step", "level"),
    fields=("count", "since_raised_s"),
)
"""One point per step in an alert's life (raise, acknowledge, dispatch, resolve, escalate, ...) at the
step's time; ``since_raised_s`` is how long after the alert was raised it came (time to acknowledge, ...).
Steps alike in every tag in the same millisecond (a storm opened, or escalated, in one transaction) would
be one sample on the server: they are one point, ``count`` of them, ``since_raised_s`` their mean."""

ALERT_STEP_NAMES: Final = ("raise", "escalate", "acknowledge", "dispatch", "resolve", "close", "clear", "cancel")
"""The values of :data:`ALERT_STEP`'s ``step`` tag: the alert lifecycle's steps (notes are not steps)."""

DELIVERIES: Final = Measurement("deliveries", tags=("channel", "state"), fields=("count",))
"""Outbox messages per channel (the governance platform, webhooks, the village centre) and state
(pending, delivered, dead: dead-lettered after the retry limit)."""

FLEET_INGEST: Final = Measurement(
    "fleet_ingest",
    tags=("instance",),
    fields=(
        "received_total",
        "duplicates_total",
        "points_written_total",
        "points_dropped_total",
        "points_buffered",
        "unacked",
        "oldest_unacked_s",
        "connected",
    ),
)
"""The fleet's ingest: counters (``*_total``, since the fleet started) and gauges; the lag is
``oldest_unacked_s``, how long the oldest message taken from the broker has waited to be stored."""

JOB_TARGETS: Final = Measurement("job_targets", tags=("job", "kind", "version", "state"), fields=("count",))
"""Per job (open, or ended in the last day) and state of its gateways: how many stand there (``version`` is the
release of an update job, ``none`` for a bulk command). A state a job's gateways all left is written once more
as 0, so a sum by state is right at every moment."""

FLEET_REJECTED: Final = Measurement("fleet_rejected", tags=("instance", "reason"), fields=("total",))
"""Messages the fleet refused, by reason, counted since it started."""

MEASUREMENTS: Final = (
    TELEMETRY,
    GATEWAY_HEALTH,
    CAMERA_HEALTH,
    DEVICE_EVENT,
    VILLAGE_STATE,
    GATEWAY_STATE,
    DEVICE_FIRMWARE,
    ALERTS_OPEN,
    ALERT_STEP,
    DELIVERIES,
    FLEET_INGEST,
    FLEET_REJECTED,
    JOB_TARGETS,
)
