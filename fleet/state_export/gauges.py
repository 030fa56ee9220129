"""One round of gauges: every village, gateway, sensor node's firmware, group of open alerts and of
deliveries, and the fleet's ingest, all stamped with the export time.

Six aggregate or per-row queries on one connection. They are not one snapshot (SQLite reads and
PostgreSQL's read-committed statements each see their own moment), so a gateway changing state between
two of them may be counted in its old state by one: the next round agrees with itself again."""

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.api.schemas import HealthReport
from fleet.db.engine import database_errors
from fleet.state_export.alert_gauges import alerts_by_village, open_alert_points, read_open_alerts
from fleet.state_export.deliveries import delivery_points
from fleet.state_export.device_firmware import device_firmware_points, read_device_firmware
from fleet.state_export.ingest_figures import ingest_points
from fleet.state_export.job_gauges import job_points
from fleet.state_export.places import read_places
from fleet.state_export.registry_gauges import (
    gateway_points,
    read_gateway_states,
    read_village_gateways,
    village_points,
)
from fleet.state_export.vanished import VanishedGroups
from fleet.timeseries.points import Point


class GaugeReader:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], health: Callable[[], HealthReport], instance: str
    ) -> None:
        self._sessions = sessions
        self._health = health
        self._instance = instance
        self._open_alerts = VanishedGroups()
        self._deliveries = VanishedGroups()
        self._device_firmware = VanishedGroups()
        self._jobs = VanishedGroups()

    async def read(self, now_ms: int) -> list[Point]:
        """Every gauge at ``now_ms``; DatabaseUnavailableError when the database does not answer."""
        with database_errors("read the fleet's state for export"):
            async with self._sessions() as session:
                connection = await session.connection()  # Core rows: half the event-loop time of ORM results
                places = await read_places(connection)
                open_alerts = await read_open_alerts(connection, now_ms)
                village_gateways = await read_village_gateways(connection)
                gateways = await read_gateway_states(connection)
                node_firmware = await read_device_firmware(connection)
                deliveries = await delivery_points(connection, now_ms)
                jobs = await job_points(connection, now_ms)
        points = await village_points(places, village_gateways, alerts_by_village(open_alerts), now_ms)
        points += await gateway_points(gateways, places, now_ms)
        firmware = await device_firmware_points(node_firmware, places, now_ms)
        points += self._device_firmware.with_zeros(firmware, now_ms)
        points += self._open_alerts.with_zeros(await open_alert_points(open_alerts, places, now_ms), now_ms)
        points += self._deliveries.with_zeros(deliveries, now_ms)
        points += self._jobs.with_zeros(jobs, now_ms)
        points += ingest_points(self._health(), self._instance, now_ms)
        return points
