"""Fleet operations, for engineers: ingest rate and lag, refusals, time-series writes, config sync, versions, jobs."""

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row

from dashboards import look
from dashboards.board import frame
from dashboards.model import Flavour
from dashboards.panels import Shown, bars, time_series
from dashboards.queries import Current, Match, Rate, Reading
from protocol.series import DEVICE_FIRMWARE, FLEET_INGEST, FLEET_REJECTED, GATEWAY_STATE, JOB_TARGETS

IN_COUNTY = (Match("county", "county"),)


def fleet_operations(flavour: Flavour) -> Dashboard:
    gateways = GATEWAY_STATE.field("online")
    nodes = DEVICE_FIRMWARE.field("count")
    job_targets = JOB_TARGETS.field("count")
    return (
        frame(
            flavour,
            "fleet-operations",
            "Outpost · Fleet operations",
            "For engineers: what the fleet takes in and how far behind it is, what it refuses and why, its "
            "time-series writes, the gateways' config sync and agent versions, and how far jobs have got.",
            ("county",),
        )
        .with_row(Row("Ingest"))
        .with_panel(
            time_series(
                flavour,
                "Messages taken in",
                [Shown(Rate(FLEET_INGEST.field("received_total"), by=("instance",)), "received")],
                unit="suffix: msg/s",
                description="Messages the fleet takes from the broker per second, per fleet instance.",
                width=8,
            )
        )
        .with_panel(
            time_series(
                flavour,
                "Ingest lag",
                [Shown(Reading(FLEET_INGEST.field("oldest_unacked_s"), by=("instance",), agg="max"), "lag")],
                unit="s",
                description="How long the oldest message taken from the broker has waited to be stored.",
                thresholds=look.thresholds((5.0, look.ATTENTION), (30.0, look.ACT_NOW)),
                width=8,
            )
        )
        .with_panel(
            time_series(
                flavour,
                "Refused messages by reason",
                [Shown(Rate(FLEET_REJECTED.field("total"), by=("reason",)), "refused")],
                unit="suffix: msg/s",
                description="Messages the fleet refused (malformed, unknown schema version, wrong topic, ...).",
                thresholds=look.thresholds((0.01, look.ATTENTION)),
                width=8,
            )
        )
        .with_panel(
            time_series(
                flavour,
                "Time-series points",
                [
                    Shown(Rate(FLEET_INGEST.field("points_written_total")), "written /s"),
                    Shown(Rate(FLEET_INGEST.field("points_dropped_total")), "dropped /s"),
                ],
                unit="short",
                description="Points written to the time-series server, and points dropped because its buffer "
                "was full while it was down.",
            )
        )
        .with_panel(
            time_series(
                flavour,
                "Waiting to be stored",
                [
                    Shown(Reading(FLEET_INGEST.field("points_buffered"), agg="max"), "points buffered"),
                    Shown(Reading(FLEET_INGEST.field("unacked"), agg="max"), "messages unacknowledged"),
                ],
                unit="short",
                description="Points waiting for the time-series server, and messages held from the broker "
                "until their points are stored.",
            )
        )
        .with_row(Row("Gateways in the field"))
        .with_panel(
            bars(
                flavour,
                "Config status",
                [Shown(Current(gateways, reduce="count", by=("config_status",), where=IN_COUNTY, now=True), "gw")],
                unit="none",
                description="Gateways by the outcome of their last config report: applied, rejected, ... "
                "(none: never reported).",
                thresholds=look.NEUTRAL,
                width=8,
            )
        )
        .with_panel(
            bars(
                flavour,
                "Gateways with the wanted config",
                [
                    Shown(Current(GATEWAY_STATE.field("config_in_sync"), where=IN_COUNTY, now=True), "in sync"),
                    Shown(Current(gateways, reduce="count", where=IN_COUNTY, now=True), "gateways"),
                ],
                unit="none",
                description="Gateways that report the config version the fleet wants applied, of all gateways.",
                thresholds=look.NEUTRAL,
                width=8,
            )
        )
        .with_panel(
            bars(
                flavour,
                "Agent versions in the field",
                [Shown(Current(gateways, reduce="count", by=("agent_version",), where=IN_COUNTY, now=True), "gw")],
                unit="none",
                description="Gateways by the version of the Outpost agent they run.",
                thresholds=look.NEUTRAL,
                width=8,
            )
        )
        .with_panel(
            bars(
                flavour,
                "Sensor-node firmware in the field",
                [Shown(Current(nodes, by=("firmware",), where=IN_COUNTY, now=True), "nodes")],
                unit="none",
                description="Sensor nodes by the firmware version their last heartbeat reported to their gateway.",
                thresholds=look.NEUTRAL,
                width=8,
            )
        )
        .with_row(Row("Jobs"))
        .with_panel(
            bars(
                flavour,
                "Job gateways by state",
                [Shown(Current(job_targets, by=("job", "kind", "version", "state"), now=True), "gw")],
                unit="none",
                description="Per job (open, or ended in the last day) and state, how many of its gateways stand "
                "there now: queued, sent, downloading, ..., succeeded, failed, rolled_back, skipped, reverted "
                "(version: the agent release of an update, none for a bulk command). A state its gateways just "
                "left shows 0 for a minute. The whole fleet: the county filter does not apply.",
                thresholds=look.NEUTRAL,
                width=10,
                height=9,
            )
        )
        .with_panel(
            time_series(
                flavour,
                "Job gateways by state over time",
                [Shown(Current(job_targets, by=("state",)), "gw")],
                unit="none",
                description="The gateways of every job open or ended in the last day, stacked by their state, so "
                "waves are seen advancing from queued through sent and downloading to succeeded. Green: "
                "succeeded. Red: failed, rolled back or revert failed. Orange: put back after an abort. The whole "
                "fleet: the county filter does not apply.",
                stacked=True,
                colours=look.JOB_STATE_COLOURS,
                width=14,
                height=9,
            )
        )
    )
