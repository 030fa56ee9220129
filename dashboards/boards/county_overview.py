"""County overview: is every village covered and is anything waiting for someone, at a glance."""

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row

from dashboards import look
from dashboards.board import frame
from dashboards.model import Flavour
from dashboards.panels import Shown, bars, big_number, time_series, village_map
from dashboards.queries import Current, Is, Match
from protocol.series import ALERTS_OPEN, VILLAGE_STATE

IN_COUNTY = (Match("county", "county"),)


def county_overview(flavour: Flavour) -> Dashboard:
    online = VILLAGE_STATE.field("gateways_online")
    offline = VILLAGE_STATE.field("gateways_offline")
    open_alerts = ALERTS_OPEN.field("count")
    return (
        frame(
            flavour,
            "county-overview",
            "Outpost · County overview",
            "Gateways online and offline, open alerts and overdue cases, and every village on the map.",
            ("county",),
        )
        .with_row(Row("Now"))
        .with_panel(
            big_number(
                flavour,
                "Gateways online",
                [Shown(Current(online, where=IN_COUNTY, now=True), "online")],
                unit="none",
                description="Village gateways the fleet hears from now.",
                thresholds=look.thresholds(),
                width=5,
            )
        )
        .with_panel(
            big_number(
                flavour,
                "Gateways offline",
                [Shown(Current(offline, where=IN_COUNTY, now=True), "offline")],
                unit="none",
                description="Gateways that missed their heartbeats: their village is not covered. Red: act now.",
                thresholds=look.thresholds(*look.ANY_IS_BAD),
                width=5,
            )
        )
        .with_panel(
            big_number(
                flavour,
                "Critical alerts open",
                [Shown(Current(open_alerts, where=(*IN_COUNTY, Is("severity", "critical")), now=True), "critical")],
                unit="none",
                description="Panic presses, forced doors and other critical alerts not yet resolved.",
                thresholds=look.thresholds(*look.ANY_IS_BAD),
                width=5,
            )
        )
        .with_panel(
            big_number(
                flavour,
                "Alerts open",
                [Shown(Current(open_alerts, where=IN_COUNTY, now=True), "open")],
                unit="none",
                description="Every alert not yet resolved, closed, cleared or cancelled.",
                thresholds=look.thresholds((1.0, look.ATTENTION)),
                width=5,
            )
        )
        .with_panel(
            big_number(
                flavour,
                "Cases overdue",
                [Shown(Current(ALERTS_OPEN.field("overdue"), where=IN_COUNTY, now=True), "overdue")],
                unit="none",
                description="Open alerts nobody acknowledged by their deadline: they went up to the town or county.",
                thresholds=look.thresholds(*look.ANY_IS_BAD),
                width=4,
            )
        )
        .with_row(Row("Where"))
        .with_panel(
            village_map(
                flavour,
                "Villages",
                Shown(
                    Current(
                        VILLAGE_STATE.field("status"),
                        reduce="max",
                        by=("village", "latitude", "longitude"),
                        where=IN_COUNTY,
                        now=True,
                    ),
                    "status",
                ),
                description="Green: all well. Orange: a gateway offline or an alert open. Red: a critical alert "
                "open or every gateway offline. Villages without coordinates in the registry are not shown.",
            )
        )
        .with_panel(
            bars(
                flavour,
                "Open alerts by severity",
                [Shown(Current(open_alerts, by=("severity",), where=IN_COUNTY, now=True), "open")],
                unit="none",
                description="Open alerts of each severity.",
                thresholds=look.NEUTRAL,
                colours=look.SEVERITY_COLOURS,
                width=6,
                height=14,
            )
        )
        .with_panel(
            bars(
                flavour,
                "Open alerts by state",
                [Shown(Current(open_alerts, by=("state",), where=IN_COUNTY, now=True), "open")],
                unit="none",
                description="Raised: nobody has taken it on. Acknowledged: a centre has. Dispatched: the "
                "command platform assigned an officer.",
                thresholds=look.NEUTRAL,
                width=6,
                height=14,
            )
        )
        .with_row(Row("Over time"))
        .with_panel(
            time_series(
                flavour,
                "Gateways online by town",
                [Shown(Current(online, by=("town",), where=IN_COUNTY), "online")],
                unit="none",
                description="How many of each town's gateways the fleet heard from.",
            )
        )
        .with_panel(
            bars(
                flavour,
                "Gateways offline by town",
                [Shown(Current(offline, by=("town",), where=IN_COUNTY, now=True), "offline")],
                unit="none",
                description="Which towns have villages without a working gateway now.",
                thresholds=look.thresholds(*look.ANY_IS_BAD),
                width=12,
            )
        )
        .with_panel(
            time_series(
                flavour,
                "Open alerts by severity",
                [Shown(Current(open_alerts, by=("severity",), where=IN_COUNTY), "open")],
                unit="none",
                description="Open alerts over time, stacked by severity.",
                stacked=True,
                colours=look.SEVERITY_COLOURS,
                width=24,
            )
        )
    )
