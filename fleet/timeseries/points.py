"""Time-series points and their InfluxDB line-protocol form.

Naming (:mod:`protocol.series`, which the dashboards read too): measurement ``telemetry`` (one field
per metric), ``gateway_health`` and ``device_event``; tags ``village``, ``gateway`` and, where it
applies, ``device``/``kind``. VictoriaMetrics stores a field as the series
``{measurement}_{field}{tags}``, e.g. ``telemetry_line_in{village=...}``.

One message's points travel together as a :class:`Points` chunk from ingest to the store, so the hot
path (telemetry, tens of thousands of points a second) never builds an object per point: a
:class:`TelemetryPoints` chunk keeps the decoded batch and renders its line protocol straight from it,
about a sixth of the cost of building and rendering a :class:`Point` each. Stores that want structured
rows (the embedded store) ask for :meth:`Points.rows`.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, Self

from protocol import series
from protocol.messages import DeviceEvent, Heartbeat, TelemetryBatch, TelemetryPoint

TELEMETRY: Final = series.TELEMETRY.name
GATEWAY_HEALTH: Final = series.GATEWAY_HEALTH.name
CAMERA_HEALTH: Final = series.CAMERA_HEALTH.name
DEVICE_EVENT: Final = series.DEVICE_EVENT.name

_TAG_ESCAPES: Final = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\ ", "\r": r"\ ", "\t": r"\ "})


def escape_tag(value: str) -> str:
    """A tag value as line protocol needs it: commas, equals signs and spaces backslash-escaped, line
    breaks and tabs (which line protocol cannot carry) as escaped spaces, and no trailing backslash
    (it would escape the separator after it). A gateway's free-text agent version is a tag."""
    return value.rstrip("\\").translate(_TAG_ESCAPES)


@dataclass(frozen=True, slots=True)
class Point:
    measurement: str
    tags: tuple[tuple[str, str], ...]
    fields: tuple[tuple[str, float], ...]
    ts_ms: int

    def line(self) -> str:
        """Line protocol with millisecond precision; tag values are escaped, names are identifier-safe."""
        tags = "".join(f",{key}={escape_tag(value)}" for key, value in self.tags)
        fields = ",".join(f"{key}={value!r}" for key, value in self.fields)
        return f"{self.measurement}{tags} {fields} {self.ts_ms}"


class Points(Protocol):
    """A chunk of points that travels as one: its size, its line protocol, its rows, and a way to split it
    (a write batch may end inside a chunk)."""

    def __len__(self) -> int: ...

    def lines(self) -> Iterator[str]:
        """Each point's line protocol, in order (millisecond timestamps)."""
        ...

    def rows(self) -> Iterator[Point]:
        """Each point as a :class:`Point`, in the same order as :meth:`lines`."""
        ...

    def split(self, count: int) -> tuple[Self, Self]:
        """The first ``count`` points and the rest (0 < ``count`` < ``len(self)``)."""
        ...


@dataclass(frozen=True, slots=True)
class PointList:
    """Points that already exist as :class:`Point` objects (health, events: one per message)."""

    points: Sequence[Point]

    def __len__(self) -> int:
        return len(self.points)

    def lines(self) -> Iterator[str]:
        return (point.line() for point in self.points)

    def rows(self) -> Iterator[Point]:
        return iter(self.points)

    def split(self, count: int) -> tuple["PointList", "PointList"]:
        return PointList(self.points[:count]), PointList(self.points[count:])


@dataclass(frozen=True, slots=True)
class TelemetryPoints:
    """A telemetry batch's points, one ``telemetry`` point per reading, tagged device, gateway, village.

    Each point's line is rendered as the chunk is made (:func:`telemetry_points`), on its message's way in: a
    few microseconds per message, where rendering a write batch's 5,000 points at once holds the event loop
    for ~10 ms, and a panic alert arriving meanwhile with it."""

    village_id: str
    gateway_id: str
    points: Sequence[TelemetryPoint]
    rendered: Sequence[str]

    def __len__(self) -> int:
        return len(self.points)

    def lines(self) -> Iterator[str]:
        return iter(self.rendered)

    def rows(self) -> Iterator[Point]:
        return (
            Point(
                TELEMETRY,
                (("device", p.device_id), ("gateway", self.gateway_id), ("village", self.village_id)),
                ((p.metric, p.value),),
                p.ts,
            )
            for p in self.points
        )

    def split(self, count: int) -> tuple["TelemetryPoints", "TelemetryPoints"]:
        village_id, gateway_id = self.village_id, self.gateway_id
        return (
            TelemetryPoints(village_id, gateway_id, self.points[:count], self.rendered[:count]),
            TelemetryPoints(village_id, gateway_id, self.points[count:], self.rendered[count:]),
        )


def telemetry_points(village_id: str, batch: TelemetryBatch) -> TelemetryPoints:
    # Tags in key order (device, gateway, village): the part after the device is the same for all. Device ids
    # need no escaping (DeviceId's pattern has no comma, equals sign or space); this runs once per reading.
    rest = f",gateway={escape_tag(batch.gateway_id)},village={escape_tag(village_id)} "
    rendered = [f"{TELEMETRY},device={p.device_id}{rest}{p.metric}={p.value!r} {p.ts}" for p in batch.points]
    return TelemetryPoints(village_id, batch.gateway_id, batch.points, rendered)


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


def camera_health_points(village_id: str, heartbeat: Heartbeat) -> list[Point]:
    """One point per camera the heartbeat tells of (none for a gateway without cameras)."""
    points = []
    for device_id, camera in sorted(heartbeat.health.cameras.items()):
        fields: list[tuple[str, float]] = [
            ("analysed_fps", camera.analysed_fps),
            ("frames", float(camera.frames)),
            ("decode_errors", float(camera.decode_errors)),
            ("reconnects", float(camera.reconnects)),
            ("online", 0.0 if camera.reason is not None else 1.0),
        ]
        if camera.last_frame_age_s is not None:
            fields.append(("last_frame_age_s", camera.last_frame_age_s))
        tags = (("device", device_id), ("gateway", heartbeat.gateway_id), ("village", village_id))
        points.append(Point(CAMERA_HEALTH, tags, tuple(fields), heartbeat.ts))
    return points


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
