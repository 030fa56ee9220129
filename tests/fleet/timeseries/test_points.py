"""Time-series points: naming, tags and their line-protocol form."""

import uuid
from typing import TypedDict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.timeseries.points import (
    CAMERA_HEALTH,
    DEVICE_EVENT,
    GATEWAY_HEALTH,
    TELEMETRY,
    Point,
    PointList,
    camera_health_points,
    event_point,
    health_point,
    telemetry_points,
)
from protocol.bounds import MAX_EPOCH_MS
from protocol.identifiers import IDENTIFIER_PATTERN
from protocol.messages import (
    AdapterState,
    CameraHealth,
    DeviceEvent,
    EventKind,
    GatewayHealth,
    Heartbeat,
    TelemetryBatch,
    TelemetryPoint,
)

TS = 1_700_000_000_123


class Envelope(TypedDict):
    gateway_id: str
    seq: int
    event_id: uuid.UUID
    ts: int


def envelope_kwargs() -> Envelope:
    return Envelope(gateway_id="gw-01", seq=3, event_id=uuid.uuid4(), ts=TS)


def tags(device: str) -> tuple[tuple[str, str], ...]:
    return (("device", device), ("gateway", "gw-01"), ("village", "lakeside"))


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("lake side", r"lake\ side"),
        ("a,b", r"a\,b"),
        ("k=v", r"k\=v"),
        ("a b,c=d", r"a\ b\,c\=d"),
        ("plain-id_1", "plain-id_1"),
        ("1.0\nrc", r"1.0\ rc"),  # line protocol has no line breaks in a tag
        ("v2\\", "v2"),  # a trailing backslash would escape the space after the tags
    ],
)
def test_tag_values_escape_spaces_commas_and_equals_and_never_break_the_line(value: str, escaped: str) -> None:
    point = Point("telemetry", (("village", value),), (("line_in", 1.0),), TS)

    assert point.line() == f"telemetry,village={escaped} line_in=1.0 {TS}"


def test_a_point_is_measurement_tags_fields_and_a_millisecond_timestamp() -> None:
    point = Point(
        "gateway_health",
        (("gateway", "gw-01"), ("village", "lakeside")),
        (("cpu_percent", 12.5), ("uptime_s", 3600.0)),
        TS,
    )

    assert point.line() == f"gateway_health,gateway=gw-01,village=lakeside cpu_percent=12.5,uptime_s=3600.0 {TS}"


@pytest.mark.parametrize(
    ("value", "text"), [(0.0, "0.0"), (-2.5, "-2.5"), (0.1, "0.1"), (1e-07, "1e-07"), (123456789.0, "123456789.0")]
)
def test_field_values_are_written_as_floats_without_loss(value: float, text: str) -> None:
    point = Point("telemetry", (), (("v", value),), 1)

    assert point.line() == f"telemetry v={text} 1"
    assert float(text) == value


def test_a_point_without_tags_has_no_tag_section() -> None:
    assert Point("m", (), (("f", 2.0),), 5).line() == "m f=2.0 5"


def test_telemetry_becomes_one_point_per_measurement_tagged_by_device_gateway_and_village() -> None:
    batch = TelemetryBatch(
        **envelope_kwargs(),
        points=[
            TelemetryPoint(device_id="camera-1", metric="line_in", value=3.0, ts=TS - 10),
            TelemetryPoint(device_id="camera-2", metric="line_out", value=4.0, ts=TS - 5),
        ],
    )

    points = telemetry_points("lakeside", batch)

    assert len(points) == 2
    assert list(points.rows()) == [
        Point(TELEMETRY, tags("camera-1"), (("line_in", 3.0),), TS - 10),
        Point(TELEMETRY, tags("camera-2"), (("line_out", 4.0),), TS - 5),
    ]
    assert list(points.lines()) == [
        f"telemetry,device=camera-1,gateway=gw-01,village=lakeside line_in=3.0 {TS - 10}",
        f"telemetry,device=camera-2,gateway=gw-01,village=lakeside line_out=4.0 {TS - 5}",
    ]


telemetry_readings = st.builds(
    TelemetryPoint,
    device_id=st.from_regex(IDENTIFIER_PATTERN, fullmatch=True),
    metric=st.from_regex(r"^[a-z][a-z0-9_]{0,63}$", fullmatch=True),
    value=st.floats(allow_nan=False, allow_infinity=False),
    ts=st.integers(min_value=0, max_value=MAX_EPOCH_MS),
)


@given(
    village=st.text(min_size=1, max_size=20),
    readings=st.lists(telemetry_readings, min_size=1, max_size=30),
    cut=st.integers(min_value=1, max_value=29),
)
def test_telemetry_lines_rendered_from_the_batch_match_the_general_point_form(
    village: str, readings: list[TelemetryPoint], cut: int
) -> None:
    """The hot path renders lines straight from the batch; they must be exactly what a Point renders,
    escaping included (the village comes from the topic), and splitting must lose or reorder nothing."""
    points = telemetry_points(village, TelemetryBatch(**envelope_kwargs(), points=readings))

    assert list(points.lines()) == [point.line() for point in points.rows()]
    if cut < len(points):
        head, tail = points.split(cut)
        assert (len(head), len(tail)) == (cut, len(points) - cut)
        assert [*head.lines(), *tail.lines()] == list(points.lines())


def test_a_point_list_splits_in_order() -> None:
    listed = PointList([Point("m", (), (("f", float(i)),), i) for i in range(5)])

    head, tail = listed.split(2)

    assert [*head.rows(), *tail.rows()] == list(listed.rows())
    assert list(head.lines()) == ["m f=0.0 0", "m f=1.0 1"]


def test_a_heartbeat_becomes_one_gateway_health_point() -> None:
    heartbeat = Heartbeat(
        **envelope_kwargs(),
        interval_s=10.0,
        health=GatewayHealth(
            cpu_percent=12.5,
            memory_percent=40.0,
            disk_percent=71.25,
            uptime_s=86400.0,
            temperature_c=51.2,
            uplink_rtt_ms=23.5,
            buffer_depth=7,
            buffer_bytes=4096,
            dropped={"telemetry": 3, "non_finite": 1},
            adapters={"cam-1": AdapterState.OFFLINE, "panic-1": AdapterState.RUNNING},
        ),
    )

    point = health_point("lakeside", heartbeat)

    assert point.measurement == GATEWAY_HEALTH == "gateway_health"
    assert point.tags == (("gateway", "gw-01"), ("village", "lakeside"))
    assert dict(point.fields) == {
        "cpu_percent": 12.5,
        "memory_percent": 40.0,
        "disk_percent": 71.25,
        "uptime_s": 86400.0,
        "temperature_c": 51.2,
        "uplink_rtt_ms": 23.5,
        "buffer_depth": 7.0,
        "buffer_bytes": 4096.0,
        "dropped_total": 4.0,
        "adapters_not_running": 1.0,
    }
    assert point.ts_ms == TS


def test_a_health_point_leaves_out_what_the_gateway_cannot_measure() -> None:
    heartbeat = Heartbeat(
        **envelope_kwargs(),
        interval_s=10.0,
        health=GatewayHealth(cpu_percent=1.0, memory_percent=2.0, disk_percent=3.0, uptime_s=4.0),
    )
    fields = dict(health_point("lakeside", heartbeat).fields)
    assert "temperature_c" not in fields
    assert "uplink_rtt_ms" not in fields


def test_each_camera_in_a_heartbeat_becomes_a_camera_health_point() -> None:
    cameras = {
        "cam-2": CameraHealth(analysed_fps=0.0, frames=10, reconnects=3, reason="connection refused"),
        "cam-1": CameraHealth(analysed_fps=4.98, stream_fps=10.0, last_frame_age_s=0.1, frames=500, decode_errors=2),
    }
    health = GatewayHealth(cpu_percent=1.0, memory_percent=2.0, disk_percent=3.0, uptime_s=4.0, cameras=cameras)
    heartbeat = Heartbeat(**envelope_kwargs(), interval_s=10.0, health=health)

    first, second = camera_health_points("lakeside", heartbeat)

    assert first.measurement == CAMERA_HEALTH == "camera_health"
    assert first.tags == (("device", "cam-1"), ("gateway", "gw-01"), ("village", "lakeside"))
    assert dict(first.fields) == {
        "analysed_fps": 4.98,
        "frames": 500.0,
        "decode_errors": 2.0,
        "reconnects": 0.0,
        "online": 1.0,
        "last_frame_age_s": 0.1,
    }
    assert dict(second.fields)["online"] == 0.0
    assert "last_frame_age_s" not in dict(second.fields), "never had a frame: no age"
    assert (
        camera_health_points(
            "lakeside",
            Heartbeat(**envelope_kwargs(), interval_s=10.0, health=health.model_copy(update={"cameras": {}})),
        )
        == []
    )


def test_an_event_becomes_a_count_tagged_with_its_kind() -> None:
    event = DeviceEvent(**envelope_kwargs(), device_id="door-1", kind=EventKind.DOOR_OPENED)

    point = event_point("lakeside", event)

    assert point.line() == f"device_event,device=door-1,gateway=gw-01,kind=door_opened,village=lakeside count=1.0 {TS}"
    assert point.measurement == DEVICE_EVENT
