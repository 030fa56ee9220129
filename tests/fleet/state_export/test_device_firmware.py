"""Sensor nodes by firmware version, from the gateways' last health (SQLite and PostgreSQL): one point per
node, placed like its gateway, and a node's previous version written once more as 0 when it moves on."""

from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.db.schema import GatewayRow
from fleet.state_export.gauges import GaugeReader
from fleet.state_export.series_point import series_point
from fleet.timeseries.points import Point
from protocol.series import DEVICE_FIRMWARE
from tests.fleet.state_export.seed import NOW_MS, add_rows, county, gateway, town, village
from tests.fleet.state_export.test_gauges import health

PLACE = {"county": "north", "town": "riverside", "village": "xihe"}
UNPLACED = {"county": "unassigned", "town": "unassigned", "village": "shanbei"}


def last_health(**fields: Any) -> dict[str, Any]:
    """A gateway's health as the registry stores it (the heartbeat's health, dumped as JSON)."""
    vitals = {"cpu_percent": 10.0, "memory_percent": 20.0, "disk_percent": 30.0, "uptime_s": 60.0}
    return vitals | {"adapters": {}} | fields


async def seed(sessions: async_sessionmaker[AsyncSession]) -> None:
    await add_rows(
        sessions,
        [
            county(),
            town("riverside"),
            village("xihe", "riverside"),
            village("shanbei"),  # heard of from traffic only: no town
            gateway(
                "gw-1",
                "xihe",
                online=True,
                last_health=last_health(device_firmware={"node-panic-well": "1.0.0", "node-door-store": "1.1.0-rc2"}),
            ),
            gateway("gw-2", "xihe"),  # never heard from: no health
            gateway("gw-3", "shanbei", last_health=last_health(device_firmware={"node-pir-lane": "1.0.0"})),
            gateway("gw-4", "shanbei", last_health=last_health()),  # an agent from before device_firmware
            gateway("gw-5", "shanbei", last_health=last_health(device_firmware={})),  # no nodes
            gateway("gw-6", "xihe", last_health=last_health(device_firmware={"node-panic-gate": ""})),
        ],
    )


def firmware_points(points: list[Point]) -> list[tuple[dict[str, str], dict[str, float], int]]:
    found = [(dict(p.tags), dict(p.fields), p.ts_ms) for p in points if p.measurement == DEVICE_FIRMWARE.name]
    return sorted(found, key=lambda p: (p[2], sorted(p[0].items())))


def node(place: dict[str, str], gateway_id: str, device: str, firmware: str) -> dict[str, str]:
    return place | {"gateway": gateway_id, "device": device, "firmware": firmware}


async def test_every_node_with_a_version_is_one_point_placed_like_its_gateway(
    any_sessions: async_sessionmaker[AsyncSession],
) -> None:
    await seed(any_sessions)

    points = await GaugeReader(any_sessions, health, "fleet-a").read(NOW_MS)

    one = {"count": 1.0}
    assert firmware_points(points) == [
        (node(PLACE, "gw-1", "node-door-store", "1.1.0-rc2"), one, NOW_MS),
        (node(PLACE, "gw-1", "node-panic-well", "1.0.0"), one, NOW_MS),
        (node(UNPLACED, "gw-3", "node-pir-lane", "1.0.0"), one, NOW_MS),
    ]
    [written] = [p for p in points if dict(p.tags).get("device") == "node-pir-lane"]
    assert written == series_point(DEVICE_FIRMWARE, dict(written.tags), {"count": 1}, NOW_MS)  # agreed names only
    assert written.line() == (
        "device_firmware,county=unassigned,device=node-pir-lane,firmware=1.0.0,gateway=gw-3,town=unassigned,"
        f"village=shanbei count=1.0 {NOW_MS}"
    )


async def test_an_upgraded_or_removed_nodes_previous_version_is_written_once_more_as_zero(
    any_sessions: async_sessionmaker[AsyncSession],
) -> None:
    await seed(any_sessions)
    reader = GaugeReader(any_sessions, health, "fleet-a")
    await reader.read(NOW_MS)
    upgraded = last_health(device_firmware={"node-panic-well": "1.2.0"})  # the door node left gw-1's devices
    async with any_sessions.begin() as session:
        await session.execute(update(GatewayRow).where(GatewayRow.id == "gw-1").values(last_health=upgraded))

    later, again = NOW_MS + 15_000, NOW_MS + 30_000
    after_upgrade = firmware_points(await reader.read(later))
    next_round = firmware_points(await reader.read(again))

    assert after_upgrade == [
        (node(PLACE, "gw-1", "node-door-store", "1.1.0-rc2"), {"count": 0.0}, later),
        (node(PLACE, "gw-1", "node-panic-well", "1.0.0"), {"count": 0.0}, later),
        (node(PLACE, "gw-1", "node-panic-well", "1.2.0"), {"count": 1.0}, later),
        (node(UNPLACED, "gw-3", "node-pir-lane", "1.0.0"), {"count": 1.0}, later),
    ]
    assert next_round == [  # once is enough
        (node(PLACE, "gw-1", "node-panic-well", "1.2.0"), {"count": 1.0}, again),
        (node(UNPLACED, "gw-3", "node-pir-lane", "1.0.0"), {"count": 1.0}, again),
    ]
