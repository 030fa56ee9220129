"""Alerts and cases: how alerts flow through their lifecycle, how fast they are taken on, what is stuck."""

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row

from dashboards import look
from dashboards.board import frame
from dashboards.model import Flavour
from dashboards.panels import Shown, bars, big_number, time_series
from dashboards.queries import Average, Count, Current, Is, Match, OneOf
from protocol.series import ALERT_STEP, ALERTS_OPEN, DELIVERIES

PLACE = (Match("county", "county"), Match("town", "town"))
FLOW = ("raise", "acknowledge", "dispatch", "resolve")


def alerts_cases(flavour: Flavour) -> Dashboard:
    steps = ALERT_STEP.field("count")
    waited = ALERT_STEP.field("since_raised_s")
    open_alerts = ALERTS_OPEN.field("count")
    dead = Current(DELIVERIES.field("count"), where=(Is("state", "dead"),), now=True)
    return (
        frame(
            flavour,
            "alerts-cases",
            "Outpost · Alerts and cases",
            "Alerts raised, acknowledged, dispatched and resolved; time to acknowledge and to resolve by "
            "town; escalations; deliveries to the command platform that failed for good.",
            ("county", "town"),
        )
        .with_row(Row("Now"))
        .with_panel(
            big_number(
                flavour,
                "Alerts open",
                [Shown(Current(open_alerts, where=PLACE, now=True), "open")],
                unit="none",
                description="Alerts not yet resolved, closed, cleared or cancelled.",
                thresholds=look.thresholds((1.0, look.ATTENTION)),
                width=5,
            )
        )
        .with_panel(
            big_number(
                flavour,
                "Overdue",
                [Shown(Current(ALERTS_OPEN.field("overdue"), where=PLACE, now=True), "overdue")],
                unit="none",
                description="Open alerts nobody acknowledged by their deadline.",
                thresholds=look.thresholds(*look.ANY_IS_BAD),
                width=5,
            )
        )
        .with_panel(
            big_number(
                flavour,
                "Raised in the period",
                [Shown(Count(steps, where=(*PLACE, Is("step", "raise")), over_range=True), "raised")],
                unit="none",
                description="Alerts raised in the dashboard's time range.",
                thresholds=look.NEUTRAL,
                width=5,
            )
        )
        .with_panel(
            big_number(
                flavour,
                "Escalations in the period",
                [Shown(Count(steps, where=(*PLACE, Is("step", "escalate")), over_range=True), "escalations")],
                unit="none",
                description="Times an alert went up to the town or the county because nobody took it on in time.",
                thresholds=look.thresholds((1.0, look.ATTENTION)),
                width=5,
            )
        )
        .with_panel(
            big_number(
                flavour,
                "Dead deliveries",
                [Shown(dead, "dead")],
                unit="none",
                description="Messages to the command platform (and other channels) given up after every retry: "
                "someone must open those cases by hand. All counties.",
                thresholds=look.thresholds(*look.ANY_IS_BAD),
                width=4,
            )
        )
        .with_row(Row("Flow"))
        .with_panel(
            time_series(
                flavour,
                "Alert steps",
                [Shown(Count(steps, by=("step",), where=(*PLACE, OneOf("step", FLOW))), "steps")],
                unit="none",
                description="Alerts raised, acknowledged, dispatched (case accepted upstream) and resolved per "
                "interval.",
                bars=True,
            )
        )
        .with_panel(
            time_series(
                flavour,
                "Escalations by level",
                [Shown(Count(steps, by=("level",), where=(*PLACE, Is("step", "escalate"))), "escalations")],
                unit="none",
                description="Escalations per interval, by the level the alert went up to.",
                bars=True,
                thresholds=look.thresholds((1.0, look.ATTENTION)),
            )
        )
        .with_row(Row("How fast"))
        .with_panel(
            bars(
                flavour,
                "Mean time to acknowledge, by town",
                [Shown(Average(waited, by=("town",), where=(*PLACE, Is("step", "acknowledge"))), "acknowledge")],
                unit="s",
                description="From an alert raised at the source to a centre acknowledging it, over the time range.",
                thresholds=look.thresholds((300.0, look.ATTENTION), (900.0, look.ACT_NOW)),
                width=12,
            )
        )
        .with_panel(
            bars(
                flavour,
                "Mean time to resolve, by town",
                [Shown(Average(waited, by=("town",), where=(*PLACE, Is("step", "resolve"))), "resolve")],
                unit="s",
                description="From an alert raised at the source to its case resolved, over the time range.",
                thresholds=look.thresholds((3600.0, look.ATTENTION), (4 * 3600.0, look.ACT_NOW)),
                width=12,
            )
        )
        .with_row(Row("Delivery and levels"))
        .with_panel(
            time_series(
                flavour,
                "Deliveries by channel and state",
                [Shown(Current(DELIVERIES.field("count"), by=("channel", "state")), "deliveries")],
                unit="none",
                description="Messages to each channel (the command platform, webhooks, the village centre) "
                "waiting, delivered, or dead after every retry. All counties.",
            )
        )
        .with_panel(
            bars(
                flavour,
                "Open alerts by level",
                [Shown(Current(open_alerts, by=("level",), where=PLACE, now=True), "open")],
                unit="none",
                description="Who must act on the open alerts: the village centre, or the town's or county's "
                "after escalation.",
                thresholds=look.NEUTRAL,
                width=12,
            )
        )
    )
