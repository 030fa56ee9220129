"""Village detail: one village's gateways, devices, checkpoint traffic, events and alerts (town → village)."""

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row

from dashboards import look
from dashboards.board import frame
from dashboards.model import Flavour
from dashboards.panels import Shown, big_number, listing, time_series
from dashboards.queries import Count, Match, Reading, Total
from protocol.series import ALERT_STEP, CAMERA_HEALTH, DEVICE_EVENT, GATEWAY_HEALTH, TELEMETRY

IN_VILLAGE = (Match("village", "village"),)
PLACE = (Match("county", "county"), Match("town", "town"), Match("village", "village"))


def village_detail(flavour: Flavour) -> Dashboard:
    dashboard = frame(
        flavour,
        "village-detail",
        "Outpost · Village",
        "One village (pick its town, then the village): its gateways' health, its devices, checkpoint "
        "traffic, events and alerts.",
        ("county", "town", "village"),
    ).with_row(Row("Gateway health"))
    for title, field, unit, description, warn in (
        ("CPU", "cpu_percent", "percent", "Gateway CPU use.", ((80.0, look.ATTENTION), (95.0, look.ACT_NOW))),
        ("Memory", "memory_percent", "percent", "Gateway memory use.", ((85.0, look.ATTENTION), (95.0, look.ACT_NOW))),
        (
            "Disk",
            "disk_percent",
            "percent",
            "Gateway disk use: the store-and-forward buffer lives there.",
            ((80.0, look.ATTENTION), (90.0, look.ACT_NOW)),
        ),
        (
            "Temperature",
            "temperature_c",
            "celsius",
            "Gateway board temperature, where it has a sensor.",
            ((70.0, look.ATTENTION), (80.0, look.ACT_NOW)),
        ),
        (
            "Uplink round trip",
            "uplink_rtt_ms",
            "ms",
            "Time for the gateway's messages to reach the county broker and be acknowledged.",
            ((500.0, look.ATTENTION), (2000.0, look.ACT_NOW)),
        ),
        (
            "Messages buffered",
            "buffer_depth",
            "none",
            "Messages waiting on the gateway to be sent: they pile up "
            "while the uplink is down and drain when it is back.",
            ((1000.0, look.ATTENTION),),
        ),
    ):
        query = Reading(GATEWAY_HEALTH.field(field), by=("gateway",), where=IN_VILLAGE)
        dashboard = dashboard.with_panel(
            time_series(
                flavour,
                title,
                [Shown(query, field)],
                unit=unit,
                description=description,
                thresholds=look.thresholds(*warn),
                width=8,
            )
        )
    return (
        dashboard.with_row(Row("Devices"))
        .with_panel(
            big_number(
                flavour,
                "Devices not running",
                [Shown(Reading(GATEWAY_HEALTH.field("adapters_not_running"), where=IN_VILLAGE, agg="max"), "devices")],
                unit="none",
                description="Cameras, buttons, contacts and sensor nodes the gateway cannot read now.",
                thresholds=look.thresholds(*look.ANY_IS_BAD),
                width=4,
                height=8,
            )
        )
        .with_panel(
            time_series(
                flavour,
                "Sensor node batteries",
                [Shown(Reading(TELEMETRY.field("battery_v"), by=("device",), where=IN_VILLAGE), "battery")],
                unit="volt",
                description="Battery voltage the nodes report with their heartbeats. Below 3.4 V: change it.",
                thresholds=look.thresholds((3.4, look.OK), base=look.ACT_NOW),
                width=10,
            )
        )
        .with_panel(
            time_series(
                flavour,
                "Sensor node signal",
                [Shown(Reading(TELEMETRY.field("rssi_dbm"), by=("device",), where=IN_VILLAGE), "signal")],
                unit="dBm",
                description="Wi-Fi signal at the nodes. Below about -80 dBm the link drops now and then.",
                thresholds=look.thresholds((-80.0, look.OK), base=look.ATTENTION),
                width=10,
            )
        )
        .with_row(Row("Cameras"))
        .with_panel(
            time_series(
                flavour,
                "Frames analysed per second",
                [Shown(Reading(CAMERA_HEALTH.field("analysed_fps"), by=("device",), where=IN_VILLAGE), "fps")],
                unit="none",
                description="Frames each camera's detection looked at per second, as the gateway's heartbeat tells "
                "it. At 0 the camera sees nothing: its counts and tamper checks stop with it.",
                thresholds=look.thresholds((0.1, look.OK), base=look.ACT_NOW),
                width=12,
            )
        )
        .with_panel(
            time_series(
                flavour,
                "Seconds since a camera's last frame",
                [Shown(Reading(CAMERA_HEALTH.field("last_frame_age_s"), by=("device",), where=IN_VILLAGE), "age")],
                unit="s",
                description="How long ago each camera's last frame arrived. A frozen stream climbs here before the "
                "camera is reported offline.",
                thresholds=look.thresholds((5.0, look.ATTENTION), (30.0, look.ACT_NOW)),
                width=12,
            )
        )
        .with_row(Row("Checkpoint traffic"))
        .with_panel(
            time_series(
                flavour,
                "Line crossings per hour",
                [
                    Shown(
                        Total(TELEMETRY.field("line_in"), by=("device",), where=IN_VILLAGE, bucket="1h"),
                        "in",
                        prefixed=True,
                    ),
                    Shown(
                        Total(TELEMETRY.field("line_out"), by=("device",), where=IN_VILLAGE, bucket="1h"),
                        "out",
                        prefixed=True,
                    ),
                ],
                unit="none",
                description="Crossings of each checkpoint camera's counting line, in and out of the village, per "
                "hour. Counts only: no image leaves the gateway.",
                bars=True,
                width=24,
            )
        )
        .with_row(Row("Events and alerts"))
        .with_panel(
            time_series(
                flavour,
                "Device events",
                [Shown(Count(DEVICE_EVENT.field("count"), by=("kind",), where=IN_VILLAGE), "events")],
                unit="none",
                description="Presses, doors, motion, tamper, devices going offline and back, per interval.",
                bars=True,
                stacked=True,
            )
        )
        .with_panel(
            listing(
                flavour,
                "Events by device",
                Shown(
                    Count(DEVICE_EVENT.field("count"), by=("device", "kind"), where=IN_VILLAGE, over_range=True),
                    "events",
                ),
                description="How many events of each kind each device had in the time range.",
            )
        )
        .with_panel(
            listing(
                flavour,
                "Alerts in the village",
                Shown(
                    Count(ALERT_STEP.field("count"), by=("kind", "severity", "step"), where=PLACE, over_range=True),
                    "steps",
                ),
                description="Alerts raised in the time range, and the steps taken on them (acknowledged, "
                "dispatched, resolved, escalated), by kind and severity.",
                width=24,
            )
        )
    )
