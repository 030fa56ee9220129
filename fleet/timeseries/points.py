"""Time-series points and their InfluxDB line-protocol form.

Naming: measurement ``telemetry`` (one field per metric), ``gateway_health`` and ``device_event``;
tags ``village``, ``gateway`` and, where it applies, ``device``/``kind``. VictoriaMetrics stores a
field as the series ``{measurement}_{field}{tags}``, e.g. ``telemetry_line_in{village=...}``.
"""

from dataclasses import dataclass
from typing import Final

from protocol.messages import DeviceEvent, Heartbeat, TelemetryBatch

TELEMETRY: Final = "telemetry"
GATEWAY_HEALTH: Final = "gateway_health"
DEVICE_EVENT: Final = "device_event"

_TAG_ESCAPES: Final = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})


@dataclass(frozen=True, slots=True)
class Point:
    measurement: str
    tags: tuple[tuple[str, str], ...]
    fields: tuple[tuple[str, float], ...]
    ts_ms: int

    def line(self) -> str:
        """Line protocol with millisecond precision; tag values are escaped, names are identifier-safe."""
        tags = "".join(f",{key}={value.translate(_TAG_ESCAPES)}" for key, value in self.tags)
        fields = ",".join(f"{key}={value!r}" for key, value in self.fields)
        return f"{self.measurement}{tags} {fields} {self.ts_ms}"


def telemetry_points(village_id: str, batch: TelemetryBatch) -> list[Point]:
    return [
        Point(
            TELEMETRY,
            (("device", p.device_id), ("gateway", batch.gateway_id), ("village", village_id)),
            ((p.metric, p.value),),
            p.ts,
        )
        for p in batch.points
    ]


def health_point(village_id: str, heartbeat: Heartbeat) -> Point:
    health = heartbeat.health
    fields: list[tuple[str, float]] = [
        ("cpu_percent", health.cpu_percent),
        ("memory_percent", health.memory_percent),
        ("disk_percent", health.disk_percent),
        ("uptime_s", health.uptime_s),
        ("buffer_depth", float(health.buffer_depth)),
        ("buffer_bytes", float(health.buffer_bytes)),
        ("dropped_total", float(sum(health.dropped.values()))),
        ("adapters_not_running", float(sum(1 for state in health.adapters.values() if state != "running"))),
    ]
    if health.temperature_c is not None:
        fields.append(("temperature_c", health.temperature_c))
    if health.uplink_rtt_ms is not None:
        fields.append(("uplink_rtt_ms", health.uplink_rtt_ms))
    tags = (("gateway", heartbeat.gateway_id), ("village", village_id))
    return Point(GATEWAY_HEALTH, tags, tuple(fields), heartbeat.ts)


def event_point(village_id: str, event: DeviceEvent) -> Point:
    return Point(
        DEVICE_EVENT,
        (
            ("device", event.device_id),
            ("gateway", event.gateway_id),
            ("kind", event.kind.value),
            ("village", village_id),
        ),
        (("count", 1.0),),
        event.ts,
    )
