"""The gauges the state export writes for a seeded registry, open alerts, outbox and ingest (SQLite and PostgreSQL)."""

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.api.schemas import AlertDeliveryStatus, HealthReport, IngestStatus, TimeSeriesStatus
from fleet.db.schema import AlertRow, OutboxRow
from fleet.state_export.gauges import GaugeReader
from tests.fleet.state_export.seed import (
    NOW_MS,
    add_rows,
    alert,
    as_plain,
    county,
    gateway,
    gateway_config,
    outbox,
    town,
    village,
)

PLACE = {"county": "north", "town": "riverside", "village": "xihe"}
UNPLACED = {"county": "unassigned", "town": "unassigned", "village": "shanbei"}


def health() -> HealthReport:
    return HealthReport(
        status="ok",
        gateways_online=2,
        ingest=IngestStatus(
            connected=True,
            received=1200,
            rejected={"malformed_json": 3, "oversize": 1},
            duplicates=7,
            stalls=0,
            handler_errors=0,
            unacked=4,
            oldest_unacked_s=0.25,
            buffered_points=40,
        ),
        timeseries=TimeSeriesStatus(
            sink="embedded", healthy=True, written_points=9000, buffered_points=40, dropped_points=0, rejected_points=5
        ),
        alerts=AlertDeliveryStatus(raised=6, delivered=2, dead=1, blocked=None),
    )


async def seed(sessions: async_sessionmaker[AsyncSession]) -> None:
    await add_rows(
        sessions,
        [
            county(),
            town("riverside"),
            village("xihe", "riverside", latitude=30.123456789, longitude=120.5),
            village("shanbei"),  # heard of from traffic: no town, no coordinates
            village("dongpo", "riverside", latitude=29.5),  # half a position is none for a map
            gateway("gw-1", "xihe", online=True, last_seen_ms=NOW_MS - 5_000, agent_version="1.4.0"),
            gateway("gw-2", "xihe"),  # never heard of: offline, no version, no config
            gateway("gw-3", "shanbei", online=True, last_seen_ms=NOW_MS - 500, agent_version="1.3.9"),
            gateway("gw-4", "shanbei", last_seen_ms=NOW_MS - 600_000, agent_version="1.4.0"),
            gateway_config("gw-1", 3, published_ms=NOW_MS, reported_version=3, reported_status="applied"),
            gateway_config("gw-3", 4, published_ms=NOW_MS, reported_version=3, reported_status="applied"),
            gateway_config("gw-4", 2, published_ms=NOW_MS, reported_version=2, reported_status="rejected"),
            alert("a1", "gw-1", "xihe"),
            alert("a2", "gw-1", "xihe", level="town", escalate_at_ms=NOW_MS + 120_000),  # escalated once
            alert("a3", "gw-2", "xihe", kind="door_forced", severity="major", state="acknowledged"),
            alert("a4", "gw-2", "xihe", state="closed"),
            alert("a5", "gw-3", "shanbei", kind="gateway_offline", severity="major", escalate_at_ms=NOW_MS - 1),
            alert("a6", "gw-3", "shanbei", state="resolved"),
            outbox(1, "a1", "governance", "pending"),
            outbox(2, "a2", "governance", "pending"),
            outbox(3, "a3", "governance", "delivered"),
            outbox(4, "a4", "governance", "dead"),
            outbox(5, "a1", "webhook", "delivered"),
        ],
    )


async def test_every_gauge_for_a_seeded_fleet(any_sessions: async_sessionmaker[AsyncSession]) -> None:
    await seed(any_sessions)

    points = await GaugeReader(any_sessions, health, "fleet-a").read(NOW_MS)

    def gateway_state(place: dict[str, str], gateway_id: str, version: str, status: str) -> dict[str, str]:
        return place | {"gateway": gateway_id, "agent_version": version, "config_status": status}

    def rejected(reason: str, total: float) -> tuple[str, dict[str, str], dict[str, float]]:
        return ("fleet_rejected", {"instance": "fleet-a", "reason": reason}, {"total": total})

    open_alert = "alerts_open"
    assert as_plain(points) == as_plain_expected(
        [
            (
                open_alert,
                PLACE | {"severity": "critical", "state": "raised", "level": "village"},
                {"count": 1, "overdue": 0},
            ),
            (
                open_alert,
                PLACE | {"severity": "critical", "state": "raised", "level": "town"},
                {"count": 1, "overdue": 1},
            ),
            (
                open_alert,
                PLACE | {"severity": "major", "state": "acknowledged", "level": "village"},
                {"count": 1, "overdue": 0},
            ),
            (
                open_alert,
                UNPLACED | {"severity": "major", "state": "raised", "level": "village"},
                {"count": 1, "overdue": 1},  # its deadline passed; the timers have not moved it yet
            ),
            ("deliveries", {"channel": "governance", "state": "pending"}, {"count": 2}),
            ("deliveries", {"channel": "governance", "state": "delivered"}, {"count": 1}),
            ("deliveries", {"channel": "governance", "state": "dead"}, {"count": 1}),
            ("deliveries", {"channel": "webhook", "state": "delivered"}, {"count": 1}),
            (
                "fleet_ingest",
                {"instance": "fleet-a"},
                {
                    "received_total": 1200,
                    "duplicates_total": 7,
                    "points_written_total": 9000,
                    "points_dropped_total": 5,
                    "points_buffered": 40,
                    "unacked": 4,
                    "oldest_unacked_s": 0.25,
                    "connected": 1,
                },
            ),
            (
                "gateway_state",
                gateway_state(PLACE, "gw-1", "1.4.0", "applied"),
                {"online": 1, "config_in_sync": 1, "seen_age_s": 5.0},
            ),
            # no config layer reaches it: nothing to be out of sync with; never seen: no age
            ("gateway_state", gateway_state(PLACE, "gw-2", "unknown", "none"), {"online": 0, "config_in_sync": 1}),
            (
                "gateway_state",
                gateway_state(UNPLACED, "gw-3", "1.3.9", "applied"),  # applied an older version: pending
                {"online": 1, "config_in_sync": 0, "seen_age_s": 0.5},
            ),
            (
                "gateway_state",
                gateway_state(UNPLACED, "gw-4", "1.4.0", "rejected"),
                {"online": 0, "config_in_sync": 0, "seen_age_s": 600.0},
            ),
            (
                "village_state",
                PLACE | {"latitude": "30.12346", "longitude": "120.50000"},
                {
                    "gateways_online": 1,
                    "gateways_offline": 1,
                    "gateways_total": 2,
                    "alerts_open": 3,
                    "alerts_critical_open": 2,
                    "status": 2,
                },
            ),
            (
                "village_state",
                UNPLACED,
                {
                    "gateways_online": 1,
                    "gateways_offline": 1,
                    "gateways_total": 2,
                    "alerts_open": 1,
                    "alerts_critical_open": 0,
                    "status": 1,
                },
            ),
            (
                "village_state",
                PLACE | {"village": "dongpo"},
                {
                    "gateways_online": 0,
                    "gateways_offline": 0,
                    "gateways_total": 0,
                    "alerts_open": 0,
                    "alerts_critical_open": 0,
                    "status": 0,
                },
            ),
            rejected("bad_topic", 0),
            rejected("gateway_mismatch", 0),
            rejected("invalid_payload", 0),
            rejected("malformed_json", 3),
            rejected("node_mismatch", 0),
            rejected("oversize", 1),
            rejected("unknown_schema_version", 0),
        ]
    )


async def test_a_group_that_empties_is_written_once_more_as_zero(
    any_sessions: async_sessionmaker[AsyncSession],
) -> None:
    await seed(any_sessions)
    reader = GaugeReader(any_sessions, health, "fleet-a")
    await reader.read(NOW_MS)
    async with any_sessions.begin() as session:
        await session.execute(update(AlertRow).where(AlertRow.id == "a5").values(state="cancelled"))
        await session.execute(update(OutboxRow).where(OutboxRow.state == "dead").values(state="pending"))

    later = NOW_MS + 15_000
    points = as_plain(await reader.read(later))
    again = as_plain(await reader.read(later + 15_000))

    gone_alerts = ("alerts_open", UNPLACED | {"severity": "major", "state": "raised", "level": "village"})
    gone_dead = ("deliveries", {"channel": "governance", "state": "dead"})
    assert (*gone_alerts, {"count": 0.0, "overdue": 0.0}, later) in points
    assert (*gone_dead, {"count": 0.0}, later) in points
    assert ("deliveries", {"channel": "governance", "state": "pending"}, {"count": 3.0}, later) in points
    assert not [p for p in again if (p[0], p[1]) in (gone_alerts, gone_dead)]  # once is enough


def as_plain_expected(
    expected: list[tuple[str, dict[str, str], dict[str, float]]],
) -> list[tuple[str, dict[str, str], dict[str, float], int]]:
    return sorted(
        [(m, tags, {k: float(v) for k, v in fields.items()}, NOW_MS) for m, tags, fields in expected],
        key=lambda p: (p[0], sorted(p[1].items()), p[3]),
    )
